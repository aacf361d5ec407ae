#!/usr/bin/env bash
# On a Nitro-enabled parent instance (Amazon Linux with nitro-cli and docker):
# build the enclave image, record its measurements with hermetic-eif, and
# write the verifier policy that allows exactly this image.
#
# usage: scripts/nitro/build-enclave.sh VERIFIER_CA_PEM WORKLOAD_SH [SECRET_NAME]
# writes: out/hermetic-enclave.eif, out/measurements.json, out/policy.toml
set -euo pipefail
ca=${1:?verifier CA PEM}; workload=${2:?workload script}; secret=${3:-db-password}
root=$(cd "$(dirname "$0")/../.." && pwd)
out="$root/out"; mkdir -p "$out"
cp "$ca" "$root/verifier-ca.pem"; cp "$workload" "$root/workload.sh"
trap 'rm -f "$root/verifier-ca.pem" "$root/workload.sh"' EXIT

docker build -f "$root/scripts/nitro/Dockerfile.enclave" -t hermetic-enclave:latest "$root"
nitro-cli build-enclave --docker-uri hermetic-enclave:latest --output-file "$out/hermetic-enclave.eif" \
  > "$out/nitro-cli-build.json"

cargo build --release -p hermetic-eif --manifest-path "$root/Cargo.toml"
eif="$root/target/release/hermetic-eif"
"$eif" describe "$out/hermetic-enclave.eif" --format json > "$out/measurements.json"
# nitro-cli's own numbers and ours must agree before anything is deployed.
"$eif" check "$out/hermetic-enclave.eif" --expect "$out/nitro-cli-build.json"
"$eif" policy "$out/hermetic-enclave.eif" --secret "$secret" > "$out/policy.toml"
echo "image:   $out/hermetic-enclave.eif"
echo "policy:  $out/policy.toml  (its owners approve it on the verifier: hermetic-verifier change propose policy NAME --file ..., change sign, change submit)"
