#!/usr/bin/env bash
# Soak test, bounded in time (not part of `cargo test`): a development
# verifier (test-roots build, simulated NSM, loopback) serves good clients
# — real releases by the simulated enclave binary, one after another from
# several loops on 127.0.0.1, each checking its log receipt and the value —
# while hostile clients on 127.0.0.2..6 abuse it (slowloris, oversized
# bodies, garbage TLS, floods of challenges and made-up release requests,
# connection floods; scripts/soak-hostile.py). The verifier's RSS and open
# file descriptors are sampled every few seconds from /proc.
#
# Fails (exit 1) if any good release failed, if RSS at the end exceeds the
# RSS after warm-up by more than SOAK_RSS_GROWTH_PCT percent plus
# SOAK_RSS_SLACK_KB (defaults 25 % + 16384 KiB: allocator arenas settle in
# the first minute; a leak per request grows without bound), or if the
# verifier holds more file descriptors after the load has drained than
# before it started (SOAK_FD_SLACK, default 0).
#
# usage: scripts/soak.sh [SECONDS]   (default 240; SOAK_DIR=dir keeps files,
#        SOAK_GOOD=N good client loops, default 3)
set -euo pipefail

seconds=${1:-240}
root=$(cd "$(dirname "$0")/.." && pwd)
work=${SOAK_DIR:-$(mktemp -d -t hermetic-soak.XXXXXX)}
good_loops=${SOAK_GOOD:-3}
rss_growth_pct=${SOAK_RSS_GROWTH_PCT:-25}
rss_slack_kb=${SOAK_RSS_SLACK_KB:-16384}
fd_slack=${SOAK_FD_SLACK:-0}
interval=5
mkdir -p "$work"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

wait_for() { # FILE PATTERN
  local i
  for i in $(seq 1 600); do
    if grep -q "$2" "$1" 2>/dev/null; then grep -m1 "$2" "$1"; return 0; fi
    sleep 0.1
  done
  echo "timed out waiting for '$2' in $1:" >&2; cat "$1" >&2; return 1
}

echo "== building release binaries (test-roots, simulator: the development build)"
(cd "$root" && cargo build --release --quiet -p hermetic-verifier -p hermetic-enclave -p hermetic-eif)
bin="$root/target/release"
export PATH="$bin:$PATH"
echo "work directory: $work"

echo "== images, simulated PKI, verifier"
printf 'soak kernel\n' >"$work/kernel.bin"
printf 'soak init + application\n' >"$work/ramdisk.cpio"
hermetic-eif build --kernel "$work/kernel.bin" --cmdline "console=ttyS0" \
  --ramdisk "$work/ramdisk.cpio" --output "$work/app.eif" >/dev/null
hermetic-eif describe "$work/app.eif" --format json >"$work/app.json"
hermetic-eif policy "$work/app.eif" --secret soak-secret >"$work/policy.toml"
hermetic-enclave describe-nsm --nsm simulated --pki-dir "$work/sim-pki" >/dev/null
printf 'soak verifier kernel\n' >"$work/verifier-kernel.bin"
printf 'soak init + hermetic-verifier\n' >"$work/verifier-ramdisk.cpio"
hermetic-eif build --kernel "$work/verifier-kernel.bin" --cmdline "console=ttyS0" \
  --ramdisk "$work/verifier-ramdisk.cpio" --output "$work/verifier.eif" >/dev/null
hermetic-eif describe "$work/verifier.eif" --format json >"$work/verifier.json"

hermetic-verifier serve --data-dir "$work/verifier" \
  --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
  --trust-root "$work/sim-pki/root.pem" \
  --nsm simulated --pki-dir "$work/verifier-sim-pki" --pcrs-from "$work/verifier.json" \
  >"$work/genesis-printed.json" 2>"$work/verifier.log" &
vpid=$!
pids+=("$vpid")
line=$(wait_for "$work/verifier.log" "event=listening")
public=$(sed -n 's/.*public=https:\/\/\([^ ]*\).*/\1/p' <<<"$line")
admin=$(sed -n 's/.*admin=\([^ ]*\).*/\1/p' <<<"$line")
echo "verifier pid $vpid, public $public"
export HERMETIC_ADMIN_URL="$admin" HERMETIC_ADMIN_TOKEN_FILE="$work/verifier/admin.token"
pins=(--verifier-measurements "$work/verifier.json" --verifier-root "$work/verifier-sim-pki/root.pem")
log_key=$(hermetic-verifier log key --data-dir "$work/verifier")
owner=$(hermetic-verifier owner keygen --name soak-owner --out "$work/owner.key")
hermetic-verifier secret create soak-secret --owner "$owner" --threshold 1 \
  --verifier "$public" "${pins[@]}" >/dev/null
hermetic-verifier change propose policy soak-secret --file "$work/policy.toml" \
  --out "$work/policy-change.json" >/dev/null
hermetic-verifier change sign "$work/policy-change.json" --key "$work/owner.key" >/dev/null
hermetic-verifier change submit "$work/policy-change.json" >/dev/null
printf 'soak-%s' "$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" >"$work/secret.value"
hermetic-verifier secret put soak-secret --value-file "$work/secret.value" \
  --sign "$work/owner.key" --verifier "$public" "${pins[@]}" >/dev/null
expected=$(sha256sum <"$work/secret.value" | cut -d' ' -f1)
rm -f "$work/secret.value"

sample() { # PHASE: one line "epoch phase rss_kb fds"
  local rss fds
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$vpid/status")
  fds=$(find "/proc/$vpid/fd" -mindepth 1 -maxdepth 1 | wc -l)
  echo "$(date +%s) $1 $rss $fds"
}

good_loop() { # N: releases until the deadline; one result line per release
  local n=$1 out
  while [ "$(date +%s)" -lt "$end" ]; do
    out=$(hermetic-enclave run --nsm simulated --pki-dir "$work/sim-pki" --pcrs-from "$work/app.json" \
      --verifier "tcp://$public" "${pins[@]}" --log-key "$log_key" --secret soak-secret \
      --retries 0 --timeout 30s -- sh -c 'printf %s "$SOAK_SECRET" | sha256sum' 2>>"$work/good-$n.err") || true
    if [ "${out%% *}" = "$expected" ]; then echo ok; else echo "failed: $out"; fi
  done >"$work/good-$n.results"
}

# A warm-up release, then the baseline (no load yet).
first=$(hermetic-enclave run --nsm simulated --pki-dir "$work/sim-pki" --pcrs-from "$work/app.json" \
  --verifier "tcp://$public" "${pins[@]}" --log-key "$log_key" --secret soak-secret \
  --retries 0 -- sh -c 'printf %s "$SOAK_SECRET" | sha256sum')
[ "${first%% *}" = "$expected" ] || { echo "the first release failed" >&2; exit 1; }
sample baseline >"$work/samples"

echo "== load for ${seconds}s: $good_loops good loops on 127.0.0.1, hostile clients on 127.0.0.2-6"
start=$(date +%s)
end=$((start + seconds))
warm=$((start + seconds / 4))
load_pids=()
for n in $(seq 1 "$good_loops"); do
  good_loop "$n" &
  load_pids+=($!)
done
i=2
for kind in slowloris oversized garbage nonces connflood; do
  python3 "$root/scripts/soak-hostile.py" "$public" "$seconds" "$kind" "127.0.0.$i" \
    >"$work/hostile-$kind.out" 2>&1 &
  load_pids+=($!)
  i=$((i + 1))
done
pids+=("${load_pids[@]}")
while [ "$(date +%s)" -lt "$end" ]; do
  sleep "$interval"
  if [ "$(date +%s)" -lt "$warm" ]; then phase=warmup; else phase=load; fi
  sample "$phase" >>"$work/samples"
done
for pid in "${load_pids[@]}"; do wait "$pid" || true; done
# Let the verifier's request timeout (10 s) close what the hostile clients
# left behind, then take the final sample.
sleep 15
sample drained >>"$work/samples"

echo
printf '%-8s %-8s %10s %5s\n' t phase rss_kb fds
awk -v s="$start" '{printf "%-8s %-8s %10s %5s\n", ($1 - s) "s", $2, $3, $4}' "$work/samples"
for kind in slowloris oversized garbage nonces connflood; do cat "$work/hostile-$kind.out"; done

ok=$(cat "$work"/good-*.results | grep -c '^ok$' || true)
bad=$(cat "$work"/good-*.results | grep -vc '^ok$' || true)
base_fds=$(awk '$2 == "baseline" {print $4}' "$work/samples")
drained_fds=$(awk '$2 == "drained" {print $4}' "$work/samples")
warm_rss=$(awk '$2 == "load" {print $3; exit}' "$work/samples")
[ -n "$warm_rss" ] || warm_rss=$(awk '{r = $3} END {print r}' "$work/samples")
end_rss=$(awk '$2 == "load" || $2 == "warmup" {r = $3} END {print r}' "$work/samples")
max_rss=$(awk '{if ($3 > m) m = $3} END {print m}' "$work/samples")
bound=$((warm_rss + warm_rss * rss_growth_pct / 100 + rss_slack_kb))
echo
echo "good releases: $ok served, $bad failed"
echo "RSS: after warm-up ${warm_rss} KiB, at the end ${end_rss} KiB, peak ${max_rss} KiB (bound ${bound} KiB)"
echo "fds: baseline $base_fds, after the load drained $drained_fds (slack $fd_slack)"
status=0
if [ "$bad" -gt 0 ] || [ "$ok" -eq 0 ]; then
  echo "FAIL: good clients failed:" >&2
  cat "$work"/good-*.results | grep -v '^ok$' | sort | uniq -c | head >&2
  tail -n 5 "$work"/good-*.err >&2
  status=1
fi
if [ "$end_rss" -gt "$bound" ]; then echo "FAIL: RSS grew beyond the bound" >&2; status=1; fi
if [ "$drained_fds" -gt $((base_fds + fd_slack)) ]; then echo "FAIL: file descriptors leaked" >&2; status=1; fi
if ! kill -0 "$vpid" 2>/dev/null; then echo "FAIL: the verifier died" >&2; status=1; fi
[ "$status" -eq 0 ] && echo "soak: PASS"
exit "$status"
