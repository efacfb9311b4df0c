//! The meta protocol against the real `kvcache-server` binary, byte for byte, with the
//! replies memcached 1.6.18 gives to the same bytes (CAS values, which are a server's
//! own counter, are read back and compared instead of pinned).

use integration_tests::{Client, ServerProc};

fn server() -> ServerProc {
    ServerProc::start(&["-t", "2", "-m", "64"])
}

/// Reads the CAS of `key` with `mg <key> c`.
fn cas_of(c: &mut Client, key: &str) -> u64 {
    c.send(format!("mg {key} c\r\n").as_bytes());
    let line = String::from_utf8(c.read_line()).unwrap();
    let tok = line.trim_end().strip_prefix("HD c").expect("HD c<cas>");
    tok.parse().unwrap()
}

#[test]
fn get_set_flags_and_quiet_mode() {
    let s = server();
    let mut c = s.connect();
    c.roundtrip(b"ms foo 3 T0 F5\r\nbar\r\n", b"HD\r\n");
    let cas = cas_of(&mut c, "foo");
    c.roundtrip(b"mg foo v k f t s\r\n", b"VA 3 kfoo f5 t-1 s3\r\nbar\r\n");
    c.roundtrip(b"mg foo O123 q k\r\nmn\r\n", b"HD O123 kfoo\r\nMN\r\n");
    c.roundtrip(b"mg missing v\r\n", b"EN\r\n");
    c.roundtrip(b"mg missing v q\r\nmn\r\n", b"MN\r\n");
    c.roundtrip(
        b"mg foo c f h k l O s t u v\r\n".as_slice(),
        format!("VA 3 c{cas} f5 h1 kfoo l0 O s3 t-1\r\nbar\r\n").as_bytes(),
    );
    c.roundtrip(
        b"mg nope c f h k l O s t u v\r\n",
        b"EN kfoo O\r\n".replace_key("nope").as_slice(),
    );
    c.roundtrip(b"ms foo 2 q\r\nab\r\nmn\r\n", b"MN\r\n");
    c.roundtrip(b"ms foo 2 ME q\r\nxy\r\nmn\r\n", b"NS\r\nMN\r\n");
    c.roundtrip(b"ms zz 2 MR k\r\nxy\r\n", b"NS kzz\r\n");
    c.roundtrip(b"ms zz 2 MA k\r\nxy\r\n", b"NS kzz\r\n");
    c.roundtrip(b"ms zz 2 C5 k\r\nxy\r\n", b"NF kzz\r\n");
    let wrong = cas_of(&mut c, "foo") + 1000;
    c.roundtrip(
        format!("ms foo 2 C{wrong} c\r\nxy\r\n").as_bytes(),
        b"EX c0\r\n",
    );
    let cas = cas_of(&mut c, "foo");
    c.send(format!("ms foo 2 C{cas} c k O9\r\nxy\r\n").as_bytes());
    let line = String::from_utf8(c.read_line()).unwrap();
    assert!(
        line.starts_with("HD c") && line.ends_with(" kfoo O9\r\n"),
        "{line:?}"
    );
    assert!(cas_of(&mut c, "foo") > cas);
    c.roundtrip(
        b"ms foo 1 MA\r\n!\r\nms foo 1 MP\r\n<\r\nmg foo v\r\n",
        b"HD\r\nHD\r\nVA 4\r\n<xy!\r\n",
    );
}

trait ReplaceKey {
    fn replace_key(&self, key: &str) -> Vec<u8>;
}

impl ReplaceKey for [u8] {
    fn replace_key(&self, key: &str) -> Vec<u8> {
        String::from_utf8_lossy(self)
            .replace("foo", key)
            .into_bytes()
    }
}

#[test]
fn delete_invalidate_and_win_tokens() {
    let s = server();
    let mut c = s.connect();
    c.roundtrip(b"md nope q\r\nmn\r\n", b"NF\r\nMN\r\n");
    c.roundtrip(b"md nope\r\n", b"NF\r\n");
    c.roundtrip(b"ms k1 2\r\nab\r\n", b"HD\r\n");
    let wrong = cas_of(&mut c, "k1") + 1000;
    c.roundtrip(format!("md k1 C{wrong}\r\n").as_bytes(), b"EX\r\n");
    c.roundtrip(
        format!("md k1 q C{wrong}\r\nmn\r\n").as_bytes(),
        b"EX\r\nMN\r\n",
    );
    c.roundtrip(b"md k1 I T30 k O5\r\n", b"HD kk1 O5\r\n");
    // Stale: the first fetcher wins the recache token, later ones see Z.
    c.roundtrip(b"mg k1 v t\r\n", b"VA 2 t30 X W\r\nab\r\n");
    c.roundtrip(b"mg k1 v t\r\n", b"VA 2 t30 Z X\r\nab\r\n");
    c.roundtrip(b"md k1 q\r\nmn\r\n", b"MN\r\n");
    c.roundtrip(b"mg k1 v\r\n", b"EN\r\n");
    // Vivify on miss.
    c.roundtrip(b"mg vv N30 s t v\r\n", b"VA 0 s0 t30 W\r\n\r\n");
    c.roundtrip(b"mg vv N30 s t v\r\n", b"VA 0 s0 t30 Z\r\n\r\n");
    c.roundtrip(b"ms vv 1\r\nx\r\nmg vv v\r\n", b"HD\r\nVA 1\r\nx\r\n");
    // Recache when the TTL left is below R.
    c.roundtrip(b"ms rr 1 T10\r\nx\r\n", b"HD\r\n");
    c.roundtrip(b"mg rr R30 v\r\n", b"VA 1 W\r\nx\r\n");
    c.roundtrip(b"mg rr R30 v\r\n", b"VA 1 Z\r\nx\r\n");
    // TTL update.
    c.roundtrip(b"mg rr T100 t\r\n", b"HD t100 Z\r\n");
}

#[test]
fn arithmetic() {
    let s = server();
    let mut c = s.connect();
    c.roundtrip(b"ma foo\r\n", b"NF\r\n");
    c.roundtrip(b"ms n 2\r\n10\r\n", b"HD\r\n");
    c.roundtrip(b"ma n v\r\n", b"VA 2\r\n11\r\n");
    c.roundtrip(b"ma n v MD D20\r\n", b"VA 1\r\n0\r\n");
    c.roundtrip(b"ma n MI D5 v t\r\n", b"VA 1 t-1\r\n5\r\n");
    c.roundtrip(
        b"ma n q v\r\nma n q\r\nma nope q\r\nmn\r\n",
        b"NF\r\nMN\r\n",
    );
    // memcached pads a shorter result with spaces in place.
    c.roundtrip(b"mg n v\r\n", b"VA 2\r\n7 \r\n");
    c.roundtrip(b"ma nx N0 J7 v\r\n", b"VA 1\r\n7\r\n");
    c.roundtrip(
        b"ms s 2\r\nab\r\nma s\r\n",
        b"HD\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
    );
    let wrong = cas_of(&mut c, "n") + 1000;
    c.roundtrip(format!("ma n C{wrong} v\r\n").as_bytes(), b"EX\r\n");
}

#[test]
fn errors_and_base64() {
    let s = server();
    let mut c = s.connect();
    for (req, rep) in [
        (&b"mg\r\n"[..], &b"ERROR\r\n"[..]),
        (b"mg foo zz\r\n", b"CLIENT_ERROR invalid flag\r\n"),
        (b"mg foo k k\r\n", b"CLIENT_ERROR duplicate flag\r\n"),
        (
            b"mg foo T\r\n",
            b"CLIENT_ERROR bad token in command line format\r\n",
        ),
        (
            b"mg foo a b c d e f g h i j k l m n o p q r\r\n",
            b"CLIENT_ERROR options flags are too long\r\n",
        ),
        (
            b"md foo k k\r\n",
            b"CLIENT_ERROR invalid or duplicate flag\r\n",
        ),
        (
            b"ma foo MX\r\n",
            b"CLIENT_ERROR invalid mode for ma M token\r\n",
        ),
        (b"me\r\n", b"CLIENT_ERROR bad command line format\r\n"),
        (b"me nope\r\n", b"EN\r\n"),
        (b"mn\r\n", b"MN\r\n"),
    ] {
        c.roundtrip(req, rep);
    }
    // A bad ms line swallows its data block; a bad length does not.
    c.roundtrip(
        b"ms foo 2 zz\r\nab\r\nmn\r\n",
        b"CLIENT_ERROR invalid flag\r\nMN\r\n",
    );
    c.roundtrip(
        b"ms foo bar\r\nxx\r\n",
        b"CLIENT_ERROR bad command line format\r\nERROR\r\n",
    );
    c.roundtrip(
        b"ms foo 2\r\nabc\r\n",
        b"CLIENT_ERROR bad data chunk\r\nERROR\r\n",
    );
    let mut big = b"ms big 2000000 T0\r\n".to_vec();
    big.extend_from_slice(&vec![b'a'; 2_000_000]);
    big.extend_from_slice(b"\r\nmn\r\n");
    c.roundtrip(&big, b"SERVER_ERROR object too large for cache\r\nMN\r\n");
    // Base64 keys.
    c.roundtrip(b"ms Zm9v 2 b k\r\nhi\r\n", b"HD kZm9v b\r\n");
    c.roundtrip(b"mg Zm9v b k v\r\n", b"VA 2 kZm9v b\r\nhi\r\n");
    c.roundtrip(b"mg foo v\r\n", b"VA 2\r\nhi\r\n");
    c.roundtrip(b"md Zm9v b k\r\n", b"HD kZm9v b\r\n");
}
