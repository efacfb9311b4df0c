//! Feeds arbitrary datagrams to the UDP frame parser and arbitrary replies to the
//! multi-get response splitter, and checks the framing invariants: a request is taken
//! only with its 8-byte header and a count of 1; the datagrams of a response carry its
//! bytes in order, each at most 1400 bytes, numbered 0.. with the count in every header;
//! the responses of a multi-get cover the reply in order, one per key.
#![no_main]

use kvcache_server::protocol::udp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some((rid, payload)) = udp::parse_request(data) {
        assert!(data.len() > udp::HEADER);
        assert_eq!(rid, u16::from_be_bytes([data[0], data[1]]));
        assert_eq!(&data[4..6], &[0, 1]);
        assert_eq!(payload, &data[udp::HEADER..]);
    } else {
        assert!(data.len() <= udp::HEADER || data[4..6] != [0, 1]);
    }
    // The same bytes as a response: split and reassemble.
    let mut seen = Vec::new();
    let mut seqs = Vec::new();
    let total = udp::datagram_count(data.len());
    udp::for_each_datagram(7, data, &mut Vec::new(), |d| {
        assert!(d.len() <= udp::MAX_DATAGRAM && d.len() >= udp::HEADER);
        assert_eq!(&d[..2], &7u16.to_be_bytes());
        assert_eq!(&d[4..6], &total.to_be_bytes());
        seqs.push(u16::from_be_bytes([d[2], d[3]]));
        seen.extend_from_slice(&d[udp::HEADER..]);
    });
    assert_eq!(seen, data);
    let expect: Vec<u16> = (0..u16::try_from(seqs.len()).unwrap()).collect();
    assert_eq!(seqs, expect);
    assert_eq!(usize::from(total.max(1)), seqs.len());
    // Split at the first newline: a get line and its reply.
    if let Some(nl) = data.iter().position(|&b| b == b'\n') {
        let (line, reply) = data.split_at(nl + 1);
        if let Some(segs) = udp::get_segments(line, reply) {
            assert!(segs.len() >= 2);
            let mut pos = 0;
            for &(a, b) in &segs {
                assert_eq!(a, pos);
                assert!(b >= a);
                pos = b;
            }
            assert_eq!(pos, reply.len());
            assert!(reply.ends_with(b"END\r\n"));
        }
    }
});
