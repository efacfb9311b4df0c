//! Loom model of [`LazyTable`]'s publication: threads that race to create one entry agree
//! on a single, fully initialised entry, and the losers' entries are freed.

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;

use crate::lazy::LazyTable;

#[test]
fn loom_racing_creators_share_one_initialised_entry() {
    let mut runs = 0;
    let made = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let m = made.clone();
    loom::model(move || {
        let t = Arc::new(LazyTable::<(usize, AtomicUsize)>::new(2));
        let threads: Vec<_> = (0..2)
            .map(|id| {
                let t = t.clone();
                thread::spawn(move || {
                    let e = t.get_with(1, || (7, AtomicUsize::new(id)));
                    // Whoever made it, the entry is initialised when seen.
                    assert_eq!(e.0, 7);
                    e.1.fetch_add(10, Ordering::Relaxed);
                    e as *const _ as usize
                })
            })
            .collect();
        let seen: Vec<usize> = threads.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(seen[0], seen[1], "two entries published");
        let e = t.peek(1).unwrap();
        assert_eq!(e.1.load(Ordering::Relaxed) / 10, 2);
        assert!(t.peek(0).is_none());
        m.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    });
    runs += made.load(std::sync::atomic::Ordering::Relaxed);
    assert!(runs > 1, "only {runs} interleaving explored");
}
