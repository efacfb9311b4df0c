#!/usr/bin/env bash
# Bounded fuzz run of every target (text, meta and binary parsers; meta and binary
# execution against a small store), for CI.
# Usage: scripts/fuzz.sh [seconds per target, default $FUZZ_SECONDS or 45]
# Needs cargo-fuzz (`cargo install cargo-fuzz`). Each target starts from its seed corpus,
# kvcache-server/fuzz/seeds/<target>/, and grows kvcache-server/fuzz/corpus/<target>/.
set -euo pipefail
secs="${1:-${FUZZ_SECONDS:-45}}"
cd "$(dirname "$0")/../kvcache-server/fuzz"
. ../../scripts/fuzz-toolchain.sh
cargo $toolchain fuzz build -O
for target in text_parse meta_parse binary_parse exec_requests restart_meta udp_frame sasl_plain ops_parse; do
    echo "== fuzzing $target for ${secs}s"
    mkdir -p "corpus/$target"
    # corpus/ (ignored by git) grows; seeds/ is the curated starting set kept in the repo.
    cargo $toolchain fuzz run -O "$target" "corpus/$target" "seeds/$target" -- \
        -dict=memcached.dict -max_total_time="$secs" -max_len=4096 \
        -rss_limit_mb=2048 -print_final_stats=1
done
echo "fuzz: all targets ran ${secs}s without a failure"
