#!/usr/bin/env bash
# Runs slab-core's loom models (src/tests/loom_*.rs) with their own target directory, so the
# `--cfg loom` build does not invalidate the normal one.
set -euo pipefail
cd "$(dirname "$0")/.."
RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 CARGO_TARGET_DIR=target/loom \
    cargo test --release -p slab-core --lib "$@"
