#!/usr/bin/env bash
# Short coverage-guided fuzz run of the EIF reader (cargo-fuzz / libFuzzer).
# Usage: eif/fuzz/run.sh [SECONDS]. Seeds: the EIFs in ../shared/vectors/eif
# (when present). Stable rustc is allowed cargo-fuzz's -Z flags through
# RUSTC_BOOTSTRAP, as in scripts/fuzz.sh.
set -euo pipefail
seconds=${1:-60}
here=$(cd "$(dirname "$0")" && pwd)
corpus="$here/corpus/read_eif"
mkdir -p "$corpus"
vectors="$here/../../../shared/vectors/eif"
if [ -d "$vectors" ]; then
  find "$vectors" -maxdepth 1 -name '*.eif' -exec cp -t "$corpus" {} +
fi
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
cd "$here/.."
RUSTC_BOOTSTRAP=1 cargo fuzz run read_eif "$corpus" -- \
  -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 -print_final_stats=1
