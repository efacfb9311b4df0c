#!/usr/bin/env bash
# Installs everything the tests and checks need on a fresh Debian machine. Idempotent:
# each step is skipped when what it installs is already there.
set -euo pipefail

apt_packages=()
command -v memcached >/dev/null || apt_packages+=(memcached)
command -v memccapable >/dev/null || apt_packages+=(libmemcached-tools)
perl -MCache::Memcached -e1 2>/dev/null || apt_packages+=(libcache-memcached-perl)
command -v nutcracker >/dev/null || apt_packages+=(nutcracker)
command -v strace >/dev/null || apt_packages+=(strace)
command -v tcpdump >/dev/null || apt_packages+=(tcpdump)
command -v valgrind >/dev/null || apt_packages+=(valgrind)
{ command -v prlimit && command -v setpriv; } >/dev/null || apt_packages+=(util-linux)
command -v openssl >/dev/null || apt_packages+=(openssl)
command -v saslpasswd2 >/dev/null || apt_packages+=(sasl2-bin)
/usr/bin/python3 -c 'import pylibmc' 2>/dev/null || apt_packages+=(python3-pylibmc)
if [ ${#apt_packages[@]} -gt 0 ]; then
    echo "setup: apt-get install ${apt_packages[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${apt_packages[@]}" >/dev/null
fi
# The Debian memcached package starts a daemon on 11211; the tests never use that port,
# but stop it so it holds no memory or port while the benchmarks run.
if command -v systemctl >/dev/null && systemctl is-active --quiet memcached 2>/dev/null; then
    systemctl stop memcached || true
fi

python3 -c 'import pymemcache' 2>/dev/null || {
    echo "setup: pip install pymemcache"
    python3 -m pip install -q --disable-pip-version-check pymemcache
}
python3 -c 'import prometheus_client' 2>/dev/null || {
    echo "setup: pip install prometheus_client"
    python3 -m pip install -q --disable-pip-version-check prometheus_client
}

rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
command -v cargo-fuzz >/dev/null || {
    echo "setup: cargo install cargo-fuzz"
    cargo install --locked -q cargo-fuzz
}
echo "setup: done"
