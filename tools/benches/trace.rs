//! Trace parsing throughput (lines per second), latest-size-per-key and per-request.
//!
//! `cargo bench -p slabtune --bench trace`; the quick figure without criterion is
//! `slabtune bench-trace --lines 10000000`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use slabtune::trace::{synthetic, TraceReader};

fn bench(c: &mut Criterion) {
    let lines = 1_000_000;
    let data = synthetic(lines, 200_000);
    let mut g = c.benchmark_group("trace");
    g.throughput(Throughput::Elements(lines as u64));
    g.sample_size(10);
    for per_request in [false, true] {
        let name = if per_request {
            "per_request"
        } else {
            "latest_per_key"
        };
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut t = TraceReader::new(per_request, false);
                t.read_all(&data[..], |_| {}).expect("in-memory read");
                t.writes
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
