#!/usr/bin/env bash
# On a Nitro-enabled instance (Amazon Linux with nitro-cli and docker): build
# the verifier's own enclave image with its custodian set (and optional
# witness set) measured in, and record its measurements with hermetic-eif.
# Clients pin out/verifier-measurements.json: enclaves
# (`hermetic-enclave run --verifier-measurements`), owners and custodians
# (`hermetic-verifier ... --verifier-measurements`).
#
# usage: scripts/nitro/build-verifier.sh CUSTODIANS_TXT K [WITNESSES_TXT WITNESS_K]
#   CUSTODIANS_TXT: one custodian public key per line (`custodian keygen`)
#   WITNESSES_TXT:  one `URL=VKEY` per line (`witness keygen`)
# writes: out/hermetic-verifier.eif, out/verifier-measurements.json
set -euo pipefail
custodians=${1:?custodian public keys, one per line}; k=${2:?custodian threshold K}
witnesses=${3:-}; witness_k=${4:-0}
root=$(cd "$(dirname "$0")/../.." && pwd)
out="$root/out"; mkdir -p "$out"
n=$(grep -c . "$custodians" || true)
if [ "$k" -lt 2 ] || [ "$k" -gt "$n" ]; then
  echo "build-verifier: K=$k must be at least 2 and at most the $n custodians given" >&2; exit 2
fi
staged=("$root/custodians.txt" "$root/custodian-threshold.txt" "$root/witnesses.txt" "$root/witness-threshold.txt")
trap 'rm -f "${staged[@]}"' EXIT
cp "$custodians" "$root/custodians.txt"
printf '%s\n' "$k" > "$root/custodian-threshold.txt"
if [ -n "$witnesses" ]; then cp "$witnesses" "$root/witnesses.txt"; else : > "$root/witnesses.txt"; fi
printf '%s\n' "$witness_k" > "$root/witness-threshold.txt"

docker build -f "$root/scripts/nitro/Dockerfile.verifier" -t hermetic-verifier:latest "$root"
nitro-cli build-enclave --docker-uri hermetic-verifier:latest --output-file "$out/hermetic-verifier.eif" \
  > "$out/nitro-cli-build-verifier.json"

cargo build --release -p hermetic-eif --manifest-path "$root/Cargo.toml"
eif="$root/target/release/hermetic-eif"
"$eif" describe "$out/hermetic-verifier.eif" --format json > "$out/verifier-measurements.json"
# nitro-cli's numbers and ours must agree before anyone pins them.
"$eif" check "$out/hermetic-verifier.eif" --expect "$out/nitro-cli-build-verifier.json"
echo "image:        $out/hermetic-verifier.eif"
echo "measurements: $out/verifier-measurements.json  (give it to enclaves, owners and custodians to pin)"
