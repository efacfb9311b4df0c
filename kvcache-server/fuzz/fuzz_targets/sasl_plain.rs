//! Feeds arbitrary bytes to the SASL `PLAIN` message parser and checks that a parsed
//! message is exactly `authzid NUL user NUL password` with a non-empty user free of NULs.
#![no_main]

use kvcache_server::protocol::sasl::Plain;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match Plain::parse(data) {
        Some(p) => {
            assert!(!p.user.is_empty());
            assert!(!p.authzid.contains(&0) && !p.user.contains(&0));
            let mut back = p.authzid.to_vec();
            back.push(0);
            back.extend_from_slice(p.user);
            back.push(0);
            back.extend_from_slice(p.password);
            assert_eq!(back, data);
            assert_eq!(p.acts_as_self(), p.authzid.is_empty() || p.authzid == p.user);
        }
        None => {
            let nuls: Vec<usize> = data
                .iter()
                .enumerate()
                .filter(|(_, &b)| b == 0)
                .map(|(i, _)| i)
                .collect();
            assert!(nuls.len() < 2 || nuls[1] == nuls[0] + 1);
        }
    }
});
