//! Saving and taking up again the engine's slab table, for a file-backed engine whose file
//! outlives the process (a warm restart).
//!
//! [`SlabEngine::slab_table`] lists every slab a class holds with its slot and how many of
//! its chunks were ever carved. A later engine on the same file, built with
//! [`Config::restore`](super::Config::restore), maps those slots again (same file offsets)
//! and gives each slab back to its class with every carved chunk in use; the caller, who
//! knows which chunks hold something (an item store reads its own headers), frees the rest
//! with [`SlabEngine::free_batch`], which rebuilds the free lists and sends slabs that end
//! up empty to the pool, from where a reap releases them (punching their blocks out of
//! the file). Slots outside the table are punched out of the file at once.

use std::ptr::NonNull;

use super::class_list::{link, owner_word, SlabMeta};
use super::config::SlabRecord;
use super::size_class::ClassId;
use super::SlabEngine;
use crate::error::Error;
use crate::sync::atomic::Ordering;

impl SlabEngine {
    /// Every slab a class holds that has chunks in use (as the engine counts them: chunks
    /// in magazines of a layer above count as in use), lowest slot first. What a warm
    /// restart saves; call it when nothing allocates or frees any more.
    ///
    /// A slab's `carved` count stops after its last chunk not on its free list: free
    /// chunks at the end of the carved range (typically carved into a magazine, given
    /// back, never written) are left out, so a restart neither reads nor maps their pages.
    pub fn slab_table(&self) -> Vec<SlabRecord> {
        let mut out = Vec::new();
        for (i, lock) in self.class_state.iter() {
            let class = ClassId(i as u16);
            let cs = self.classes.chunk_size(class);
            let st = lock.0.lock();
            for m in st.slabs.iter().filter(|m| m.used > 0) {
                let mut free = vec![false; m.bump as usize];
                let mut next = m.free_head;
                let base = self.slot_ptr(m.slot);
                // At most `bump` links: a longer chain would be corrupt.
                for _ in 0..m.bump {
                    if next == 0 || next > m.bump {
                        break;
                    }
                    free[next as usize - 1] = true;
                    let p = NonNull::new(base.as_ptr().wrapping_add((next as usize - 1) * cs))
                        .expect("in slab");
                    // SAFETY: chunk `next - 1` is on this slab's free list, which the class
                    // lock we hold protects; free chunks are mapped and nobody else's.
                    next = unsafe { link::read(p) };
                }
                let carved = free.iter().rposition(|&f| !f).map_or(0, |i| i + 1);
                if carved > 0 {
                    out.push(SlabRecord {
                        slot: m.slot,
                        class,
                        carved: carved as u32,
                    });
                }
            }
        }
        out.sort_unstable_by_key(|r| r.slot);
        out
    }

    /// Unmaps from the page tables, in a file-backed engine, the pages of every slab that
    /// lie wholly past its carved chunks (no chunk there was ever handed out since the
    /// slab joined its class). A restarted caller's walk reads each carved chunk, and
    /// each read fault maps the file's neighbouring pages too (the kernel's
    /// fault-around), which would count untouched pages in RSS; call this after the walk.
    /// Contents and file blocks stay. Returns the bytes advised.
    pub fn forget_uncarved_pages(&self) -> usize {
        const PAGE: usize = 4096;
        let slab = self.slab_size();
        let mut total = 0;
        for (i, lock) in self.class_state.iter() {
            let cs = self.classes.chunk_size(ClassId(i as u16));
            let st = lock.0.lock();
            for m in &st.slabs {
                let start = (m.bump as usize * cs).next_multiple_of(PAGE);
                if start < slab {
                    let p = NonNull::new(self.slot_ptr(m.slot).as_ptr().wrapping_add(start))
                        .expect("in slab");
                    if self.os.forget_file_pages(p, slab - start).is_ok() {
                        total += slab - start;
                    }
                }
            }
        }
        total
    }

    /// Takes up `table` on a new engine (see the [module docs](self)).
    pub(super) fn restore_table(&self, table: &[SlabRecord]) -> Result<(), Error> {
        let bad = |m: String| Err(Error::InvalidConfig(format!("slab table: {m}")));
        if !self.os.file_backed() {
            return bad("restoring needs a file-backed engine".into());
        }
        let mut slots: Vec<u32> = table.iter().map(|r| r.slot).collect();
        slots.sort_unstable();
        if slots.windows(2).any(|w| w[0] == w[1]) {
            return bad("a slot is listed twice".into());
        }
        if let Some(&last) = slots.last() {
            if last >= self.slots.nslots {
                return bad(format!("slot {last} is outside the reservation"));
            }
        }
        if let Some(max) = self.limit().map(|l| l / self.slab_size()) {
            if table.len() > max {
                return bad(format!(
                    "{} slabs exceed the memory limit of {max}",
                    table.len()
                ));
            }
        }
        for r in table {
            if r.class.index() >= self.classes.len() {
                return bad(format!("class {} does not exist", r.class.0));
            }
            let cps = self.classes.chunks_per_slab(r.class);
            if r.carved as usize > cps {
                return bad(format!(
                    "slot {} has {} chunks carved of {cps}",
                    r.slot, r.carved
                ));
            }
        }
        {
            let mut pool = self.pool.lock();
            pool.slots.restore(&self.slots, &self.os, &slots)?;
            if self.huge_pages {
                for &s in &slots {
                    let _ = self.os.advise_huge(self.slot_ptr(s), self.slab_size());
                }
            }
        }
        let mut empty = Vec::new();
        for r in table {
            if r.carved == 0 {
                empty.push(r.slot);
                continue;
            }
            let cps = self.classes.chunks_per_slab(r.class) as u32;
            let mut st = self.class_lock(r.class).lock();
            let idx = st.slabs.len() as u32;
            let mut m = SlabMeta::new(r.slot);
            m.bump = r.carved;
            m.used = r.carved;
            st.slabs.push(m);
            st.used += r.carved as usize;
            self.owner[r.slot as usize].store(owner_word(r.class, idx), Ordering::Release);
            if r.carved == cps {
                st.full += 1;
            } else {
                st.add_partial(idx);
            }
        }
        if !empty.is_empty() {
            self.pool.lock().empty.extend_from_slice(&empty);
        }
        Ok(())
    }
}

#[cfg(all(test, not(miri), not(loom)))]
mod tests {
    use std::fs::{File, OpenOptions};
    use std::os::unix::fs::MetadataExt;
    use std::path::PathBuf;
    use std::ptr::NonNull;
    use std::sync::Arc;

    use super::*;
    use crate::engine::size_class::SizeClasses;
    use crate::engine::{Backing, Config};

    const SLAB: usize = 64 << 10;

    /// A file on tmpfs, removed when dropped.
    struct TmpFile(PathBuf);

    impl TmpFile {
        fn new(name: &str) -> Self {
            let dir = if std::path::Path::new("/dev/shm").is_dir() {
                "/dev/shm"
            } else {
                "/tmp"
            };
            TmpFile(PathBuf::from(format!(
                "{dir}/slab-core-{name}-{}",
                std::process::id()
            )))
        }

        fn open(&self) -> Arc<File> {
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&self.0)
                .unwrap();
            Arc::new(f)
        }

        /// Bytes of blocks the file holds.
        fn allocated(&self) -> u64 {
            std::fs::metadata(&self.0).unwrap().blocks() * 512
        }
    }

    impl Drop for TmpFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn config(file: &Arc<File>) -> Config {
        let classes = SizeClasses::from_list(&[64, 1024, SLAB / 2], 8, SLAB).unwrap();
        Config::new(classes)
            .memory_limit(8 << 20)
            .backing(Backing::File(file.clone()))
    }

    /// Allocates `n` chunks of `class`, each written with its own index.
    fn fill(e: &SlabEngine, class: ClassId, n: usize) -> Vec<NonNull<u8>> {
        (0..n)
            .map(|i| {
                let p = e.alloc(class).unwrap();
                // SAFETY: a fresh chunk of at least 64 bytes, ours alone.
                unsafe { p.as_ptr().add(8).cast::<u64>().write_unaligned(i as u64) };
                p
            })
            .collect()
    }

    #[test]
    fn empty_slabs_are_punched_out_one_hole_per_run() {
        let t = TmpFile::new("punch");
        let f = t.open();
        let e = SlabEngine::new(config(&f)).unwrap();
        let big = ClassId(2); // two chunks per slab
        let chunks = fill(&e, big, 16); // slots 0..8
        assert!(e.stats().file_backed);
        assert!(
            t.allocated() >= 8 * SLAB as u64,
            "fallocate gave the blocks"
        );
        // Empty slabs 0-1 and 4-6 (two runs); the rest stay.
        for slab in [0usize, 1, 4, 5, 6] {
            for c in &chunks[slab * 2..slab * 2 + 2] {
                // SAFETY: allocated above, freed once.
                unsafe { e.free(*c) };
            }
        }
        let before = t.allocated();
        let r = e.release_all();
        // The engine's granule is 2 MiB: every untouched slab of it is released too.
        assert!(r.slabs >= 5);
        assert_eq!(r.punch_calls, r.runs);
        assert_eq!(r.munmap_calls, r.runs);
        let s = e.stats();
        assert_eq!(s.punch_calls, r.runs as u64);
        assert_eq!(s.punched_bytes, r.bytes as u64);
        assert!(t.allocated() <= before - 5 * SLAB as u64);
        // Memory comes back into the holes, from the file again.
        let again = fill(&e, big, 10);
        assert!(again.iter().all(|p| e.class_of(p.as_ptr()) == Some(big)));
    }

    #[test]
    fn a_saved_table_brings_the_chunks_back() {
        let t = TmpFile::new("restore");
        let small = ClassId(0);
        let big = ClassId(2);
        let (table, offsets) = {
            let f = t.open();
            let e = SlabEngine::new(config(&f)).unwrap();
            let a = fill(&e, small, 3000); // 1024 per slab: 3 slabs
            let b = fill(&e, big, 5); // 3 slabs
            let offsets: Vec<(usize, usize)> = a
                .iter()
                .chain(&b)
                .enumerate()
                .map(|(i, p)| (i, e.offset_of(p.as_ptr())))
                .collect();
            let table = e.slab_table();
            assert_eq!(table.len(), 6);
            assert_eq!(table.iter().map(|r| r.carved).sum::<u32>(), 3005);
            (table, offsets)
        };
        let f = t.open();
        let e = SlabEngine::new(config(&f).restore(table.clone())).unwrap();
        assert_eq!(e.slab_table(), table);
        let s = e.stats();
        assert_eq!(s.classes[0].used_chunks, 3000);
        assert_eq!(s.classes[2].used_chunks, 5);
        assert_eq!(s.mapped_bytes, 6 * SLAB);
        for &(i, off) in &offsets {
            let p = e.ptr_at(off);
            let want = if i < 3000 { i } else { i - 3000 };
            // SAFETY: restored chunks, in use, ours.
            let got = unsafe { p.as_ptr().add(8).cast::<u64>().read_unaligned() };
            assert_eq!(got, want as u64);
        }
        // Free every other small chunk and every big one: the big class's slabs empty.
        for &(i, off) in &offsets {
            if i >= 3000 || i % 2 == 1 {
                // SAFETY: each restored chunk is freed once.
                unsafe { e.free(e.ptr_at(off)) };
            }
        }
        let s = e.stats();
        assert_eq!(s.classes[0].used_chunks, 1500);
        assert_eq!(s.classes[2].used_chunks, 0);
        let r = e.release_all();
        assert_eq!(r.slabs, 3);
        assert!(t.allocated() <= 3 * SLAB as u64 + 4096);
        // Allocation reuses the freed chunks first, then maps more.
        let more = fill(&e, small, 2000);
        assert_eq!(e.stats().classes[0].used_chunks, 3500);
        assert_eq!(more.len(), 2000);
    }

    #[test]
    fn the_table_leaves_out_trailing_free_chunks() {
        let t = TmpFile::new("trail");
        let f = t.open();
        let e = SlabEngine::new(config(&f)).unwrap();
        let small = ClassId(0);
        let a = fill(&e, small, 1500); // slab 0 full (1024), slab 1 carved 476
                                       // Free chunks 1400.. (the end of slab 1) and 100..200 (inside slab 0).
        for p in a[1400..].iter().chain(&a[100..200]) {
            // SAFETY: allocated above, freed once.
            unsafe { e.free(*p) };
        }
        let table = e.slab_table();
        assert_eq!(table.len(), 2);
        assert_eq!(table[0].carved, 1024, "free chunks inside stay carved");
        assert_eq!(table[1].carved, 1400 - 1024);
        // Restored, only the carved prefix counts; pages past it leave the page tables.
        drop(e);
        let e = SlabEngine::new(config(&f).restore(table)).unwrap();
        assert_eq!(e.stats().classes[0].used_chunks, 1400);
        let past = SLAB - ((1400 - 1024) * 64usize).next_multiple_of(4096);
        assert_eq!(e.forget_uncarved_pages(), past);
        // The chunks past the carved prefix are handed out again.
        let more = fill(&e, small, 100);
        assert!(more.iter().all(|p| e.class_of(p.as_ptr()) == Some(small)));
    }

    #[test]
    fn a_bad_table_is_refused() {
        let t = TmpFile::new("bad");
        let f = t.open();
        let rec = |slot, class, carved| SlabRecord {
            slot,
            class: ClassId(class),
            carved,
        };
        let anon = Config::new(SizeClasses::from_list(&[64], 8, SLAB).unwrap())
            .restore(vec![rec(0, 0, 1)]);
        assert!(SlabEngine::new(anon).is_err());
        for table in [
            vec![rec(0, 0, 1), rec(0, 0, 1)],
            vec![rec(1 << 30, 0, 1)],
            vec![rec(0, 9, 1)],
            vec![rec(0, 2, 3)],
        ] {
            let e = SlabEngine::new(config(&f).restore(table.clone()));
            assert!(e.is_err(), "{table:?}");
        }
    }
}
