#!/usr/bin/env bash
# Install (from Debian's packages), start and prepare the PostgreSQL the tests use.
#
# Idempotent: reuses a running server, recreates a cluster whose data folder is gone, and
# (re)creates the test role and database. Only the loopback test cluster is touched: the
# role is an ordinary password login (no superuser), and pg_hba.conf is left as Debian
# ships it (scram-sha-256 on 127.0.0.1).
#
# Environment: KATIB_PG_USER / KATIB_PG_PASSWORD / KATIB_PG_DB (default katib/katib/katib_test).
# Prints the URL the tests read from KATIB_TEST_POSTGRES_URL.
set -euo pipefail

user="${KATIB_PG_USER:-katib}"
password="${KATIB_PG_PASSWORD:-katib}"
db="${KATIB_PG_DB:-katib_test}"
port=5432

if [ "$(id -u)" != 0 ] && ! command -v pg_ctlcluster >/dev/null; then
  echo "postgres.sh: PostgreSQL is not installed and this is not root; install the" \
       "'postgresql' package (Debian) and run again" >&2
  exit 1
fi

if ! command -v pg_ctlcluster >/dev/null; then
  echo "postgres.sh: installing PostgreSQL from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # policy-rc.d may forbid starting services during the install; we start it below.
  apt-get install -y -qq postgresql >/dev/null
fi

version="$(ls /usr/lib/postgresql | sort -V | tail -n1)"
cluster=main

# A cluster whose configuration survives but whose data folder was deleted cannot start:
# drop its remains and create it anew.
datadir="/var/lib/postgresql/${version}/${cluster}"
if pg_lsclusters -h 2>/dev/null | awk '{print $1" "$2}' | grep -x "${version} ${cluster}" >/dev/null; then
  if [ ! -f "${datadir}/PG_VERSION" ]; then
    echo "postgres.sh: the data folder ${datadir} is gone; recreating the cluster"
    pg_dropcluster --stop "${version}" "${cluster}" || true
  fi
fi
if ! pg_lsclusters -h 2>/dev/null | awk '{print $1" "$2}' | grep -x "${version} ${cluster}" >/dev/null; then
  pg_createcluster --port "${port}" "${version}" "${cluster}" >/dev/null
fi

if ! pg_isready -q -h 127.0.0.1 -p "${port}"; then
  pg_ctlcluster --skip-systemctl-redirect "${version}" "${cluster}" start
fi
for _ in $(seq 1 60); do
  pg_isready -q -h 127.0.0.1 -p "${port}" && break
  sleep 0.5
done
if ! pg_isready -q -h 127.0.0.1 -p "${port}"; then
  echo "postgres.sh: PostgreSQL did not become ready on 127.0.0.1:${port}; its log:" >&2
  tail -n 30 "/var/log/postgresql/postgresql-${version}-${cluster}.log" >&2 || true
  exit 1
fi

psql_admin() { runuser -u postgres -- psql -v ON_ERROR_STOP=1 -qtA -p "${port}" "$@"; }
if [ "$(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname = '${user}'")" != 1 ]; then
  psql_admin -c "CREATE ROLE \"${user}\" LOGIN PASSWORD '${password}'"
else
  psql_admin -c "ALTER ROLE \"${user}\" LOGIN PASSWORD '${password}'"
fi
if [ "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = '${db}'")" != 1 ]; then
  psql_admin -c "CREATE DATABASE \"${db}\" OWNER \"${user}\""
fi

echo "postgresql+psycopg://${user}:${password}@127.0.0.1:${port}/${db}"
