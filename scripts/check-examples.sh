#!/usr/bin/env bash
# Checks the slab-core examples' system calls under strace:
#  - drain: no page-sized munmap, and at least 8 MiB released per munmap on average;
#  - churn: the same number of mmap + munmap calls for 10 rounds as for 100 rounds.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=target/release/examples
cargo build --release -q -p slab-core --example drain --example churn
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

strace -f -e trace=munmap -o "$tmp/drain.trace" "$bin/drain" > "$tmp/drain.out"
# Only munmaps of the slab regions count; the runtime's own (thread stacks, loader) are
# recognisable by being smaller than one slab and are reported separately.
python3 - "$tmp/drain.trace" "$tmp/drain.out" <<'PY'
import re, sys
sizes = [int(m.group(1)) for m in (re.search(r"munmap\(0x[0-9a-f]+, (\d+)\) = 0", l) for l in open(sys.argv[1])) if m]
# drain prints the bytes it mapped; a munmap larger than that is the teardown of the
# address-space reservation at exit, not a release.
mapped = max(int(m.group(1)) for m in re.finditer(r"mapped_bytes_peak (\d+)", open(sys.argv[2]).read()))
page_sized = [s for s in sizes if s <= 4096]
slab_runs = [s for s in sizes if s % (1 << 20) == 0 and s <= mapped]
teardown = [s for s in sizes if s > mapped]
print(f"drain: {len(sizes)} munmap calls in all: {len(page_sized)} page-sized, "
      f"{len(slab_runs)} releasing slab runs, {len(teardown)} reservation teardown, "
      f"{len(sizes) - len(page_sized) - len(slab_runs) - len(teardown)} by the runtime")
if page_sized:
    sys.exit(f"drain made {len(page_sized)} page-sized munmap calls")
if not slab_runs:
    sys.exit("drain released nothing")
avg = sum(slab_runs) / len(slab_runs)
print(f"drain: released {sum(slab_runs) >> 20} MiB in {len(slab_runs)} munmap calls, {avg / (1 << 20):.1f} MiB per call")
if avg < 8 << 20:
    sys.exit("drain released less than 8 MiB per munmap on average")
PY

count() {
    strace -f -c -e trace=mmap,munmap -o "$tmp/churn.$1" "$bin/churn" "$1" > /dev/null
    awk '$NF == "mmap" || $NF == "munmap" { n += $4 } END { print n }' "$tmp/churn.$1"
}
c10=$(count 10)
c100=$(count 100)
echo "churn: mmap+munmap calls: $c10 for 10 rounds, $c100 for 100 rounds"
[ "$c10" = "$c100" ] || { echo "churn: call count grows with rounds"; exit 1; }
