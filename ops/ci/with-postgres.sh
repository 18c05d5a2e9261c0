#!/usr/bin/env bash
# Runs a command with a throwaway PostgreSQL cluster on a random local port, and removes the
# cluster afterwards. Exports GATEWAY_TEST_POSTGRES_URL for the tests.
#   ops/ci/with-postgres.sh cargo test --workspace --locked
# The tests' cluster runs with fsync=off (fast, not durable). GATEWAY_PG_DURABLE=1 keeps fsync
# and synchronous_commit on, as a production server has them: the benchmark's figures need it.
set -euo pipefail

bindir=""
for d in /usr/lib/postgresql/*/bin; do
  [ -x "$d/initdb" ] && bindir="$d"
done
if [ -z "$bindir" ]; then
  echo "PostgreSQL binaries not found; installing the Debian package" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  for d in /usr/lib/postgresql/*/bin; do [ -x "$d/initdb" ] && bindir="$d"; done
fi

work=$(mktemp -d /tmp/gateway-pg.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# PostgreSQL refuses to run as root: run the cluster as the `postgres` user where we are root.
as_pg=()
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
  chown postgres "$work"
  as_pg=(runuser -u postgres --)
fi
"${as_pg[@]}" "$bindir/initdb" -D "$work/data" -U postgres -A trust --no-sync >/dev/null
durability="-c fsync=off"
if [ "${GATEWAY_PG_DURABLE:-0}" = 1 ]; then
  durability="-c fsync=on -c synchronous_commit=on"
fi
"${as_pg[@]}" "$bindir/pg_ctl" -D "$work/data" -l "$work/log" -w -o "-p $port -k $work -c listen_addresses=127.0.0.1 $durability" start >/dev/null
cleanup() {
  "${as_pg[@]}" "$bindir/pg_ctl" -D "$work/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

export GATEWAY_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
echo "PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on port $port ($durability)" >&2
"$@"
