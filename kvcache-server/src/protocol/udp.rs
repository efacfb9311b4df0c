//! memcached's UDP framing: an 8-byte header before each datagram's payload (request
//! id, sequence number, datagram count, reserved; big-endian u16 each).
//!
//! A request is one datagram whose count is 1; anything shorter than the header plus one
//! byte, or announcing more datagrams, is dropped, as memcached drops it. Each response
//! is sent as datagrams of at most [`MAX_DATAGRAM`] bytes, numbered from 0 with the
//! count of that response's datagrams; memcached 1.6 makes every key of a multi-key
//! `get` a response of its own (an empty one for a miss, `END` joined to the last key),
//! which [`get_segments`] reproduces.

/// The header's size.
pub const HEADER: usize = 8;

/// The largest datagram memcached sends (`UDP_MAX_PAYLOAD_SIZE`), header included.
pub const MAX_DATAGRAM: usize = 1400;

/// Payload bytes per datagram (`UDP_DATA_SIZE`).
pub const DATA_PER_DATAGRAM: usize = MAX_DATAGRAM - HEADER;

/// The request id of a valid request datagram and its payload; `None` to drop it.
pub fn parse_request(dgram: &[u8]) -> Option<(u16, &[u8])> {
    if dgram.len() <= HEADER {
        return None;
    }
    if dgram[4] != 0 || dgram[5] != 1 {
        // Part of a request spanning datagrams: memcached does not reassemble them.
        return None;
    }
    Some((u16::from_be_bytes([dgram[0], dgram[1]]), &dgram[HEADER..]))
}

/// How many datagrams a response of `len` bytes takes (0 for an empty response, which
/// goes out as a header alone); at most `u16::MAX`, as memcached caps it.
pub fn datagram_count(len: usize) -> u16 {
    len.div_ceil(DATA_PER_DATAGRAM).min(usize::from(u16::MAX)) as u16
}

/// Calls `send` with each datagram of one response (header and payload), reusing
/// `scratch`. An empty response is one header-only datagram with a count of 0.
pub fn for_each_datagram(
    request_id: u16,
    response: &[u8],
    scratch: &mut Vec<u8>,
    mut send: impl FnMut(&[u8]),
) {
    let total = datagram_count(response.len());
    let mut chunks = response.chunks(DATA_PER_DATAGRAM);
    let mut seq: u16 = 0;
    loop {
        let chunk = chunks.next();
        if chunk.is_none() && seq > 0 {
            break;
        }
        scratch.clear();
        scratch.extend_from_slice(&request_id.to_be_bytes());
        scratch.extend_from_slice(&seq.to_be_bytes());
        scratch.extend_from_slice(&total.to_be_bytes());
        scratch.extend_from_slice(&[0, 0]);
        scratch.extend_from_slice(chunk.unwrap_or(&[]));
        send(scratch);
        if seq == u16::MAX - 1 || chunk.is_none() {
            break;
        }
        seq += 1;
    }
}

/// For the reply to a text `get`/`gets`/`gat`/`gats` line, the byte ranges of the
/// responses memcached would send: one per key (a hit's `VALUE` block, or empty for a
/// miss), `END` joined to the last. `None` when `line` is not such a command or the
/// reply is not a well-formed list of values (the reply then goes as one response).
pub fn get_segments(line: &[u8], reply: &[u8]) -> Option<Vec<(usize, usize)>> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut tokens = line.split(|&b| b == b' ').filter(|t| !t.is_empty());
    let cmd = tokens.next()?;
    let keys: Vec<&[u8]> = match cmd {
        b"get" | b"gets" => tokens.collect(),
        b"gat" | b"gats" => tokens.skip(1).collect(),
        _ => return None,
    };
    if keys.len() < 2 || !reply.ends_with(b"END\r\n") {
        return None;
    }
    let mut segs = Vec::with_capacity(keys.len());
    let mut pos = 0;
    let body_end = reply.len() - 5;
    for key in &keys {
        let start = pos;
        if let Some(end) = value_block(reply, pos, key) {
            pos = end;
        }
        segs.push((start, pos));
    }
    if pos != body_end {
        return None;
    }
    if let Some(last) = segs.last_mut() {
        last.1 = reply.len();
    }
    Some(segs)
}

/// The end of the `VALUE <key> <flags> <bytes> [<cas>]\r\n<data>\r\n` block at `pos`, if
/// one for `key` starts there.
fn value_block(reply: &[u8], pos: usize, key: &[u8]) -> Option<usize> {
    let rest = reply.get(pos..)?;
    let head = rest.strip_prefix(b"VALUE ")?.strip_prefix(key)?;
    if head.first() != Some(&b' ') {
        return None;
    }
    let eol = memchr::memchr(b'\n', head)?;
    let fields = head[1..eol].strip_suffix(b"\r")?;
    let bytes: usize = std::str::from_utf8(fields.split(|&b| b == b' ').nth(1)?)
        .ok()?
        .parse()
        .ok()?;
    let data_start = pos + 6 + key.len() + eol + 1;
    let end = data_start.checked_add(bytes)?.checked_add(2)?;
    (reply.get(end - 2..end)? == b"\r\n").then_some(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_frames() {
        assert_eq!(
            parse_request(b"\x00\x07\x00\x00\x00\x01\x00\x00get a\r\n"),
            Some((7, &b"get a\r\n"[..]))
        );
        assert_eq!(parse_request(b"\x00\x07\x00\x00\x00\x01\x00\x00"), None);
        assert_eq!(parse_request(b"\x00\x07\x00\x00\x00\x02\x00\x00get"), None);
        assert_eq!(parse_request(b"\x00\x07"), None);
    }

    #[test]
    fn responses_split_at_1392_bytes() {
        let mut got = Vec::new();
        let body = vec![b'x'; 3025];
        for_each_datagram(7, &body, &mut Vec::new(), |d| got.push(d.to_vec()));
        let lens: Vec<usize> = got.iter().map(Vec::len).collect();
        assert_eq!(lens, [1400, 1400, 249]);
        assert_eq!(&got[2][..8], b"\x00\x07\x00\x02\x00\x03\x00\x00");
        got.clear();
        for_each_datagram(1, b"", &mut Vec::new(), |d| got.push(d.to_vec()));
        assert_eq!(got, [b"\x00\x01\x00\x00\x00\x00\x00\x00".to_vec()]);
    }

    #[test]
    fn multi_get_segments() {
        let reply = b"VALUE a 0 5\r\nhello\r\nEND\r\n";
        assert_eq!(
            get_segments(b"get zz a yy\r\n", reply),
            Some(vec![(0, 0), (0, 20), (20, 25)])
        );
        assert_eq!(get_segments(b"get a\r\n", reply), None);
        let two = b"VALUE a 0 1 9\r\nx\r\nVALUE a 0 1 9\r\nx\r\nEND\r\n";
        assert_eq!(
            get_segments(b"gats 0 a a\r\n", two),
            Some(vec![(0, 18), (18, 41)])
        );
        assert_eq!(get_segments(b"get a b\r\n", b"ERROR\r\n"), None);
    }
}
