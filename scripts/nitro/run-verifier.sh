#!/usr/bin/env bash
# On the verifier's host: start the inbound parent (TCP 8443 in, vsock out to
# the verifier enclave, TLS records only) and the verifier enclave.
# usage: scripts/nitro/run-verifier.sh [EIF] [CPUS] [MEMORY_MIB]
set -euo pipefail
eif=${1:-out/hermetic-verifier.eif}; cpus=${2:-2}; mem=${3:-2048}
nitro-cli run-enclave --eif-path "$eif" --cpu-count "$cpus" --memory "$mem" --enclave-cid 17
sudo systemctl start hermetic-parent-inbound.service
nitro-cli describe-enclaves
