//! Loads items into a `Store` and prints the RSS growth per item.
//!
//! `cargo run --release -p kvcache-server --example store_rss -- [items] [value_len] [shards]`
//! (defaults: 1000000 items, 32-byte values, the default shard count; keys are 14 bytes,
//! as in the headline figure: memcached 1.6.18 uses 123 B per item at 32-byte values and
//! 196 B at 100-byte values).

use kvcache_server::store::{Store, StoreConfig, StoreMode, StoreOutcome};

fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("read /proc/self/statm");
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("statm rss");
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
    pages * page
}

fn main() {
    let mut args = std::env::args().skip(1);
    let items: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let vlen: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(32);
    let mut cfg = StoreConfig::new(4 << 30);
    if let Some(shards) = args.next().and_then(|a| a.parse().ok()) {
        cfg.shards = shards;
    }
    let shards = cfg.shards;
    let store = Store::new(cfg).expect("store");
    let value = vec![b'v'; vlen];
    let before = rss_bytes();
    let mut key = [0u8; 14];
    for i in 0..items {
        key.copy_from_slice(format!("key:{i:010}").as_bytes());
        assert_eq!(
            store.store(StoreMode::Set, &key, 0, 0, &value),
            StoreOutcome::Stored
        );
    }
    let after = rss_bytes();
    let st = store.stats();
    assert_eq!(st.curr_items as usize, items);
    let es = store.engine().stats();
    let per_item = (after - before) as f64 / items as f64;
    println!(
        "items={items} key=14 value={vlen} shards={shards} rss_growth={} B per_item={per_item:.1} B \
         (key+value {} B; engine mapped {} B = {:.1} B/item)",
        after - before,
        14 + vlen,
        es.mapped_bytes,
        es.mapped_bytes as f64 / items as f64
    );
}
