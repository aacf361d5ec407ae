#!/usr/bin/env bash
# Short coverage-guided fuzz runs (cargo-fuzz / libFuzzer) of the `serve
# --config-file` parser (TOML -> flags -> effective settings -> TOML).
# Usage: verifier/fuzz/run.sh [SECONDS] (per target). Seeds: the committed
# minimised corpus in corpus/TARGET. Extra libFuzzer flags (e.g.
# -runs=10000000 for a long run) in FUZZ_ARGS. Stable rustc is allowed
# cargo-fuzz's -Z flags through RUSTC_BOOTSTRAP, as in scripts/fuzz.sh.
set -euo pipefail
seconds=${1:-60}
here=$(cd "$(dirname "$0")" && pwd)
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
cd "$here/.."
for target in serve_config; do
  mkdir -p "$here/corpus/$target"
  # shellcheck disable=SC2086
  RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" "$here/corpus/$target" -- \
    -max_total_time="$seconds" -max_len=4096 -rss_limit_mb=2048 -print_final_stats=1 ${FUZZ_ARGS:-}
done
