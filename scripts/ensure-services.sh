#!/usr/bin/env bash
# What the tests and the demo need beyond the venv: PostgreSQL and Redis on loopback, started when they are down
# (installed from Debian's packages when missing), docker-compose to validate the production compose file, mosquitto for
# the notification tests, and chromium for the browser tests.
# Idempotent and quick when everything is already there.
set -euo pipefail

apt_install() {
    if ! command -v apt-get >/dev/null; then
        echo "missing $*: install it with your system's package manager" >&2
        return 1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null \
        || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null; }
}

wait_for() {  # wait_for DESCRIPTION COMMAND...
    local what=$1
    shift
    for _ in $(seq 60); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    echo "$what did not come up" >&2
    return 1
}

if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    command -v pg_ctlcluster >/dev/null || apt_install postgresql
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    echo "starting PostgreSQL $version"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start
    wait_for PostgreSQL pg_isready -q -h 127.0.0.1 -p 5432
fi

if ! redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; then
    command -v redis-server >/dev/null || apt_install redis-server
    echo "starting Redis"
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
        --dir /var/lib/redis --logfile /var/log/redis/ci.log
    wait_for Redis redis-cli -h 127.0.0.1 -p 6379 ping
fi

command -v docker-compose >/dev/null || apt_install docker-compose

# The notification tests start their own MQTT broker (never a shared one).
command -v mosquitto >/dev/null || apt_install mosquitto

# The browser tests drive Debian's chromium with Playwright (never a downloaded browser).
command -v chromium >/dev/null || apt_install chromium
