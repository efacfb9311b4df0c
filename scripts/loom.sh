#!/usr/bin/env bash
# Runs slab-core's loom models (src/tests/loom_*.rs) with their own target directory, so the
# `--cfg loom` build does not invalidate the normal one. Extra arguments go to the test
# binary's filter (default: every loom model). One test thread: the models map and unmap real
# memory, and another model's mapping landing in one of our unmapped holes would make an
# execution take a different path than loom recorded.
set -euo pipefail
cd "$(dirname "$0")/.."
filter=("${@:-tests::loom_}")
RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 CARGO_TARGET_DIR=target/loom \
    cargo test --release -p slab-core --lib -- --test-threads=1 "${filter[@]}"
# The store's item moves (kvcache-server/src/store/loom_moves.rs): run when no filter is
# given, or with one naming them.
if [ $# -eq 0 ] || [[ "$*" == *loom_moves* ]]; then
    RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 CARGO_TARGET_DIR=target/loom \
        cargo test --release -p kvcache-server --lib -- store::loom_moves::
fi
