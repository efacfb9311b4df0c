//! The only module that talks to the operating system: `mmap`, `munmap` and `madvise`, through
//! one `syscall!` wrapper that turns `-1` into [`io::Error`], with every call counted.
//!
//! The raw functions are `unsafe` where they can destroy memory someone else relies on
//! (`MAP_FIXED`, `munmap`); the engine is the only caller and argues each call.

use std::io;
use std::ptr::NonNull;

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

/// Counters of the calls made, for the stats.
#[derive(Debug, Default)]
pub(crate) struct Os {
    mmap_calls: AtomicU64,
    munmap_calls: AtomicU64,
    madvise_calls: AtomicU64,
}

/// Calls made so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Calls {
    pub(crate) mmap: u64,
    pub(crate) munmap: u64,
    pub(crate) madvise: u64,
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
) -> io::Result<NonNull<u8>> {
    // SAFETY: an anonymous mapping; with `MAP_FIXED*` flags the callers own `addr..addr+len`
    // (see `Os::map_fixed`), without them the kernel picks a free range and nothing existing
    // is touched.
    let p = unsafe { libc::mmap(addr.cast(), len, prot, flags, -1, 0) };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned null"))
}

impl Os {
    /// Counts so far.
    pub(crate) fn calls(&self) -> Calls {
        Calls {
            mmap: self.mmap_calls.load(Relaxed),
            munmap: self.munmap_calls.load(Relaxed),
            madvise: self.madvise_calls.load(Relaxed),
        }
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

    /// Maps `len` bytes read-write at `addr`.
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
    ) -> io::Result<()> {
        let fixed = if noreplace {
            libc::MAP_FIXED_NOREPLACE
        } else {
            libc::MAP_FIXED
        };
        self.mmap_calls.fetch_add(1, Relaxed);
        let got = mmap_raw(
            addr.as_ptr(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | fixed,
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

    /// Advises the kernel to back `addr..addr + len` with transparent huge pages.
    ///
    /// `madvise(MADV_HUGEPAGE)` changes no contents, so this is safe for any range; it fails
    /// with `ENOMEM` if the range is not mapped.
    pub(crate) fn advise_huge(&self, addr: NonNull<u8>, len: usize) -> io::Result<()> {
        self.madvise_calls.fetch_add(1, Relaxed);
        syscall!(madvise(addr.as_ptr().cast(), len, libc::MADV_HUGEPAGE)).map(drop)
    }
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
        unsafe { os.map_fixed(r.base, HUGE_PAGE, false).unwrap() };
        // SAFETY: just mapped read-write above.
        unsafe { r.base.as_ptr().write(7) };
        os.advise_huge(r.base, HUGE_PAGE).unwrap();
        // SAFETY: mapped above, no pointer into it survives.
        unsafe { os.unmap(r.base, HUGE_PAGE).unwrap() };
        // The hole is ours again: NOREPLACE succeeds, and a second NOREPLACE sees EEXIST.
        // SAFETY: NOREPLACE replaces nothing.
        unsafe { os.map_fixed(r.base, HUGE_PAGE, true).unwrap() };
        // SAFETY: as above.
        let e = unsafe { os.map_fixed(r.base, HUGE_PAGE, true) }.unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EEXIST));
        // SAFETY: the whole reservation is ours and unused.
        unsafe { os.unmap(r.raw, r.raw_len).unwrap() };
        let c = os.calls();
        assert_eq!((c.mmap, c.munmap, c.madvise), (4, 2, 1));
    }
}
