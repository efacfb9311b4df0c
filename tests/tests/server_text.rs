//! The text protocol against the real `kvcache-server` binary: every command, byte for
//! byte, with the replies memcached 1.6.18 gives to the same bytes.

use integration_tests::{Client, ServerProc};

fn server() -> ServerProc {
    ServerProc::start(&["-t", "2", "-m", "64"])
}

#[test]
fn storage_commands() {
    let s = server();
    let mut c = s.connect();
    c.roundtrip(b"set foo 5 0 3\r\nbar\r\n", b"STORED\r\n");
    c.roundtrip(b"get foo\r\n", b"VALUE foo 5 3\r\nbar\r\nEND\r\n");
    c.roundtrip(b"add foo 0 0 1\r\nx\r\n", b"NOT_STORED\r\n");
    c.roundtrip(b"add new 0 0 1\r\nx\r\n", b"STORED\r\n");
    c.roundtrip(b"replace nope 0 0 1\r\nx\r\n", b"NOT_STORED\r\n");
    c.roundtrip(b"replace new 7 0 2\r\nyz\r\n", b"STORED\r\n");
    c.roundtrip(b"append new 0 0 2\r\n!!\r\n", b"STORED\r\n");
    c.roundtrip(b"prepend new 0 0 2\r\n<<\r\n", b"STORED\r\n");
    c.roundtrip(b"append nope 0 0 1\r\nx\r\n", b"NOT_STORED\r\n");
    c.roundtrip(b"prepend nope 0 0 1\r\nx\r\n", b"NOT_STORED\r\n");
    // append/prepend keep the flags of the item.
    c.roundtrip(b"get new\r\n", b"VALUE new 7 6\r\n<<yz!!\r\nEND\r\n");
    c.roundtrip(b"set empty 0 0 0\r\n\r\n", b"STORED\r\n");
    c.roundtrip(b"get empty\r\n", b"VALUE empty 0 0\r\n\r\nEND\r\n");
    c.roundtrip(b"set big 4294967295 0 1\r\nx\r\n", b"STORED\r\n");
    c.roundtrip(b"get big\r\n", b"VALUE big 4294967295 1\r\nx\r\nEND\r\n");
    // Flags of 2^32 wrap to 0, as in memcached on a 64-bit machine.
    c.roundtrip(b"set big 4294967296 0 1\r\nx\r\n", b"STORED\r\n");
    c.roundtrip(b"get big\r\n", b"VALUE big 0 1\r\nx\r\nEND\r\n");
}

fn cas_of(c: &mut Client, key: &str) -> u64 {
    c.send(format!("gets {key}\r\n").as_bytes());
    let line = String::from_utf8(c.read_line()).unwrap();
    let parts: Vec<&str> = line.trim_end().split(' ').collect();
    assert_eq!(parts[0], "VALUE", "{line}");
    let len: usize = parts[3].parse().unwrap();
    c.read_n(len + 2);
    c.expect(b"END\r\n");
    parts[4].parse().unwrap()
}

#[test]
fn cas_and_gets() {
    let s = server();
    let mut c = s.connect();
    c.roundtrip(b"cas nope 0 0 1 5\r\nx\r\n", b"NOT_FOUND\r\n");
    c.roundtrip(b"set k 0 0 1\r\nx\r\n", b"STORED\r\n");
    let cas = cas_of(&mut c, "k");
    c.roundtrip(
        format!("cas k 3 0 1 {}\r\ny\r\n", cas + 1).as_bytes(),
        b"EXISTS\r\n",
    );
    c.roundtrip(
        format!("cas k 3 0 1 {cas}\r\ny\r\n").as_bytes(),
        b"STORED\r\n",
    );
    c.roundtrip(
        format!("cas k 3 0 1 {cas}\r\nz\r\n").as_bytes(),
        b"EXISTS\r\n",
    );
    let cas2 = cas_of(&mut c, "k");
    assert_ne!(cas, cas2);
    c.roundtrip(
        b"gets k\r\n",
        format!("VALUE k 3 1 {cas2}\r\ny\r\nEND\r\n").as_bytes(),
    );
    c.roundtrip(
        format!("cas k 0 0 1 {cas2} noreply\r\nw\r\nget k\r\n").as_bytes(),
        b"VALUE k 0 1\r\nw\r\nEND\r\n",
    );
}

#[test]
fn multi_get_and_gat() {
    let s = server();
    let mut c = s.connect();
    c.roundtrip(
        b"set a 1 0 1\r\nA\r\nset c 3 0 3\r\nCCC\r\n",
        b"STORED\r\nSTORED\r\n",
    );
    c.roundtrip(
        b"get a b c a\r\n",
        b"VALUE a 1 1\r\nA\r\nVALUE c 3 3\r\nCCC\r\nVALUE a 1 1\r\nA\r\nEND\r\n",
    );
    c.roundtrip(b"get   a    b  \r\n", b"VALUE a 1 1\r\nA\r\nEND\r\n");
    c.roundtrip(b"get a\n", b"VALUE a 1 1\r\nA\r\nEND\r\n");
    c.roundtrip(b"gat 100 a b\r\n", b"VALUE a 1 1\r\nA\r\nEND\r\n");
    let cas = cas_of(&mut c, "c");
    c.roundtrip(
        b"gats 0 c\r\n",
        format!("VALUE c 3 3 {cas}\r\nCCC\r\nEND\r\n").as_bytes(),
    );
    c.roundtrip(
        b"gat abc a\r\n",
        b"CLIENT_ERROR invalid exptime argument\r\n",
    );
    c.roundtrip(b"gat 10\r\n", b"END\r\n");
    // gat with a negative exptime returns the item, then it is gone.
    c.roundtrip(
        b"gat -1 a\r\nget a\r\n",
        b"VALUE a 1 1\r\nA\r\nEND\r\nEND\r\n",
    );
    // Many keys in one line (more than memcached's 24 tokens).
    let mut line = String::from("get");
    let mut want = String::new();
    for i in 0..100 {
        c.roundtrip(
            format!("set key{i} {i} 0 {}\r\n{i}\r\n", i.to_string().len()).as_bytes(),
            b"STORED\r\n",
        );
        line.push_str(&format!(" key{i} miss{i}"));
        want.push_str(&format!(
            "VALUE key{i} {i} {}\r\n{i}\r\n",
            i.to_string().len()
        ));
    }
    line.push_str("\r\n");
    want.push_str("END\r\n");
    c.roundtrip(line.as_bytes(), want.as_bytes());
}

#[test]
fn delete_incr_decr_touch() {
    let s = server();
    let mut c = s.connect();
    c.roundtrip(b"delete nope\r\n", b"NOT_FOUND\r\n");
    c.roundtrip(b"set n 0 0 2\r\n10\r\n", b"STORED\r\n");
    c.roundtrip(b"incr n 5\r\n", b"15\r\n");
    c.roundtrip(b"decr n 100\r\n", b"0\r\n");
    c.roundtrip(
        b"incr n 18446744073709551615\r\n",
        b"18446744073709551615\r\n",
    );
    c.roundtrip(b"incr n 1\r\n", b"0\r\n");
    c.roundtrip(
        b"incr n -1\r\n",
        b"CLIENT_ERROR invalid numeric delta argument\r\n",
    );
    c.roundtrip(
        b"incr n abc\r\n",
        b"CLIENT_ERROR invalid numeric delta argument\r\n",
    );
    c.roundtrip(b"incr nope 1\r\n", b"NOT_FOUND\r\n");
    c.roundtrip(b"decr nope 1\r\n", b"NOT_FOUND\r\n");
    c.roundtrip(b"set s 0 0 3\r\nabc\r\n", b"STORED\r\n");
    c.roundtrip(
        b"incr s 1\r\n",
        b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
    );
    c.roundtrip(
        b"set w 0 0 5\r\n99999\r\nincr w 1\r\nget w\r\n",
        b"STORED\r\n100000\r\nVALUE w 0 6\r\n100000\r\nEND\r\n",
    );
    c.roundtrip(b"incr w 1 noreply\r\nincr w 1\r\n", b"100002\r\n");
    c.roundtrip(b"incr\r\n", b"ERROR\r\n");
    c.roundtrip(b"delete n 0\r\n", b"DELETED\r\n");
    c.roundtrip(
        b"delete s 1\r\n",
        b"CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n",
    );
    c.roundtrip(b"delete s noreply\r\ndelete s\r\n", b"NOT_FOUND\r\n");
    c.roundtrip(b"touch w 100\r\n", b"TOUCHED\r\n");
    c.roundtrip(b"touch nope 100\r\n", b"NOT_FOUND\r\n");
    c.roundtrip(
        b"touch w abc\r\n",
        b"CLIENT_ERROR invalid exptime argument\r\n",
    );
    c.roundtrip(b"touch w -1\r\nget w\r\n", b"TOUCHED\r\nEND\r\n");
    c.roundtrip(b"set e 0 -1 1\r\nx\r\nget e\r\n", b"STORED\r\nEND\r\n");
}

#[test]
fn flush_version_verbosity_quit() {
    let s = server();
    let mut c = s.connect();
    c.roundtrip(b"set a 0 0 1\r\nx\r\n", b"STORED\r\n");
    c.roundtrip(b"flush_all\r\nget a\r\n", b"OK\r\nEND\r\n");
    c.roundtrip(
        b"flush_all abc\r\n",
        b"CLIENT_ERROR invalid exptime argument\r\n",
    );
    c.roundtrip(
        b"flush_all 0 noreply\r\nflush_all noreply\r\nflush_all 0\r\n",
        b"OK\r\n",
    );
    c.send(b"version\r\n");
    let v = String::from_utf8(c.read_line()).unwrap();
    assert!(v.starts_with("VERSION 1.6.18"), "{v}");
    c.roundtrip(b"verbosity 1\r\n", b"OK\r\n");
    c.roundtrip(b"verbosity 1 noreply\r\nverbosity\r\n", b"ERROR\r\n");
    c.roundtrip(
        b"verbosity noreply\r\nverbosity foo bar my\r\n",
        b"ERROR\r\n",
    );
    c.roundtrip(
        b"verbosity abc\r\n",
        b"CLIENT_ERROR bad command line format\r\n",
    );
    c.send(b"get a\r\nquit\r\nget a\r\n");
    c.expect(b"END\r\n");
    c.expect_closed();
}

#[test]
fn noreply_everywhere() {
    let s = server();
    let mut c = s.connect();
    c.send(
        b"set a 0 0 1 noreply\r\n1\r\nadd b 0 0 1 noreply\r\n2\r\nreplace a 0 0 1 noreply\r\n3\r\n\
          append a 0 0 1 noreply\r\n4\r\nprepend a 0 0 1 noreply\r\n5\r\nincr a 1 noreply\r\n\
          decr b 1 noreply\r\ntouch a 100 noreply\r\ndelete b noreply\r\nadd a 0 0 1 noreply\r\nx\r\n\
          delete zz noreply\r\nget a b\r\n",
    );
    c.expect(b"VALUE a 0 3\r\n535\r\nEND\r\n");
}

#[test]
fn pipelined_in_one_write() {
    let s = server();
    let mut c = s.connect();
    let mut req = Vec::new();
    let mut want = Vec::new();
    for i in 0..500 {
        req.extend_from_slice(format!("set p{i} 0 0 4\r\nv{i:03}\r\nget p{i}\r\n").as_bytes());
        want.extend_from_slice(
            format!("STORED\r\nVALUE p{i} 0 4\r\nv{i:03}\r\nEND\r\n").as_bytes(),
        );
    }
    c.roundtrip(&req, &want);
    // Byte by byte, the same requests give the same answers.
    for (i, b) in b"get p1 p2\r\n".iter().enumerate() {
        c.send(&[*b]);
        if i == 0 {
            std::thread::yield_now();
        }
    }
    c.expect(b"VALUE p1 0 4\r\nv001\r\nVALUE p2 0 4\r\nv002\r\nEND\r\n");
}

#[test]
fn large_values() {
    let s = ServerProc::start(&["-t", "1", "-m", "64", "-I", "2m"]);
    let mut c = s.connect();
    let value: Vec<u8> = (0..1_500_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let mut req = format!("set big 9 0 {}\r\n", value.len()).into_bytes();
    req.extend_from_slice(&value);
    req.extend_from_slice(b"\r\n");
    c.roundtrip(&req, b"STORED\r\n");
    c.send(b"get big\r\n");
    c.expect(format!("VALUE big 9 {}\r\n", value.len()).as_bytes());
    let got = c.read_n(value.len());
    assert!(got == value, "value differs");
    c.expect(b"\r\nEND\r\n");
}

#[test]
fn delayed_flush_all() {
    let s = ServerProc::start(&["-t", "1"]);
    let mut c = s.connect();
    c.roundtrip(b"set a 0 0 1\r\nx\r\n", b"STORED\r\n");
    // The items go when the delay has passed, not before.
    c.roundtrip(
        b"flush_all 3\r\nget a\r\n",
        b"OK\r\nVALUE a 0 1\r\nx\r\nEND\r\n",
    );
    let mut gone = false;
    for _ in 0..100 {
        c.send(b"get a\r\n");
        let line = c.read_line();
        if line == b"END\r\n" {
            gone = true;
            break;
        }
        assert_eq!(line, b"VALUE a 0 1\r\n");
        c.expect(b"x\r\nEND\r\n");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(gone, "the delayed flush_all never took effect");
    // Items stored after the flush time survive it. (memcached invalidates items whose
    // time is at most the flush time minus one second, checked once that second has come:
    // an item stored in the very second the flush takes effect goes too, so wait past it.)
    std::thread::sleep(std::time::Duration::from_millis(1100));
    c.roundtrip(
        b"set b 0 0 1\r\ny\r\nget b\r\n",
        b"STORED\r\nVALUE b 0 1\r\ny\r\nEND\r\n",
    );
}
