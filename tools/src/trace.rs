//! Twitter cache-trace reader: CSV rows
//! `timestamp,key,key_size,value_size,client_id,operation,ttl`, plain or zstd-compressed.
//!
//! Only writes (`set`, `add`, `replace`, `cas`, `append`, `prepend`) define stored sizes.
//! By default the latest write per key counts (a `delete` removes the key); with
//! `--per-request` every write counts once. Reads (`get`, `gets`) and `incr`/`decr` are
//! parsed and skipped. An `append`/`prepend` row counts at its `value_size`, like a
//! `set` (the trace does not say whether that is the appended part or the result; from
//! a capture, [`crate::pcap::observe`] adds the appended length to the known size).
//!
//! The reader works on 1 MiB blocks: lines are found with `memchr`, fields are split from
//! both ends (so a key may itself contain commas), numbers are parsed in place, and
//! nothing is allocated per line. Keys are identified by a 64-bit hash of their bytes
//! (foldhash, seeded per reader): the [`KeyTable`] then holds 16 bytes per key, a lookup
//! touches one cache line, and lookups are batched so their cache misses overlap. Two of `n` distinct keys collide with probability about
//! `n^2 / 2^65` (3e-8 for a million keys), which would merge their sizes.

use std::fs::File;
use std::hash::BuildHasher;
use std::io::{self, Read};
use std::path::Path;

use hashbrown::HashMap;

use crate::hist::Observed;
use crate::issues::Issues;

/// Errors of the trace reader.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// Reading failed.
    #[error("reading the trace: {0}")]
    Io(#[from] io::Error),
    /// `--strict` and a bad line.
    #[error("{0}")]
    Strict(String),
}

/// What a trace line does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// A write that defines the stored size.
    Write,
    /// A delete.
    Delete,
    /// Anything that leaves the stored size alone.
    Other,
}

/// Classifies an operation name; `None` for an unknown one.
pub fn classify(op: &[u8]) -> Option<Op> {
    Some(match op {
        b"set" | b"add" | b"replace" | b"cas" | b"append" | b"prepend" => Op::Write,
        b"delete" => Op::Delete,
        b"get" | b"gets" | b"incr" | b"decr" => Op::Other,
        _ => return None,
    })
}

/// One parsed line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Row<'a> {
    /// The (anonymised) key.
    pub key: &'a [u8],
    /// `key_size`.
    pub key_size: u32,
    /// `value_size`.
    pub value_size: u32,
    /// The operation.
    pub op: Op,
}

#[inline]
fn num(b: &[u8]) -> Option<u32> {
    if b.is_empty() || b.len() > 10 {
        return None;
    }
    let mut v: u64 = 0;
    for &c in b {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v * 10 + u64::from(d);
    }
    u32::try_from(v).ok()
}

/// Parses one line (without its newline). Errors name what is wrong.
#[inline]
pub fn parse_line(line: &[u8]) -> Result<Row<'_>, &'static str> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let first = memchr::memchr(b',', line).ok_or("not enough fields")?;
    let mut rest = &line[first + 1..];
    // From the right: ttl, operation, client_id, value_size, key_size.
    let mut fields: [&[u8]; 5] = [&[]; 5];
    for f in fields.iter_mut() {
        let c = memchr::memrchr(b',', rest).ok_or("not enough fields")?;
        *f = &rest[c + 1..];
        rest = &rest[..c];
    }
    let [_ttl, op, _client, vsize, ksize] = fields;
    let op = classify(op).ok_or("unknown operation")?;
    let key_size = num(ksize).ok_or("bad key_size")?;
    let value_size = num(vsize).ok_or("bad value_size")?;
    Ok(Row {
        key: rest,
        key_size,
        value_size,
        op,
    })
}

/// Latest `(key_size, value_size)` per key hash: open addressing with linear probing,
/// 16-byte slots (hash, packed sizes), backward-shift deletion. Lookups are issued in
/// batches: the slots of a whole batch are loaded first so their cache misses overlap,
/// then the batch is applied in order.
#[derive(Debug)]
pub struct KeyTable {
    slots: Vec<[u64; 2]>,
    len: usize,
    mask: usize,
}

impl Default for KeyTable {
    fn default() -> Self {
        KeyTable {
            slots: vec![[0; 2]; 1 << 12],
            len: 0,
            mask: (1 << 12) - 1,
        }
    }
}

impl KeyTable {
    #[inline]
    fn key(h: u64) -> u64 {
        h.max(1) // 0 marks an empty slot
    }

    #[inline]
    fn home(&self, k: u64) -> usize {
        (k >> 16) as usize & self.mask
    }

    /// Loads the slot `h` starts probing at, so a later access hits the cache.
    #[inline]
    pub fn touch(&self, h: u64) {
        std::hint::black_box(self.slots[self.home(Self::key(h))][0]);
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Sets the value of `h`.
    #[inline]
    pub fn insert(&mut self, h: u64, v: u64) {
        if (self.len + 1) * 8 > self.slots.len() * 7 {
            self.grow();
        }
        let k = Self::key(h);
        let mut i = self.home(k);
        loop {
            let s = &mut self.slots[i];
            if s[0] == k {
                s[1] = v;
                return;
            }
            if s[0] == 0 {
                *s = [k, v];
                self.len += 1;
                return;
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Removes `h` if present.
    pub fn remove(&mut self, h: u64) {
        let k = Self::key(h);
        let mut i = self.home(k);
        loop {
            if self.slots[i][0] == 0 {
                return;
            }
            if self.slots[i][0] == k {
                break;
            }
            i = (i + 1) & self.mask;
        }
        // Backward shift: move later members of the probe run into the hole.
        let mut j = i;
        loop {
            j = (j + 1) & self.mask;
            let kj = self.slots[j][0];
            if kj == 0 {
                break;
            }
            let home = self.home(kj);
            // The entry at j may move to i unless its home lies cyclically in (i, j].
            let stays = if i <= j {
                i < home && home <= j
            } else {
                i < home || home <= j
            };
            if !stays {
                self.slots[i] = self.slots[j];
                i = j;
            }
        }
        self.slots[i] = [0, 0];
        self.len -= 1;
    }

    fn grow(&mut self) {
        let n = self.slots.len() * 2;
        let old = std::mem::replace(&mut self.slots, vec![[0; 2]; n]);
        self.mask = self.slots.len() - 1;
        self.len = 0;
        for [k, v] in old {
            if k != 0 {
                self.insert(k, v);
            }
        }
    }

    /// The values.
    pub fn values(&self) -> impl Iterator<Item = u64> + '_ {
        self.slots.iter().filter(|s| s[0] != 0).map(|s| s[1])
    }
}

const BATCH: usize = 32;

/// Accumulates trace lines.
#[derive(Debug)]
pub struct TraceReader {
    per_request: bool,
    strict: bool,
    key_hash: hashbrown::DefaultHashBuilder,
    latest: KeyTable,
    /// Pending per-key updates: (key hash, sizes, is a delete).
    batch: Vec<(u64, u64, bool)>,
    shapes: HashMap<u64, u64>,
    /// Lines read.
    pub lines: u64,
    /// Writes seen.
    pub writes: u64,
    /// Bad lines.
    pub issues: Issues,
}

impl TraceReader {
    /// A reader counting the latest write per key, or every write with `per_request`.
    pub fn new(per_request: bool, strict: bool) -> Self {
        TraceReader {
            per_request,
            strict,
            key_hash: hashbrown::DefaultHashBuilder::default(),
            latest: KeyTable::default(),
            batch: Vec::with_capacity(BATCH),
            shapes: HashMap::new(),
            lines: 0,
            writes: 0,
            issues: Issues::default(),
        }
    }

    /// Feeds one line (without newline).
    #[inline]
    pub fn line(&mut self, line: &[u8]) -> Result<(), TraceError> {
        self.lines += 1;
        if line.is_empty() || line == b"\r" {
            return Ok(());
        }
        match parse_line(line) {
            Ok(row) => match row.op {
                Op::Write => {
                    self.writes += 1;
                    if self.per_request {
                        let k = u64::from(row.key_size) << 32 | u64::from(row.value_size);
                        *self.shapes.entry(k).or_insert(0) += 1;
                    } else {
                        let h = self.key_hash.hash_one(row.key);
                        let v = u64::from(row.key_size) << 32 | u64::from(row.value_size);
                        self.push(h, v, false);
                    }
                }
                Op::Delete if !self.per_request => {
                    let h = self.key_hash.hash_one(row.key);
                    self.push(h, 0, true);
                }
                _ => {}
            },
            Err(e) => {
                if self.strict {
                    return Err(TraceError::Strict(format!("line {}: {e}", self.lines)));
                }
                let shown = String::from_utf8_lossy(&line[..line.len().min(80)]).into_owned();
                self.issues
                    .add("line", self.lines, format_args!("{e}: {shown:?}"));
            }
        }
        Ok(())
    }

    #[inline]
    fn push(&mut self, h: u64, v: u64, delete: bool) {
        self.latest.touch(h);
        self.batch.push((h, v, delete));
        if self.batch.len() == BATCH {
            self.flush();
        }
    }

    /// Applies the pending per-key updates, in order.
    pub fn flush(&mut self) {
        for &(h, v, delete) in &self.batch {
            if delete {
                self.latest.remove(h);
            } else {
                self.latest.insert(h, v);
            }
        }
        self.batch.clear();
    }

    /// Feeds a block of text; returns how many bytes were consumed (whole lines only).
    pub fn block(&mut self, buf: &[u8]) -> Result<usize, TraceError> {
        let mut start = 0;
        for nl in memchr::memchr_iter(b'\n', buf) {
            self.line(&buf[start..nl])?;
            start = nl + 1;
        }
        self.flush();
        Ok(start)
    }

    /// Reads everything from `r`; `on_read(n)` is told about each block read.
    pub fn read_all<R: Read>(
        &mut self,
        mut r: R,
        mut on_read: impl FnMut(usize),
    ) -> Result<(), TraceError> {
        let mut buf = vec![0u8; 1 << 20];
        let mut filled = 0;
        loop {
            if filled == buf.len() {
                buf.resize(buf.len() * 2, 0);
            }
            let n = match r.read(&mut buf[filled..]) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if self.strict => return Err(e.into()),
                Err(e) => {
                    // A truncated or corrupt compressed stream: keep what was read.
                    self.issues.add(
                        "line",
                        self.lines + 1,
                        format_args!("input ends early: {e}"),
                    );
                    0
                }
            };
            on_read(n);
            if n == 0 {
                if filled > 0 {
                    let tail = buf[..filled].to_vec();
                    self.line(&tail)?;
                }
                return Ok(());
            }
            filled += n;
            let used = self.block(&buf[..filled])?;
            buf.copy_within(used..filled, 0);
            filled -= used;
        }
    }

    /// The observed items (client flags are not in the trace: taken as zero).
    pub fn observed(&mut self) -> Observed {
        self.flush();
        let mut o = Observed::default();
        if self.per_request {
            for (&k, &n) in &self.shapes {
                o.add((k >> 32) as u32, k as u32, false, n);
            }
        } else {
            let mut shapes: HashMap<u64, u64> = HashMap::new();
            for v in self.latest.values() {
                *shapes.entry(v).or_insert(0) += 1;
            }
            for (v, n) in shapes {
                o.add((v >> 32) as u32, v as u32, false, n);
            }
        }
        o
    }
}

/// Opens a trace file, decompressing it if it starts with the zstd magic number. Returns
/// the reader and the file's size (for progress).
pub fn open(path: &Path) -> io::Result<(Box<dyn Read>, u64)> {
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    let mut magic = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match f.read(&mut magic[got..])? {
            0 => break,
            n => got += n,
        }
    }
    let head = io::Cursor::new(magic[..got].to_vec());
    let chained = head.chain(f);
    if got == 4 && magic == [0x28, 0xb5, 0x2f, 0xfd] {
        Ok((Box::new(zstd::stream::read::Decoder::new(chained)?), len))
    } else {
        Ok((Box::new(chained), len))
    }
}

/// A reader that reports how many bytes pass through it.
#[derive(Debug)]
pub struct Counting<R, F> {
    inner: R,
    f: F,
}

impl<R, F: FnMut(usize)> Counting<R, F> {
    /// Wraps `inner`, calling `f(n)` after each read of `n` bytes.
    pub fn new(inner: R, f: F) -> Self {
        Counting { inner, f }
    }
}

impl<R: Read, F: FnMut(usize)> Read for Counting<R, F> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        (self.f)(n);
        Ok(n)
    }
}

/// Generates `n` trace lines over `keys` keys: 37.5% `set`s (values of 10 to 509 bytes),
/// the rest `get`s. For benchmarks and tests.
pub fn synthetic(n: usize, keys: usize) -> Vec<u8> {
    use std::io::Write as _;
    let mut out = Vec::with_capacity(n * 48);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let k = x % keys.max(1) as u64;
        let op = if x >> 60 < 6 { "set" } else { "get" };
        let v = 10 + (x >> 20) % 500;
        let _ = writeln!(
            out,
            "{},key{:012},15,{},{},{},0",
            i / 1000,
            k,
            v,
            x % 64,
            op
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn key_table_matches_a_map(ops in proptest::collection::vec((0u64..64, 0u64..1000, proptest::bool::ANY), 0..3000)) {
            let mut t = KeyTable::default();
            let mut m = std::collections::HashMap::new();
            for (k, v, del) in ops {
                // Five homes at the end of the table: long probe runs that wrap around.
                let h = ((4095 - k % 5) << 16) | (k << 40);
                if del {
                    t.remove(h);
                    m.remove(&h);
                } else {
                    t.insert(h, v);
                    m.insert(h, v);
                }
                proptest::prop_assert_eq!(t.len(), m.len());
            }
            let mut a: Vec<u64> = t.values().collect();
            let mut b: Vec<u64> = m.values().copied().collect();
            a.sort_unstable();
            b.sort_unstable();
            proptest::prop_assert_eq!(a, b);
        }
    }

    proptest::proptest! {
        #[test]
        fn garbage_lines_are_counted_not_fatal(
            lines in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..60), 0..50)
        ) {
            let lines: Vec<Vec<u8>> = lines
                .into_iter()
                .map(|l| l.into_iter().map(|b| if b == b'\n' { b' ' } else { b }).collect())
                .collect();
            let mut text = Vec::new();
            for l in &lines {
                text.extend_from_slice(l);
                text.push(b'\n');
            }
            let mut t = TraceReader::new(false, false);
            t.read_all(&text[..], |_| {}).unwrap();
            proptest::prop_assert_eq!(t.lines, lines.len() as u64);
            // Every nonempty line either parses or is counted as bad input.
            let bad = lines
                .iter()
                .filter(|l| !l.is_empty() && l.as_slice() != b"\r" && parse_line(l).is_err())
                .count() as u64;
            proptest::prop_assert_eq!(t.issues.count, bad);
        }
    }

    #[test]
    fn parses_rows_and_rejects_bad_ones() {
        let r = parse_line(b"0,abc,3,100,7,set,0").unwrap();
        assert_eq!(
            (r.key, r.key_size, r.value_size, r.op),
            (&b"abc"[..], 3, 100, Op::Write)
        );
        let r = parse_line(b"5,a,b,c,1,0,2,get,0\r").unwrap();
        assert_eq!((r.key, r.op), (&b"a,b,c"[..], Op::Other));
        assert_eq!(parse_line(b"0,k,1,2,3,frob,0"), Err("unknown operation"));
        assert_eq!(parse_line(b"0,k,x,2,3,set,0"), Err("bad key_size"));
        assert_eq!(
            parse_line(b"0,k,1,99999999999,3,set,0"),
            Err("bad value_size")
        );
        assert_eq!(parse_line(b"garbage"), Err("not enough fields"));
    }

    #[test]
    fn latest_write_per_key_and_deletes() {
        let text = b"1,a,1,10,0,set,0\n2,b,1,20,0,add,0\n3,a,1,30,0,replace,0\n\
4,b,1,0,0,get,0\n5,c,1,5,0,set,0\n6,c,1,0,0,delete,0\n7,d,1,1,0,bogus,0\n8,e,1,7,0,cas,0";
        let mut t = TraceReader::new(false, false);
        t.read_all(&text[..], |_| {}).unwrap();
        assert_eq!(t.lines, 8);
        assert_eq!(t.writes, 5);
        assert_eq!(t.issues.count, 1);
        assert!(
            t.issues.examples[0].starts_with("line 7: unknown operation"),
            "{:?}",
            t.issues
        );
        let o = t.observed();
        let got: Vec<_> = o.items.iter().map(|(&k, &n)| (k, n)).collect();
        assert_eq!(
            got,
            vec![((1, 7, false), 1), ((1, 20, false), 1), ((1, 30, false), 1)]
        );

        let mut t = TraceReader::new(true, false);
        t.read_all(&text[..], |_| {}).unwrap();
        assert_eq!(t.observed().count(), 5);

        let mut t = TraceReader::new(false, true);
        let e = t.read_all(&text[..], |_| {}).unwrap_err();
        assert_eq!(e.to_string(), "line 7: unknown operation");
    }
}
