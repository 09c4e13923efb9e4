#!/usr/bin/env bash
# Makes sure a PostgreSQL server answers on 127.0.0.1:5432 for the storage and replica tests:
# starts the machine's cluster when it is stopped, installs Debian's postgresql when it is missing.
# Prints the DSN the tests should use. Exits non-zero when no server can be had.
set -euo pipefail

dsn="${AUTHZ_TEST_POSTGRES_DSN:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}"

ready() { pg_isready -q -h 127.0.0.1 -p 5432 >/dev/null 2>&1; }

if ! command -v pg_isready >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "ensure-postgres: installing postgresql from Debian's packages" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >&2
  else
    echo "ensure-postgres: pg_isready not found and cannot install PostgreSQL" >&2
    exit 1
  fi
fi

if ! ready; then
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    for v in $(ls /etc/postgresql); do
      echo "ensure-postgres: starting cluster $v/main" >&2
      pg_ctlcluster --skip-systemctl-redirect "$v" main start >&2 || true
    done
  fi
  for _ in $(seq 1 30); do ready && break; sleep 1; done
fi

if ! ready; then
  echo "ensure-postgres: PostgreSQL is not reachable on 127.0.0.1:5432" >&2
  exit 1
fi
echo "$dsn"
