#!/usr/bin/env bash
# Valgrind memcheck over bounded integration runs of the release server: the
# linearizability run under chaos (four rounds per server; the servers stop on SIGTERM, so
# memcheck's leak check runs) and the text, meta and binary protocol tests (their
# servers are killed at the end: memcheck reports their errors, not their leaks).
# Passes when no log has an error and every leak summary says 0 bytes definitely lost.
#
#   ./scripts/valgrind.sh            (about 2-4 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
command -v valgrind >/dev/null || { echo "valgrind: not installed (apt-get install valgrind)"; exit 1; }
cargo build --release -q -p kvcache-server --bin kvcache-server
logs=$(mktemp -d)
wrapper="$logs/kvcache-server-under-valgrind"
cat > "$wrapper" <<EOS
#!/bin/sh
exec valgrind --tool=memcheck --leak-check=full --errors-for-leak-kinds=definite \\
    --log-file=$logs/vg.%p.log "$root/target/release/kvcache-server" "\$@"
EOS
chmod +x "$wrapper"
export KVCACHE_SERVER_BIN="$wrapper"
LIN_ROUNDS=4 cargo test --release -q -p integration-tests --test linearizability_chaos
cargo test --release -q -p integration-tests --test server_text --test meta_protocol \
    --test binary_protocol
runs=0 errors=0 leaks=0 checked=0
for f in "$logs"/vg.*.log; do
    runs=$((runs + 1))
    e=$(sed -n 's/.*ERROR SUMMARY: \([0-9]*\) errors.*/\1/p' "$f" | tail -1)
    # A server killed at a test's end writes no summary: count its error records.
    [ -n "$e" ] || e=$(grep -cE '^==[0-9]+== (Invalid|Conditional jump|Use of uninitialised|Syscall param|Mismatched|Source and destination)' "$f" || true)
    errors=$((errors + e))
    if grep -q 'All heap blocks were freed' "$f"; then
        checked=$((checked + 1))
    elif grep -q 'definitely lost:' "$f"; then
        checked=$((checked + 1))
        l=$(sed -n 's/.*definitely lost: \([0-9,]*\) bytes.*/\1/p' "$f" | tr -d , | tail -1)
        leaks=$((leaks + l))
    fi
    [ "$e" = 0 ] || { echo "== $f"; cat "$f"; }
done
echo "valgrind: $runs server runs, $errors errors, $checked leak checks, $leaks bytes definitely lost"
[ "$runs" -gt 0 ] && [ "$checked" -gt 0 ] && [ "$errors" = 0 ] && [ "$leaks" = 0 ]
