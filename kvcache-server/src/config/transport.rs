//! The transport and access-control flags: `-s`/`-a` (unix socket), `-U` (UDP), `-Z` and
//! the `-o ssl_*` options (TLS), `-S` (SASL), with memcached's meaning.

/// `-s`, `-a`, `-U`, `-Z` (with the `-o ssl_*` options), `-S`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transport {
    /// `-s`: listen on this unix stream socket instead of TCP.
    pub unix_socket: Option<String>,
    /// `-a`: the unix socket's mode (default 0700).
    pub unix_mask: u32,
    /// `-U`: the UDP port (0: off).
    pub udp_port: u16,
    /// `-Z` and `-o ssl_*`: TLS.
    pub tls: TlsConfig,
    /// `-S`: SASL authentication on the binary protocol.
    pub sasl: bool,
}

impl Default for Transport {
    fn default() -> Self {
        Transport {
            unix_socket: None,
            unix_mask: DEFAULT_UNIX_MASK,
            udp_port: 0,
            tls: TlsConfig::default(),
            sasl: false,
        }
    }
}

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

fn number<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, String> {
    v.trim()
        .parse()
        .map_err(|_| format!("invalid value for {flag}: '{v}'"))
}

impl TlsConfig {
    /// One `-o ssl_*` suboption; `None` if `name` is not one.
    pub(super) fn option(&mut self, name: &str, val: Option<&str>) -> Option<Result<(), String>> {
        let need = |v: Option<&str>| match v {
            Some(v) if !v.is_empty() => Ok(v.to_owned()),
            _ => Err(format!("Missing {name} argument")),
        };
        let r = match name {
            "ssl_chain_cert" => need(val).map(|v| self.chain_cert = Some(v)),
            "ssl_key" => need(val).map(|v| self.key = Some(v)),
            "ssl_ca_cert" => need(val).map(|v| self.ca_cert = Some(v)),
            "ssl_verify_mode" => match val.map(|v| number::<u8>(name, v)) {
                Some(Ok(m)) if m <= 3 => {
                    self.verify_mode = m;
                    Ok(())
                }
                _ => Err("Invalid ssl_verify_mode. Use help to see valid options.".into()),
            },
            "ssl_keyformat" => number(name, val.unwrap_or("")).map(|k| self.keyformat = k),
            "ssl_min_version" => match val {
                Some("tlsv1.2") => {
                    self.min_tls13 = false;
                    Ok(())
                }
                Some("tlsv1.3") => {
                    self.min_tls13 = true;
                    Ok(())
                }
                _ => Err("Invalid ssl_min_version. Use help to see valid options.".into()),
            },
            "ssl_session_cache" => {
                self.session_cache = true;
                Ok(())
            }
            "ssl_handshake_timeout" => match val.map(|v| number::<u32>(name, v)) {
                Some(Ok(s)) if s > 0 => {
                    self.handshake_timeout = s;
                    Ok(())
                }
                _ => Err("ssl_handshake_timeout must be a number of seconds above 0".into()),
            },
            // memcached's TLS tunables we accept and have no use for.
            "ssl_ciphers" | "ssl_wbuf_size" | "ssl_kernel_tls" => Ok(()),
            _ => return None,
        };
        Some(r)
    }
}

impl Transport {
    /// `-s`, `-a`, `-U`, `-Z`, `-S`; `None` if `c` is none of them.
    pub(super) fn flag(&mut self, c: char, v: &str) -> Option<Result<(), String>> {
        let r = match c {
            's' => {
                if v.len() > MAX_UNIX_PATH {
                    Err(format!(
                        "unix socket path too long ({} bytes, at most {MAX_UNIX_PATH}): {v}",
                        v.len()
                    ))
                } else {
                    self.unix_socket = Some(v.to_owned());
                    Ok(())
                }
            }
            'a' => match u32::from_str_radix(v.trim(), 8) {
                Ok(m) if m <= 0o777 => {
                    self.unix_mask = m;
                    Ok(())
                }
                _ => Err(format!("invalid value for -a: '{v}' (an octal mode)")),
            },
            'U' => number("-U", v).map(|p| self.udp_port = p),
            'Z' => {
                self.tls.enabled = true;
                Ok(())
            }
            'S' => {
                self.sasl = true;
                Ok(())
            }
            _ => return None,
        };
        Some(r)
    }

    /// memcached's checks across flags, after all are read (`ascii_auth`: `-Y`).
    pub(super) fn check(&self, ascii_auth: bool) -> Result<(), String> {
        if self.sasl && ascii_auth {
            return Err("ERROR: You cannot allow the ASCII protocol while using SASL.".into());
        }
        if self.sasl && self.udp_port != 0 {
            return Err("ERROR: Cannot enable UDP while using binary SASL authentication.".into());
        }
        let t = &self.tls;
        if t.enabled {
            if t.chain_cert.is_none() || t.key.is_none() {
                return Err("ssl_chain_cert and ssl_key are required with -Z".into());
            }
            if t.verify_mode > 0 && t.ca_cert.is_none() {
                return Err("ssl_verify_mode 1 to 3 needs ssl_ca_cert".into());
            }
        }
        Ok(())
    }
}
