#!/usr/bin/env bash
# Starts (or reuses) a throw-away PostgreSQL cluster for the tests, listening
# on 127.0.0.1 only, and prints the URL to export as HERMETIC_TEST_POSTGRES.
# Usage: scripts/test-postgres.sh [DIR] [PORT]   (defaults: /tmp/hermetic-pg 54329)
# Run it again: an already running cluster in DIR is reused. Needs Debian's
# `postgresql` package (installed here, as root, when missing).
set -euo pipefail
dir="${1:-/tmp/hermetic-pg}"
port="${2:-54329}"
bin=""
for d in /usr/lib/postgresql/*/bin; do [ -x "$d/initdb" ] && bin="$d"; done
if [ -z "$bin" ]; then
  if [ "$(id -u)" != 0 ]; then echo "install Debian's postgresql package first" >&2; exit 2; fi
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  for d in /usr/lib/postgresql/*/bin; do [ -x "$d/initdb" ] && bin="$d"; done
fi
# PostgreSQL refuses to run as root: the cluster belongs to `postgres` then.
as=()
if [ "$(id -u)" = 0 ]; then as=(runuser -u postgres --); fi
mkdir -p "$dir"
if [ "$(id -u)" = 0 ]; then chown postgres "$dir"; fi
if [ ! -f "$dir/PG_VERSION" ]; then
  "${as[@]}" "$bin/initdb" -D "$dir" -U postgres --auth=trust -E UTF8 >/dev/null
fi
if ! "${as[@]}" "$bin/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
  "${as[@]}" "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=300 -c fsync=on" start >/dev/null
fi
psql=("$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -v ON_ERROR_STOP=1 -qtA)
if [ -z "$("${psql[@]}" -c "select 1 from pg_roles where rolname='hermetic'")" ]; then
  "${psql[@]}" -c "create role hermetic login createdb password 'hermetic'"
fi
if [ -z "$("${psql[@]}" -c "select 1 from pg_database where datname='hermetic'")" ]; then
  "${psql[@]}" -c "create database hermetic owner hermetic"
fi
echo "postgres://hermetic@127.0.0.1:$port/hermetic"
