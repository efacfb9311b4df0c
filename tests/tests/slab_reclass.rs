//! Live re-classing on the real binary: `slabs classes` answers `OK` or says what is
//! wrong with the list, new items go to the listed classes, the items of classes left out
//! stay readable and migrate, and their slabs go back.

use std::time::{Duration, Instant};

use integration_tests::{stat_u64, Client, ServerProc};

/// Chunk sizes of the classes holding items, from `stats slabs`.
fn sizes_in_use(c: &mut Client) -> Vec<u64> {
    let s = c.stats("slabs");
    let get = |id: &str, f: &str| stat_u64(&s, &format!("{id}:{f}"));
    let mut ids: Vec<String> = s
        .iter()
        .filter_map(|(k, _)| k.strip_suffix(":chunk_size").map(str::to_string))
        .collect();
    ids.retain(|id| get(id, "used_chunks") > 0);
    let mut out: Vec<u64> = ids.iter().map(|id| get(id, "chunk_size")).collect();
    out.sort_unstable();
    out
}

fn value(i: usize) -> String {
    format!("{i:08}").repeat(90) // 720 bytes
}

#[test]
fn class_lists_are_answered_ok_or_with_the_reason() {
    let s = ServerProc::start(&[]);
    let mut c = s.connect();
    for (line, reply) in [
        ("slabs classes 64-60", "CLIENT_ERROR bad class list: size 60 (rounded to 64) does not follow 64 (sizes must be strictly ascending)"),
        ("slabs classes 64-x", "CLIENT_ERROR bad class list: 'x' is not a size"),
        ("slabs classes 64--72", "CLIENT_ERROR bad class list: '' is not a size"),
        ("slabs classes 8", "CLIENT_ERROR bad class list: size 8 is below 16"),
        ("slabs classes 40000", "CLIENT_ERROR bad class list: size 40000 is above the largest chunk 32768"),
        ("slabs classes", "ERROR"),
        ("slabs classes 64-128", "OK"),
    ] {
        c.roundtrip(format!("{line}\r\n").as_bytes(), format!("{reply}\r\n").as_bytes());
    }
    // noreply: silent, and in force.
    c.send(b"slabs classes 96-200-1000 noreply\r\n");
    c.roundtrip(b"set k 0 0 100\r\n", b"");
    c.roundtrip(
        &[b"x".repeat(100), b"\r\n".to_vec()].concat(),
        b"STORED\r\n",
    );
    assert_eq!(sizes_in_use(&mut c), vec![200]);
    assert_eq!(stat_u64(&c.stats(""), "slab_reclasses"), 2);
}

#[test]
fn items_of_classes_left_out_stay_readable_and_migrate() {
    let s = ServerProc::start(&["-m", "64"]);
    let mut c = s.connect();
    let n = 3000;
    let mut batch = Vec::new();
    for i in 0..n {
        batch.extend_from_slice(
            format!("set k:{i} {i} 0 720 noreply\r\n{}\r\n", value(i)).as_bytes(),
        );
    }
    c.send(&batch);
    c.roundtrip(b"mn\r\n", b"MN\r\n");
    let before = sizes_in_use(&mut c);
    assert!(!before.is_empty());
    c.roundtrip(b"slabs classes 768-800\r\n", b"OK\r\n");
    // Within a few maintenance intervals every item sits in a listed class.
    let deadline = Instant::now() + Duration::from_secs(20);
    while sizes_in_use(&mut c) != vec![768] {
        assert!(
            Instant::now() < deadline,
            "classes in use: {:?}",
            sizes_in_use(&mut c)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let st = c.stats("");
    assert_eq!(stat_u64(&st, "curr_items"), n as u64);
    assert!(stat_u64(&st, "items_migrated") > 0);
    for i in (0..n).step_by(7) {
        let v = value(i);
        c.roundtrip(
            format!("get k:{i}\r\n").as_bytes(),
            format!("VALUE k:{i} {i} 720\r\n{v}\r\nEND\r\n").as_bytes(),
        );
    }
}
