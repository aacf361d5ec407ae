#!/usr/bin/env bash
# Property-based API testing of a running verifier against its own OpenAPI
# document (GET /openapi.json), with schemathesis (PyPI): generated requests
# to every described operation of the public and the admin listener (the
# latter with the admin token), checking that no answer is a 5xx server
# error, that every status and body is the one documented, and
# (scripts/schemathesis_hooks.py) that every refusal carries a documented
# reason. Exits non-zero on any finding; the server and its data directory
# are removed on exit.
#
#   scripts/schemathesis.sh [MAX_EXAMPLES]     (default 50 per operation)
#
# Needs python3 with venv (Debian: python3-venv). The virtual environment
# is kept in target/schemathesis-venv (HERMETIC_ST_VENV), pinned below.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
examples="${1:-50}"
venv="${HERMETIC_ST_VENV:-target/schemathesis-venv}"

if [ ! -x "$venv/bin/schemathesis" ]; then
  if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    sudo=""
    if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
    $sudo apt-get update -qq >/dev/null
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
  fi
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "schemathesis==$SCHEMATHESIS_VERSION"
fi
"$venv/bin/schemathesis" --version

cargo build -q -p hermetic-verifier --bin hermetic-verifier
bin="${CARGO_TARGET_DIR:-target}/debug/hermetic-verifier"

work="$(mktemp -d)"
server=""
cleanup() {
  if [ -n "$server" ]; then
    kill -TERM "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# A fresh development verifier (test-roots build: one development
# custodian, a simulated NSM for custody, plain HTTP). Rate limit off:
# schemathesis sends many requests from one address.
"$bin" serve --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
  --data-dir "$work/data" --rate-limit 0 >"$work/serve.out" 2>"$work/serve.log" &
server=$!
for _ in $(seq 1 200); do
  if grep -q 'event=listening' "$work/serve.log"; then break; fi
  if ! kill -0 "$server" 2>/dev/null; then cat "$work/serve.log" >&2; exit 1; fi
  sleep 0.1
done
line="$(grep -m1 'event=listening' "$work/serve.log")" || { cat "$work/serve.log" >&2; exit 1; }
public="$(sed -E 's/.*public=(http:\/\/[^ ]+).*/\1/' <<<"$line")"
admin="$(sed -E 's/.*admin=(http:\/\/[^ ]+).*/\1/' <<<"$line")"
echo "verifier: public $public, admin $admin"

# The token goes to schemathesis in a header (its argv, as curl -H would):
# a throw-away token of a throw-away verifier.
token="$(cat "$work/data/admin.token")"

export SCHEMATHESIS_HOOKS=schemathesis_hooks
export PYTHONPATH="$PWD/scripts${PYTHONPATH:+:$PYTHONPATH}"
checks=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,refusal_reason_documented
venv="$(cd "$venv" && pwd)"
# Run inside the scratch directory: schemathesis keeps its cache of
# failing cases in ./.schemathesis, which goes away with it.
run() {
  (cd "$work" && "$venv/bin/schemathesis" run "$1/openapi.json" \
    --checks "$checks" \
    --max-examples "$examples" \
    --seed "${SCHEMATHESIS_SEED:-20261202}" \
    --workers 1 \
    --no-color \
    --phases examples,coverage,fuzzing \
    "${@:2}")
}
status=0
run "$public" || status=1
run "$admin" -H "Authorization: Bearer $token" || status=1
if ! kill -0 "$server" 2>/dev/null; then
  echo "the verifier stopped during the run" >&2
  cat "$work/serve.log" >&2
  status=1
fi
exit $status
