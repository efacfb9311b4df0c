//! Store tests: semantics, memory accounting, concurrency.

use super::*;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::index::shard_map;
use super::maintenance::ACCESS_CAP;
use crate::item::stored_size;

fn small_store() -> Store {
    Store::new(StoreConfig::new(8 << 20)).unwrap()
}

fn get_value(s: &Store, key: &[u8]) -> Option<Vec<u8>> {
    let mut out = None;
    s.get(key, |v| out = Some(v.value.to_vec()));
    out
}

#[test]
fn set_get_delete() {
    let s = small_store();
    assert_eq!(
        s.store(StoreMode::Set, b"k", 5, 0, b"hello"),
        StoreOutcome::Stored
    );
    let mut seen = None;
    assert!(s.get(b"k", |v| seen = Some((v.value.to_vec(), v.flags, v.cas))));
    let (v, f, cas) = seen.unwrap();
    assert_eq!((&v[..], f), (&b"hello"[..], 5));
    assert!(cas > 0);
    assert!(s.delete(b"k"));
    assert!(!s.delete(b"k"));
    assert_eq!(get_value(&s, b"k"), None);
    let st = s.stats();
    assert_eq!(
        (st.get_hits, st.get_misses, st.delete_hits, st.delete_misses),
        (1, 1, 1, 1)
    );
    assert_eq!(st.curr_items, 0);
    assert_eq!(used_chunks(&s), 0);
}

fn cas_of(s: &Store, key: &[u8]) -> u64 {
    let mut c = 0;
    assert!(s.get(key, |v| c = v.cas));
    c
}

/// Chunks handed out and not freed (after this thread's magazines are flushed; other
/// threads' magazines are flushed when they exit).
fn used_chunks(s: &Store) -> usize {
    s.allocator().flush_thread_cache();
    s.allocator_stats().live_chunks()
}

#[test]
fn modes_follow_memcached() {
    let s = small_store();
    use StoreMode::*;
    assert_eq!(s.store(Add, b"a", 0, 0, b"1"), StoreOutcome::Stored);
    assert_eq!(s.store(Add, b"a", 0, 0, b"2"), StoreOutcome::NotStored);
    assert_eq!(s.store(Replace, b"b", 0, 0, b"x"), StoreOutcome::NotStored);
    assert_eq!(s.store(Replace, b"a", 3, 0, b"22"), StoreOutcome::Stored);
    assert_eq!(get_value(&s, b"a").unwrap(), b"22");
    assert_eq!(s.store(Append, b"a", 9, 0, b"-post"), StoreOutcome::Stored);
    assert_eq!(s.store(Prepend, b"a", 9, 0, b"pre-"), StoreOutcome::Stored);
    let mut flags = 0;
    s.get(b"a", |v| flags = v.flags);
    assert_eq!(get_value(&s, b"a").unwrap(), b"pre-22-post");
    assert_eq!(flags, 3, "append/prepend keep the flags");
    assert_eq!(
        s.store(Append, b"nope", 0, 0, b"x"),
        StoreOutcome::NotStored
    );
    assert_eq!(
        s.store(Prepend, b"nope", 0, 0, b"x"),
        StoreOutcome::NotStored
    );
    // CAS.
    let c = cas_of(&s, b"a");
    assert_eq!(
        s.store(Cas(c + 100), b"a", 0, 0, b"v"),
        StoreOutcome::Exists
    );
    assert_eq!(s.store(Cas(c), b"a", 0, 0, b"v"), StoreOutcome::Stored);
    assert_eq!(s.store(Cas(c), b"a", 0, 0, b"w"), StoreOutcome::Exists);
    assert_eq!(s.store(Cas(1), b"zz", 0, 0, b"w"), StoreOutcome::NotFound);
    assert!(cas_of(&s, b"a") > c, "every modification gets a new unique");
    let st = s.stats();
    assert_eq!((st.cas_hits, st.cas_badval, st.cas_misses), (1, 2, 1));
    assert_eq!(st.curr_items, 1);
    assert!(s.delete(b"a"));
    assert_eq!(
        used_chunks(&s),
        0,
        "replaced and rejected chunks were all freed"
    );
}

#[test]
fn counters() {
    let s = small_store();
    assert_eq!(s.incr_decr(b"n", 1, true), IncrOutcome::NotFound);
    s.store(StoreMode::Set, b"n", 42, 0, b"10");
    assert_eq!(s.incr_decr(b"n", 5, true), IncrOutcome::Value(15));
    assert_eq!(s.incr_decr(b"n", 6, false), IncrOutcome::Value(9));
    // memcached pads a shorter result with spaces in place.
    assert_eq!(get_value(&s, b"n").unwrap(), b"9 ");
    assert_eq!(s.incr_decr(b"n", 100, false), IncrOutcome::Value(0));
    assert_eq!(s.incr_decr(b"n", 99, true), IncrOutcome::Value(99));
    assert_eq!(s.incr_decr(b"n", 1, true), IncrOutcome::Value(100));
    assert_eq!(get_value(&s, b"n").unwrap(), b"100");
    let mut flags = 0;
    s.get(b"n", |v| flags = v.flags);
    assert_eq!(flags, 42);
    s.store(StoreMode::Set, b"m", 0, 0, b"18446744073709551615");
    assert_eq!(s.incr_decr(b"m", 2, true), IncrOutcome::Value(1));
    assert_eq!(get_value(&s, b"m").unwrap(), b"1                   ");
    s.store(StoreMode::Set, b"x", 0, 0, b"12abc");
    assert_eq!(s.incr_decr(b"x", 1, true), IncrOutcome::NonNumeric);
    s.store(StoreMode::Set, b"x", 0, 0, b"");
    assert_eq!(s.incr_decr(b"x", 1, true), IncrOutcome::NonNumeric);
    s.store(StoreMode::Set, b"x", 0, 0, b"-1");
    assert_eq!(s.incr_decr(b"x", 1, true), IncrOutcome::NonNumeric);
    s.store(StoreMode::Set, b"x", 0, 0, b"99999999999999999999");
    assert_eq!(s.incr_decr(b"x", 1, true), IncrOutcome::NonNumeric);
    let c1 = cas_of(&s, b"n");
    s.incr_decr(b"n", 1, true);
    assert!(cas_of(&s, b"n") > c1);
    let st = s.stats();
    assert_eq!((st.incr_misses, st.decr_hits), (1, 2));
}

#[test]
fn parse_counter_like_strtoull() {
    assert_eq!(parse_counter(b"123"), Some(123));
    assert_eq!(parse_counter(b" 7 "), Some(7));
    assert_eq!(parse_counter(b"+7"), Some(7));
    assert_eq!(parse_counter(b"-0"), Some(0));
    assert_eq!(parse_counter(b"-3"), None);
    assert_eq!(parse_counter(b"3x"), None);
    assert_eq!(parse_counter(b"3 x"), Some(3));
    assert_eq!(parse_counter(b"x"), None);
    assert_eq!(parse_counter(b" "), None);
    assert_eq!(parse_counter(b"-"), None);
    assert_eq!(parse_counter(b"18446744073709551616"), None);
}

#[test]
fn expiry_and_touch() {
    let s = small_store();
    s.store(StoreMode::Set, b"t", 0, 10, b"v");
    s.store(StoreMode::Set, b"forever", 0, 0, b"v");
    s.store(StoreMode::Set, b"neg", 0, -1, b"v");
    assert_eq!(get_value(&s, b"neg"), None);
    let abs = s.clock().unix_now() + 20;
    s.store(StoreMode::Set, b"abs", 0, abs, b"v");
    let mut exp = 0;
    assert!(s.get(b"t", |v| exp = v.exptime));
    assert!(exp > s.now());
    s.clock().advance(11);
    assert_eq!(get_value(&s, b"t"), None);
    assert!(get_value(&s, b"abs").is_some());
    assert!(s.touch(b"abs", 100));
    s.clock().advance(20);
    assert!(get_value(&s, b"abs").is_some(), "touch extended it");
    let mut hit = false;
    assert!(s.get_and_touch(b"abs", -1, |_| hit = true));
    assert!(hit);
    assert_eq!(
        get_value(&s, b"abs"),
        None,
        "gat with a negative time expires it"
    );
    assert!(!s.touch(b"t", 10));
    assert!(get_value(&s, b"forever").is_some());
    let st = s.stats();
    assert!(st.get_expired >= 2);
    assert_eq!(st.curr_items, 1);
    // Expired items left unread are reclaimed by maintenance.
    s.store(StoreMode::Set, b"e", 0, 1, b"v");
    s.clock().advance(2);
    assert_eq!((0..CRAWL_STEPS).map(|_| s.maintenance()).sum::<u64>(), 1);
    assert_eq!(s.stats().crawler_reclaimed, 1);
    assert_eq!(s.stats().curr_items, 1);
}

#[test]
fn flush_all_now_and_later() {
    let s = small_store();
    for i in 0..100 {
        s.store(StoreMode::Set, format!("k{i}").as_bytes(), 0, 0, b"v");
    }
    s.flush_all(0);
    assert_eq!(s.stats().curr_items, 0);
    assert_eq!(used_chunks(&s), 0);
    assert_eq!(get_value(&s, b"k1"), None);
    // Stored after the flush: survives.
    s.store(StoreMode::Set, b"after", 0, 0, b"v");
    assert!(get_value(&s, b"after").is_some());
    // Delayed.
    s.flush_all(5);
    assert!(get_value(&s, b"after").is_some());
    s.clock().advance(6);
    assert_eq!(get_value(&s, b"after"), None);
    s.store(StoreMode::Set, b"later", 0, 0, b"v");
    assert!(
        get_value(&s, b"later").is_some(),
        "items stored after the flush time survive"
    );
}

#[test]
fn too_large_and_chained() {
    let s = small_store();
    let max = s.config().item_size_max;
    s.store(StoreMode::Set, b"big", 0, 0, b"old");
    let huge = vec![7u8; max];
    assert_eq!(
        s.store(StoreMode::Set, b"big", 0, 0, &huge),
        StoreOutcome::TooLarge
    );
    assert_eq!(
        get_value(&s, b"big"),
        None,
        "a too-large set deletes the old value"
    );
    s.store(StoreMode::Set, b"big", 0, 0, b"old");
    assert_eq!(
        s.store(StoreMode::Add, b"big", 0, 0, &huge),
        StoreOutcome::TooLarge
    );
    assert!(get_value(&s, b"big").is_some());
    // The largest value memcached accepts for this key.
    let fit = max - memcached_stored_size(3, 0, 0, true);
    let v: Vec<u8> = (0..fit).map(|i| (i * 31 % 251) as u8).collect();
    assert_eq!(
        s.store(StoreMode::Set, b"big", 0, 0, &v),
        StoreOutcome::Stored
    );
    assert_eq!(get_value(&s, b"big").unwrap(), v);
    // Chained values at segment boundaries, and appends that cross them.
    let seg = s.mem.payload();
    for n in [seg - 1, seg, seg + 1, 2 * seg, 3 * seg + 5] {
        let v: Vec<u8> = (0..n).map(|i| (i % 253) as u8).collect();
        assert_eq!(
            s.store(StoreMode::Set, b"c", 9, 0, &v),
            StoreOutcome::Stored,
            "{n}"
        );
        assert_eq!(get_value(&s, b"c").unwrap(), v, "{n}");
        assert_eq!(
            s.store(StoreMode::Append, b"c", 0, 0, b"tail"),
            StoreOutcome::Stored
        );
        assert_eq!(
            s.store(StoreMode::Prepend, b"c", 0, 0, b"head"),
            StoreOutcome::Stored
        );
        let got = get_value(&s, b"c").unwrap();
        assert_eq!(&got[..4], b"head");
        assert_eq!(&got[4..n + 4], &v[..]);
        assert_eq!(&got[n + 4..], b"tail");
        assert_eq!(s.incr_decr(b"c", 1, true), IncrOutcome::NonNumeric);
    }
    assert!(s.delete(b"c"));
    assert!(s.delete(b"big"));
    assert_eq!(used_chunks(&s), 0, "every chunk and segment came back");
}

#[test]
fn get_append_matches_get() {
    let s = small_store();
    let seg = s.mem.payload();
    // Largest first, so a reused assembly buffer would show stale bytes in a shorter one.
    for n in [3 * seg + 5, 2 * seg, seg + 1, seg, seg - 1, 100, 0] {
        let v: Vec<u8> = (0..n).map(|i| (i % 241) as u8).collect();
        assert_eq!(
            s.store(StoreMode::Set, b"k", 7, 0, &v),
            StoreOutcome::Stored
        );
        let mut view = None;
        assert!(s.get(b"k", |it| view =
            Some((it.flags, it.cas, it.value.to_vec()))));
        let (flags, cas, value) = view.unwrap();
        assert_eq!(value, v, "{n}");
        let before = s.stats();
        let mut out = b"prefix".to_vec();
        let mut head = None;
        assert!(s.get_append(b"k", None, &mut out, |h, out| {
            head = Some(*h);
            out.extend_from_slice(b"|");
        }));
        assert_eq!(head, Some(ValueHead { flags, cas, len: n }));
        assert_eq!(&out[..7], b"prefix|");
        assert_eq!(&out[7..], &v[..], "{n}");
        assert!(s.get_append(b"k", Some(0), &mut out, |_, _| {}));
        let after = s.stats();
        assert_eq!(after.get_hits, before.get_hits + 2);
        assert_eq!(after.cmd_touch, before.cmd_touch + 1);
        assert_eq!(after.touch_hits, before.touch_hits + 1);
    }
    let before = s.stats();
    let mut out = Vec::new();
    assert!(!s.get_append(b"absent", Some(0), &mut out, |_, _| panic!(
        "a miss has no head"
    )));
    assert!(out.is_empty());
    let after = s.stats();
    assert_eq!(after.get_misses, before.get_misses + 1);
    assert_eq!(after.cmd_touch, before.cmd_touch + 1);
    assert_eq!(after.touch_misses, before.touch_misses + 1);
}

#[test]
fn cas_disabled() {
    let mut cfg = StoreConfig::new(8 << 20);
    cfg.cas_enabled = false;
    let s = Store::new(cfg).unwrap();
    s.store(StoreMode::Set, b"k", 1, 0, b"v");
    assert_eq!(cas_of(&s, b"k"), 0);
    assert_eq!(
        s.store(StoreMode::Cas(0), b"k", 0, 0, b"w"),
        StoreOutcome::Stored
    );
    // 14 + 1 + 1 + 4 (flags) bytes: no CAS field.
    assert_eq!(s.size_histogram(), vec![(16, 1)]);
}

#[test]
fn histogram_tracks_items() {
    let s = small_store();
    for i in 0..50u32 {
        s.store(
            StoreMode::Set,
            format!("key{i:03}").as_bytes(),
            0,
            0,
            &[b'x'; 32],
        );
    }
    s.store(StoreMode::Set, b"key000", 0, 0, &[b'y'; 100]);
    let want_small = stored_size(6, 32, 0, true).div_ceil(8) * 8;
    let want_big = stored_size(6, 100, 0, true).div_ceil(8) * 8;
    assert_eq!(s.size_histogram(), vec![(want_small, 49), (want_big, 1)]);
    let st = s.stats();
    assert_eq!(st.curr_items, 50);
    assert_eq!(
        st.bytes,
        49 * stored_size(6, 32, 0, true) as u64 + stored_size(6, 100, 0, true) as u64
    );
    s.reset_stats();
    assert_eq!(s.stats().total_items, 0);
    assert_eq!(s.stats().curr_items, 50);
}

#[test]
fn eviction_keeps_within_limit() {
    let limit = 1 << 20;
    let s = Store::new(StoreConfig::new(limit)).unwrap();
    let value = [b'v'; 100];
    for i in 0..50_000u32 {
        let key = format!("key:{i}");
        assert_eq!(
            s.store(StoreMode::Set, key.as_bytes(), 0, 0, &value),
            StoreOutcome::Stored,
            "{i}"
        );
        // A hot key read all the time keeps its CLOCK bit.
        if i % 10 == 0 {
            assert!(get_value(&s, b"key:0").is_some(), "hot key evicted at {i}");
        }
    }
    let st = s.stats();
    assert!(st.evictions > 40_000, "{st:?}");
    assert!(st.mapped_bytes as usize <= limit);
    assert_eq!(st.curr_items + st.evictions, 50_000);
    let c = st.classes.iter().find(|c| c.evicted > 0).unwrap();
    assert_eq!(c.evicted, st.evictions);
    assert_eq!(c.evicted_unfetched, st.evictions);
    assert_eq!(get_value(&s, b"key:49999").unwrap(), value);
}

#[test]
fn new_sizes_get_memory_when_full() {
    // Fill a small store with one size, then switch sizes: the new classes have no slab and
    // nothing to evict, so slabs move over from the full class.
    let limit = 2 << 20;
    let s = Store::new(StoreConfig::new(limit)).unwrap();
    for i in 0..40_000u32 {
        let key = format!("small:{i}");
        assert_eq!(
            s.store(StoreMode::Set, key.as_bytes(), 0, 0, &[1u8; 100]),
            StoreOutcome::Stored
        );
    }
    assert!(s.stats().evictions > 0);
    for (n, len) in [(2000u32, 1000usize), (200, 9000), (20, 200_000)] {
        for i in 0..n {
            let key = format!("big{len}:{i}");
            let v = vec![(i % 200) as u8; len];
            assert_eq!(
                s.store(StoreMode::Set, key.as_bytes(), 0, 0, &v),
                StoreOutcome::Stored,
                "{len} {i}"
            );
            assert_eq!(get_value(&s, key.as_bytes()).unwrap(), v);
        }
    }
    let st = s.stats();
    assert!(st.mapped_bytes as usize <= limit);
    assert!(
        st.classes.iter().filter(|c| c.number > 0).count() >= 3,
        "{st:?}"
    );
    assert!(st.slabs_moved > 0);
}

#[test]
fn a_class_without_memory_takes_a_slab_held_by_segments() {
    // Fill a small store with chained values whose last segment nearly fills a chunk of
    // its own class: every slab but the heads' holds segments, which no CLOCK hand
    // evicts. Then take away every empty slab (spares and pool), so that a new size can
    // only get memory by emptying a slab of segments, evicting the items they belong to.
    let limit = 2 << 20;
    let s = Store::new(StoreConfig::new(limit)).unwrap();
    let seg = s.mem.payload();
    let value = |i: u32| vec![(i % 251) as u8; seg + 30_000];
    let n = 200u32;
    for i in 0..n {
        let key = format!("chain:{i}");
        assert_eq!(
            s.store(StoreMode::Set, key.as_bytes(), 0, 0, &value(i)),
            StoreOutcome::Stored
        );
    }
    let engine = s.engine();
    for c in 0..s.cfg.classes.len() {
        engine.release_spare(ClassId(c as u16));
    }
    // Chunks held here, not by items: their slabs cannot be emptied (and reused slabs keep
    // tags of the segments they held before, which must not be taken for items).
    let filler = s.cfg.classes.class_for(3000).unwrap();
    let mut held = Vec::new();
    while let Ok(p) = s.mem.alloc.alloc_class(filler) {
        held.push(p);
    }
    assert_eq!(engine.stats().pooled_slabs, 0);
    let before = s.stats();
    assert!(before.evictions > 0);
    for len in [100usize, 700, 9000] {
        let key = format!("new:{len}");
        let v = vec![b'n'; len];
        assert_eq!(
            s.store(StoreMode::Set, key.as_bytes(), 0, 0, &v),
            StoreOutcome::Stored,
            "{len}"
        );
        assert_eq!(get_value(&s, key.as_bytes()).unwrap(), v);
    }
    let after = s.stats();
    assert!(after.slabs_moved > before.slabs_moved, "{after:?}");
    assert!(after.evictions > before.evictions, "{after:?}");
    assert!(after.mapped_bytes as usize <= limit);
    // What was not evicted reads back whole.
    let mut left = 0;
    for i in 0..n {
        if let Some(v) = get_value(&s, format!("chain:{i}").as_bytes()) {
            assert_eq!(v, value(i), "{i}");
            left += 1;
        }
    }
    assert_eq!(left as u64 + 3, after.curr_items);
    for p in held {
        // SAFETY: allocated above from this class and never used.
        unsafe { s.mem.alloc.dealloc_class(p, filler) };
    }
}

#[test]
fn no_evictions_mode_fails_cleanly() {
    let mut cfg = StoreConfig::new(1 << 20);
    cfg.evictions = false;
    let s = Store::new(cfg).unwrap();
    let mut stored = 0;
    let mut oom = 0;
    for i in 0..30_000u32 {
        match s.store(
            StoreMode::Set,
            format!("k{i}").as_bytes(),
            0,
            0,
            &[1u8; 100],
        ) {
            StoreOutcome::Stored => stored += 1,
            StoreOutcome::OutOfMemory => oom += 1,
            o => panic!("{o:?}"),
        }
    }
    assert!(oom > 0 && stored > 1000, "{stored} {oom}");
    let st = s.stats();
    assert_eq!(st.curr_items, stored);
    assert_eq!(st.evictions, 0);
    assert_eq!(st.outofmemory, oom);
    assert!(st.mapped_bytes <= 1 << 20);
}

#[test]
fn stats_slabs_figures() {
    let s = small_store();
    for i in 0..10u32 {
        s.store(StoreMode::Set, format!("k{i}").as_bytes(), 0, 0, &[0u8; 40]);
    }
    s.get(b"k1", |_| {});
    s.reclaim_expired();
    let st = s.stats();
    let c = st.classes.iter().find(|c| c.number > 0).unwrap();
    assert_eq!(c.number, 10);
    assert_eq!(c.used_chunks, 10);
    assert_eq!(c.total_pages, 1);
    assert_eq!(c.total_chunks, c.chunks_per_page);
    assert_eq!(c.free_chunks, c.total_chunks - 10);
    assert!(c.free_chunks_end <= c.total_chunks - 10);
    assert_eq!(c.get_hits, 1);
    assert_eq!(c.cmd_set, 10);
    assert_eq!(st.active_slabs, 1);
    assert_eq!(st.total_malloced, DEFAULT_SLAB_SIZE as u64);
}

#[test]
fn view_reports_meta_state() {
    let s = small_store();
    s.store(StoreMode::Set, b"k", 0, 0, b"v");
    let mut first = None;
    s.get(b"k", |v| first = Some((v.fetched, v.last_access)));
    let (fetched, la) = first.unwrap();
    assert!(!fetched);
    assert!(la >= START_OFFSET);
    s.clock().advance(3);
    let mut second = None;
    s.get(b"k", |v| second = Some((v.fetched, v.last_access)));
    let (fetched, la2) = second.unwrap();
    assert!(fetched);
    assert_eq!(la2, la, "last_access is the previous access");
}

mod model {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[derive(Clone, Debug)]
    enum Op {
        Set(u8, Vec<u8>, u32),
        Add(u8, Vec<u8>),
        Replace(u8, Vec<u8>),
        Append(u8, Vec<u8>),
        Prepend(u8, Vec<u8>),
        Delete(u8),
        Incr(u8, u64, bool),
        Get(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        let k = 0u8..12;
        let v = prop_oneof![
            prop::collection::vec(any::<u8>(), 0..40),
            prop::collection::vec(any::<u8>(), 0..70_000),
            (0u64..1000).prop_map(|n| n.to_string().into_bytes()),
        ];
        prop_oneof![
            (k.clone(), v.clone(), any::<u32>()).prop_map(|(k, v, f)| Op::Set(k, v, f)),
            (k.clone(), v.clone()).prop_map(|(k, v)| Op::Add(k, v)),
            (k.clone(), v.clone()).prop_map(|(k, v)| Op::Replace(k, v)),
            (k.clone(), prop::collection::vec(any::<u8>(), 0..40))
                .prop_map(|(k, v)| Op::Append(k, v)),
            (k.clone(), prop::collection::vec(any::<u8>(), 0..40))
                .prop_map(|(k, v)| Op::Prepend(k, v)),
            k.clone().prop_map(Op::Delete),
            (k.clone(), 0u64..2000, any::<bool>()).prop_map(|(k, d, i)| Op::Incr(k, d, i)),
            k.prop_map(Op::Get),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

        /// The store behaves like a map of (value, flags) under every operation, and gives
        /// all its memory back at the end.
        #[test]
        fn store_matches_a_map(ops in prop::collection::vec(op(), 1..60)) {
            let s = Store::new(StoreConfig::new(64 << 20)).unwrap();
            let mut m: HashMap<Vec<u8>, (Vec<u8>, u32)> = HashMap::new();
            for op in ops {
                match op.clone() {
                    Op::Set(k, v, f) => {
                        let key = vec![b'k', k];
                        prop_assert_eq!(s.store(StoreMode::Set, &key, f, 0, &v), StoreOutcome::Stored);
                        m.insert(key, (v, f));
                    }
                    Op::Add(k, v) => {
                        let key = vec![b'k', k];
                        let want = if m.contains_key(&key) { StoreOutcome::NotStored } else { m.insert(key.clone(), (v.clone(), 0)); StoreOutcome::Stored };
                        prop_assert_eq!(s.store(StoreMode::Add, &key, 0, 0, &v), want);
                    }
                    Op::Replace(k, v) => {
                        let key = vec![b'k', k];
                        let want = if let Some(e) = m.get_mut(&key) { *e = (v.clone(), 1); StoreOutcome::Stored } else { StoreOutcome::NotStored };
                        prop_assert_eq!(s.store(StoreMode::Replace, &key, 1, 0, &v), want);
                    }
                    Op::Append(k, v) | Op::Prepend(k, v) => {
                        let append = matches!(op, Op::Append(..));
                        let key = vec![b'k', k];
                        let mode = if append { StoreMode::Append } else { StoreMode::Prepend };
                        let want = if let Some(e) = m.get_mut(&key) {
                            if append { e.0.extend_from_slice(&v) } else { e.0.splice(0..0, v.iter().copied()); }
                            StoreOutcome::Stored
                        } else { StoreOutcome::NotStored };
                        prop_assert_eq!(s.store(mode, &key, 5, 0, &v), want);
                    }
                    Op::Delete(k) => {
                        let key = vec![b'k', k];
                        prop_assert_eq!(s.delete(&key), m.remove(&key).is_some());
                    }
                    Op::Incr(k, d, incr) => {
                        let key = vec![b'k', k];
                        let want = match m.get_mut(&key) {
                            None => IncrOutcome::NotFound,
                            Some(e) => match parse_counter(&e.0).filter(|_| !e.0.is_empty() && e.0.len() + stored_size(2, 0, e.1, true) <= s.mem.max_chunk) {
                                None => IncrOutcome::NonNumeric,
                                Some(n) => {
                                    let new = if incr { n.wrapping_add(d) } else { n.saturating_sub(d) };
                                    let mut digits = new.to_string().into_bytes();
                                    if digits.len() < e.0.len() { digits.resize(e.0.len(), b' '); }
                                    e.0 = digits;
                                    IncrOutcome::Value(new)
                                }
                            },
                        };
                        prop_assert_eq!(s.incr_decr(&key, d, incr), want);
                    }
                    Op::Get(k) => {
                        let key = vec![b'k', k];
                        let mut got = None;
                        s.get(&key, |v| got = Some((v.value.to_vec(), v.flags)));
                        prop_assert_eq!(got.as_ref(), m.get(&key));
                    }
                }
            }
            prop_assert_eq!(s.stats().curr_items, m.len() as u64);
            for k in m.keys() {
                prop_assert!(s.delete(k));
            }
            prop_assert_eq!(used_chunks(&s), 0);
            prop_assert!(s.size_histogram().is_empty());
        }
    }
}

mod concurrent {
    use super::*;
    use std::sync::Arc;

    /// Threads own disjoint key ranges and mix set/get/delete/incr/append on them while
    /// also reading each other's keys; afterwards every key holds exactly what its owner
    /// wrote last, and deleting everything returns every chunk.
    #[test]
    fn threads_lose_nothing() {
        let s = Arc::new(Store::new(StoreConfig::new(64 << 20)).unwrap());
        let threads = 4;
        let keys = 400u32;
        let rounds = 6;
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let s = Arc::clone(&s);
                std::thread::spawn(move || {
                    let mut expect = std::collections::HashMap::new();
                    for r in 0..rounds {
                        for i in 0..keys {
                            let key = format!("t{t}:k{i}");
                            let k = key.as_bytes();
                            match (i + r) % 5 {
                                0 => {
                                    let v = format!("{}", i * r);
                                    assert_eq!(
                                        s.store(StoreMode::Set, k, t, 0, v.as_bytes()),
                                        StoreOutcome::Stored
                                    );
                                    expect.insert(key.clone(), Some(v.into_bytes()));
                                }
                                1 => {
                                    let was = expect.get(&key).cloned().flatten();
                                    let got = s.incr_decr(k, 3, true);
                                    match was.as_deref().and_then(parse_counter) {
                                        Some(n) => {
                                            assert_eq!(got, IncrOutcome::Value(n + 3));
                                            let mut d = (n + 3).to_string().into_bytes();
                                            let old = was.unwrap();
                                            if d.len() < old.len() {
                                                d.resize(old.len(), b' ');
                                            }
                                            expect.insert(key.clone(), Some(d));
                                        }
                                        None if was.is_none() => {
                                            assert_eq!(got, IncrOutcome::NotFound)
                                        }
                                        None => assert_eq!(got, IncrOutcome::NonNumeric),
                                    }
                                }
                                2 => {
                                    let was = expect.get(&key).cloned().flatten();
                                    assert_eq!(s.delete(k), was.is_some());
                                    expect.insert(key.clone(), None);
                                }
                                3 => {
                                    let big = vec![b'a' + (i % 26) as u8; 40_000 + i as usize];
                                    assert_eq!(
                                        s.store(StoreMode::Set, k, t, 0, &big),
                                        StoreOutcome::Stored
                                    );
                                    assert_eq!(
                                        s.store(StoreMode::Append, k, 0, 0, b"!"),
                                        StoreOutcome::Stored
                                    );
                                    let mut b = big;
                                    b.push(b'!');
                                    expect.insert(key.clone(), Some(b));
                                }
                                _ => {
                                    let mut got = None;
                                    s.get(k, |v| got = Some(v.value.to_vec()));
                                    assert_eq!(got, expect.get(&key).cloned().flatten(), "{key}");
                                    // Read a neighbour's key: must be a whole value if present.
                                    let other = format!("t{}:k{i}", (t + 1) % threads);
                                    s.get(other.as_bytes(), |v| {
                                        // A counter, or a run of one letter (its owner
                                        // may not have appended the `!` yet).
                                        let body = v.value.strip_suffix(b"!").unwrap_or(v.value);
                                        let whole = parse_counter(v.value).is_some()
                                            || (body.len() >= 40_000
                                                && body.iter().all(|&c| c == body[0]));
                                        assert!(whole, "torn read");
                                    });
                                }
                            }
                        }
                    }
                    expect
                })
            })
            .collect();
        let mut live = 0;
        for (t, h) in handles.into_iter().enumerate() {
            let expect = h.join().unwrap();
            for (key, want) in expect {
                let mut got = None;
                s.get(key.as_bytes(), |v| got = Some((v.value.to_vec(), v.flags)));
                assert_eq!(got.as_ref().map(|g| &g.0), want.as_ref(), "{key}");
                if let Some((_, f)) = got {
                    assert_eq!(f, t as u32);
                    live += 1;
                }
            }
        }
        assert_eq!(s.stats().curr_items, live);
        for t in 0..threads {
            for i in 0..keys {
                s.delete(format!("t{t}:k{i}").as_bytes());
            }
        }
        assert_eq!(s.stats().curr_items, 0);
        assert_eq!(used_chunks(&s), 0);
    }

    /// Under a small limit, threads overwrite and read keys while the CLOCK hands evict:
    /// every read sees a whole value that belongs to its key, and the limit holds.
    #[test]
    fn eviction_under_threads_is_sound() {
        // ~80 classes in use; 128 slabs of 64 KiB. (Below one slab per class in use, as
        // with 2 MiB here, classes keep taking slabs from each other and stores fail.)
        let limit = 8 << 20;
        let s = Arc::new(Store::new(StoreConfig::new(limit)).unwrap());
        let handles: Vec<_> = (0..4u32)
            .map(|t| {
                let s = Arc::clone(&s);
                std::thread::spawn(move || {
                    let mut oom = 0;
                    for i in 0..60_000u32 {
                        let k = (i.wrapping_mul(2_654_435_761) ^ t) % 60_000;
                        let key = format!("key{k}");
                        let len = 20 + (k as usize % 300);
                        if i % 3 == 0 {
                            let mut got = None;
                            s.get(key.as_bytes(), |v| got = Some(v.value.to_vec()));
                            if let Some(v) = got {
                                assert_eq!(v.len(), len);
                                assert!(v.iter().all(|&b| b == (k % 251) as u8), "{key}");
                            }
                        } else {
                            let v = vec![(k % 251) as u8; len];
                            match s.store(StoreMode::Set, key.as_bytes(), 0, 0, &v) {
                                StoreOutcome::Stored => {}
                                StoreOutcome::OutOfMemory => oom += 1,
                                o => panic!("{o:?}"),
                            }
                        }
                        if i % 1000 == 0 {
                            s.delete(format!("key{}", k / 2).as_bytes());
                        }
                    }
                    oom
                })
            })
            .collect();
        let maint = {
            let s = Arc::clone(&s);
            std::thread::spawn(move || {
                for _ in 0..20 {
                    s.maintenance();
                    std::thread::yield_now();
                }
            })
        };
        let oom: u32 = handles.into_iter().map(|h| h.join().unwrap()).sum();
        maint.join().unwrap();
        let st = s.stats();
        assert!(st.evictions > 0);
        assert!(st.mapped_bytes as usize <= limit);
        assert_eq!(oom, 0);
        let n = st.curr_items;
        for k in 0..60_000 {
            s.delete(format!("key{k}").as_bytes());
        }
        assert_eq!(s.stats().curr_items, 0, "had {n}");
        assert_eq!(used_chunks(&s), 0);
    }
}

#[test]
fn shard_map_spreads_over_a_doubling() {
    for n in [1usize, 3, 16, 64, 256] {
        let m = shard_map(n);
        assert_eq!(m.len(), 4096);
        let mut counts = vec![0usize; n];
        for &s in m.iter() {
            counts[s as usize] += 1;
        }
        assert!(counts.iter().all(|&c| c >= 1), "{n}: {counts:?}");
        if n >= 16 {
            // Smallest about half the largest, growing steadily.
            let (lo, hi) = (counts[0] as f64, counts[n - 1] as f64);
            assert!(hi / lo > 1.7 && hi / lo < 2.3, "{n}: {lo} {hi}");
            assert!(
                counts.windows(2).all(|w| w[1] + 1 >= w[0]),
                "{n}: {counts:?}"
            );
        }
    }
}

#[test]
fn long_idle_access_times_stay_in_window() {
    let s = small_store();
    s.store(StoreMode::Set, b"idle", 0, 0, b"v");
    let t0 = s.now();
    // Three times the 16-bit window, one crawl step at a time (a full pass every step).
    for _ in 0..(3 * 65_536 / 3_600) {
        s.clock().advance(3_600);
        s.reclaim_expired();
    }
    let mut la = 0;
    assert!(s.get(b"idle", |v| la = v.last_access));
    let idle = s.now() - la;
    assert!(la > t0 && idle <= ACCESS_CAP + 3_600, "idle {idle}");
    assert!(idle >= ACCESS_CAP, "idle {idle}");
    // A delayed flush still removes it.
    s.flush_all(10);
    s.clock().advance(11);
    assert_eq!(get_value(&s, b"idle"), None);
}

#[test]
fn store_checked_reports_the_cas_it_assigned_and_checks_concat_cas() {
    let s = small_store();
    let (o, cas) = s.store_checked(StoreMode::Set, b"k", 0, 0, b"ab", None);
    assert_eq!(o, StoreOutcome::Stored);
    assert_eq!(cas, cas_of(&s, b"k"));
    // A stale CAS on append is refused and leaves the value alone.
    let (o, cas2) = s.store_checked(StoreMode::Append, b"k", 0, 0, b"cd", Some(cas + 1));
    assert_eq!((o, cas2), (StoreOutcome::Exists, 0));
    assert_eq!(get_value(&s, b"k").as_deref(), Some(&b"ab"[..]));
    // The current CAS is accepted; the new one is returned.
    let (o, cas3) = s.store_checked(StoreMode::Prepend, b"k", 0, 0, b"zz", Some(cas));
    assert_eq!(o, StoreOutcome::Stored);
    assert_ne!(cas3, cas);
    assert_eq!(cas3, cas_of(&s, b"k"));
    assert_eq!(get_value(&s, b"k").as_deref(), Some(&b"zzab"[..]));
    // A missing key is not stored, whatever the CAS.
    let (o, _) = s.store_checked(StoreMode::Append, b"none", 0, 0, b"x", Some(1));
    assert_eq!(o, StoreOutcome::NotStored);
}

#[test]
fn concat_with_cas_races_one_winner() {
    // Two threads append with the same expected CAS: exactly one succeeds.
    let s = std::sync::Arc::new(small_store());
    for round in 0..200u32 {
        let key = format!("race{round}");
        s.store(StoreMode::Set, key.as_bytes(), 0, 0, b"x");
        let cas = cas_of(&s, key.as_bytes());
        let wins: usize = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..2)
                .map(|_| {
                    let s = &s;
                    let key = &key;
                    sc.spawn(move || {
                        let (o, _) = s.store_checked(
                            StoreMode::Append,
                            key.as_bytes(),
                            0,
                            0,
                            b"y",
                            Some(cas),
                        );
                        usize::from(o == StoreOutcome::Stored)
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(wins, 1, "round {round}");
        assert_eq!(get_value(&s, key.as_bytes()).as_deref(), Some(&b"xy"[..]));
    }
}

fn index_capacity(s: &Store) -> usize {
    (0..s.index.len())
        .map(|i| s.index.lock(i).table.capacity())
        .sum()
}

#[test]
fn flush_returns_memory_to_the_os() {
    let s = Store::new(StoreConfig::new(256 << 20)).unwrap();
    for i in 0..100_000u32 {
        let k = format!("key:{i:08}");
        assert_eq!(
            s.store(StoreMode::Set, k.as_bytes(), 0, 0, &[7u8; 100]),
            StoreOutcome::Stored
        );
    }
    // An ordinary step returns only the unused rest of the last mapping granule; the
    // next one has nothing to return.
    s.maintenance();
    let loaded = s.stats();
    assert!(loaded.mapped_bytes >= 100_000 * 100, "{loaded:?}");
    assert!(index_capacity(&s) >= 100_000);
    s.maintenance();
    assert_eq!(s.stats().mapped_bytes, loaded.mapped_bytes);
    assert_eq!(s.stats().memory_shrinks, 0);
    s.flush_all(0);
    assert_eq!(s.stats().curr_items, 0);
    // The flush freed the index tables at once and the chunks past every magazine.
    assert_eq!(index_capacity(&s), 0);
    assert_eq!(s.allocator_stats().magazine_chunks(), 0);
    s.maintenance();
    let st = s.stats();
    assert_eq!(st.memory_shrinks, 1);
    assert!(st.heap_trims >= 1);
    assert_eq!(st.mapped_bytes, 0, "{st:?}");
    assert_eq!(
        st.slab_released_bytes,
        loaded.slab_released_bytes + loaded.mapped_bytes
    );
    assert!(st.slab_munmap_calls > loaded.slab_munmap_calls);
    assert_eq!(st.slab_pooled_slabs, 0);
    assert_eq!(s.allocator_stats().engine.demand_drops, 1);
    // The store works on after giving everything back.
    assert_eq!(
        s.store(StoreMode::Set, b"again", 1, 0, b"v"),
        StoreOutcome::Stored
    );
    assert_eq!(get_value(&s, b"again").as_deref(), Some(&b"v"[..]));
}

#[test]
fn mass_delete_shrinks() {
    let s = Store::new(StoreConfig::new(256 << 20)).unwrap();
    let n = 100_000u32;
    for i in 0..n {
        let k = format!("key:{i:08}");
        s.store(StoreMode::Set, k.as_bytes(), 0, 0, &[7u8; 100]);
    }
    s.maintenance();
    let loaded = s.stats();
    // The oldest three quarters go: their slabs empty completely.
    for i in 0..n / 4 * 3 {
        assert!(s.delete(format!("key:{i:08}").as_bytes()));
    }
    s.maintenance();
    let st = s.stats();
    assert_eq!(
        st.memory_shrinks, 1,
        "live chunks fell below half their peak"
    );
    assert!(
        st.mapped_bytes * 3 < loaded.mapped_bytes,
        "{} of {} still mapped",
        st.mapped_bytes,
        loaded.mapped_bytes
    );
    for i in (0..n).step_by(997) {
        let k = format!("key:{i:08}");
        assert_eq!(get_value(&s, k.as_bytes()).is_some(), i >= n / 4 * 3);
    }
    // One more step with no further fall does not shrink again.
    s.maintenance();
    assert_eq!(s.stats().memory_shrinks, 1);
}

fn class_slabs(s: &Store, class: ClassId) -> usize {
    s.allocator_stats().engine.classes[class.index()].slabs
}

fn value_for(i: u32) -> Vec<u8> {
    format!("value-{i:08}-").repeat(6).into_bytes()
}

/// Loads `n` keys with values of one class and flags `i`, returns their CAS values.
fn load_keyed(s: &Store, n: u32) -> Vec<u64> {
    (0..n)
        .map(|i| {
            let k = format!("key:{i:08}");
            assert_eq!(
                s.store(StoreMode::Set, k.as_bytes(), i, 0, &value_for(i)),
                StoreOutcome::Stored
            );
            cas_of(s, k.as_bytes())
        })
        .collect()
}

#[test]
fn compaction_halves_the_slabs_after_every_other_key_is_deleted() {
    let s = Store::new(StoreConfig::new(256 << 20)).unwrap();
    let n = 40_000;
    let cas = load_keyed(&s, n);
    let class = s.class_of(s.with_live(b"key:00000002", |_, h| h.unwrap()));
    let full = class_slabs(&s, class);
    assert!(full >= 40, "{full}");
    for i in (1..n).step_by(2) {
        assert!(s.delete(format!("key:{i:08}").as_bytes()));
    }
    assert_eq!(class_slabs(&s, class), full, "deletes alone empty no slab");
    let r = s.compact(usize::MAX);
    assert!(r.items > 0 && r.slabs > 0, "{r:?}");
    let after = class_slabs(&s, class);
    // Half the items need half the slabs, plus one to spare and the class's empty one.
    assert!(after <= full / 2 + 3, "{after} of {full} slabs left");
    // Nothing sparse is left: another step does nothing.
    assert_eq!(s.compact(usize::MAX).items, 0);
    let st = s.stats();
    assert_eq!((st.slabs_compacted, st.items_moved), (r.slabs, r.items));
    for i in (0..n).step_by(2) {
        let k = format!("key:{i:08}");
        let mut seen = None;
        assert!(s.get(k.as_bytes(), |v| seen =
            Some((v.value.to_vec(), v.flags, v.cas))));
        assert_eq!(seen, Some((value_for(i), i, cas[i as usize])), "{k}");
    }
    // Deleting and storing still work on moved items.
    assert!(s.delete(b"key:00000000"));
    assert_eq!(
        s.store(StoreMode::Append, b"key:00000002", 0, 0, b"+"),
        StoreOutcome::Stored
    );
    let mut v = value_for(2);
    v.push(b'+');
    assert_eq!(get_value(&s, b"key:00000002"), Some(v));
}

/// `threads` readers of the keys [`load_keyed`] stored (every `stride`-th of `n`), each
/// checking value, flags and CAS, until `stop` and at least 10,000 reads; they return
/// their read counts.
fn spawn_checked_readers(
    s: &Arc<Store>,
    cas: &Arc<Vec<u64>>,
    stop: &Arc<std::sync::atomic::AtomicBool>,
    threads: u32,
    n: u32,
    stride: u32,
) -> Vec<std::thread::JoinHandle<u64>> {
    (0..threads)
        .map(|t| {
            let (s, cas, stop) = (s.clone(), cas.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut reads = 0u64;
                let mut i = t * stride;
                while !stop.load(Ordering::Relaxed) || reads < 10_000 {
                    let k = format!("key:{i:08}");
                    let mut ok = false;
                    assert!(s.get(k.as_bytes(), |v| {
                        ok = v.value == value_for(i) && v.flags == i && v.cas == cas[i as usize];
                    }));
                    assert!(ok, "{k} read torn or changed");
                    reads += 1;
                    i = (i + stride * 7919) % n / stride * stride;
                }
                reads
            })
        })
        .collect()
}

#[test]
fn readers_see_whole_items_while_the_compactor_moves_them() {
    use std::sync::atomic::AtomicBool;
    let s = Arc::new(Store::new(StoreConfig::new(256 << 20)).unwrap());
    let n = 40_000u32;
    let cas = Arc::new(load_keyed(&s, n));
    for i in (1..n).step_by(2) {
        s.delete(format!("key:{i:08}").as_bytes());
    }
    let stop = Arc::new(AtomicBool::new(false));
    let readers = spawn_checked_readers(&s, &cas, &stop, 3, n, 2);
    // A writer churns other keys of the same class meanwhile.
    let writer = {
        let (s, stop) = (s.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut j = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let k = format!("other:{:05}", j % 5000);
                s.store(StoreMode::Set, k.as_bytes(), 1, 0, &value_for(j));
                if j % 3 == 0 {
                    s.delete(k.as_bytes());
                }
                j += 1;
            }
        })
    };
    let mut moved = 0;
    for _ in 0..20 {
        let r = s.compact(2000);
        moved += r.items;
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    for r in readers {
        assert!(r.join().unwrap() >= 10_000);
    }
    assert!(moved > 2000, "the compactor moved {moved} items");
    for i in (0..n).step_by(2) {
        let mut seen = None;
        s.get(format!("key:{i:08}").as_bytes(), |v| {
            seen = Some((v.value.to_vec(), v.cas))
        });
        assert_eq!(seen, Some((value_for(i), cas[i as usize])));
    }
}

#[test]
fn flush_frees_chained_items_past_the_magazines() {
    let s = Store::new(StoreConfig::new(64 << 20)).unwrap();
    let big = vec![b'c'; 300_000];
    for i in 0..20u32 {
        let k = format!("big{i}");
        assert_eq!(
            s.store(StoreMode::Set, k.as_bytes(), i, 0, &big),
            StoreOutcome::Stored
        );
        s.store(StoreMode::Set, format!("small{i}").as_bytes(), 0, 0, b"v");
    }
    assert!(used_chunks(&s) > 20 * 9);
    s.flush_all(0);
    assert_eq!(used_chunks(&s), 0);
    s.maintenance();
    assert_eq!(s.stats().mapped_bytes, 0);
    assert_eq!(
        s.store(StoreMode::Set, b"big0", 0, 0, &big),
        StoreOutcome::Stored
    );
    assert_eq!(get_value(&s, b"big0"), Some(big));
}

/// Chunk sizes of the classes holding items (`stats slabs`' `used_chunks`).
fn sizes_in_use(s: &Store) -> Vec<usize> {
    s.stats()
        .classes
        .iter()
        .filter(|c| c.used_chunks > 0)
        .map(|c| c.chunk_size)
        .collect()
}

#[test]
fn class_lists_are_checked_and_nothing_changes_on_refusal() {
    let s = small_store();
    let before = s.active_classes();
    for (bad, why) in [
        (&[][..], "no sizes"),
        (&[64, 64], "strictly ascending"),
        (&[100, 90], "strictly ascending"),
        (&[8], "below 16"),
        (&[1 << 20], "above the largest chunk"),
    ] {
        let e = s.set_classes(bad).unwrap_err();
        assert!(e.contains(why), "{bad:?}: {e}");
    }
    assert!(s.set_classes(&[16; MAX_LISTED + 1]).is_err());
    assert_eq!(s.active_classes(), before);
    assert_eq!(s.stats().slab_reclasses, 0);
    // Rounded up to 8, the largest chunk appended.
    s.set_classes(&[100, 1001]).unwrap();
    assert_eq!(
        s.active_classes(),
        vec![104, 1008, s.config().classes.max_chunk()]
    );
    assert_eq!(s.stats().slab_reclasses, 1);
}

#[test]
fn new_items_go_to_the_new_classes_and_old_ones_migrate() {
    let s = Store::new(StoreConfig::new(64 << 20)).unwrap();
    let n = 5_000u32;
    // Values of ~700 bytes, where the default classes step by 12.5%.
    let big = |i: u32| value_for(i).repeat(7);
    let cas: Vec<u64> = (0..n)
        .map(|i| {
            let k = format!("key:{i:08}");
            let r = s.store(StoreMode::Set, k.as_bytes(), i, 0, &big(i));
            assert_eq!(r, StoreOutcome::Stored);
            cas_of(&s, k.as_bytes())
        })
        .collect();
    let size = stored_size(12, big(0).len(), 1, true);
    let old = sizes_in_use(&s);
    // A class that fits the items to the byte: a spare, not a class of the table.
    let exact = size.next_multiple_of(8);
    assert!(!s.config().classes.sizes().contains(&exact));
    assert!(!old.contains(&exact));
    s.set_classes(&[exact]).unwrap();
    assert!(s.store(StoreMode::Set, b"new", 7, 0, &value_for(1)) == StoreOutcome::Stored);
    let used = sizes_in_use(&s);
    assert!(used.contains(&exact), "{used:?}");
    assert!(old.iter().all(|o| used.contains(o)), "{used:?}");
    // Maintenance migrates the old class's items, keeping value, flags and CAS.
    let mut steps = 0;
    while sizes_in_use(&s) != vec![exact] {
        s.maintenance();
        steps += 1;
        assert!(steps < 10, "still in use: {:?}", sizes_in_use(&s));
    }
    assert_eq!(s.stats().items_migrated, u64::from(n));
    for i in 0..n {
        let k = format!("key:{i:08}");
        let mut ok = false;
        assert!(s.get(k.as_bytes(), |v| {
            ok = v.value == big(i) && v.flags == i && v.cas == cas[i as usize];
        }));
        assert!(ok, "{k}");
    }
    assert_eq!(s.stats().curr_items, u64::from(n) + 1);
    // Nothing leaked: every chunk in use is an item's.
    assert_eq!(used_chunks(&s), n as usize + 1);
    // The old class's slabs went back to the engine.
    s.maintenance();
    let es = s.allocator_stats().engine;
    assert!(es
        .classes
        .iter()
        .all(|c| c.chunk_size == exact || c.used_chunks == 0));
}

#[test]
fn readers_see_whole_items_while_a_reclass_migrates_them() {
    use std::sync::atomic::AtomicBool;
    let s = Arc::new(Store::new(StoreConfig::new(128 << 20)).unwrap());
    let n = 20_000u32;
    let cas = Arc::new(load_keyed(&s, n));
    let stop = Arc::new(AtomicBool::new(false));
    let readers = spawn_checked_readers(&s, &cas, &stop, 2, n, 1);
    // A writer stores other keys while the lists change under it.
    let writer = {
        let (s, stop) = (s.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut j = 0u32;
            // Every one of the 3000 keys is written at least once, however
            // little of the machine this thread gets before the lists settle.
            while !stop.load(Ordering::Relaxed) || j < 3000 {
                let k = format!("other:{:05}", j % 3000);
                let v = value_for(j);
                assert_eq!(
                    s.store(
                        StoreMode::Set,
                        k.as_bytes(),
                        1,
                        0,
                        &v[..(j as usize % v.len())]
                    ),
                    StoreOutcome::Stored
                );
                j += 1;
            }
        })
    };
    let size = stored_size(12, value_for(0).len(), 1, true);
    for list in [
        vec![size.next_multiple_of(8) + 8],
        vec![64, 200],
        vec![size.next_multiple_of(8)],
    ] {
        s.set_classes(&list).unwrap();
        for _ in 0..3 {
            s.maintenance();
        }
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        assert!(r.join().unwrap() >= 10_000);
    }
    writer.join().unwrap();
    assert!(s.stats().items_migrated >= u64::from(n));
    assert_eq!(s.stats().curr_items, u64::from(n) + 3000);
}

#[test]
fn pending_items_are_written_in_pieces_and_linked_at_the_end() {
    let s = small_store();
    let seg = s.mem.payload();
    for n in [1, 100, seg - 1, seg, seg + 1, 3 * seg + 5] {
        let v: Vec<u8> = (0..n).map(|i| (i * 7 % 251) as u8).collect();
        let p = s
            .begin_store(StoreMode::Set, b"new", 9, 0, n)
            .expect("memory");
        let q = s
            .begin_store(StoreMode::Set, b"old", 9, 0, n)
            .expect("memory");
        assert_eq!(
            s.store(StoreMode::Set, b"old", 0, 0, b"before"),
            StoreOutcome::Stored
        );
        // Pieces of uneven sizes, crossing segment boundaries; until it is linked, the
        // new item is not seen, and the old value of its key still is.
        let mut off = 0;
        for piece in v.chunks(997) {
            s.write_pending(&p, off, piece);
            s.write_pending(&q, off, piece);
            off += piece.len();
            assert_eq!(get_value(&s, b"new"), None);
            assert_eq!(get_value(&s, b"old").unwrap(), b"before");
        }
        assert_eq!(
            s.finish_store(StoreMode::Set, b"new", p).0,
            StoreOutcome::Stored
        );
        assert_eq!(
            s.finish_store(StoreMode::Add, b"old", q).0,
            StoreOutcome::NotStored
        );
        assert_eq!(get_value(&s, b"new").unwrap(), v, "length {n}");
        assert_eq!(get_value(&s, b"old").unwrap(), b"before");
        assert!(s.delete(b"new") && s.delete(b"old"));
    }
    assert_eq!(used_chunks(&s), 0);
    assert_eq!(s.stats().curr_items, 0);
}

#[test]
fn pending_items_survive_eviction_and_count_against_the_limit() {
    let s = small_store();
    // Whole segments only: values and fillers take chunks of the largest class (a tail
    // segment of another class, when that class has no chunk free, makes the store take
    // a slab from the class holding most slabs, which need not free one).
    let seg = s.mem.payload();
    let n = 30 * seg;
    let v: Vec<u8> = (0..n).map(|i| (i % 241) as u8).collect();
    let p = s
        .begin_store(StoreMode::Set, b"held", 0, 0, n)
        .expect("memory");
    s.write_pending(&p, 0, &v[..n / 2]);
    // Fill the 8 MB several times over: evictions, but not of the pending item.
    let filler = vec![b'f'; 2 * seg];
    for i in 0..1000 {
        let k = format!("fill{i}");
        assert_eq!(
            s.store(StoreMode::Set, k.as_bytes(), 0, 0, &filler),
            StoreOutcome::Stored
        );
    }
    assert!(s.stats().evictions > 0);
    // Ten more pending values of 1 MB cannot all have memory beside it.
    let mut more = Vec::new();
    let refused = (0..10).any(|i| {
        match s.begin_store(StoreMode::Set, format!("more{i}").as_bytes(), 0, 0, n) {
            Ok(q) => {
                more.push(q);
                false
            }
            Err(o) => {
                assert_eq!(o, StoreOutcome::OutOfMemory);
                true
            }
        }
    });
    assert!(refused, "pending items beyond the limit");
    s.write_pending(&p, n / 2, &v[n / 2..]);
    assert_eq!(
        s.finish_store(StoreMode::Set, b"held", p).0,
        StoreOutcome::Stored
    );
    assert_eq!(get_value(&s, b"held").unwrap(), v);
    for q in more {
        s.abandon_store(q);
    }
    assert!(s.delete(b"held"));
    s.flush_all(0);
    s.maintenance();
    assert_eq!(used_chunks(&s), 0);
}

/// An eviction as reported: key, fetched, ttl, class id, value length.
type Reported = (Vec<u8>, bool, i64, usize, usize);

/// Records what the store reports to a watcher.
#[derive(Debug, Default)]
struct Recorder {
    on: std::sync::atomic::AtomicBool,
    evicted: Mutex<Vec<Reported>>,
}

impl StoreWatcher for Recorder {
    fn wants(&self, kind: StoreEvent) -> bool {
        kind == StoreEvent::Eviction && self.on.load(Ordering::Relaxed)
    }
    fn evicted(&self, e: &Evicted<'_>) {
        let mut v = self.evicted.lock().unwrap();
        v.push((e.key.to_vec(), e.fetched, e.ttl, e.clsid, e.size));
    }
    fn slab_moved(&self, _src: usize, _dst: usize) {}
}

#[test]
fn evictions_reach_a_listening_watcher_only() {
    let s = Store::new(StoreConfig::new(1 << 20)).unwrap();
    let w = Arc::new(Recorder::default());
    assert!(s.set_watcher(w.clone()));
    assert!(!s.set_watcher(w.clone()), "set once");
    let value = [b'v'; 100];
    let fill = |from: u32, to: u32| {
        for i in from..to {
            let ttl = if i % 2 == 0 { 50 } else { 0 };
            s.store(
                StoreMode::Set,
                format!("key:{i}").as_bytes(),
                0,
                ttl,
                &value,
            );
        }
    };
    fill(0, 20_000);
    let before = s.stats().evictions;
    assert!(before > 0);
    assert!(w.evicted.lock().unwrap().is_empty(), "nobody listened");
    w.on.store(true, Ordering::Relaxed);
    fill(20_000, 40_000);
    let st = s.stats();
    let got = w.evicted.lock().unwrap();
    assert_eq!(got.len() as u64, st.evictions - before);
    let clsid = st.classes.iter().find(|c| c.evicted > 0).unwrap().id;
    for (key, fetched, ttl, id, size) in got.iter() {
        let i: u32 = std::str::from_utf8(&key[4..]).unwrap().parse().unwrap();
        assert!(!fetched);
        if i % 2 == 0 {
            assert!((0..=50).contains(ttl), "{ttl}");
        } else {
            assert_eq!(*ttl, -1);
        }
        assert_eq!((*id, *size), (clsid, 100));
        assert_eq!(get_value(&s, key), None, "reported evicted, still there");
    }
}

#[test]
fn crawl_of_listed_classes_reclaims_only_theirs() {
    let s = small_store();
    s.store(StoreMode::Set, b"small", 0, 1, &[0u8; 10]);
    s.store(StoreMode::Set, b"large", 0, 1, &[0u8; 5000]);
    s.store(StoreMode::Set, b"stays", 0, 0, &[0u8; 10]);
    s.clock().advance(2);
    let class = |st: &StoreStats, n: usize| {
        st.classes
            .iter()
            .filter(|c| c.number > 0)
            .nth(n)
            .unwrap()
            .id
    };
    let st = s.stats();
    let (small, large) = (class(&st, 0), class(&st, 1));
    assert_ne!(small, large);
    assert_eq!(s.reclaim_expired_in(|id| id == large), 1);
    let st = s.stats();
    let of = |id: usize| st.classes.iter().find(|c| c.id == id).unwrap().number;
    assert_eq!(
        (of(small), of(large)),
        (2, 0),
        "only the large class crawled"
    );
    assert_eq!(s.reclaim_expired_in(|id| id == small), 1);
    assert_eq!(s.stats().curr_items, 1);
    assert_eq!(s.stats().crawler_reclaimed, 2);
}

/// Sizes from 16 KiB to 960 KiB in steps of 16 KiB, in a scrambled order: what `large.py
/// mixed` loads, scaled down.
fn mixed_sizes(n: u32) -> Vec<usize> {
    (0..n)
        .map(|i| ((i * 37) % n + 1) as usize * (16 << 10))
        .collect()
}

/// A value of `len` bytes that differs per key and per position.
fn mixed_value(i: u32, len: usize) -> Vec<u8> {
    (0..len)
        .map(|j| (j as u32).wrapping_mul(31).wrapping_add(i) as u8)
        .collect()
}

/// Sets `key` to `value`, which must be stored.
fn set_stored(s: &Store, key: &str, value: &[u8]) {
    assert_eq!(
        s.store(StoreMode::Set, key.as_bytes(), 0, 0, value),
        StoreOutcome::Stored,
        "{key}"
    );
}

#[test]
fn mixed_sizes_keep_the_small_values() {
    // 60 values of 16 KiB to 960 KiB (29 MiB) into 8 MiB: largest first eviction keeps
    // the smallest ones, about as many as fit (the 30 smallest hold 7.3 MiB), where
    // eviction by age would keep about as many as the average size allows (8 MiB / 488
    // KiB: 16).
    let limit = 8 << 20;
    let s = Store::new(StoreConfig::new(limit)).unwrap();
    let n = 60u32;
    let sizes = mixed_sizes(n);
    for (i, &len) in sizes.iter().enumerate() {
        set_stored(&s, &format!("mixed:{i}"), &mixed_value(i as u32, len));
    }
    let st = s.stats();
    assert!(st.mapped_bytes as usize <= limit);
    assert_eq!(st.curr_items + st.evictions, u64::from(n), "{st:?}");
    // Every item kept reads back whole; none is lost without being counted.
    let mut kept = Vec::new();
    for (i, &len) in sizes.iter().enumerate() {
        if let Some(v) = get_value(&s, format!("mixed:{i}").as_bytes()) {
            assert_eq!(v, mixed_value(i as u32, len), "{i}");
            kept.push(len);
        }
    }
    assert_eq!(kept.len() as u64, st.curr_items);
    assert!(kept.len() >= 20, "kept {} items: {kept:?}", kept.len());
    // The small values stay: all of the ten smallest.
    let mut small: Vec<usize> = sizes.clone();
    small.sort_unstable();
    for len in &small[..10] {
        assert!(kept.contains(len), "{len} evicted, kept {kept:?}");
    }
    // Deleting what is left gives every chunk back (tails placed in the top class too).
    for i in 0..n {
        s.delete(format!("mixed:{i}").as_bytes());
    }
    assert_eq!(used_chunks(&s), 0);
}

#[test]
fn small_values_survive_a_churn_of_large_ones() {
    // Small inline values of many classes among chained ones: sets of new large values
    // (every one a miss) evict large values and take slabs from them, never the small
    // ones, and leave every item whole.
    let limit = 8 << 20;
    let s = Store::new(StoreConfig::new(limit)).unwrap();
    let small: Vec<usize> = (0..40).map(|i| 10 + i * 700).collect();
    for (i, &len) in small.iter().enumerate() {
        set_stored(&s, &format!("small:{i}"), &mixed_value(i as u32, len));
    }
    let sizes = mixed_sizes(30);
    for round in 0..4u32 {
        for (i, &len) in sizes.iter().enumerate() {
            let key = format!("large:{round}:{i}");
            let v = mixed_value(round * 100 + i as u32, len);
            set_stored(&s, &key, &v);
            assert_eq!(get_value(&s, key.as_bytes()).unwrap(), v);
        }
    }
    let st = s.stats();
    assert!(st.evictions > 0);
    assert!(st.mapped_bytes as usize <= limit);
    for (i, &len) in small.iter().enumerate() {
        assert_eq!(
            get_value(&s, format!("small:{i}").as_bytes()),
            Some(mixed_value(i as u32, len)),
            "small:{i} of {len} bytes"
        );
    }
    let mut large = 0;
    for round in 0..4u32 {
        for (i, &len) in sizes.iter().enumerate() {
            if let Some(v) = get_value(&s, format!("large:{round}:{i}").as_bytes()) {
                assert_eq!(v, mixed_value(round * 100 + i as u32, len));
                large += 1;
            }
        }
    }
    assert_eq!(large + small.len() as u64, st.curr_items);
    assert_eq!(st.curr_items + st.evictions, 40 + 4 * 30);
}

#[test]
fn concat_when_full_follows_memcached() {
    // Memory full of one class (no evictions): an append whose data needs that class is
    // out of memory and keeps the old value; a small append to a small item, whose
    // classes (the data's and the joined value's) still have room, is stored.
    let mut cfg = StoreConfig::new(8 << 20);
    cfg.evictions = false;
    let s = Store::new(cfg).unwrap();
    // Slabs for the classes of the values the small appends below make.
    for v in [&b"x"[..], b"xx", b"xxx"] {
        assert_eq!(s.store(StoreMode::Set, b"b", 0, 0, v), StoreOutcome::Stored);
        assert_eq!(
            s.store(StoreMode::Set, format!("c{}", v.len()).as_bytes(), 0, 0, v),
            StoreOutcome::Stored
        );
    }
    assert_eq!(
        s.store(StoreMode::Set, b"a", 0, 0, b"x"),
        StoreOutcome::Stored
    );
    let big = vec![b'v'; 10_000];
    let mut n = 0u32;
    while s.store(StoreMode::Set, format!("f{n}").as_bytes(), 0, 0, &big) == StoreOutcome::Stored {
        n += 1;
    }
    assert!(n > 100, "{n}");
    for mode in [StoreMode::Append, StoreMode::Prepend] {
        assert_eq!(s.store(mode, b"a", 0, 0, &big), StoreOutcome::OutOfMemory);
        assert_eq!(
            s.store(mode, b"nokey", 0, 0, &big),
            StoreOutcome::OutOfMemory
        );
        assert_eq!(get_value(&s, b"a").as_deref(), Some(&b"x"[..]));
    }
    assert_eq!(
        s.store(StoreMode::Append, b"a", 0, 0, b"q"),
        StoreOutcome::Stored
    );
    assert_eq!(
        s.store(StoreMode::Prepend, b"a", 0, 0, b"p"),
        StoreOutcome::Stored
    );
    assert_eq!(get_value(&s, b"a").as_deref(), Some(&b"pxq"[..]));
    assert_eq!(
        s.store(StoreMode::Append, b"nokey", 0, 0, b"q"),
        StoreOutcome::NotStored
    );
}
