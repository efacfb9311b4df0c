//! The key of a meta request, and memcached's base64 for `b` keys.

use base64::Engine as _;

/// The key of a request: borrowed from the buffer, or decoded from base64 (`b`).
#[derive(Clone, Copy)]
pub struct Key<'a> {
    raw: &'a [u8],
    decoded: [u8; 192],
    decoded_len: u8,
    base64: bool,
}

impl std::fmt::Debug for Key<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("bytes", &String::from_utf8_lossy(self.bytes()))
            .field("base64", &self.base64)
            .finish()
    }
}

impl PartialEq for Key<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.bytes() == other.bytes() && self.base64 == other.base64
    }
}

impl Eq for Key<'_> {}

impl<'a> Key<'a> {
    pub(super) fn plain(raw: &'a [u8]) -> Self {
        Key {
            raw,
            decoded: [0; 192],
            decoded_len: 0,
            base64: false,
        }
    }

    /// This key with its wire bytes (`raw`) elsewhere.
    pub(super) fn with_raw<'b>(&self, raw: &'b [u8]) -> Key<'b> {
        Key {
            raw,
            decoded: self.decoded,
            decoded_len: self.decoded_len,
            base64: self.base64,
        }
    }

    /// The key as stored (decoded when the request had `b`).
    pub fn bytes(&self) -> &[u8] {
        if self.base64 {
            &self.decoded[..usize::from(self.decoded_len)]
        } else {
            self.raw
        }
    }

    /// The key as the client sent it (base64 text under `b`).
    pub fn wire(&self) -> &'a [u8] {
        self.raw
    }

    /// The request had `b`: keys are echoed in base64 followed by a ` b` flag.
    pub fn is_base64(&self) -> bool {
        self.base64
    }

    pub(super) fn decode(&mut self) -> bool {
        // Base64 of a 250-byte key decodes to at most 187 bytes.
        match base64_decode(self.raw, &mut self.decoded) {
            Some(n) if n > 0 => {
                self.decoded_len = n as u8;
                self.base64 = true;
                true
            }
            _ => false,
        }
    }
}

/// memcached's base64 decoder (RFC 1341 style): bytes outside the alphabet are skipped,
/// the remaining characters must be a nonzero multiple of 4, and decoding stops after
/// the first block with padding. Returns the decoded length, `None` on failure.
fn base64_decode(src: &[u8], out: &mut [u8]) -> Option<usize> {
    fn value(c: u8) -> Option<u8> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => 0,
            _ => return None,
        })
    }
    let count = src.iter().filter(|&&c| value(c).is_some()).count();
    if count == 0 || count % 4 != 0 || count / 4 * 3 > out.len() {
        return None;
    }
    let mut pos = 0;
    let mut block = [0u8; 4];
    let mut n = 0;
    let mut pad = 0;
    for &c in src {
        let Some(v) = value(c) else { continue };
        if c == b'=' {
            pad += 1;
        }
        block[n] = v;
        n += 1;
        if n == 4 {
            out[pos] = (block[0] << 2) | (block[1] >> 4);
            out[pos + 1] = (block[1] << 4) | (block[2] >> 2);
            out[pos + 2] = (block[2] << 6) | block[3];
            pos += 3;
            n = 0;
            if pad > 0 {
                match pad {
                    1 => pos -= 1,
                    2 => pos -= 2,
                    _ => return None,
                }
                break;
            }
        }
    }
    Some(pos)
}

pub(super) fn base64_encode(out: &mut Vec<u8>, bytes: &[u8]) {
    let start = out.len();
    out.resize(start + bytes.len().div_ceil(3) * 4, 0);
    let n = base64::engine::general_purpose::STANDARD
        .encode_slice(bytes, &mut out[start..])
        .unwrap_or(0);
    out.truncate(start + n);
}
