//! Store operation throughput: threads doing gets and sets on preloaded keys.
//!
//! `cargo run --release -p kvcache-server --example store_ops -- [threads] [ops_per_thread] [get_percent]`
//! (defaults: 1 thread, 2000000 operations, 90% gets; 100000 keys of 14 bytes, 32-byte
//! values).

use std::sync::Arc;
use std::time::Instant;

use kvcache_server::store::{Store, StoreConfig, StoreMode};

fn main() {
    let mut args = std::env::args().skip(1);
    let threads: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let ops: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(2_000_000);
    let get_pct: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(90);
    let keys = 100_000u64;
    let store = Arc::new(Store::new(StoreConfig::new(256 << 20)).expect("store"));
    let value = [b'v'; 32];
    for i in 0..keys {
        store.store(
            StoreMode::Set,
            format!("key:{i:010}").as_bytes(),
            0,
            0,
            &value,
        );
    }
    let start = Instant::now();
    let handles: Vec<_> = (0..threads as u64)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ t;
                let mut out = Vec::with_capacity(64);
                let mut key = [0u8; 14];
                let mut hits = 0u64;
                for _ in 0..ops {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let k = x % keys;
                    key[..4].copy_from_slice(b"key:");
                    let mut n = k;
                    for d in (4..14).rev() {
                        key[d] = b'0' + (n % 10) as u8;
                        n /= 10;
                    }
                    if (x >> 32) % 100 < get_pct {
                        out.clear();
                        if store.get(&key, |v| out.extend_from_slice(v.value)) {
                            hits += 1;
                        }
                    } else {
                        store.store(StoreMode::Set, &key, 0, 0, &value);
                    }
                }
                hits
            })
        })
        .collect();
    let hits: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    let secs = start.elapsed().as_secs_f64();
    let total = ops * threads as u64;
    println!(
        "threads={threads} ops={total} gets={get_pct}% hits={hits}: {:.2} Mops/s, {:.0} ns/op per thread",
        total as f64 / secs / 1e6,
        secs * 1e9 * threads as f64 / total as f64
    );
}
