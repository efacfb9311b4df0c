//! SASL authentication of the binary protocol (`-S`), as memcached 1.6.18 answers it.
//!
//! Users and passwords come from the file named by `MEMCACHED_SASL_PWDB` (upstream
//! memcached's own password file: `user:password` lines, the password ending at the next
//! `:` or the end of the line), read at start and again on SIGHUP. The only mechanism is
//! `PLAIN`. A connection under `-S` speaks the binary protocol only (memcached binds it:
//! a text request is read as a 24-byte header whose magic is wrong, and the connection
//! closes without a reply). Before authentication only `SASL list mechs` (0x20),
//! `SASL auth` (0x21), `SASL step` (0x22) and `version` run; any other request is
//! answered `Auth failure.` (status 0x20) and the connection closes.
//!
//! Replies, checked against memcached 1.6.18 with Cyrus SASL and `mech_list: plain`:
//! - list mechs: `PLAIN`; with a key, extras or body: `Invalid arguments`, close;
//! - auth/step without a key or with extras: `Invalid arguments`, close; a mechanism
//!   name over 32 bytes: `Invalid arguments`, the body discarded;
//! - auth `PLAIN` with the right credentials: `Authenticated`; a wrong password, an
//!   unknown user, a broken token, another mechanism: status 0x20 `Auth failure.`,
//!   the connection stays open (counted in `auth_cmds` and `auth_errors`);
//! - auth `PLAIN` with an empty body: status 0x21 (continue), empty; the next step
//!   carries the token;
//! - step before such an auth: `Auth failure.`;
//! - every SASL command first drops the connection's authentication, as memcached's
//!   `init_sasl_conn` does: a failed re-authentication leaves it unauthenticated.
//!
//! Passwords are compared in constant time (in the lengths only).

use std::io;
use std::sync::{Arc, RwLock};

use super::auth::ct_eq;
use crate::exec::{After, Counters, Step};
use crate::protocol::binary::{self, opcode, Header, Status, HEADER_LEN};
use crate::protocol::sasl::Plain;

/// The environment variable naming the password file.
pub const PWDB_ENV: &str = "MEMCACHED_SASL_PWDB";

/// memcached's `MAX_SASL_MECH_LEN`.
const MAX_MECH_LEN: usize = 32;

/// The mechanisms offered.
const MECHS: &[u8] = b"PLAIN";

/// The password file's entries.
#[derive(Default)]
pub(crate) struct PasswordDb {
    entries: Vec<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for PasswordDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the passwords.
        f.debug_struct("PasswordDb")
            .field("entries", &self.entries.len())
            .finish()
    }
}

impl PasswordDb {
    /// Parses `user:password[:...]` lines; lines without `:` hold no entry.
    pub fn parse(data: &[u8]) -> PasswordDb {
        let mut entries = Vec::new();
        for line in data.split(|&b| b == b'\n') {
            let Some(colon) = memchr::memchr(b':', line) else {
                continue;
            };
            let rest = &line[colon + 1..];
            let end = rest
                .iter()
                .position(|&b| matches!(b, b':' | b'\r' | 0))
                .unwrap_or(rest.len());
            entries.push((line[..colon].to_vec(), rest[..end].to_vec()));
        }
        PasswordDb { entries }
    }

    /// Whether `user`/`password` is an entry; every entry is compared in full.
    pub fn check(&self, user: &[u8], password: &[u8]) -> bool {
        let mut ok = false;
        for (u, p) in &self.entries {
            ok |= ct_eq(u, user) & ct_eq(p, password);
        }
        ok
    }
}

/// The password file and its path, shared by the workers.
#[derive(Debug)]
pub(crate) struct Sasl {
    path: String,
    db: RwLock<Arc<PasswordDb>>,
}

impl Sasl {
    /// Reads the file named by `MEMCACHED_SASL_PWDB`.
    pub fn from_env() -> io::Result<Sasl> {
        let path = std::env::var(PWDB_ENV).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("Error initializing sasl: -S needs {PWDB_ENV} to name a password file"),
            )
        })?;
        let db = Self::load(&path)?;
        Ok(Sasl {
            path,
            db: RwLock::new(Arc::new(db)),
        })
    }

    fn load(path: &str) -> io::Result<PasswordDb> {
        let data = std::fs::read(path).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("Error initializing sasl: cannot read {path}: {e}"),
            )
        })?;
        Ok(PasswordDb::parse(&data))
    }

    /// SIGHUP: reads the file again; on failure the old entries stay.
    pub fn reload(&self) -> io::Result<()> {
        let db = Self::load(&self.path)?;
        *self.db.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(db);
        Ok(())
    }

    fn current(&self) -> Arc<PasswordDb> {
        self.db.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Spawns the thread that re-reads the file on SIGHUP.
    pub fn reload_on_sighup(self: &Arc<Self>) -> io::Result<()> {
        let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGHUP])?;
        let me = self.clone();
        std::thread::Builder::new()
            .name("sasl-reload".into())
            .spawn(move || {
                for _ in signals.forever() {
                    if let Err(e) = me.reload() {
                        eprintln!("{e}");
                    }
                }
            })?;
        Ok(())
    }
}

/// A connection's SASL state.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct SaslConn {
    /// Authenticated: every command runs.
    pub authenticated: bool,
    /// `SASL auth PLAIN` came without a token: the next step carries it.
    pub awaiting_step: bool,
}

/// Handles the binary request at the front of `buf` if SASL has a say in it: a SASL
/// command, or a command of an unauthenticated connection. `None`: run it as usual
/// (also when its header is incomplete or invalid: the parser answers that).
pub(crate) fn intercept(
    sasl: &Sasl,
    state: &mut SaslConn,
    buf: &[u8],
    max_body: usize,
    out: &mut Vec<u8>,
    counters: &mut Counters,
) -> Option<Step> {
    let h = Header::decode(buf.get(..HEADER_LEN)?)?;
    let extlen = usize::from(h.extlen);
    let keylen = usize::from(h.keylen);
    let bodylen = h.bodylen as usize;
    if keylen + extlen > bodylen {
        return None;
    }
    let close = |out: &mut Vec<u8>, status| {
        binary::write_error(out, &h, status);
        Some(Step::Done {
            used: 0,
            after: After::Close,
        })
    };
    match h.opcode {
        opcode::SASL_LIST_MECHS => {
            if extlen != 0 || keylen != 0 || bodylen != 0 {
                return close(out, Status::InvalidArguments);
            }
            *state = SaslConn::default();
            binary::write_body(out, &h, MECHS);
            Some(Step::Done {
                used: HEADER_LEN,
                after: After::Continue,
            })
        }
        opcode::SASL_AUTH | opcode::SASL_STEP => {
            if extlen != 0 || keylen == 0 {
                return close(out, Status::InvalidArguments);
            }
            let vlen = bodylen - keylen;
            if keylen > MAX_MECH_LEN || vlen > max_body {
                let status = if keylen > MAX_MECH_LEN {
                    Status::InvalidArguments
                } else {
                    Status::OutOfMemory
                };
                binary::write_error(out, &h, status);
                return Some(Step::Done {
                    used: HEADER_LEN,
                    after: After::Swallow(bodylen),
                });
            }
            let total = HEADER_LEN + bodylen;
            if buf.len() < total {
                return Some(Step::Incomplete {
                    used: 0,
                    need: total,
                });
            }
            let mech = &buf[HEADER_LEN..HEADER_LEN + keylen];
            let data = &buf[HEADER_LEN + keylen..total];
            let step = h.opcode == opcode::SASL_STEP;
            let awaiting = state.awaiting_step;
            *state = SaslConn::default();
            let token = if step {
                awaiting.then_some(data)
            } else if mech != b"PLAIN" {
                None
            } else if data.is_empty() {
                state.awaiting_step = true;
                binary::write_header(out, &h, Status::AuthContinue, 0, 0, 0, 0);
                return Some(Step::Done {
                    used: total,
                    after: After::Continue,
                });
            } else {
                Some(data)
            };
            let ok = token
                .and_then(Plain::parse)
                .is_some_and(|p| p.acts_as_self() && sasl.current().check(p.user, p.password));
            counters.auth_cmds += 1;
            if ok {
                state.authenticated = true;
                binary::write_body(out, &h, b"Authenticated");
            } else {
                counters.auth_errors += 1;
                binary::write_error(out, &h, Status::AuthError);
            }
            Some(Step::Done {
                used: total,
                after: After::Continue,
            })
        }
        opcode::VERSION => None,
        _ if state.authenticated => None,
        _ => close(out, Status::AuthError),
    }
}

#[cfg(test)]
mod tests {
    use super::PasswordDb;

    #[test]
    fn password_file_lines() {
        let db = PasswordDb::parse(b"alice:secret\nbob:pw:extra\r\nnocolon\ncarol:x\r\n");
        assert!(db.check(b"alice", b"secret"));
        assert!(db.check(b"bob", b"pw"));
        assert!(db.check(b"carol", b"x"));
        assert!(!db.check(b"alice", b"secre"));
        assert!(!db.check(b"alice", b"secret\0"));
        assert!(!db.check(b"nocolon", b""));
    }
}
