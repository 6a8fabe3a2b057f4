#!/usr/bin/env bash
# System parts the test suite talks to for real: headless Chromium (dashboard tests; a Korean font for
# the Korean pages) and PostgreSQL (API tests) at 127.0.0.1:5432 with trust auth and a database `test`.
# Starts PostgreSQL if stopped; installs each from Debian's packages where missing, so a fresh machine passes too.
set -euo pipefail

sudo_cmd=""
if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
apt_updated=0
apt_install() {
    if [ "$apt_updated" -eq 0 ]; then $sudo_cmd apt-get update -q; apt_updated=1; fi
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -q "$@"
}

if [ ! -x /usr/bin/chromium ]; then
    echo "system_deps: installing Debian chromium"
    apt_install chromium chromium-driver
fi

# Hangul for the dashboard's Korean pages (without a Korean font their screenshots show empty boxes).
if ! fc-list :lang=ko 2>/dev/null | grep -q .; then
    echo "system_deps: installing a Korean font"
    apt_install fonts-nanum
fi

pg_up() { command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p 5432; }
if ! pg_up; then
    if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
        echo "system_deps: installing PostgreSQL from Debian"
        apt_install postgresql
        for hba in /etc/postgresql/*/main/pg_hba.conf; do
            $sudo_cmd sed -i -E 's/(scram-sha-256|md5|peer)$/trust/' "$hba"
        done
    fi
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    echo "system_deps: starting PostgreSQL $version"
    $sudo_cmd pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    for _ in $(seq 1 30); do pg_up && break; sleep 1; done
    pg_up || { echo "system_deps: PostgreSQL did not start" >&2; exit 1; }
fi
if ! psql -h 127.0.0.1 -U postgres -d test -c "select 1" >/dev/null 2>&1; then
    psql -h 127.0.0.1 -U postgres -d postgres -c "create database test" >/dev/null
fi
echo "system_deps: chromium and PostgreSQL ready"
