//! One client connection speaking text, meta or binary, turning each model [`Cmd`] into
//! that protocol's request and its reply back into a model [`Reply`]. For the
//! linearizability harness: any reply the model has no word for fails the test at once.

use std::io::{Read, Write as _};
use std::net::SocketAddr;

use crate::kv_model::{decode, piece, Cmd, Reply, Val, Write};
use crate::Client;

/// The protocol a connection speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    /// The text protocol (`gets` for reads, so CAS uniques are learnt).
    Text,
    /// The meta protocol (`mg`, `ms`, `md`, `ma`).
    Meta,
    /// The binary protocol.
    Binary,
}

/// The bytes of a value: a number, or its pieces (each of its own length).
#[derive(Clone, Debug)]
pub struct Bytes(pub Vec<u8>);

impl Bytes {
    /// The bytes for a store of one fresh piece, or of a number.
    pub fn of(val: &Val, len: usize) -> Bytes {
        match val {
            Val::Num(n) => Bytes(n.to_string().into_bytes()),
            Val::Pieces(ids) => Bytes(ids.iter().flat_map(|&id| piece(id, len)).collect()),
        }
    }
}

/// A connection.
#[derive(Debug)]
pub struct KvClient {
    c: Client,
    proto: Proto,
}

fn line(c: &mut Client) -> String {
    let l = c.read_line();
    String::from_utf8_lossy(&l[..l.len() - 2]).into_owned()
}

fn num<T: std::str::FromStr>(s: &str, what: &str) -> T {
    s.parse()
        .unwrap_or_else(|_| panic!("{what}: not a number: {s:?}"))
}

impl KvClient {
    /// Connects to `addr`.
    pub fn connect(addr: SocketAddr, proto: Proto) -> KvClient {
        KvClient {
            c: Client::connect(addr),
            proto,
        }
    }

    /// Runs `cmd` on `key`; `data` holds the bytes of a store's value or of an
    /// append's piece.
    pub fn run(&mut self, key: &str, cmd: &Cmd, data: &Bytes) -> Reply {
        match self.proto {
            Proto::Text => self.text(key, cmd, data),
            Proto::Meta => self.meta(key, cmd, data),
            Proto::Binary => self.binary(key, cmd, data),
        }
    }

    fn send_with_data(&mut self, head: String, data: &Bytes) {
        let mut req = head.into_bytes();
        req.extend_from_slice(&data.0);
        req.extend_from_slice(b"\r\n");
        self.c.send(&req);
    }

    fn text(&mut self, key: &str, cmd: &Cmd, data: &Bytes) -> Reply {
        let n = data.0.len();
        let store = |verb: &str, w: &Write| format!("{verb} {key} {} {} {n}\r\n", w.flags, w.ttl);
        match cmd {
            Cmd::Get => {
                self.c.send(format!("gets {key}\r\n").as_bytes());
                let l = line(&mut self.c);
                if l == "END" {
                    return Reply::Miss;
                }
                let f: Vec<&str> = l.split(' ').collect();
                assert!(f.len() == 5 && f[0] == "VALUE", "gets: {l:?}");
                let len: usize = num(f[3], "length");
                let v = self.c.read_n(len + 2);
                assert_eq!(line(&mut self.c), "END");
                return Reply::Value {
                    val: decode(&v[..len]),
                    flags: num(f[2], "flags"),
                    cas: Some(num(f[4], "cas")),
                };
            }
            Cmd::Set(w) => self.send_with_data(store("set", w), data),
            Cmd::Add(w) => self.send_with_data(store("add", w), data),
            Cmd::Replace(w) => self.send_with_data(store("replace", w), data),
            Cmd::Cas(t, w) => {
                self.send_with_data(format!("cas {key} {} {} {n} {t}\r\n", w.flags, w.ttl), data)
            }
            Cmd::Append(_) => self.send_with_data(format!("append {key} 0 0 {n}\r\n"), data),
            Cmd::Prepend(_) => self.send_with_data(format!("prepend {key} 0 0 {n}\r\n"), data),
            Cmd::Incr(d) => self.c.send(format!("incr {key} {d}\r\n").as_bytes()),
            Cmd::Decr(d) => self.c.send(format!("decr {key} {d}\r\n").as_bytes()),
            Cmd::Delete => self.c.send(format!("delete {key}\r\n").as_bytes()),
            Cmd::Touch(t) => self.c.send(format!("touch {key} {t}\r\n").as_bytes()),
        }
        let l = line(&mut self.c);
        match l.as_str() {
            "STORED" => Reply::Stored(None),
            "NOT_STORED" => Reply::NotStored,
            "EXISTS" => Reply::Exists,
            "NOT_FOUND" => Reply::NotFound,
            "DELETED" => Reply::Deleted,
            "TOUCHED" => Reply::Touched,
            "SERVER_ERROR out of memory storing object" => Reply::OutOfMemory,
            "CLIENT_ERROR cannot increment or decrement non-numeric value" => Reply::NonNumeric,
            n if matches!(cmd, Cmd::Incr(_) | Cmd::Decr(_)) => Reply::Number(num(n, "incr"), None),
            _ => panic!("{cmd:?} {key}: {l:?}"),
        }
    }

    fn meta(&mut self, key: &str, cmd: &Cmd, data: &Bytes) -> Reply {
        let n = data.0.len();
        let ms = |mode: &str, w: &Write, extra: &str| {
            format!("ms {key} {n} T{} F{} c M{mode}{extra}\r\n", w.ttl, w.flags)
        };
        match cmd {
            Cmd::Get => self.c.send(format!("mg {key} v f c\r\n").as_bytes()),
            Cmd::Set(w) => self.send_with_data(ms("S", w, ""), data),
            Cmd::Add(w) => self.send_with_data(ms("E", w, ""), data),
            Cmd::Replace(w) => self.send_with_data(ms("R", w, ""), data),
            Cmd::Cas(t, w) => self.send_with_data(ms("S", w, &format!(" C{t}")), data),
            Cmd::Append(_) => self.send_with_data(format!("ms {key} {n} c MA\r\n"), data),
            Cmd::Prepend(_) => self.send_with_data(format!("ms {key} {n} c MP\r\n"), data),
            Cmd::Incr(d) => self.c.send(format!("ma {key} v c D{d} MI\r\n").as_bytes()),
            Cmd::Decr(d) => self.c.send(format!("ma {key} v c D{d} MD\r\n").as_bytes()),
            Cmd::Delete => self.c.send(format!("md {key}\r\n").as_bytes()),
            Cmd::Touch(t) => self.c.send(format!("mg {key} T{t}\r\n").as_bytes()),
        }
        let l = line(&mut self.c);
        let f: Vec<&str> = l.split(' ').collect();
        let flag = |c: char| {
            f.iter()
                .skip(1)
                .find_map(|t| t.strip_prefix(c))
                .map(|v| num::<u64>(v, "meta flag"))
        };
        match (cmd, f[0]) {
            (Cmd::Get, "EN") => Reply::Miss,
            (Cmd::Touch(_), "EN") => Reply::NotFound,
            (Cmd::Touch(_), "HD") => Reply::Touched,
            (Cmd::Get | Cmd::Incr(_) | Cmd::Decr(_), "VA") => {
                let len: usize = num(f[1], "length");
                let v = self.c.read_n(len + 2);
                if matches!(cmd, Cmd::Get) {
                    Reply::Value {
                        val: decode(&v[..len]),
                        flags: flag('f').unwrap_or(0) as u32,
                        cas: flag('c'),
                    }
                } else {
                    let s = String::from_utf8_lossy(&v[..len]).into_owned();
                    Reply::Number(num(s.trim_end(), "ma"), flag('c'))
                }
            }
            (Cmd::Delete, "HD") => Reply::Deleted,
            (_, "HD") => Reply::Stored(flag('c')),
            (_, "NS") => Reply::NotStored,
            (_, "EX") => Reply::Exists,
            (_, "NF") => Reply::NotFound,
            _ if l == "SERVER_ERROR out of memory storing object" => Reply::OutOfMemory,
            _ if l == "CLIENT_ERROR cannot increment or decrement non-numeric value" => {
                Reply::NonNumeric
            }
            _ => panic!("{cmd:?} {key}: {l:?}"),
        }
    }

    fn binary(&mut self, key: &str, cmd: &Cmd, data: &Bytes) -> Reply {
        let store_x = |w: &Write| {
            let mut x = w.flags.to_be_bytes().to_vec();
            x.extend_from_slice(&w.ttl.to_be_bytes());
            x
        };
        let counter = |d: u64| {
            let mut x = d.to_be_bytes().to_vec();
            x.extend_from_slice(&0u64.to_be_bytes());
            // No initial value: a missing key is NOT_FOUND.
            x.extend_from_slice(&u32::MAX.to_be_bytes());
            x
        };
        let none = Vec::new();
        let (op, extras, value, cas): (u8, Vec<u8>, &[u8], u64) = match cmd {
            Cmd::Get => (0x00, none, &[], 0),
            Cmd::Set(w) => (0x01, store_x(w), &data.0, 0),
            Cmd::Add(w) => (0x02, store_x(w), &data.0, 0),
            Cmd::Replace(w) => (0x03, store_x(w), &data.0, 0),
            Cmd::Cas(t, w) => (0x01, store_x(w), &data.0, *t),
            Cmd::Append(_) => (0x0e, none, &data.0, 0),
            Cmd::Prepend(_) => (0x0f, none, &data.0, 0),
            Cmd::Incr(d) => (0x05, counter(*d), &[], 0),
            Cmd::Decr(d) => (0x06, counter(*d), &[], 0),
            Cmd::Delete => (0x04, none, &[], 0),
            Cmd::Touch(t) => (0x1c, t.to_be_bytes().to_vec(), &[], 0),
        };
        let body = extras.len() + key.len() + value.len();
        let mut req = vec![0x80, op];
        req.extend_from_slice(&(key.len() as u16).to_be_bytes());
        req.push(extras.len() as u8);
        req.extend_from_slice(&[0, 0, 0]);
        req.extend_from_slice(&(body as u32).to_be_bytes());
        req.extend_from_slice(&0u32.to_be_bytes());
        req.extend_from_slice(&cas.to_be_bytes());
        req.extend_from_slice(&extras);
        req.extend_from_slice(key.as_bytes());
        req.extend_from_slice(value);
        self.c.stream.write_all(&req).expect("send");
        let h = self.c.read_n(24);
        assert_eq!(h[0], 0x81, "binary response magic");
        let klen = u16::from_be_bytes([h[2], h[3]]) as usize;
        let xlen = h[4] as usize;
        let status = u16::from_be_bytes([h[6], h[7]]);
        let blen = u32::from_be_bytes([h[8], h[9], h[10], h[11]]) as usize;
        let rcas = u64::from_be_bytes(h[16..24].try_into().expect("8 bytes"));
        let mut b = vec![0; blen];
        self.c.stream.read_exact(&mut b).expect("binary body");
        let v = &b[xlen + klen..];
        match (cmd, status) {
            (Cmd::Get, 0) => Reply::Value {
                val: decode(v),
                flags: u32::from_be_bytes(b[..4].try_into().expect("flags")),
                cas: Some(rcas),
            },
            (Cmd::Get, 1) => Reply::Miss,
            (Cmd::Incr(_) | Cmd::Decr(_), 0) => Reply::Number(
                u64::from_be_bytes(v.try_into().expect("8-byte counter")),
                Some(rcas),
            ),
            (Cmd::Delete, 0) => Reply::Deleted,
            (Cmd::Touch(_), 0) => Reply::Touched,
            (_, 0) => Reply::Stored(Some(rcas)),
            (Cmd::Add(_), 2) | (Cmd::Replace(_), 1) => Reply::NotStored,
            (Cmd::Append(_) | Cmd::Prepend(_), 5) => Reply::NotStored,
            (_, 2) => Reply::Exists,
            (_, 1) => Reply::NotFound,
            (Cmd::Incr(_) | Cmd::Decr(_), 6) => Reply::NonNumeric,
            (_, 0x82) => Reply::OutOfMemory,
            _ => panic!(
                "{cmd:?} {key}: binary status {status:#x} {:?}",
                String::from_utf8_lossy(v)
            ),
        }
    }
}
