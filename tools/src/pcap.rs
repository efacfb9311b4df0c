//! Packet captures: classic pcap (µs and ns, either byte order) and pcapng; link types
//! Ethernet (with VLAN tags), Linux cooked (SLL, SLL2), BSD loopback (NULL, LOOP) and raw
//! IP; IPv4 and IPv6; TCP reassembled per direction by sequence number (out-of-order
//! segments are held, retransmitted bytes dropped, a gap that never fills is reported and
//! skipped). The reassembled streams go to [`crate::mcproto`].

use std::collections::BTreeMap;

use hashbrown::HashMap;

use crate::hist::Observed;
use crate::issues::Issues;
use crate::mcproto::{Event, Side, StreamParser};

/// Bytes of out-of-order data held per direction before a gap is declared.
pub const MAX_HELD: usize = 4 << 20;

/// A TCP segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment<'a> {
    /// Source address (IPv4 mapped into 16 bytes).
    pub src: [u8; 16],
    /// Destination address.
    pub dst: [u8; 16],
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Sequence number.
    pub seq: u32,
    /// SYN flag.
    pub syn: bool,
    /// Payload.
    pub payload: &'a [u8],
}

fn be16(b: &[u8], o: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(o..o + 2)?.try_into().ok()?))
}

fn rd32(b: &[u8], o: usize, le: bool) -> Option<u32> {
    let a: [u8; 4] = b.get(o..o + 4)?.try_into().ok()?;
    Some(if le {
        u32::from_le_bytes(a)
    } else {
        u32::from_be_bytes(a)
    })
}

fn rd16(b: &[u8], o: usize, le: bool) -> Option<u16> {
    let a: [u8; 2] = b.get(o..o + 2)?.try_into().ok()?;
    Some(if le {
        u16::from_le_bytes(a)
    } else {
        u16::from_be_bytes(a)
    })
}

/// Decodes a frame of `linktype` down to its TCP segment. `Ok(None)` for frames that are
/// not TCP over IP; `Err` for truncated or malformed ones.
pub fn decode(linktype: u32, frame: &[u8]) -> Result<Option<Segment<'_>>, &'static str> {
    let ip = match linktype {
        1 => {
            let mut off = 12;
            let mut et = be16(frame, off).ok_or("truncated Ethernet header")?;
            while et == 0x8100 || et == 0x88a8 {
                off += 4;
                et = be16(frame, off).ok_or("truncated VLAN tag")?;
            }
            if et != 0x0800 && et != 0x86dd {
                return Ok(None);
            }
            &frame[off + 2..]
        }
        113 => frame.get(16..).ok_or("truncated SLL header")?,
        276 => frame.get(20..).ok_or("truncated SLL2 header")?,
        0 | 108 => frame.get(4..).ok_or("truncated loopback header")?,
        12 | 14 | 101 | 228 | 229 => frame,
        _ => return Err("unsupported link type"),
    };
    let v = ip.first().ok_or("truncated IP header")? >> 4;
    let (src, dst, proto, l4) = match v {
        4 => {
            let ihl = usize::from(ip[0] & 0xf) * 4;
            if ihl < 20 || ip.len() < ihl {
                return Err("truncated IPv4 header");
            }
            let total = usize::from(be16(ip, 2).unwrap_or(0));
            if total < ihl || total > ip.len() {
                return Err("truncated IPv4 packet");
            }
            let frag = be16(ip, 6).unwrap_or(0);
            if frag & 0x3fff != 0 {
                return Err("IPv4 fragment (not reassembled)");
            }
            let mut s = [0u8; 16];
            let mut d = [0u8; 16];
            s[10..12].copy_from_slice(&[0xff, 0xff]);
            d[10..12].copy_from_slice(&[0xff, 0xff]);
            s[12..].copy_from_slice(&ip[12..16]);
            d[12..].copy_from_slice(&ip[16..20]);
            (s, d, ip[9], &ip[ihl..total])
        }
        6 => {
            if ip.len() < 40 {
                return Err("truncated IPv6 header");
            }
            let plen = usize::from(be16(ip, 4).unwrap_or(0));
            if 40 + plen > ip.len() {
                return Err("truncated IPv6 packet");
            }
            let mut nh = ip[6];
            let mut rest = &ip[40..40 + plen];
            loop {
                match nh {
                    0 | 43 | 60 => {
                        let len = usize::from(*rest.get(1).ok_or("truncated IPv6 option")?) * 8 + 8;
                        nh = rest[0];
                        rest = rest.get(len..).ok_or("truncated IPv6 option")?;
                    }
                    44 => return Err("IPv6 fragment (not reassembled)"),
                    _ => break,
                }
            }
            let s: [u8; 16] = ip[8..24].try_into().expect("16 bytes");
            let d: [u8; 16] = ip[24..40].try_into().expect("16 bytes");
            (s, d, nh, rest)
        }
        _ => return Err("not an IP packet"),
    };
    if proto != 6 {
        return Ok(None);
    }
    if l4.len() < 20 {
        return Err("truncated TCP header");
    }
    let doff = usize::from(l4[12] >> 4) * 4;
    if doff < 20 || doff > l4.len() {
        return Err("bad TCP data offset");
    }
    Ok(Some(Segment {
        src,
        dst,
        sport: be16(l4, 0).expect("checked"),
        dport: be16(l4, 2).expect("checked"),
        seq: rd32(l4, 4, false).expect("checked"),
        syn: l4[13] & 0x02 != 0,
        payload: &l4[doff..],
    }))
}

/// Calls `f(packet_number, linktype, frame)` for every packet of a classic pcap or pcapng
/// file. Problems with the file itself (truncation, unknown blocks) go to `issues`.
pub fn packets(
    data: &[u8],
    issues: &mut Issues,
    mut f: impl FnMut(u64, u32, &[u8]),
) -> Result<(), String> {
    let magic = rd32(data, 0, true).ok_or("file too short for a capture header")?;
    match magic {
        0xa1b2_c3d4 | 0xa1b2_3c4d | 0xd4c3_b2a1 | 0x4d3c_b2a1 => {
            let le = magic == 0xa1b2_c3d4 || magic == 0xa1b2_3c4d;
            let linktype = rd32(data, 20, le).ok_or("truncated pcap header")? & 0x0fff_ffff;
            let mut off = 24;
            let mut no = 0u64;
            while off < data.len() {
                no += 1;
                let Some(incl) = rd32(data, off + 8, le) else {
                    issues.add("packet", no, "capture truncated inside a record header");
                    break;
                };
                let start = off + 16;
                let end = start.saturating_add(incl as usize);
                if end > data.len() {
                    issues.add("packet", no, "capture truncated inside a packet");
                    break;
                }
                f(no, linktype, &data[start..end]);
                off = end;
            }
            Ok(())
        }
        0x0a0d_0d0a => {
            let mut off = 0;
            let mut le = true;
            let mut ifaces: Vec<u32> = Vec::new();
            let mut no = 0u64;
            while off < data.len() {
                let Some(bt) = rd32(data, off, le) else {
                    issues.add("packet", no + 1, "capture truncated inside a block header");
                    break;
                };
                if bt == 0x0a0d_0d0a {
                    let bom = rd32(data, off + 8, true).ok_or("truncated section header")?;
                    le = match bom {
                        0x1a2b_3c4d => true,
                        0x4d3c_2b1a => false,
                        _ => return Err("bad pcapng byte-order magic".into()),
                    };
                    ifaces.clear();
                }
                let Some(len) = rd32(data, off + 4, le).map(|l| l as usize) else {
                    issues.add("packet", no + 1, "capture truncated inside a block header");
                    break;
                };
                if len < 12 || off + len > data.len() {
                    issues.add("packet", no + 1, "capture truncated inside a block");
                    break;
                }
                let b = &data[off..off + len];
                match bt {
                    1 => ifaces.push(u32::from(rd16(b, 8, le).unwrap_or(0))),
                    6 => {
                        no += 1;
                        let ifc = rd32(b, 8, le).unwrap_or(0) as usize;
                        let cap = rd32(b, 20, le).unwrap_or(0) as usize;
                        match (ifaces.get(ifc), b.get(28..28 + cap)) {
                            (Some(&lt), Some(frame)) => f(no, lt, frame),
                            _ => issues.add("packet", no, "bad enhanced packet block"),
                        }
                    }
                    3 => {
                        no += 1;
                        let orig = rd32(b, 8, le).unwrap_or(0) as usize;
                        let cap = orig.min(len.saturating_sub(16));
                        match (ifaces.first(), b.get(12..12 + cap)) {
                            (Some(&lt), Some(frame)) => f(no, lt, frame),
                            _ => issues.add("packet", no, "bad simple packet block"),
                        }
                    }
                    _ => {}
                }
                off += len;
            }
            Ok(())
        }
        _ => Err("not a pcap or pcapng file".into()),
    }
}

#[derive(Debug)]
struct Flow {
    base: Option<u32>,
    next: u64,
    held: BTreeMap<u64, Vec<u8>>,
    held_bytes: usize,
    parser: StreamParser,
}

/// Reassembles TCP streams on one port and parses them.
#[derive(Debug)]
pub struct Reassembler {
    port: u16,
    flows: HashMap<([u8; 16], u16, [u8; 16], u16), Flow>,
    /// Segments whose bytes had all been seen (retransmissions).
    pub retransmitted: u64,
    /// Segments that arrived ahead of a hole and were held.
    pub out_of_order: u64,
    /// Problems.
    pub issues: Issues,
    /// Events, in stream order per direction.
    pub events: Vec<Event>,
}

impl Reassembler {
    /// A reassembler for memcached traffic on `port`.
    pub fn new(port: u16) -> Self {
        Reassembler {
            port,
            flows: HashMap::new(),
            retransmitted: 0,
            out_of_order: 0,
            issues: Issues::default(),
            events: Vec::new(),
        }
    }

    /// Takes one frame.
    pub fn frame(&mut self, no: u64, linktype: u32, frame: &[u8]) {
        let seg = match decode(linktype, frame) {
            Ok(Some(s)) => s,
            Ok(None) => return,
            Err(e) => return self.issues.add("packet", no, e),
        };
        let side = if seg.dport == self.port {
            Side::Client
        } else if seg.sport == self.port {
            Side::Server
        } else {
            return;
        };
        let fl = self
            .flows
            .entry((seg.src, seg.sport, seg.dst, seg.dport))
            .or_insert_with(|| Flow {
                base: None,
                next: 0,
                held: BTreeMap::new(),
                held_bytes: 0,
                parser: StreamParser::new(side),
            });
        if seg.syn {
            fl.base = Some(seg.seq.wrapping_add(1));
            fl.next = 0;
            fl.held.clear();
            fl.held_bytes = 0;
            fl.parser.reset();
            return;
        }
        if seg.payload.is_empty() {
            return;
        }
        let base = *fl.base.get_or_insert(seg.seq);
        // Offsets within 2 GiB behind the base are retransmissions of older data.
        let d = seg.seq.wrapping_sub(base) as i32;
        if d < 0 && (d as i64) + seg.payload.len() as i64 <= 0 {
            self.retransmitted += 1;
            return;
        }
        let rel = u64::from(seg.seq.wrapping_sub(base));
        let end = rel + seg.payload.len() as u64;
        if end <= fl.next {
            self.retransmitted += 1;
            return;
        }
        if rel > fl.next {
            self.out_of_order += 1;
            fl.held_bytes += seg.payload.len();
            let slot = fl.held.entry(rel).or_default();
            if slot.len() < seg.payload.len() {
                *slot = seg.payload.to_vec();
            }
            if fl.held_bytes > MAX_HELD {
                Self::skip_gap(fl, no, &mut self.issues, &mut self.events);
            }
            return;
        }
        let skip = (fl.next - rel) as usize;
        fl.parser
            .feed(&seg.payload[skip..], no, &mut self.issues, &mut self.events);
        fl.next = end;
        Self::drain(fl, no, &mut self.issues, &mut self.events);
    }

    fn drain(fl: &mut Flow, no: u64, issues: &mut Issues, events: &mut Vec<Event>) {
        while let Some((&rel, _)) = fl.held.first_key_value() {
            if rel > fl.next {
                break;
            }
            let data = fl.held.pop_first().expect("present").1;
            fl.held_bytes -= data.len();
            let end = rel + data.len() as u64;
            if end > fl.next {
                fl.parser
                    .feed(&data[(fl.next - rel) as usize..], no, issues, events);
                fl.next = end;
            }
        }
    }

    fn skip_gap(fl: &mut Flow, no: u64, issues: &mut Issues, events: &mut Vec<Event>) {
        if let Some((&rel, _)) = fl.held.first_key_value() {
            issues.add(
                "packet",
                no,
                format_args!("{} bytes missing from a TCP stream", rel - fl.next),
            );
            fl.parser.reset();
            fl.next = rel;
            Self::drain(fl, no, issues, events);
        }
    }

    /// Ends the capture: streams still waiting for missing bytes skip the gap.
    pub fn finish(&mut self, no: u64) {
        for fl in self.flows.values_mut() {
            while !fl.held.is_empty() {
                Self::skip_gap(fl, no, &mut self.issues, &mut self.events);
            }
        }
    }
}

/// Reads a whole capture: the events of port `port`, and the reassembler's counters.
pub fn read_capture(data: &[u8], port: u16) -> Result<Reassembler, String> {
    let mut r = Reassembler::new(port);
    let mut issues = Issues::default();
    let mut last = 0;
    packets(data, &mut issues, |no, lt, frame| {
        last = no;
        r.frame(no, lt, frame);
    })?;
    r.finish(last);
    r.issues.count += issues.count;
    r.issues.examples.extend(issues.examples);
    Ok(r)
}

/// Items from protocol events: the latest size per key (an `append`/`prepend` adds to
/// it; a `delete` removes it), or every write and `VALUE` with `per_request`.
pub fn observe(events: &[Event], per_request: bool) -> Observed {
    let mut o = Observed::default();
    let mut latest: HashMap<&[u8], (u32, u32, bool)> = HashMap::new();
    for e in events {
        match e {
            Event::Item {
                key,
                value_len,
                flags_nonzero,
                concat,
            } => {
                if per_request {
                    o.add(key.len() as u32, *value_len, *flags_nonzero, 1);
                    continue;
                }
                let k = key.len() as u32;
                let ent = latest
                    .entry(key.as_slice())
                    .or_insert((k, 0, *flags_nonzero));
                if *concat {
                    ent.1 = ent.1.saturating_add(*value_len);
                } else {
                    *ent = (k, *value_len, *flags_nonzero);
                }
            }
            Event::Delete { key } => {
                if !per_request {
                    latest.remove(key.as_slice());
                }
            }
        }
    }
    for (_, (k, v, f)) in latest {
        o.add(k, v, f, 1);
    }
    o
}

/// Writing captures (for tests and examples): a classic little-endian pcap with Ethernet
/// frames carrying IPv4 or IPv6 TCP segments.
pub mod write {
    /// The 24-byte file header (`linktype` 1 = Ethernet).
    pub fn header(linktype: u32) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        v.extend_from_slice(&2u16.to_le_bytes());
        v.extend_from_slice(&4u16.to_le_bytes());
        v.extend_from_slice(&[0; 8]);
        v.extend_from_slice(&65535u32.to_le_bytes());
        v.extend_from_slice(&linktype.to_le_bytes());
        v
    }

    /// Appends one packet record.
    pub fn record(out: &mut Vec<u8>, frame: &[u8]) {
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        out.extend_from_slice(frame);
    }

    /// An Ethernet frame with a TCP segment; IPv6 when `v6`.
    pub fn tcp_frame(
        v6: bool,
        sport: u16,
        dport: u16,
        seq: u32,
        syn: bool,
        payload: &[u8],
    ) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        let mut tcp = Vec::new();
        tcp.extend_from_slice(&sport.to_be_bytes());
        tcp.extend_from_slice(&dport.to_be_bytes());
        tcp.extend_from_slice(&seq.to_be_bytes());
        tcp.extend_from_slice(&0u32.to_be_bytes());
        tcp.push(5 << 4);
        tcp.push(if syn { 0x02 } else { 0x18 });
        tcp.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 0]);
        tcp.extend_from_slice(payload);
        if v6 {
            f.extend_from_slice(&0x86ddu16.to_be_bytes());
            f.extend_from_slice(&[0x60, 0, 0, 0]);
            f.extend_from_slice(&(tcp.len() as u16).to_be_bytes());
            f.extend_from_slice(&[6, 64]);
            let mut lo = [0u8; 16];
            lo[15] = 1;
            f.extend_from_slice(&lo);
            f.extend_from_slice(&lo);
        } else {
            f.extend_from_slice(&0x0800u16.to_be_bytes());
            f.extend_from_slice(&[0x45, 0]);
            f.extend_from_slice(&((20 + tcp.len()) as u16).to_be_bytes());
            f.extend_from_slice(&[0, 0, 0x40, 0, 64, 6, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1]);
        }
        f.extend_from_slice(&tcp);
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(r: &Reassembler) -> Vec<(Vec<u8>, u32)> {
        r.events
            .iter()
            .filter_map(|e| match e {
                Event::Item { key, value_len, .. } => Some((key.clone(), *value_len)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn reassembles_out_of_order_and_retransmitted_segments() {
        let stream: &[u8] =
            b"set a 0 0 3\r\nabc\r\nset bb 1 0 10\r\n0123456789\r\nset ccc 0 0 1\r\nx\r\n";
        for v6 in [false, true] {
            let mut cap = write::header(1);
            let isn = 0xffff_fff0u32; // wraps during the stream
            write::record(&mut cap, &write::tcp_frame(v6, 5000, 11211, isn, true, b""));
            let cuts = [0, 7, 20, 33, 40, stream.len()];
            let segs: Vec<(u32, &[u8])> = cuts
                .windows(2)
                .map(|w| (isn.wrapping_add(1 + w[0] as u32), &stream[w[0]..w[1]]))
                .collect();
            // Order: 0, 2, 1 (hole filled late), 1 again (retransmit), 4, 3.
            for i in [0, 2, 1, 1, 4, 3] {
                write::record(
                    &mut cap,
                    &write::tcp_frame(v6, 5000, 11211, segs[i].0, false, segs[i].1),
                );
            }
            let r = read_capture(&cap, 11211).unwrap();
            assert!(r.issues.is_empty(), "{:?}", r.issues);
            assert_eq!(r.retransmitted, 1);
            assert_eq!(r.out_of_order, 2);
            assert_eq!(
                items(&r),
                vec![
                    (b"a".to_vec(), 3),
                    (b"bb".to_vec(), 10),
                    (b"ccc".to_vec(), 1)
                ]
            );
        }
    }

    #[test]
    fn link_types() {
        let eth = write::tcp_frame(true, 40000, 11211, 7, false, b"x");
        let ip = &eth[14..];
        let mut sll = vec![0u8; 14];
        sll.extend_from_slice(&0x86ddu16.to_be_bytes());
        sll.extend_from_slice(ip);
        let mut null = 30u32.to_le_bytes().to_vec();
        null.extend_from_slice(ip);
        let mut vlan = eth[..12].to_vec();
        vlan.extend_from_slice(&[0x81, 0x00, 0, 5]);
        vlan.extend_from_slice(&eth[12..]);
        for (lt, f) in [
            (1, &eth),
            (1, &vlan),
            (113, &sll),
            (0, &null),
            (101, &ip.to_vec()),
        ] {
            let seg = decode(lt, f).unwrap().unwrap();
            assert_eq!(
                (seg.sport, seg.dport, seg.seq, seg.payload),
                (40000, 11211, 7, &b"x"[..])
            );
        }
        assert_eq!(decode(147, &eth), Err("unsupported link type"));
        assert_eq!(decode(1, &eth[..30]), Err("truncated IPv6 header"));
    }

    proptest::proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..400), lt in 0u32..300) {
            let _ = decode(lt, &bytes);
            let mut cap = write::header(lt);
            write::record(&mut cap, &bytes);
            let _ = read_capture(&cap, 11211);
            let mut p = StreamParser::new(Side::Client);
            let (mut is, mut out) = (Issues::default(), Vec::new());
            p.feed(&bytes, 1, &mut is, &mut out);
        }
    }

    #[test]
    fn pcapng_big_endian_with_sll2() {
        // One section (big endian), one SLL2 interface, one enhanced packet block.
        let eth = write::tcp_frame(false, 40000, 11211, 7, false, b"set k 0 0 2\r\nab\r\n");
        let mut sll2 = vec![
            0x08, 0x00, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        sll2.extend_from_slice(&eth[14..]);
        let mut f = Vec::new();
        let block = |f: &mut Vec<u8>, t: u32, body: &[u8]| {
            let pad = (4 - body.len() % 4) % 4;
            let len = (12 + body.len() + pad) as u32;
            f.extend_from_slice(&t.to_be_bytes());
            f.extend_from_slice(&len.to_be_bytes());
            f.extend_from_slice(body);
            f.resize(f.len() + pad, 0);
            f.extend_from_slice(&len.to_be_bytes());
        };
        let mut shb = 0x1a2b_3c4du32.to_be_bytes().to_vec();
        shb.extend_from_slice(&[0, 1, 0, 0]);
        shb.extend_from_slice(&u64::MAX.to_be_bytes());
        block(&mut f, 0x0a0d_0d0a, &shb);
        let mut idb = 276u16.to_be_bytes().to_vec();
        idb.extend_from_slice(&[0, 0, 0, 0, 0xff, 0xff]);
        block(&mut f, 1, &idb);
        let mut epb = vec![0u8; 12];
        epb.extend_from_slice(&(sll2.len() as u32).to_be_bytes());
        epb.extend_from_slice(&(sll2.len() as u32).to_be_bytes());
        epb.extend_from_slice(&sll2);
        block(&mut f, 6, &epb);
        let r = read_capture(&f, 11211).unwrap();
        assert!(r.issues.is_empty(), "{:?}", r.issues);
        assert_eq!(items(&r), vec![(b"k".to_vec(), 2)]);
    }

    #[test]
    fn truncated_capture_and_gap_are_reported() {
        let mut cap = write::header(1);
        write::record(
            &mut cap,
            &write::tcp_frame(false, 5000, 11211, 100, false, b"set a 0 0 1\r\nx\r\n"),
        );
        // A segment after a 10-byte hole that never fills.
        write::record(
            &mut cap,
            &write::tcp_frame(false, 5000, 11211, 126, false, b"set b 0 0 2\r\nxy\r\n"),
        );
        let full = cap.clone();
        write::record(
            &mut cap,
            &write::tcp_frame(false, 5000, 11211, 200, false, b"set c 0 0 1\r\nz\r\n"),
        );
        cap.truncate(cap.len() - 5);
        let r = read_capture(&cap, 11211).unwrap();
        assert_eq!(items(&r), vec![(b"a".to_vec(), 1), (b"b".to_vec(), 2)]);
        assert_eq!(r.issues.count, 2, "{:?}", r.issues);
        assert!(r
            .issues
            .examples
            .iter()
            .any(|e| e == "packet 3: capture truncated inside a packet"));
        assert!(r
            .issues
            .examples
            .iter()
            .any(|e| e.contains("10 bytes missing")));
        // Every prefix of a capture is handled without panicking.
        for n in 0..full.len() {
            let _ = read_capture(&full[..n], 11211);
        }
        assert!(read_capture(b"hello world, not a capture", 11211).is_err());
    }
}
