//! The fixed replies of the text protocol, `\r\n` included.

/// `ERROR`
pub const ERROR: &[u8] = b"ERROR\r\n";
/// `STORED`
pub const STORED: &[u8] = b"STORED\r\n";
/// `NOT_STORED`
pub const NOT_STORED: &[u8] = b"NOT_STORED\r\n";
/// `EXISTS`
pub const EXISTS: &[u8] = b"EXISTS\r\n";
/// `NOT_FOUND`
pub const NOT_FOUND: &[u8] = b"NOT_FOUND\r\n";
/// `DELETED`
pub const DELETED: &[u8] = b"DELETED\r\n";
/// `TOUCHED`
pub const TOUCHED: &[u8] = b"TOUCHED\r\n";
/// `OK`
pub const OK: &[u8] = b"OK\r\n";
/// `END`
pub const END: &[u8] = b"END\r\n";
/// `RESET`
pub const RESET: &[u8] = b"RESET\r\n";
/// The reply to `version`.
pub const VERSION: &[u8] = b"VERSION 1.6.18-kvcache\r\n";
/// A malformed command line.
pub const BAD_FORMAT: &[u8] = b"CLIENT_ERROR bad command line format\r\n";
/// A malformed `delete` line.
pub const BAD_DELETE: &[u8] =
    b"CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n";
/// A data block not followed by `\r\n`.
pub const BAD_CHUNK: &[u8] = b"CLIENT_ERROR bad data chunk\r\n";
/// A bad exptime in `touch`, `gat`, `flush_all`.
pub const BAD_EXPTIME: &[u8] = b"CLIENT_ERROR invalid exptime argument\r\n";
/// A bad delta in `incr`/`decr`.
pub const BAD_DELTA: &[u8] = b"CLIENT_ERROR invalid numeric delta argument\r\n";
/// `incr`/`decr` of a value that is not a number.
pub const NON_NUMERIC: &[u8] = b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n";
/// A value over the item size limit.
pub const TOO_LARGE: &[u8] = b"SERVER_ERROR object too large for cache\r\n";
/// No memory for a value, nothing evictable.
pub const NO_MEMORY: &[u8] = b"SERVER_ERROR out of memory storing object\r\n";
/// `incr`/`decr` without memory for the new value.
pub const ARITH_NO_MEMORY: &[u8] = b"SERVER_ERROR out of memory\r\n";
/// Sent (then the connection closed) over the `-c` limit.
pub const TOO_MANY_CONNS: &[u8] = b"ERROR Too many open connections\r\n";
/// `shutdown` without `-A`.
pub const SHUTDOWN_DISABLED: &[u8] = b"ERROR: shutdown not enabled\r\n";
/// `shutdown <anything but graceful>` with `-A`.
pub const SHUTDOWN_INVALID: &[u8] = b"CLIENT_ERROR invalid shutdown mode\r\n";
/// `stats detail` without an argument we support.
pub const STATS_DETAIL: &[u8] = b"CLIENT_ERROR usage: stats detail on|off|dump\r\n";
