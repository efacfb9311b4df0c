#!/usr/bin/env bash
# Runs every check of the workspace, from a fresh machine: installs what the tests need,
# then formatting, the layout check (file length, module cycles), lints and docs, a release
# build of everything (benchmarks included, built but not run), the
# unit/property/integration tests, the slab-core examples' system-call checks, the loom
# models, linearizability under chaos and valgrind memcheck, the real-client checks
# against the release server, and short bounded fuzz runs.
#
#   ./scripts/test-all.sh            everything
#   FUZZ_SECONDS=0 ./scripts/test-all.sh   everything but fuzzing
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

step() { printf '\n==== %s\n' "$*"; }

step "setup"
./scripts/setup.sh

step "format and lints"
cargo fmt --all -- --check
./scripts/check-layout.sh
cargo clippy --workspace --all-targets --release -q -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps -q
# The fuzz package is its own workspace, so the lints above do not reach it: check it
# here, before the long steps, so a change that breaks a fuzz target fails early.
(cd kvcache-server/fuzz && . ../../scripts/fuzz-toolchain.sh && cargo $toolchain check -q --bins)

step "release build (server, tools, examples, benchmarks)"
cargo build --workspace --release --all-targets -q

step "tests"
cargo test --workspace --release

step "slab-core examples under strace"
./scripts/check-examples.sh

step "loom models"
./scripts/loom.sh

step "linearizability under chaos (512 histories) and valgrind memcheck"
LIN_ROUNDS=16 ./scripts/chaos.sh
./scripts/valgrind.sh

step "real clients against the release server"
./tests/clients/run-all.sh "$root/target/release/kvcache-server"

if [ "${FUZZ_SECONDS:-30}" != 0 ]; then
    step "bounded fuzzing"
    FUZZ_SECONDS="${FUZZ_SECONDS:-30}" ./scripts/fuzz.sh
fi

step "all checks passed"
