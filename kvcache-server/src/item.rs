//! The layout of one item inside a slab chunk, and the 4-byte handles that name chunks.
//!
//! ```text
//!  0        4              8                12       14          22        26
//! +--------+--------------+----------------+--------+-----------+---------+-------+---------+
//! |exptime | vlen:24      | tag (atomic):  | access | cas (8)   | flags   | key   | value   |
//! | u32    | klen:8       | bits:8 hash:24 | u16    | if CAS on | (4, if  | 1-250 | 0..     |
//! |        |              |                |        |           | != 0)   |       |         |
//! +--------+--------------+----------------+--------+-----------+---------+-------+---------+
//! ```
//!
//! Nothing else is stored: no terminator after the key, no `\r\n` after the value, no
//! list links (eviction is CLOCK, one bit in the tag). memcached spends 48 bytes of
//! header plus 8 of CAS plus 3 of terminators on the same item.
//!
//! * `exptime` is in server-clock seconds (0 = never). The first four bytes of a *free*
//!   chunk hold the engine's free-list link, so nothing that may be read without the
//!   item's shard lock lives there.
//! * `tag` is the only word read without the shard lock (by the evictor walking a class's
//!   slabs); it is always accessed atomically. It holds the state bits and 24 bits of the
//!   key's hash, from which the shard and the index hash are derived, so an evictor can
//!   find and lock the item's shard and check that the index really holds this chunk
//!   without reading anything else.
//! * `access` holds the low 16 bits of the last access time (seconds); the full time is
//!   reconstructed relative to "now", exact within 18 hours (the store's crawler moves
//!   older times up to 16 hours ago, so longer idle times read as 16 hours).
//! * Values longer than the largest chunk are *chained*: the head chunk holds the total
//!   length (u32) and the handles (u32 each) of the segment chunks after the key; `vlen`
//!   then holds the segment count. A segment chunk has a tag word (never `LIVE`) at offset
//!   8 and its data from [`SEGMENT_DATA`].

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, AtomicU32, Ordering};

/// Bytes of the fixed header: exptime (4), value and key length (4), tag (4), last
/// access (2).
pub const HEADER_LEN: usize = 14;

/// Bytes of the CAS field, present when CAS is enabled (memcached's default; `-C` turns
/// it off).
pub const CAS_LEN: usize = 8;

/// Bytes of the client-flags field, present only when the flags are nonzero.
pub const FLAGS_LEN: usize = 4;

/// Longest key memcached accepts.
pub const KEY_MAX: usize = 250;

/// Longest value stored in one chunk (24-bit length field).
pub const INLINE_VALUE_MAX: usize = (1 << 24) - 1;

/// Where a segment chunk's data starts.
pub const SEGMENT_DATA: usize = 16;

/// Handles are chunk offsets from the engine's reservation base shifted right by this
/// much when every chunk size is a multiple of 4 (the default classes): up to 16 GiB of
/// reservation.
pub const HANDLE_SHIFT_FINE: u32 = 2;

/// The shift for larger stores, whose chunk sizes are then multiples of 8: up to 32 GiB.
pub const HANDLE_SHIFT_COARSE: u32 = 3;

/// Largest reservation a 4-byte handle with `shift` can address.
#[inline]
pub const fn handle_span(shift: u32) -> usize {
    1 << (32 + shift)
}

const OFF_EXPTIME: usize = 0;
const OFF_LENS: usize = 4;
const OFF_TAG: usize = 8;
const OFF_ACCESS: usize = 12;
const OFF_CAS: usize = 14;

/// Tag bit: the item is linked in its shard's index.
pub const LIVE: u32 = 1 << 0;
/// Tag bit: CLOCK reference bit, set on access, cleared by the eviction hand.
pub const REF: u32 = 1 << 1;
/// Tag bit: the item has been read since it was stored.
pub const FETCHED: u32 = 1 << 2;
/// Tag bit: a 4-byte client-flags field follows the CAS field.
pub const HAS_FLAGS: u32 = 1 << 3;
/// Tag bit: the value is stored in segment chunks.
pub const CHAINED: u32 = 1 << 4;
/// Tag bit: the item was invalidated (meta `md I` / `mg` stale semantics).
pub const STALE: u32 = 1 << 5;
/// Tag bit: a win token has been handed out for this item (meta).
pub const WIN_SENT: u32 = 1 << 6;
/// Tag bit: the chunk is a segment of a chained value.
pub const SEGMENT: u32 = 1 << 7;
/// Mask of the state bits in a tag.
pub const BITS_MASK: u32 = 0xff;

/// The number of bytes an item occupies in its chunk: the chunk it needs is the smallest
/// size class at least this large (values longer than the largest chunk are chained).
pub fn stored_size(
    key_len: usize,
    value_len: usize,
    client_flags: u32,
    cas_enabled: bool,
) -> usize {
    HEADER_LEN
        + if cas_enabled { CAS_LEN } else { 0 }
        + if client_flags != 0 { FLAGS_LEN } else { 0 }
        + key_len
        + value_len
}

/// The number of bytes memcached 1.6 stores for the same item (its `ITEM_ntotal`): a
/// 48-byte header, 8 bytes of CAS unless `-C`, the key and its terminator, the value and
/// its `\r\n`, and 4 bytes of client flags when they are nonzero.
pub fn memcached_stored_size(
    key_len: usize,
    value_len: usize,
    client_flags: u32,
    cas_enabled: bool,
) -> usize {
    48 + if cas_enabled { 8 } else { 0 }
        + key_len
        + 1
        + value_len
        + 2
        + if client_flags != 0 { 4 } else { 0 }
}

/// Packs a chunk offset (from the reservation base) into a 4-byte handle.
///
/// Panics (debug) if the offset is not a multiple of `1 << shift` or beyond
/// [`handle_span`]`(shift)`.
#[inline]
pub fn pack_handle(offset: usize, shift: u32) -> u32 {
    debug_assert_eq!(offset & ((1 << shift) - 1), 0, "chunk offsets are aligned");
    debug_assert!(
        offset < handle_span(shift),
        "offset beyond what a handle can address"
    );
    (offset >> shift) as u32
}

/// The chunk offset a handle names. Inverse of [`pack_handle`].
#[inline]
pub fn unpack_handle(handle: u32, shift: u32) -> usize {
    (handle as usize) << shift
}

/// The 24 hash bits kept in the tag, taken from a 64-bit key hash.
#[inline]
pub fn tag_hash(hash: u64) -> u32 {
    (hash >> 40) as u32
}

/// The fields of a new item's header, as [`write_header`] lays them out.
#[derive(Clone, Copy, Debug)]
pub(crate) struct NewHeader {
    pub exptime: u32,
    /// Value length (inline) or segment count (chained).
    pub vlen: u32,
    pub klen: u8,
    /// State bits (without `LIVE`).
    pub bits: u32,
    pub hash24: u32,
    pub access: u32,
    pub cas: u64,
    pub flags: u32,
}

/// Bytes before the key: header, CAS and flags fields.
#[inline]
pub(crate) fn key_offset(cas_enabled: bool, has_flags: bool) -> usize {
    HEADER_LEN + if cas_enabled { CAS_LEN } else { 0 } + if has_flags { FLAGS_LEN } else { 0 }
}

/// Writes a header, CAS, flags and key into a chunk the caller owns exclusively.
///
/// # Safety
/// `chunk` must point to at least `key_offset(cas_enabled, h.flags != 0) + key.len()`
/// writable bytes of a chunk that no other thread reads or writes except through the
/// atomic tag word, and be 4-aligned.
pub(crate) unsafe fn write_header(
    chunk: NonNull<u8>,
    cas_enabled: bool,
    h: &NewHeader,
    key: &[u8],
) {
    let p = chunk.as_ptr();
    let has_flags = h.flags != 0;
    let bits = (h.bits & !LIVE) | if has_flags { HAS_FLAGS } else { 0 };
    // SAFETY: 1. by the caller's contract every byte written lies inside the chunk, which
    // nobody else accesses non-atomically; 2. the tag word is 4-aligned (chunk 4-aligned,
    // offset 8) and written atomically, as every access to it is.
    unsafe {
        p.add(OFF_EXPTIME).cast::<u32>().write_unaligned(h.exptime);
        p.add(OFF_LENS)
            .cast::<u32>()
            .write_unaligned((h.vlen & 0xff_ffff) | (u32::from(h.klen) << 24));
        tag_atomic(chunk).store(bits | (h.hash24 << 8), Ordering::Release);
        p.add(OFF_ACCESS)
            .cast::<u16>()
            .write_unaligned(h.access as u16);
        let mut off = OFF_CAS;
        if cas_enabled {
            p.add(off).cast::<u64>().write_unaligned(h.cas);
            off += CAS_LEN;
        }
        if has_flags {
            p.add(off).cast::<u32>().write_unaligned(h.flags);
            off += FLAGS_LEN;
        }
        std::ptr::copy_nonoverlapping(key.as_ptr(), p.add(off), key.len());
    }
}

/// The atomic tag word of a chunk.
///
/// Every access to bytes 8..12 of a chunk (item head or segment) goes through this.
#[inline]
pub(crate) fn tag_atomic<'a>(chunk: NonNull<u8>) -> &'a AtomicU32 {
    // SAFETY: chunks are 4-aligned (sizes are multiples of 4 in 4-aligned slabs) and at
    // least 16 bytes long (the smallest class), they
    // live in the engine's reservation for as long as the store, and bytes 8..12 are only
    // ever accessed atomically (see the module docs), so an `AtomicU32` view is sound.
    unsafe { AtomicU32::from_ptr(chunk.as_ptr().add(OFF_TAG).cast::<u32>()) }
}

/// Reconstructs a full access time from its low 16 bits, relative to `now`.
#[inline]
pub fn widen_access(now: u32, low: u16) -> u32 {
    now.wrapping_sub(u32::from((now as u16).wrapping_sub(low)))
}

/// A readable view of an item head, valid while the caller holds the item's shard lock
/// (or otherwise owns the chunk exclusively).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ItemRef<'a> {
    ptr: NonNull<u8>,
    cas_enabled: bool,
    _life: std::marker::PhantomData<&'a [u8]>,
}

impl<'a> ItemRef<'a> {
    /// # Safety
    /// `ptr` must point to a chunk holding a fully written item head (see
    /// [`write_header`]) that nobody writes non-atomically for `'a`, except through this
    /// view's own `set_*` methods while the caller holds the item's shard lock.
    #[inline]
    pub(crate) unsafe fn new(ptr: NonNull<u8>, cas_enabled: bool) -> Self {
        ItemRef {
            ptr,
            cas_enabled,
            _life: std::marker::PhantomData,
        }
    }

    #[inline]
    pub(crate) fn ptr(&self) -> NonNull<u8> {
        self.ptr
    }

    #[inline]
    fn read_u32(&self, off: usize) -> u32 {
        // SAFETY: `off` is a header field offset inside the chunk (constructor contract).
        unsafe { self.ptr.as_ptr().add(off).cast::<u32>().read_unaligned() }
    }

    #[inline]
    pub(crate) fn tag(&self) -> u32 {
        tag_atomic(self.ptr).load(Ordering::Acquire)
    }

    #[inline]
    pub(crate) fn bits(&self) -> u32 {
        self.tag() & BITS_MASK
    }

    #[inline]
    pub(crate) fn set_bits(&self, bits: u32) {
        let t = tag_atomic(self.ptr);
        // Hot items already have their bits: skip the read-modify-write.
        if t.load(Ordering::Relaxed) & bits != bits & BITS_MASK {
            t.fetch_or(bits & BITS_MASK, Ordering::AcqRel);
        }
    }

    /// The bytes the head chunk needs: the item (inline) or header, key and chain
    /// descriptor (chained). Its class is the smallest that holds this many.
    #[inline]
    pub(crate) fn head_size(&self) -> usize {
        if self.is_chained() {
            self.body_off() + 4 + 4 * self.vlen_field()
        } else {
            self.body_off() + self.vlen_field()
        }
    }

    #[inline]
    pub(crate) fn clear_bits(&self, bits: u32) {
        tag_atomic(self.ptr).fetch_and(!(bits & BITS_MASK), Ordering::AcqRel);
    }

    #[inline]
    pub(crate) fn exptime(&self) -> u32 {
        self.read_u32(OFF_EXPTIME)
    }

    #[inline]
    pub(crate) fn set_exptime(&self, exptime: u32) {
        // SAFETY: in-bounds header field; the caller holds the shard lock (constructor
        // contract), so no one else reads or writes it concurrently.
        unsafe {
            self.ptr
                .as_ptr()
                .add(OFF_EXPTIME)
                .cast::<u32>()
                .write_unaligned(exptime)
        }
    }

    /// Value length (inline items) or segment count (chained items).
    #[inline]
    pub(crate) fn vlen_field(&self) -> usize {
        (self.read_u32(OFF_LENS) & 0xff_ffff) as usize
    }

    #[inline]
    pub(crate) fn klen(&self) -> usize {
        (self.read_u32(OFF_LENS) >> 24) as usize
    }

    #[inline]
    pub(crate) fn access_low(&self) -> u16 {
        self.access_atomic().load(Ordering::Relaxed)
    }

    /// The access-time field, read and written atomically: readers of one item may hold
    /// its shard's read lock together and each records its access.
    #[inline]
    fn access_atomic(&self) -> &AtomicU16 {
        // SAFETY: bytes 12..14 are in bounds of every item head (see `tag_atomic` for
        // the size and the 4-alignment of chunks, so offset 12 is 2-aligned); the chunk
        // stays mapped while the item is reachable. Non-atomic writes of the field (an
        // item being prepared, or copied by a move) happen only while no reader can
        // reach the item: before it is linked, or under its shard's write lock.
        unsafe { AtomicU16::from_ptr(self.ptr.as_ptr().add(OFF_ACCESS).cast::<u16>()) }
    }

    #[inline]
    pub(crate) fn set_access(&self, now: u32) {
        self.access_atomic().store(now as u16, Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn cas(&self) -> u64 {
        if !self.cas_enabled {
            return 0;
        }
        // SAFETY: the CAS field exists when CAS is enabled.
        unsafe {
            self.ptr
                .as_ptr()
                .add(OFF_CAS)
                .cast::<u64>()
                .read_unaligned()
        }
    }

    #[inline]
    pub(crate) fn set_cas(&self, cas: u64) {
        if self.cas_enabled {
            // SAFETY: the CAS field exists when CAS is enabled; written under the lock.
            unsafe {
                self.ptr
                    .as_ptr()
                    .add(OFF_CAS)
                    .cast::<u64>()
                    .write_unaligned(cas)
            }
        }
    }

    #[inline]
    fn flags_off(&self) -> usize {
        OFF_CAS + if self.cas_enabled { CAS_LEN } else { 0 }
    }

    #[inline]
    pub(crate) fn flags(&self) -> u32 {
        if self.bits() & HAS_FLAGS == 0 {
            return 0;
        }
        self.read_u32(self.flags_off())
    }

    #[inline]
    pub(crate) fn key_off(&self) -> usize {
        key_offset(self.cas_enabled, self.bits() & HAS_FLAGS != 0)
    }

    #[inline]
    pub(crate) fn key(&self) -> &'a [u8] {
        // SAFETY: the key lies inside the chunk after the header (write_header) and is
        // not written while the item is readable.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(self.key_off()), self.klen()) }
    }

    #[inline]
    pub(crate) fn is_chained(&self) -> bool {
        self.bits() & CHAINED != 0
    }

    /// Offset of the value (inline) or of the chain descriptor (chained).
    #[inline]
    pub(crate) fn body_off(&self) -> usize {
        self.key_off() + self.klen()
    }

    /// The inline value. Must not be called on a chained item.
    #[inline]
    pub(crate) fn inline_value(&self) -> &'a [u8] {
        debug_assert!(!self.is_chained());
        // SAFETY: an inline value of `vlen` bytes follows the key inside the chunk.
        unsafe {
            std::slice::from_raw_parts(self.ptr.as_ptr().add(self.body_off()), self.vlen_field())
        }
    }

    /// The inline value, writable (in-place `incr`/`decr`). Caller holds the shard lock.
    #[inline]
    #[allow(clippy::mut_from_ref)]
    pub(crate) fn inline_value_mut(&self) -> &'a mut [u8] {
        debug_assert!(!self.is_chained());
        // SAFETY: as `inline_value`; the shard lock makes this the only access.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.ptr.as_ptr().add(self.body_off()),
                self.vlen_field(),
            )
        }
    }

    /// Total value length of a chained item.
    #[inline]
    pub(crate) fn chained_len(&self) -> usize {
        self.read_u32(self.body_off()) as usize
    }

    /// Segment handle `i` of a chained item.
    #[inline]
    pub(crate) fn segment(&self, i: usize) -> u32 {
        self.read_u32(self.body_off() + 4 + 4 * i)
    }

    /// The value length, inline or chained.
    #[inline]
    pub(crate) fn value_len(&self) -> usize {
        if self.is_chained() {
            self.chained_len()
        } else {
            self.vlen_field()
        }
    }

    /// The bytes this item accounts for (its [`stored_size`]).
    #[inline]
    pub(crate) fn stored_size(&self) -> usize {
        stored_size(
            self.klen(),
            self.value_len(),
            self.flags(),
            self.cas_enabled,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn small_item_fits_budget() {
        // 14-byte key, 32-byte value, no flags, CAS on: 68 bytes, a 68-byte chunk.
        assert_eq!(stored_size(14, 32, 0, true), 68);
        assert_eq!(stored_size(14, 32, 7, false), 64);
        // 100-byte values: 136 bytes, exactly a class of the default table.
        assert_eq!(stored_size(14, 100, 0, true), 136);
    }

    #[test]
    fn memcached_size_matches_its_formula() {
        // 48 + 8 + 15 + 34 = 105, the figure memcached's 120-byte class holds.
        assert_eq!(memcached_stored_size(14, 32, 0, true), 105);
        assert_eq!(memcached_stored_size(14, 32, 1, true), 109);
    }

    #[test]
    fn access_time_widens_within_window() {
        assert_eq!(widen_access(100, 90), 90);
        assert_eq!(widen_access(70_000, 69_990u32 as u16), 69_990);
        assert_eq!(widen_access(65_540, 65_530u32 as u16), 65_530);
        assert_eq!(widen_access(5, 5), 5);
    }

    fn roundtrip(cas_enabled: bool, h: NewHeader, key: &[u8], value: &[u8]) {
        let ko = key_offset(cas_enabled, h.flags != 0);
        let total = ko + key.len() + value.len();
        let mut buf = vec![0u64; total.div_ceil(8).max(2)];
        let p = NonNull::new(buf.as_mut_ptr().cast::<u8>()).unwrap();
        // SAFETY: `buf` is 8-aligned, large enough and only used here.
        unsafe {
            write_header(p, cas_enabled, &h, key);
            std::ptr::copy_nonoverlapping(
                value.as_ptr(),
                p.as_ptr().add(ko + key.len()),
                value.len(),
            );
        }
        // SAFETY: the item was fully written above and nobody else touches `buf`.
        let it = unsafe { ItemRef::new(p, cas_enabled) };
        assert_eq!(it.exptime(), h.exptime);
        assert_eq!(it.klen(), key.len());
        assert_eq!(it.key(), key);
        assert_eq!(it.inline_value(), value);
        assert_eq!(it.flags(), h.flags);
        assert_eq!(it.cas(), if cas_enabled { h.cas } else { 0 });
        assert_eq!(it.access_low(), h.access as u16);
        assert_eq!(it.tag() >> 8, h.hash24);
        assert_eq!(it.bits() & LIVE, 0);
        assert_eq!(
            it.stored_size(),
            stored_size(key.len(), value.len(), h.flags, cas_enabled)
        );
        it.set_bits(LIVE | REF);
        assert_eq!(it.bits() & (LIVE | REF), LIVE | REF);
        assert_eq!(it.tag() >> 8, h.hash24);
        it.clear_bits(REF);
        assert_eq!(it.bits() & (LIVE | REF), LIVE);
    }

    #[test]
    fn encode_decode_examples() {
        let h = NewHeader {
            exptime: 7,
            vlen: 5,
            klen: 3,
            bits: 0,
            hash24: 0xabcdef,
            access: 1234,
            cas: 99,
            flags: 0,
        };
        roundtrip(true, h, b"foo", b"hello");
        roundtrip(
            false,
            NewHeader {
                flags: 0xdead_beef,
                ..h
            },
            b"foo",
            b"hello",
        );
    }

    proptest! {
        #[test]
        fn handles_round_trip(slot in 0usize..(1 << 18), chunk in 0usize..16384, coarse in any::<bool>()) {
            let shift = if coarse { HANDLE_SHIFT_COARSE } else { HANDLE_SHIFT_FINE };
            let off = (slot * (64 << 10) + (chunk << shift)) % handle_span(shift);
            let h = pack_handle(off, shift);
            prop_assert_eq!(unpack_handle(h, shift), off);
            // Distinct chunks get distinct handles.
            if off >= 1 << shift {
                prop_assert_eq!(pack_handle(off - (1 << shift), shift), h - 1);
            }
        }

        #[test]
        fn items_round_trip(
            cas_enabled in any::<bool>(),
            exptime in any::<u32>(),
            flags in any::<u32>(),
            cas in any::<u64>(),
            access in any::<u32>(),
            hash in any::<u64>(),
            key in prop::collection::vec(any::<u8>(), 1..=KEY_MAX),
            value in prop::collection::vec(any::<u8>(), 0..600),
        ) {
            let h = NewHeader {
                exptime,
                vlen: value.len() as u32,
                klen: key.len() as u8,
                bits: 0,
                hash24: tag_hash(hash),
                access,
                cas,
                flags,
            };
            roundtrip(cas_enabled, h, &key, &value);
        }
    }
}
