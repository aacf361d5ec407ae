#!/usr/bin/env bash
# On a Nitro-enabled parent instance (Amazon Linux with nitro-cli and docker):
# build the enclave image, record its measurements with hermetic-eif, and
# write the verifier policy that allows exactly this image.
#
# usage: scripts/nitro/build-enclave.sh VERIFIER_MEASUREMENTS_JSON VERIFIER_LOG_KEY WORKLOAD_SH [SECRET_NAME]
# (VERIFIER_MEASUREMENTS_JSON: out/verifier-measurements.json of build-verifier.sh)
# (VERIFIER_LOG_KEY: the string `hermetic-verifier log key` prints)
# writes: out/hermetic-enclave.eif, out/measurements.json, out/policy.toml
set -euo pipefail
measurements=${1:?verifier measurements JSON}; log_key=${2:?verifier log key}; workload=${3:?workload script}; secret=${4:-db-password}
root=$(cd "$(dirname "$0")/../.." && pwd)
out="$root/out"; mkdir -p "$out"
cp "$measurements" "$root/verifier-measurements.json"; cp "$workload" "$root/workload.sh"
printf '%s\n' "$log_key" > "$root/verifier-log.key"
trap 'rm -f "$root/verifier-measurements.json" "$root/verifier-log.key" "$root/workload.sh"' EXIT

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
