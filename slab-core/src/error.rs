//! The crate's error type.

use std::fmt;
use std::io;

/// Everything that can go wrong in the engine layer.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The hard memory limit is reached: no empty slab is pooled and mapping another one would
    /// exceed `limit` bytes. Callers such as a cache evict and retry.
    LimitReached {
        /// The configured limit in bytes.
        limit: usize,
    },
    /// The reserved address space has no slot left to map a slab into (only possible when the
    /// reservation is smaller than the memory limit, or unlimited engines outgrow it).
    AddressSpaceExhausted {
        /// Bytes of address space reserved.
        reserved: usize,
    },
    /// A size-class table was rejected; the message says what is wrong.
    InvalidClasses(String),
    /// An engine configuration was rejected; the message says what is wrong.
    InvalidConfig(String),
    /// A system call failed.
    Os(io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::LimitReached { limit } => write!(f, "memory limit of {limit} bytes reached"),
            Error::AddressSpaceExhausted { reserved } => {
                write!(f, "reserved address space of {reserved} bytes exhausted")
            }
            Error::InvalidClasses(msg) => write!(f, "invalid size classes: {msg}"),
            Error::InvalidConfig(msg) => write!(f, "invalid configuration: {msg}"),
            Error::Os(e) => write!(f, "system call failed: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Os(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Os(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_says_what_is_wrong() {
        let e = Error::LimitReached { limit: 64 };
        assert_eq!(e.to_string(), "memory limit of 64 bytes reached");
        let e = Error::InvalidClasses("factor must be > 1".into());
        assert!(e.to_string().contains("factor must be > 1"));
        let e: Error = io::Error::from_raw_os_error(libc::ENOMEM).into();
        assert!(std::error::Error::source(&e).is_some());
    }
}
