#!/usr/bin/env bash
# Makes sure the shared PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379) the test
# suite uses are up: starts what is down, waits until it answers, fails if it cannot.
set -euo pipefail

PG_PORT=${ENSURE_PG_PORT:-5432}
REDIS_PORT=${ENSURE_REDIS_PORT:-6379}
WAIT_S=${ENSURE_WAIT_S:-30}
DEFAULT_PG_URL="postgresql://postgres@127.0.0.1:$PG_PORT/postgres"
PG_URL=${AUTAN_TEST_POSTGRES_URL:-$DEFAULT_PG_URL}

has() { command -v "$1" >/dev/null 2>&1; }

die() { echo "error: $*" >&2; exit 1; }

as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif has sudo; then
        sudo -n "$@"
    else
        return 1
    fi
}

wait_for() {  # wait_for COMMAND...: true once COMMAND succeeds, false after WAIT_S seconds
    local deadline=$((SECONDS + WAIT_S))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}

pg_ready() { pg_isready -q -h 127.0.0.1 -p "$PG_PORT"; }

pg_can_login() {
    # The server may answer and still refuse us; the tests would fail later and less clearly.
    if has psql && ! psql -X -q -A -t -d "$PG_URL" -c 'select 1' >/dev/null 2>&1; then
        die "PostgreSQL is up but rejects $(pg_where); the tests connect without a password," \
            "so allow trust auth for the postgres user from 127.0.0.1 in pg_hba.conf," \
            "or set AUTAN_TEST_POSTGRES_URL to a URL that can log in and create databases"
    fi
}

pg_where() {
    if [[ $PG_URL == "$DEFAULT_PG_URL" ]]; then echo "postgres@127.0.0.1:$PG_PORT"; else echo "AUTAN_TEST_POSTGRES_URL"; fi
}

newest_postgres() {  # the newest installed server version, e.g. 15
    local dir
    for dir in /usr/lib/postgresql/*/bin/postgres; do
        [[ -x $dir ]] && basename "$(dirname "$(dirname "$dir")")"
    done | sort -V | tail -1
}

pg_create_cluster() {  # pg_create_cluster VERSION: a cluster `main` on PG_PORT, trust for postgres locally
    local version=$1 hba="/etc/postgresql/$1/main/pg_hba.conf"
    echo "postgresql: creating cluster $version/main on port $PG_PORT"
    as_root pg_createcluster "$version" main -p "$PG_PORT" -- \
        --auth-local=peer --auth-host=scram-sha-256 >/dev/null ||
        die "pg_createcluster $version main failed (see above)"
    # First match wins in pg_hba.conf, so these lines go on top.
    as_root sed -i "1i local all postgres trust\nhost all postgres 127.0.0.1/32 trust" "$hba" ||
        die "could not write $hba"
}

ensure_postgres() {
    has pg_isready || die "pg_isready not found; run infra/scripts/install-system-deps.sh (postgresql-client)"
    if [[ $PG_URL != "$DEFAULT_PG_URL" ]]; then
        # Someone else's server: check it, never start or change it.
        pg_isready -q -d "$PG_URL" || die "PostgreSQL at AUTAN_TEST_POSTGRES_URL does not answer"
        pg_can_login
        echo "postgresql: already running (AUTAN_TEST_POSTGRES_URL)"
        return
    fi
    if pg_ready; then
        pg_can_login
        echo "postgresql: already running on 127.0.0.1:$PG_PORT"
        return
    fi
    has pg_ctlcluster || die "PostgreSQL is not answering on 127.0.0.1:$PG_PORT and there is no" \
        "pg_ctlcluster to start it; start it yourself (for example systemctl start postgresql)"

    local cluster version name
    cluster=$(pg_lsclusters -h 2>/dev/null | awk -v port="$PG_PORT" '$3 == port { print $1, $2; exit }')
    if [[ -z $cluster ]]; then
        version=$(newest_postgres)
        [[ -n $version ]] || die "no PostgreSQL server installed; run infra/scripts/install-system-deps.sh"
        [[ ! -e /etc/postgresql/$version/main ]] || die "cluster $version/main exists but not on port" \
            "$PG_PORT; set port = $PG_PORT in /etc/postgresql/$version/main/postgresql.conf"
        pg_create_cluster "$version"
        cluster="$version main"
    fi
    read -r version name <<<"$cluster"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" "$name" start ||
        die "pg_ctlcluster $version $name start failed; see /var/log/postgresql/postgresql-$version-$name.log" \
            "(if it says it is running already, it does not listen on 127.0.0.1: check listen_addresses)"
    wait_for pg_ready ||
        die "PostgreSQL $version/$name started but does not answer on 127.0.0.1:$PG_PORT after ${WAIT_S}s;" \
            "check listen_addresses in /etc/postgresql/$version/$name/postgresql.conf"
    pg_can_login
    echo "postgresql: started $version/$name on 127.0.0.1:$PG_PORT"
}

redis_ready() { [[ $(timeout 2 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]]; }

ensure_redis() {
    has redis-cli || die "redis-cli not found; run infra/scripts/install-system-deps.sh (redis-tools)"
    if redis_ready; then
        echo "redis: already running on 127.0.0.1:$REDIS_PORT"
        return
    fi
    has redis-server || die "redis-server not found; run infra/scripts/install-system-deps.sh"
    local log="${TMPDIR:-/tmp}/autan-redis-$REDIS_PORT.log"
    redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
        --logfile "$log" --pidfile "${TMPDIR:-/tmp}/autan-redis-$REDIS_PORT.pid" ||
        die "redis-server would not start; see $log"
    wait_for redis_ready ||
        die "redis-server started but does not answer PONG on 127.0.0.1:$REDIS_PORT after ${WAIT_S}s" \
            "(is the port taken, or does that server want a password?); see $log"
    echo "redis: started on 127.0.0.1:$REDIS_PORT (log $log)"
}

ensure_postgres
ensure_redis
