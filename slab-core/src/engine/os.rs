//! The only module that talks to the operating system: `mmap`, `munmap`, `madvise` and, for
//! a file-backed engine, `fallocate` (allocating a mapped range's blocks, punching released
//! ones out), through one `syscall!` wrapper that turns `-1` into [`io::Error`], with every
//! call counted.
//!
//! The raw functions are `unsafe` where they can destroy memory someone else relies on
//! (`MAP_FIXED`, `munmap`); the engine is the only caller and argues each call.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::ptr::NonNull;
use std::sync::Arc;

use crate::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Calls a libc function that reports failure as `-1` and `errno`.
macro_rules! syscall {
    ($fn:ident ( $($arg:expr),* $(,)? )) => {{
        // SAFETY: every use below passes arguments that satisfy the call's contract; the
        // enclosing function's own SAFETY argument or `# Safety` section says why.
        let res = unsafe { libc::$fn($($arg),*) };
        if res == -1 {
            Err(io::Error::last_os_error())
        } else {
            Ok(res)
        }
    }};
}

/// 2 MiB: the huge-page size on x86-64, and the alignment of every reservation.
pub(crate) const HUGE_PAGE: usize = 2 << 20;

/// Counters of the calls made, for the stats, and the file behind mapped slots, if any.
#[derive(Debug, Default)]
pub(crate) struct Os {
    mmap_calls: AtomicU64,
    munmap_calls: AtomicU64,
    madvise_calls: AtomicU64,
    fallocate_calls: AtomicU64,
    punch_calls: AtomicU64,
    punched_bytes: AtomicU64,
    /// With a file, a range at offset `o` from the reservation base maps the file at `o`
    /// (`MAP_SHARED`); without one, mappings are anonymous.
    file: Option<Arc<File>>,
}

/// Calls made so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Calls {
    pub(crate) mmap: u64,
    pub(crate) munmap: u64,
    pub(crate) madvise: u64,
    pub(crate) fallocate: u64,
    pub(crate) punch: u64,
    pub(crate) punched_bytes: u64,
}

/// An address range reserved with `PROT_NONE`: no memory behind it until parts are mapped.
#[derive(Debug)]
pub(crate) struct Reservation {
    /// What `mmap` returned (the whole reservation, including alignment slack).
    pub(crate) raw: NonNull<u8>,
    /// Its length.
    pub(crate) raw_len: usize,
    /// The first `align`-aligned address inside it.
    pub(crate) base: NonNull<u8>,
    /// Usable bytes from `base` (a multiple of `align`).
    pub(crate) len: usize,
}

fn mmap_raw(
    addr: *mut u8,
    len: usize,
    prot: libc::c_int,
    flags: libc::c_int,
    fd: libc::c_int,
    offset: usize,
) -> io::Result<NonNull<u8>> {
    let offset =
        libc::off_t::try_from(offset).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: an anonymous mapping or one of a file we hold open; with `MAP_FIXED*` flags
    // the callers own `addr..addr+len` (see `Os::map_fixed`), without them the kernel picks
    // a free range and nothing existing is touched.
    let p = unsafe { libc::mmap(addr.cast(), len, prot, flags, fd, offset) };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned null"))
}

impl Os {
    /// Mappings of slots come from `file` (see [`Os::map_fixed`]).
    pub(crate) fn with_file(file: Arc<File>) -> Self {
        Os {
            file: Some(file),
            ..Os::default()
        }
    }

    /// Whether slots are mapped from a file.
    pub(crate) fn file_backed(&self) -> bool {
        self.file.is_some()
    }

    /// Counts so far.
    pub(crate) fn calls(&self) -> Calls {
        Calls {
            mmap: self.mmap_calls.load(Relaxed),
            munmap: self.munmap_calls.load(Relaxed),
            madvise: self.madvise_calls.load(Relaxed),
            fallocate: self.fallocate_calls.load(Relaxed),
            punch: self.punch_calls.load(Relaxed),
            punched_bytes: self.punched_bytes.load(Relaxed),
        }
    }

    /// Allocates the file's blocks for `offset..offset + len` (`fallocate` mode 0), so that a
    /// full file system fails here with `ENOSPC` instead of with `SIGBUS` when a page is
    /// first written. Does nothing without a file.
    pub(crate) fn allocate(&self, offset: usize, len: usize) -> io::Result<()> {
        let Some(f) = &self.file else {
            return Ok(());
        };
        self.fallocate_calls.fetch_add(1, Relaxed);
        let (off, len) = file_range(offset, len)?;
        syscall!(fallocate(f.as_raw_fd(), 0, off, len)).map(drop)
    }

    /// Returns the file's blocks for `offset..offset + len` to the file system
    /// (`FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE`): the range reads as zeros afterwards
    /// and its pages leave every mapping of it. Does nothing without a file.
    pub(crate) fn punch(&self, offset: usize, len: usize) -> io::Result<()> {
        let Some(f) = &self.file else {
            return Ok(());
        };
        if len == 0 {
            return Ok(());
        }
        self.punch_calls.fetch_add(1, Relaxed);
        let (off, flen) = file_range(offset, len)?;
        let mode = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
        syscall!(fallocate(f.as_raw_fd(), mode, off, flen))?;
        self.punched_bytes.fetch_add(len as u64, Relaxed);
        Ok(())
    }

    /// Reserves `len` bytes of address space aligned to `align` (a power of two), without
    /// memory behind it (`PROT_NONE`, `MAP_NORESERVE`). Over-reserves by `align` and keeps the
    /// slack reserved (trimming it would cost extra `munmap` calls of odd sizes).
    pub(crate) fn reserve(&self, len: usize, align: usize) -> io::Result<Reservation> {
        debug_assert!(align.is_power_of_two() && len % align == 0);
        let raw_len = len
            .checked_add(align)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOMEM))?;
        self.mmap_calls.fetch_add(1, Relaxed);
        let raw = mmap_raw(
            std::ptr::null_mut(),
            raw_len,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )?;
        let skip = raw.as_ptr().align_offset(align);
        // `skip < align`, so `base + len` stays inside the reservation.
        let base = NonNull::new(raw.as_ptr().wrapping_add(skip)).expect("inside a mapping");
        Ok(Reservation {
            raw,
            raw_len,
            base,
            len,
        })
    }

    /// Maps `len` bytes read-write at `addr`: anonymous memory, or with a file the file's
    /// range at `offset` (`MAP_SHARED`, its blocks allocated first by [`Os::allocate`]).
    ///
    /// With `noreplace` the call fails with `EEXIST` if anything is mapped there (it is used to
    /// map back into a hole the engine punched earlier, which someone else may have taken
    /// since); otherwise the range is replaced.
    ///
    /// # Safety
    /// 1. Without `noreplace`, `addr..addr + len` must be part of a reservation the caller owns
    ///    and nothing in it may be in use: whatever is mapped there is replaced by zero pages.
    /// 2. `addr` and `len` must be page-aligned.
    pub(crate) unsafe fn map_fixed(
        &self,
        addr: NonNull<u8>,
        len: usize,
        noreplace: bool,
        offset: usize,
    ) -> io::Result<()> {
        let fixed = if noreplace {
            libc::MAP_FIXED_NOREPLACE
        } else {
            libc::MAP_FIXED
        };
        let (kind, fd) = match &self.file {
            Some(f) => {
                self.allocate(offset, len)?;
                (libc::MAP_SHARED, f.as_raw_fd())
            }
            None => (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1),
        };
        self.mmap_calls.fetch_add(1, Relaxed);
        let got = mmap_raw(
            addr.as_ptr(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            kind | fixed,
            fd,
            offset,
        )?;
        if got != addr {
            // A kernel older than 4.17 treats MAP_FIXED_NOREPLACE as a hint and may map
            // elsewhere: undo that and report the range as taken.
            self.munmap_calls.fetch_add(1, Relaxed);
            // SAFETY: `got..got + len` was just mapped by this call and nobody has seen it.
            let _ = syscall!(munmap(got.as_ptr().cast(), len));
            return Err(io::Error::from_raw_os_error(libc::EEXIST));
        }
        Ok(())
    }

    /// Unmaps `addr..addr + len` with one `munmap`.
    ///
    /// # Safety
    /// The range must be page-aligned, mapped by this engine, and no longer used: every pointer
    /// into it dangles afterwards.
    pub(crate) unsafe fn unmap(&self, addr: NonNull<u8>, len: usize) -> io::Result<()> {
        self.munmap_calls.fetch_add(1, Relaxed);
        syscall!(munmap(addr.as_ptr().cast(), len)).map(drop)
    }

    /// Drops `addr..addr + len` of a file mapping from the page tables
    /// (`MADV_DONTNEED`): RSS falls, the file keeps its contents and blocks, and the next
    /// access maps the same pages again. Does nothing without a file (anonymous memory
    /// would read back as zeros).
    ///
    /// A read fault in a file mapping maps the neighbouring pages the file holds as well
    /// (the kernel's fault-around, 64 KiB windows), which is what this undoes.
    pub(crate) fn forget_file_pages(&self, addr: NonNull<u8>, len: usize) -> io::Result<()> {
        if self.file.is_none() || len == 0 {
            return Ok(());
        }
        self.madvise_calls.fetch_add(1, Relaxed);
        syscall!(madvise(addr.as_ptr().cast(), len, libc::MADV_DONTNEED)).map(drop)
    }

    /// Advises the kernel to back `addr..addr + len` with transparent huge pages.
    ///
    /// `madvise(MADV_HUGEPAGE)` changes no contents, so this is safe for any range; it fails
    /// with `ENOMEM` if the range is not mapped.
    pub(crate) fn advise_huge(&self, addr: NonNull<u8>, len: usize) -> io::Result<()> {
        self.madvise_calls.fetch_add(1, Relaxed);
        syscall!(madvise(addr.as_ptr().cast(), len, libc::MADV_HUGEPAGE)).map(drop)
    }
}

/// `offset..offset + len` as `fallocate`'s arguments.
fn file_range(offset: usize, len: usize) -> io::Result<(libc::off_t, libc::off_t)> {
    let bad = |_| io::Error::from_raw_os_error(libc::EFBIG);
    Ok((
        libc::off_t::try_from(offset).map_err(bad)?,
        libc::off_t::try_from(len).map_err(bad)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg_attr(miri, ignore)] // partial munmap and MAP_FIXED are beyond Miri's mmap shim
    fn reserve_map_unmap_counts_calls() {
        let os = Os::default();
        let r = os.reserve(8 * HUGE_PAGE, HUGE_PAGE).unwrap();
        assert_eq!(r.base.as_ptr() as usize % HUGE_PAGE, 0);
        // SAFETY: the first 2 MiB of our own fresh reservation, unused.
        unsafe { os.map_fixed(r.base, HUGE_PAGE, false, 0).unwrap() };
        // SAFETY: just mapped read-write above.
        unsafe { r.base.as_ptr().write(7) };
        os.advise_huge(r.base, HUGE_PAGE).unwrap();
        // SAFETY: mapped above, no pointer into it survives.
        unsafe { os.unmap(r.base, HUGE_PAGE).unwrap() };
        // The hole is ours again: NOREPLACE succeeds, and a second NOREPLACE sees EEXIST.
        // SAFETY: NOREPLACE replaces nothing.
        unsafe { os.map_fixed(r.base, HUGE_PAGE, true, 0).unwrap() };
        // SAFETY: as above.
        let e = unsafe { os.map_fixed(r.base, HUGE_PAGE, true, 0) }.unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EEXIST));
        // SAFETY: the whole reservation is ours and unused.
        unsafe { os.unmap(r.raw, r.raw_len).unwrap() };
        let c = os.calls();
        assert_eq!((c.mmap, c.munmap, c.madvise), (4, 2, 1));
    }
}
