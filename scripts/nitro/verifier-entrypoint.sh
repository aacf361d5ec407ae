#!/bin/sh
# Inside the verifier enclave: start `hermetic-verifier serve` with the
# custodian and witness sets measured into this image. The data directory
# is in the enclave's memory; see README "On a real Nitro host" for where
# state lives and how a restarted enclave is unsealed.
set -eu
set --
while IFS= read -r key; do
  [ -n "$key" ] && set -- "$@" --custodian "$key"
done < /etc/hermetic/custodians.txt
while IFS= read -r witness; do
  [ -n "$witness" ] && set -- "$@" --witness "$witness"
done < /etc/hermetic/witnesses.txt
exec hermetic-verifier serve --nsm real --data-dir /var/lib/hermetic \
  --listen 127.0.0.1:8443 --admin-listen 127.0.0.1:8444 \
  --public-endpoint vsock://4294967295:8443 \
  --custodian-threshold "$(cat /etc/hermetic/custodian-threshold.txt)" \
  --witness-threshold "$(cat /etc/hermetic/witness-threshold.txt)" \
  "$@"
