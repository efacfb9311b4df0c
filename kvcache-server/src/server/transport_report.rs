//! The TLS lines of `stats` and `stats settings`, as memcached 1.6.18 writes them, and
//! the UDP counters (ours).

use std::sync::atomic::Ordering::Relaxed;

use super::shared::Shared;
use crate::config::Config;
use crate::protocol::text::write_stat;

/// `stats`: with `-U`, the datagrams answered and dropped; with `-Z`, the handshake
/// failures and the age of the certificate.
pub(super) fn general(shared: &Shared, out: &mut Vec<u8>) {
    if let Some((_, udp)) = &shared.udp {
        write_stat(out, "udp_requests", udp.requests.load(Relaxed));
        write_stat(out, "udp_dropped", udp.dropped.load(Relaxed));
        write_stat(
            out,
            "udp_replies_dropped",
            udp.replies_dropped.load(Relaxed),
        );
    }
    let Some(tls) = &shared.tls else {
        return;
    };
    write_stat(
        out,
        "ssl_handshake_errors",
        tls.handshake_errors.load(Relaxed),
    );
    write_stat(
        out,
        "time_since_server_cert_refresh",
        shared
            .store
            .now()
            .saturating_sub(tls.last_refresh.load(Relaxed)),
    );
}

/// `stats settings`: the `-Z` and `-o ssl_*` settings.
pub(super) fn settings(cfg: &Config, out: &mut Vec<u8>) {
    let t = &cfg.transport.tls;
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    write_stat(out, "ssl_enabled", yes_no(t.enabled));
    write_stat(
        out,
        "ssl_chain_cert",
        t.chain_cert.as_deref().unwrap_or("(null)"),
    );
    write_stat(out, "ssl_key", t.key.as_deref().unwrap_or("(null)"));
    write_stat(out, "ssl_verify_mode", t.verify_mode);
    write_stat(out, "ssl_keyformat", t.keyformat);
    write_stat(out, "ssl_ciphers", "NULL");
    write_stat(out, "ssl_ca_cert", t.ca_cert.as_deref().unwrap_or("NULL"));
    write_stat(out, "ssl_wbuf_size", 16384);
    write_stat(out, "ssl_session_cache", yes_no(t.session_cache));
    write_stat(out, "ssl_kernel_tls", "no");
    write_stat(
        out,
        "ssl_min_version",
        if t.min_tls13 { "tlsv1.3" } else { "tlsv1.2" },
    );
}
