//! The transport and access-control flags: `-s`/`-a` (unix socket), `-U` (UDP), `-Z` and
//! the `-o ssl_*` options (TLS), `-S` (SASL), with memcached's meaning.

use super::{err, num, Config, ConfigError};

/// `-Z` and the `-o ssl_*` options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsConfig {
    /// `-Z`: TLS on the TCP port.
    pub enabled: bool,
    /// `ssl_chain_cert`: the server's certificate chain (PEM).
    pub chain_cert: Option<String>,
    /// `ssl_key`: the server's private key (PEM).
    pub key: Option<String>,
    /// `ssl_ca_cert`: the CAs client certificates are checked against (PEM).
    pub ca_cert: Option<String>,
    /// `ssl_verify_mode`: 0 none, 1 check a certificate the client presents, 2 and 3
    /// require one.
    pub verify_mode: u8,
    /// `ssl_min_version=tlsv1.3` (else TLS 1.2 is the minimum).
    pub min_tls13: bool,
    /// `ssl_session_cache`: resumable sessions.
    pub session_cache: bool,
    /// `ssl_keyformat` (accepted; PEM is the only format read).
    pub keyformat: u8,
    /// `ssl_handshake_timeout` (ours): seconds a client has to finish its handshake.
    pub handshake_timeout: u32,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            enabled: false,
            chain_cert: None,
            key: None,
            ca_cert: None,
            verify_mode: 0,
            min_tls13: false,
            session_cache: false,
            keyformat: 1,
            handshake_timeout: 10,
        }
    }
}

/// The `-a` default (memcached's `0700`).
pub const DEFAULT_UNIX_MASK: u32 = 0o700;

/// The longest unix socket path (`sun_path` holds 108 bytes with its NUL).
pub const MAX_UNIX_PATH: usize = 107;

/// One `-o ssl_*` suboption; `None` if `name` is not one.
pub(super) fn ssl_option(
    cfg: &mut Config,
    name: &str,
    val: Option<&str>,
) -> Option<Result<(), ConfigError>> {
    let t = &mut cfg.tls;
    let need = |v: Option<&str>| match v {
        Some(v) if !v.is_empty() => Ok(v.to_owned()),
        _ => err(format!("Missing {name} argument")),
    };
    let r = match name {
        "ssl_chain_cert" => need(val).map(|v| t.chain_cert = Some(v)),
        "ssl_key" => need(val).map(|v| t.key = Some(v)),
        "ssl_ca_cert" => need(val).map(|v| t.ca_cert = Some(v)),
        "ssl_verify_mode" => match val.map(|v| num::<u8>(name, v)) {
            Some(Ok(m)) if m <= 3 => {
                t.verify_mode = m;
                Ok(())
            }
            _ => err("Invalid ssl_verify_mode. Use help to see valid options."),
        },
        "ssl_keyformat" => num(name, val.unwrap_or("")).map(|k| t.keyformat = k),
        "ssl_min_version" => match val {
            Some("tlsv1.2") => {
                t.min_tls13 = false;
                Ok(())
            }
            Some("tlsv1.3") => {
                t.min_tls13 = true;
                Ok(())
            }
            _ => err("Invalid ssl_min_version. Use help to see valid options."),
        },
        "ssl_session_cache" => {
            t.session_cache = true;
            Ok(())
        }
        "ssl_handshake_timeout" => match val.map(|v| num::<u32>(name, v)) {
            Some(Ok(s)) if s > 0 => {
                t.handshake_timeout = s;
                Ok(())
            }
            _ => err("ssl_handshake_timeout must be a number of seconds above 0"),
        },
        // memcached's TLS tunables we accept and have no use for.
        "ssl_ciphers" | "ssl_wbuf_size" | "ssl_kernel_tls" => Ok(()),
        _ => return None,
    };
    Some(r)
}

/// `-s`, `-a`, `-U`, `-Z`, `-S`; `None` if `c` is none of them.
pub(super) fn flag(cfg: &mut Config, c: char, v: &str) -> Option<Result<(), ConfigError>> {
    let r = match c {
        's' => {
            if v.len() > MAX_UNIX_PATH {
                err(format!(
                    "unix socket path too long ({} bytes, at most {MAX_UNIX_PATH}): {v}",
                    v.len()
                ))
            } else {
                cfg.unix_socket = Some(v.to_owned());
                Ok(())
            }
        }
        'a' => match u32::from_str_radix(v.trim(), 8) {
            Ok(m) if m <= 0o777 => {
                cfg.unix_mask = m;
                Ok(())
            }
            _ => err(format!("invalid value for -a: '{v}' (an octal mode)")),
        },
        'U' => num("-U", v).map(|p| cfg.udp_port = p),
        'Z' => {
            cfg.tls.enabled = true;
            Ok(())
        }
        'S' => {
            cfg.sasl = true;
            Ok(())
        }
        _ => return None,
    };
    Some(r)
}

/// memcached's checks across flags, after all are read.
pub(super) fn check(cfg: &Config) -> Result<(), ConfigError> {
    if cfg.sasl && cfg.auth_file.is_some() {
        return err("ERROR: You cannot allow the ASCII protocol while using SASL.");
    }
    if cfg.sasl && cfg.udp_port != 0 {
        return err("ERROR: Cannot enable UDP while using binary SASL authentication.");
    }
    let t = &cfg.tls;
    if t.enabled {
        if t.chain_cert.is_none() || t.key.is_none() {
            return err("ssl_chain_cert and ssl_key are required with -Z");
        }
        if t.verify_mode > 0 && t.ca_cert.is_none() {
            return err("ssl_verify_mode 1 to 3 needs ssl_ca_cert");
        }
        if cfg.unix_socket.is_some() {
            return err("-Z serves TLS on TCP: it cannot be used with -s");
        }
    }
    Ok(())
}
