#!/usr/bin/env bash
# Short coverage-guided fuzz runs (cargo-fuzz / libFuzzer) of the
# attestation parser and verifier, then of the EIF reader and of the
# tlog parsers (notes, keys, checkpoints, tile paths), each for
# SECONDS; then of the newer parsers, each for NEW_SECONDS (default: at
# most 30, so that CI's added time stays near 5 minutes): tlog-proof files
# and tiles, owner-approved changes (statement, owner set, statement file),
# custody records and messages, the release API's JSON bodies and value
# intake, the policy file, the verifier identity binding, the serve
# configuration file.
# Usage: scripts/fuzz.sh [SECONDS [NEW_SECONDS]]
# Seeds: the real AWS documents in ../shared/vectors (when present) and a
# simulated document. Stable rustc is allowed cargo-fuzz's -Z flags through
# RUSTC_BOOTSTRAP, since this machine has no nightly toolchain.
set -euo pipefail
seconds=${1:-60}
new_seconds=${2:-$((seconds < 30 ? seconds : 30))}
root=$(cd "$(dirname "$0")/.." && pwd)
corpus="$root/attestation/fuzz/corpus/verify"
mkdir -p "$corpus"
if [ -d "$root/../shared/vectors/attestation" ]; then
  find "$root/../shared/vectors/attestation" -name '*.cbor' -exec cp -t "$corpus" {} +
fi
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
# One target directory for the three fuzz crates: they build the same
# dependencies (aws-lc-sys among them) with the same sanitizer flags, so
# each is compiled once, not three times.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target/fuzz}"
cd "$root/attestation"
RUSTC_BOOTSTRAP=1 cargo fuzz run verify "$corpus" -- \
  -max_total_time="$seconds" -max_len=20000 -rss_limit_mb=2048 -print_final_stats=1
"$root/eif/fuzz/run.sh" "$seconds"
TLOG_FUZZ_TARGETS=parse "$root/tlog/fuzz/run.sh" "$seconds"
# The newer targets (their run.sh files name them); one shared target
# directory, as above.
(cd "$root/tlog" && mkdir -p fuzz/corpus/proof_tile && RUSTC_BOOTSTRAP=1 cargo fuzz run proof_tile \
  fuzz/corpus/proof_tile -- -max_total_time="$new_seconds" -max_len=16384 -rss_limit_mb=2048 \
  -print_final_stats=1)
for crate in approval custody envelope policy identity verifier; do
  "$root/$crate/fuzz/run.sh" "$new_seconds"
done
