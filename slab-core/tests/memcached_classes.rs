//! `SizeClasses::geometric` against the real thing: starts memcached (if installed) with `-vv`
//! for several `-f`/`-n` settings, no TCP or UDP port (`-p 0 -U 0`), reads the slab class
//! table it prints at startup, and compares chunk sizes and chunks per page.
#![cfg(not(miri))]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use slab_core::engine::size_class::{ClassId, SizeClasses};

const CHUNK_MAX: usize = 524_288;

/// `(chunk size, per slab)` rows that `memcached -vv <args>` prints, or `None` if memcached is
/// not installed. The child is killed once the table is read, or after 10 s at the latest.
fn memcached_table(args: &[&str]) -> Option<Vec<(usize, usize)>> {
    let mut child = Command::new("memcached")
        .args([
            "-u",
            "nobody",
            "-l",
            "127.0.0.1",
            "-p",
            "0",
            "-U",
            "0",
            "-vv",
        ])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut rows = Vec::new();
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            // "slab class   1: chunk size        96 perslab   10922"
            let Some(rest) = line.trim().strip_prefix("slab class") else {
                continue;
            };
            let nums: Vec<usize> = rest
                .split(|c: char| !c.is_ascii_digit())
                .filter(|s| !s.is_empty())
                .map(|s| s.parse().unwrap())
                .collect();
            rows.push((nums[1], nums[2]));
            // The last class is `slab_chunk_max` (524288 at the default 1 MiB page); memcached
            // then waits for clients and prints nothing more.
            if nums[1] == CHUNK_MAX {
                break;
            }
        }
        let _ = tx.send(rows);
    });
    let rows = rx.recv_timeout(Duration::from_secs(10));
    let _ = child.kill();
    let _ = child.wait();
    let _ = reader.join();
    Some(rows.expect("memcached printed its slab classes within 10 s"))
}

#[test]
fn geometric_matches_memcached_binary() {
    let cases: [(&[&str], usize, f64); 5] = [
        (&[], 48, 1.25),
        (&["-f", "1.1"], 48, 1.1),
        (&["-n", "16"], 16, 1.25),
        (&["-f", "2"], 48, 2.0),
        (&["-n", "100", "-f", "1.5"], 100, 1.5),
    ];
    for (args, n, f) in cases {
        let Some(want) = memcached_table(args) else {
            eprintln!("memcached is not installed; skipping the comparison");
            return;
        };
        assert!(
            !want.is_empty(),
            "memcached {args:?} printed no slab classes"
        );
        let ours = SizeClasses::geometric(48 + n, f, CHUNK_MAX, 8, 1 << 20).unwrap();
        let got: Vec<(usize, usize)> = (0..ours.len())
            .map(|i| {
                let c = ClassId(i as u16);
                (ours.chunk_size(c), ours.chunks_per_slab(c))
            })
            .collect();
        assert_eq!(got, want, "memcached {args:?}");
    }
}
