#!/usr/bin/env bash
# On the parent instance: start the parent proxy (systemd) and the enclave.
# usage: scripts/nitro/run-enclave.sh [EIF] [CPUS] [MEMORY_MIB]
set -euo pipefail
eif=${1:-out/hermetic-enclave.eif}; cpus=${2:-2}; mem=${3:-1024}
sudo systemctl start hermetic-parent.service
nitro-cli run-enclave --eif-path "$eif" --cpu-count "$cpus" --memory "$mem" --enclave-cid 16
nitro-cli describe-enclaves
