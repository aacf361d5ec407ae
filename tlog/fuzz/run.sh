#!/usr/bin/env bash
# Short coverage-guided fuzz run of hermetic-tlog's parsers (notes, keys,
# checkpoints, cosignatures, tile paths, entry bundles, proof checkers),
# then of tlog-proof files and tiles (target proof_tile). Extra libFuzzer
# flags in FUZZ_ARGS.
# Usage: tlog/fuzz/run.sh [SECONDS]. Seeds: a few valid inputs written here.
# Stable rustc is allowed cargo-fuzz's -Z flags through RUSTC_BOOTSTRAP, as
# in scripts/fuzz.sh.
set -euo pipefail
seconds=${1:-60}
here=$(cd "$(dirname "$0")" && pwd)
corpus="$here/corpus/parse"
mkdir -p "$corpus"
# Go's sumdb/note example note (note.go, package doc) and a C2SP checkpoint.
printf '%s\n%s\n\n%s\n' "If you think cryptography is the answer to your problem," \
  "then you don't know what your problem is." \
  "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=" \
  >"$corpus/seed-note"
printf 'example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n' >"$corpus/seed-checkpoint"
printf 'PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW' >"$corpus/seed-vkey"
printf 'tile/1/x001/x234/067.p/17' >"$corpus/seed-tile"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
cd "$here/.."
# shellcheck disable=SC2086
RUSTC_BOOTSTRAP=1 cargo fuzz run parse "$corpus" -- \
  -max_total_time="$seconds" -max_len=8192 -rss_limit_mb=2048 -print_final_stats=1 ${FUZZ_ARGS:-}
# tlog-proof files, tiles and proofs over hostile stored hashes: seeds in
# the committed corpus (a proof signed by the key above, an entry bundle,
# tiles). Skipped with TLOG_FUZZ_TARGETS=parse.
if [[ " ${TLOG_FUZZ_TARGETS:-parse proof_tile} " == *" proof_tile "* ]]; then
  mkdir -p "$here/corpus/proof_tile"
  # shellcheck disable=SC2086
  RUSTC_BOOTSTRAP=1 cargo fuzz run proof_tile "$here/corpus/proof_tile" -- \
    -max_total_time="$seconds" -max_len=16384 -rss_limit_mb=2048 -print_final_stats=1 ${FUZZ_ARGS:-}
fi
