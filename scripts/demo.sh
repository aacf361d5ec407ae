#!/usr/bin/env bash
# hermetic, the whole flow on one machine: a verifier (a simulated attested
# enclave measured with hermetic-eif: TLS key made in memory, bound by its
# attestation document; its master key made at genesis and split 2-of-3
# among custodians; an embedded store), a secret created with one owner
# whose signed statements set its policy and its value (sealed to the
# verifier's attested intake key), a parent proxy (Unix socket standing in
# for vsock) and a simulated Nitro enclave that fetches the secret and hands
# it to its workload, every client pinning the verifier image's
# measurements; the verifier restarts sealed and two custodians unseal it;
# then an enclave pinning another verifier image refuses it, the admin token alone fails to let another image in,
# an enclave with the wrong image is refused, and the audit log is checked.
# Everything it starts is stopped on exit.
#
# usage: scripts/demo.sh            (DEMO_DIR=... keeps the files there)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
work=${DEMO_DIR:-$(mktemp -d -t hermetic-demo.XXXXXX)}
mkdir -p "$work"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  # Without DEMO_DIR the files (custodian keys among them) go with the demo.
  if [ -z "${DEMO_DIR:-}" ]; then rm -rf -- "$work"; fi
}
trap cleanup EXIT

step=0
say() { step=$((step + 1)); printf '\n\033[1m== %d. %s\033[0m\n' "$step" "$*"; }
run() { printf '$ %s\n' "$*" >&2; "$@"; }

wait_for() { # FILE PATTERN: wait until a log line matches, print it
  local i
  for i in $(seq 1 300); do
    if grep -q "$2" "$1" 2>/dev/null; then grep -m1 "$2" "$1"; return 0; fi
    sleep 0.1
  done
  echo "timed out waiting for '$2' in $1:" >&2; cat "$1" >&2; return 1
}

say "Build the binaries"
(cd "$root" && cargo build --workspace --bins --quiet)
bin="$root/target/debug"
export PATH="$bin:$PATH"
if [ -n "${DEMO_DIR:-}" ]; then echo "work directory: $work (kept)"; else echo "work directory: $work (removed when the demo ends; DEMO_DIR=... keeps it)"; fi

say "Build an enclave image and record its measurements (as CI would)"
printf 'demo kernel\n' > "$work/kernel.bin"
printf 'demo init + application v1\n' > "$work/ramdisk.cpio"
run hermetic-eif build --kernel "$work/kernel.bin" --cmdline "console=ttyS0" \
  --ramdisk "$work/ramdisk.cpio" --output "$work/app.eif"
hermetic-eif describe "$work/app.eif" --format json > "$work/app.json"
run hermetic-eif policy "$work/app.eif" --secret demo-db-password | tee "$work/policy.toml"

say "Create the simulated NSM's test PKI (the verifier must be told to trust its root)"
run hermetic-enclave describe-nsm --nsm simulated --pki-dir "$work/sim-pki" > /dev/null
echo "test root: $work/sim-pki/root.pem"

say "Build the verifier's own enclave image and record its measurements (clients pin them)"
printf 'demo verifier kernel\n' > "$work/verifier-kernel.bin"
printf 'demo init + hermetic-verifier v1\n' > "$work/verifier-ramdisk.cpio"
run hermetic-eif build --kernel "$work/verifier-kernel.bin" --cmdline "console=ttyS0" \
  --ramdisk "$work/verifier-ramdisk.cpio" --output "$work/verifier.eif"
hermetic-eif describe "$work/verifier.eif" --format json > "$work/verifier.json"

say "Three custodians make their keys; each keeps its private key, and gives only its public key"
custodians=()
for i in 1 2 3; do
  custodians+=(--custodian "$(run hermetic-verifier custodian keygen --out "$work/custodian-$i.key")")
done
printf '%s\n' "${custodians[@]}" | grep -v -- --custodian

# The verifier's arguments, the same at its restart below (it then binds the
# same addresses).
serve_args=(--data-dir "$work/verifier" --trust-root "$work/sim-pki/root.pem"
  --nsm simulated --pki-dir "$work/verifier-sim-pki" --pcrs-from "$work/verifier.json")

say "Start the verifier as a (simulated) attested enclave: genesis makes its master key in memory and splits it 2-of-3 among the custodians; its TLS key is made in memory and bound by its document"
hermetic-verifier serve "${serve_args[@]}" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
  "${custodians[@]}" --custodian-threshold 2 \
  > "$work/genesis-printed.json" 2> "$work/verifier.log" &
pids+=($!)
verifier_pid=$!
line=$(wait_for "$work/verifier.log" "event=listening")
echo "$line"
public=$(sed -n 's/.*public=https:\/\/\([^ ]*\).*/\1/p' <<< "$line")
admin=$(sed -n 's/.*admin=\([^ ]*\).*/\1/p' <<< "$line")
echo "genesis record (public, printed for the custodians: one Shamir share of the master key sealed to each):"
cut -c1-110 "$work/verifier/genesis.json" | head -n 9
grep -m1 "event=genesis" "$work/verifier.log" || true

export HERMETIC_ADMIN_URL="$admin" HERMETIC_ADMIN_TOKEN_FILE="$work/verifier/admin.token"
grep -m1 "event=not_hermetic" "$work/verifier.log"
# Every client pins the verifier image (simulated: its test root too).
pins=(--verifier-measurements "$work/verifier.json" --verifier-root "$work/verifier-sim-pki/root.pem")
if command -v curl > /dev/null; then
  echo "its current attestation document: $(curl -sk "https://$public/v1/attestation" | wc -c) bytes at GET /v1/attestation"
fi

say "The verifier's log key (derived from its master key): enclaves and auditors pin it"
log_key=$(run hermetic-verifier log key --data-dir "$work/verifier")
echo "log key: $log_key"

say "The secret's owner makes a signing key; the admin creates the secret with that owner"
owner=$(run hermetic-verifier owner keygen --name demo-owner --out "$work/owner.key")
echo "owner key (public): $owner"
run hermetic-verifier secret create demo-db-password --owner "$owner" --threshold 1 \
  --verifier "$public" "${pins[@]}"

say "The owner proposes the policy, signs it (offline) and submits it"
run hermetic-verifier change propose policy demo-db-password --file "$work/policy.toml" \
  --out "$work/policy-change.json"
run hermetic-verifier change sign "$work/policy-change.json" --key "$work/owner.key"
run hermetic-verifier change submit "$work/policy-change.json"

say "The owner checks the verifier's attestation, then puts the value sealed to its attested intake key (no API returns it)"
printf 'hunter2-%s' "$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" > "$work/secret.value"
run hermetic-verifier secret put demo-db-password --value-file "$work/secret.value" \
  --sign "$work/owner.key" --verifier "$public" "${pins[@]}"
expected=$(sha256sum < "$work/secret.value" | cut -d' ' -f1)
rm -f "$work/secret.value"
run hermetic-verifier secret list --verifier "$public" "${pins[@]}"

say "Start the parent proxy (the untrusted relay; allow-listed to the verifier)"
hermetic-parent --listen "unix://$work/parent.sock" --allow "tcp://$public" \
  --capture "$work/parent-capture.bin" 2> "$work/parent.log" &
pids+=($!)
wait_for "$work/parent.log" "listening" > /dev/null
echo "parent listening on unix://$work/parent.sock, relaying to tcp://$public"

workload='printf "workload: DEMO_DB_PASSWORD has %s bytes, sha256 %s\n" "${#DEMO_DB_PASSWORD}" "$(printf %s "$DEMO_DB_PASSWORD" | sha256sum | cut -d" " -f1)"'

say "The enclave (simulated NSM, PCRs of app.eif), pinning the verifier's measurements, fetches the secret and starts its workload"
run hermetic-enclave run --nsm simulated --pki-dir "$work/sim-pki" --pcrs-from "$work/app.json" \
  --via "unix://$work/parent.sock" --verifier "tcp://$public" "${pins[@]}" \
  --log-key "$log_key" --secret demo-db-password -- sh -c "$workload" | tee "$work/workload.out"
grep -q "$expected" "$work/workload.out" && echo "(the hash matches the value the owner put)"

say "Restart the verifier: the master key was only in its memory, so it comes back sealed"
kill "$verifier_pid"; wait "$verifier_pid" 2>/dev/null || true
admin_addr=${admin#http://}
hermetic-verifier serve "${serve_args[@]}" --listen "$public" --admin-listen "$admin_addr" \
  2> "$work/verifier-2.log" &
pids+=($!)
verifier_pid=$!
wait_for "$work/verifier-2.log" "event=listening" > /dev/null
grep -m1 "event=sealed" "$work/verifier-2.log" | cut -c1-160
if command -v curl > /dev/null; then echo "GET /healthz: $(curl -s "http://$public/healthz")"; fi
set +e
hermetic-enclave run --nsm simulated --pki-dir "$work/sim-pki" --pcrs-from "$work/app.json" \
  --via "unix://$work/parent.sock" --verifier "tcp://$public" "${pins[@]}" \
  --log-key "$log_key" --secret demo-db-password --retries 0 -- sh -c 'echo "this must not run"' 2>&1 | tail -n 1
set -e
echo "(sealed: no release, no change, until two custodians unseal it)"

say "Two of the three custodians each check the verifier's attestation (its measurements, not debug) and re-seal their share to its attested key"
for i in 1 2; do
  run hermetic-verifier custodian unseal --verifier "http://$public" --key "$work/custodian-$i.key" \
    --verifier-measurements "$work/verifier.json" --trust-root "$work/verifier-sim-pki/root.pem" --genesis "$work/verifier/genesis.json"
done
wait_for "$work/verifier-2.log" "event=listening public=https" > /dev/null
echo "unsealed: $(grep -c '"action":"unsealed"' "$work/verifier/audit.jsonl") unsealed record in the log"

say "The enclave fetches the secret again from the unsealed verifier"
run hermetic-enclave run --nsm simulated --pki-dir "$work/sim-pki" --pcrs-from "$work/app.json" \
  --via "unix://$work/parent.sock" --verifier "tcp://$public" "${pins[@]}" \
  --log-key "$log_key" --secret demo-db-password -- sh -c "$workload" | tee "$work/workload-2.out"
grep -q "$expected" "$work/workload-2.out" && echo "(the same value, after restart and unseal)"

say "An enclave pinning another verifier image refuses this verifier during the TLS handshake"
printf 'demo init + hermetic-verifier v2\n' > "$work/verifier2-ramdisk.cpio"
hermetic-eif build --kernel "$work/verifier-kernel.bin" --cmdline "console=ttyS0" \
  --ramdisk "$work/verifier2-ramdisk.cpio" --output "$work/verifier2.eif" > /dev/null
hermetic-eif describe "$work/verifier2.eif" --format json > "$work/verifier2.json"
set +e
hermetic-enclave run --nsm simulated --pki-dir "$work/sim-pki" --pcrs-from "$work/app.json" \
  --via "unix://$work/parent.sock" --verifier "tcp://$public" \
  --verifier-measurements "$work/verifier2.json" --verifier-root "$work/verifier-sim-pki/root.pem" \
  --log-key "$log_key" --secret demo-db-password --retries 0 -- sh -c 'echo "this must not run"'
status=$?
set -e
echo "enclave exit status: $status (no request sent, no workload started)"
[ "$status" -eq 1 ]

say "What the parent saw: TLS records and byte counts only"
tail -n 1 "$work/parent.log"
if grep -a -q -e "demo-db-password" -e "HTTP/1.1" "$work/parent-capture.bin"; then
  echo "the capture contains plaintext!" >&2; exit 1
fi
echo "capture: $(wc -c < "$work/parent-capture.bin") bytes, no secret name, no HTTP, no secret"

say "The admin token alone cannot let another image in (issue 10, finding 1)"
printf 'demo init + application v1 + backdoor\n' > "$work/ramdisk-evil.cpio"
hermetic-eif build --kernel "$work/kernel.bin" --cmdline "console=ttyS0" \
  --ramdisk "$work/ramdisk-evil.cpio" --output "$work/evil.eif" > /dev/null
hermetic-eif describe "$work/evil.eif" --format json > "$work/evil.json"
hermetic-eif policy "$work/evil.eif" --secret demo-db-password > "$work/evil-policy.toml"
set +e
run hermetic-verifier change propose policy demo-db-password --file "$work/evil-policy.toml" \
  --out "$work/evil-change.json" > /dev/null
run hermetic-verifier change submit "$work/evil-change.json"
status=$?
set -e
echo "submit exit status: $status (refused: no owner signed it)"
[ "$status" -eq 1 ]

say "An enclave built from that other image is refused"
set +e
hermetic-enclave run --nsm simulated --pki-dir "$work/sim-pki" --pcrs-from "$work/evil.json" \
  --via "unix://$work/parent.sock" --verifier "tcp://$public" "${pins[@]}" \
  --log-key "$log_key" --secret demo-db-password --retries 0 -- sh -c 'echo "this must not run"'
status=$?
set -e
echo "enclave exit status: $status (no workload started)"
[ "$status" -eq 1 ]

say "An auditor checks an attestation document offline"
hermetic-enclave attest --nsm simulated --pki-dir "$work/sim-pki" --pcrs-from "$work/app.json" \
  --nonce 00112233 --out "$work/doc.cbor"
pcr0=$(sed -n 's/.*"PCR0": *"\([0-9a-f]*\)".*/\1/p' "$work/app.json" | head -n1)
run hermetic-verifier audit "$work/doc.cbor" --root "$work/sim-pki/root.pem" \
  --expect-pcr "0=$pcr0" --nonce 00112233 --max-age 5m | head -n 12
echo "(without --root the same document is refused: only the AWS root is trusted)"
hermetic-verifier audit "$work/doc.cbor" --format json | grep -m1 '"reason"' || true

say "The transparency log: each start (with the roots it trusts), every change (with its approvers and policy), release and attested refusal is a Merkle leaf under a signed checkpoint; log verify flags the test root"
cut -c1-200 "$work/verifier/audit.jsonl"
echo "the applied changes (action, version, statement hash, approvers, policy with its PCRs):"
grep '"change_applied"' "$work/verifier/audit.jsonl" | grep -o '"change":{.*' | cut -c1-400
echo "the signed checkpoint (GET /checkpoint):"
cat "$work/verifier/audit.checkpoint"
run hermetic-verifier log verify --data-dir "$work/verifier" --log-key "$log_key" \
  --save-checkpoint "$work/auditor.checkpoint"
release_seq=$(grep -n '"action":"release","verdict":"granted"' "$work/verifier/audit.jsonl" | head -n1 | cut -d: -f1)
run hermetic-verifier log prove "$((release_seq - 1))" --data-dir "$work/verifier" --out "$work/release.tlog-proof"
run hermetic-verifier log verify-proof "$work/release.tlog-proof" --log-key "$log_key" | head -n 1

say "Done: stopping the verifier and the parent"
