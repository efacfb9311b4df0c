#!/usr/bin/env bash
# Miri over slab-core's unit tests (-Zmiri-strict-provenance), on the nightly toolchain
# (`rustup toolchain install nightly --component miri`; skipped with a note when it is not
# there). Miri cannot map memory PROT_NONE, which every SlabAllocator and Pool does to
# reserve its address space, so the tests that build one (magazine::tests, pool::tests)
# are left out: the rest (size classes, class lists, free-list links, release runs, the
# depot and magazines, the lazy table, errors) run under Miri.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! cargo +nightly miri --version >/dev/null 2>&1; then
    echo "miri: no nightly toolchain with miri here; skipped"
    exit 0
fi
export CARGO_TARGET_DIR=target/miri MIRIFLAGS="${MIRIFLAGS:--Zmiri-strict-provenance}"
mapfile -t tests < <(cargo +nightly miri test -q -p slab-core --lib -- --list 2>/dev/null |
    sed -n 's/: test$//p' | grep -Ev '^(magazine|pool)::tests::')
echo "miri: ${#tests[@]} slab-core unit tests"
cargo +nightly miri test -p slab-core --lib -- --exact "${tests[@]}"
