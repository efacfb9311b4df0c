#!/usr/bin/env bash
# Longer fuzzing, not run by CI: each target for FUZZ_LONG_SECONDS (default 600 s = 10
# min) from the curated seeds (kvcache-server/fuzz/seeds/<target>/), the corpus kept in
# the repo (corpus-kept/<target>/) and the working corpus (corpus/<target>/, ignored by
# git). At the end the inputs that add coverage are merged into corpus-kept/<target>/
# (libFuzzer's -merge=1 keeps only those), so the kept corpus grows with what the run
# found; commit it. Prints, per target, the executions, the coverage (edges) and the
# features libFuzzer reached.
#
#   ./scripts/fuzz-long.sh                    every target, 10 minutes each
#   FUZZ_LONG_SECONDS=60 ./scripts/fuzz-long.sh text_parse meta_parse
set -euo pipefail
secs="${FUZZ_LONG_SECONDS:-600}"
cd "$(dirname "$0")/../kvcache-server/fuzz"
. ../../scripts/fuzz-toolchain.sh
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(text_parse meta_parse binary_parse exec_requests)
cargo $toolchain fuzz build -O
summary=()
for target in "${targets[@]}"; do
    echo "== fuzzing $target for ${secs}s"
    mkdir -p "corpus/$target" "corpus-kept/$target"
    log=$(mktemp)
    cargo $toolchain fuzz run -O "$target" "corpus/$target" "seeds/$target" \
        "corpus-kept/$target" -- \
        -dict=memcached.dict -max_total_time="$secs" -max_len=4096 \
        -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1 || { tail -40 "$log"; exit 1; }
    grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)' "$log" || true
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1)
    before=$(find "corpus-kept/$target" -type f | wc -l)
    cargo $toolchain fuzz run -O "$target" "corpus-kept/$target" "corpus/$target" -- \
        -merge=1 >/dev/null 2>&1
    after=$(find "corpus-kept/$target" -type f | wc -l)
    summary+=("$target: ${execs:-?} executions, ${cov:-cov ?} (edges, features), kept corpus $before -> $after")
    rm -f "$log"
done
printf '%s\n' "fuzz-long (${secs}s per target):" "${summary[@]}"
