//! Store tests: semantics, memory accounting, concurrency.
use super::*;

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
    assert_eq!(s.engine().stats().used_bytes(), 0);
}
