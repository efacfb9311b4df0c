//! The layout of one item inside a slab chunk.
//!
//! ```text
//! +-----------+----------+---------------+---------+-----------+
//! | cas (8)   | header   | client flags  | key     | value     |
//! | if CAS on | (12)     | (4, if != 0)  | (1-250) | (0..=-I)  |
//! +-----------+----------+---------------+---------+-----------+
//! ```
//!
//! Nothing else is stored: no terminator after the key, no `\r\n` after the value, no
//! list links (eviction is CLOCK, one bit in the header). memcached spends 48 bytes of
//! header plus 8 of CAS plus 3 of terminators on the same item.

/// Bytes of the fixed header: exptime (4), value length (4), key length (1), bits (1),
/// reserved (2).
pub const HEADER_LEN: usize = 12;

/// Bytes of the CAS field, present when CAS is enabled (memcached's default; `-C` turns
/// it off).
pub const CAS_LEN: usize = 8;

/// Bytes of the client-flags field, present only when the flags are nonzero.
pub const FLAGS_LEN: usize = 4;

/// The number of bytes an item occupies in its chunk: the chunk it needs is the smallest
/// size class at least this large.
pub fn stored_size(key_len: usize, value_len: usize, client_flags: u32, cas_enabled: bool) -> usize {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_item_fits_budget() {
        // 14-byte key, 32-byte value, no flags, CAS on: 66 bytes, a 72-byte chunk.
        assert_eq!(stored_size(14, 32, 0, true), 66);
        assert_eq!(stored_size(14, 32, 7, false), 62);
    }

    #[test]
    fn memcached_size_matches_its_formula() {
        // 48 + 8 + 15 + 34 = 105, the figure memcached's 120-byte class holds.
        assert_eq!(memcached_stored_size(14, 32, 0, true), 105);
        assert_eq!(memcached_stored_size(14, 32, 1, true), 109);
    }
}
