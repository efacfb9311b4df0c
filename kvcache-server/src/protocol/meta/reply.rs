//! Error and fixed lines of the meta protocol, `\r\n` included.

/// `ERROR`
pub const ERROR: &[u8] = b"ERROR\r\n";
/// Generic syntax error.
pub const BAD_FORMAT: &[u8] = b"CLIENT_ERROR bad command line format\r\n";
/// Too many tokens on an `mg` line.
pub const MG_TOO_LONG: &[u8] = b"CLIENT_ERROR options flags are too long\r\n";
/// Too many tokens on an `ms`/`md`/`ma` line.
pub const TOO_LONG: &[u8] = b"CLIENT_ERROR options flags too long\r\n";
/// A flag given twice.
pub const DUPLICATE: &[u8] = b"CLIENT_ERROR duplicate flag\r\n";
/// An unknown flag.
pub const INVALID_FLAG: &[u8] = b"CLIENT_ERROR invalid flag\r\n";
/// Any flag error of `md`/`ma`.
pub const INVALID_OR_DUPLICATE: &[u8] = b"CLIENT_ERROR invalid or duplicate flag\r\n";
/// A bad numeric token.
pub const BAD_TOKEN: &[u8] = b"CLIENT_ERROR bad token in command line format\r\n";
/// An `M` token not exactly one character long.
pub const M_LENGTH: &[u8] = b"CLIENT_ERROR incorrect length for M token\r\n";
/// A bad `J` token.
pub const BAD_INITIAL: &[u8] = b"CLIENT_ERROR invalid numeric initial value\r\n";
/// A bad `D` token.
pub const BAD_DELTA: &[u8] = b"CLIENT_ERROR invalid numeric delta value\r\n";
/// A key that is not valid base64 under `b`.
pub const BAD_KEY_ENCODING: &[u8] = b"CLIENT_ERROR error decoding key\r\n";
/// An `O` token over [`super::MAX_OPAQUE`] bytes.
pub const OPAQUE_TOO_LONG: &[u8] = b"CLIENT_ERROR opaque token too long\r\n";
/// A bad `ms` mode.
pub const MS_MODE: &[u8] = b"CLIENT_ERROR invalid mode for ms M token\r\n";
/// A bad `ma` mode.
pub const MA_MODE: &[u8] = b"CLIENT_ERROR invalid mode for ma M token\r\n";
/// A data block not ending in `\r\n`.
pub const BAD_CHUNK: &[u8] = b"CLIENT_ERROR bad data chunk\r\n";
/// A value over the item size limit.
pub const TOO_LARGE: &[u8] = b"SERVER_ERROR object too large for cache\r\n";
/// No memory for a value.
pub const NO_MEMORY: &[u8] = b"SERVER_ERROR out of memory storing object\r\n";
/// `ma` on a value that is not a number.
pub const NON_NUMERIC: &[u8] = b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n";
/// `ma` could not allocate.
pub const ARITH_NO_MEMORY: &[u8] = b"SERVER_ERROR out of memory\r\n";
/// `mn`.
pub const MN: &[u8] = b"MN\r\n";
/// A miss.
pub const EN: &[u8] = b"EN\r\n";
