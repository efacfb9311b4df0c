#!/usr/bin/env bash
# Runs libmemcached's memccapable ASCII tests against HOST PORT and fails unless every
# test passes (memccapable exits 0 even with failures on some versions, so its output
# is parsed).
set -euo pipefail
host=${1:-127.0.0.1}
port=${2:?usage: memccapable.sh HOST PORT}
out=$(memccapable -a -h "$host" -p "$port" 2>&1) || true
echo "$out"
passed=$(grep -c '\[pass\]' <<<"$out" || true)
failed=$(grep -Ec '\[(FAIL|fail)\]' <<<"$out" || true)
echo "memccapable: $passed passed, $failed failed"
if [ "$failed" -ne 0 ] || [ "$passed" -lt 27 ]; then
    echo "memccapable: FAILED (need all 27 ASCII tests to pass)" >&2
    exit 1
fi
