#!/usr/bin/env bash
# Linearizability under chaos: runs tests/tests/linearizability_chaos.rs against the
# release server with more rounds than `cargo test` uses. Each round checks 16 per-key
# histories on each of two servers (-m 1024: nothing may be evicted; -m 10: evictions).
#
#   ./scripts/chaos.sh            36 rounds per server: 1,152 histories (about 2 minutes)
#   LIN_ROUNDS=16 ./scripts/chaos.sh   what scripts/test-all.sh runs (512 histories)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${LIN_ROUNDS:-36}"
cargo build --release -q -p kvcache-server --bin kvcache-server
LIN_ROUNDS="$rounds" cargo test --release -q -p integration-tests \
    --test linearizability_chaos -- --nocapture 2>&1 | grep -E 'histories|violations|test result|panicked|not linearizable|#'
