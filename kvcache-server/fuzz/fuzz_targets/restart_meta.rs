//! Feeds arbitrary bytes to the warm-restart metadata parser as a start reads
//! `<file>.meta`, and checks what a start relies on: no panic, and nothing is accepted
//! unless its last line is a CRC-32 of everything before it and it names this format
//! version and these settings.
#![no_main]

use kvcache_server::store::{check_restart_meta, StoreConfig, RESTART_VERSION};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let cfg = StoreConfig::new(64 << 20);
    if let Ok(slabs) = check_restart_meta(data, &cfg) {
        let text = std::str::from_utf8(data).expect("accepted text is UTF-8");
        let at = text.rfind("crc32 ").expect("accepted text has a checksum");
        let crc = u32::from_str_radix(text[at + 6..].trim(), 16).expect("a hex checksum");
        assert_eq!(crc32fast::hash(&data[..at]), crc);
        let version = format!("kvcache-restart {RESTART_VERSION}\nmemory_limit 67108864\n");
        assert!(text.starts_with(&version));
        assert!(slabs <= text.matches("\ns ").count());
    }
});
