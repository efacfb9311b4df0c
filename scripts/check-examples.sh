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
python3 - "$tmp/drain.trace" <<'PY'
import re, sys
sizes = [int(m.group(1), 0) for m in (re.search(r"munmap\(0x[0-9a-f]+, (\d+)\) = 0", l) for l in open(sys.argv[1])) if m]
page_sized = [s for s in sizes if s <= 4096]
slab_sized = [s for s in sizes if s >= 1 << 20]
print(f"drain: {len(sizes)} munmap calls, {len(page_sized)} page-sized, {len(slab_sized)} of whole slabs")
if page_sized:
    sys.exit(f"drain made {len(page_sized)} page-sized munmap calls")
if not slab_sized:
    sys.exit("drain released nothing")
avg = sum(slab_sized) / len(slab_sized)
print(f"drain: {sum(slab_sized) >> 20} MiB in {len(slab_sized)} calls, {avg / (1 << 20):.1f} MiB per call")
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
