//! The SASL `PLAIN` mechanism's message (RFC 4616): `[authzid] NUL authcid NUL passwd`.

/// A decoded `PLAIN` message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plain<'a> {
    /// The identity to act as (empty: the same as `user`).
    pub authzid: &'a [u8],
    /// The user name (authentication identity).
    pub user: &'a [u8],
    /// The password: everything after the second NUL, NULs included (a password with a
    /// NUL in it matches no entry of a password file).
    pub password: &'a [u8],
}

impl<'a> Plain<'a> {
    /// Splits a message; `None` without two NULs or with an empty user name.
    pub fn parse(msg: &'a [u8]) -> Option<Plain<'a>> {
        let first = memchr::memchr(0, msg)?;
        let rest = &msg[first + 1..];
        let second = memchr::memchr(0, rest)?;
        let user = &rest[..second];
        if user.is_empty() {
            return None;
        }
        Some(Plain {
            authzid: &msg[..first],
            user,
            password: &rest[second + 1..],
        })
    }

    /// Whether the client asks to act only as itself (an empty authzid or its own name):
    /// the only authorization a password file can grant.
    pub fn acts_as_self(&self) -> bool {
        self.authzid.is_empty() || self.authzid == self.user
    }
}

#[cfg(test)]
mod tests {
    use super::Plain;

    #[test]
    fn splits_at_the_first_two_nuls() {
        let p = Plain::parse(b"\0alice\0secret").unwrap();
        assert_eq!(
            (p.authzid, p.user, p.password),
            (&b""[..], &b"alice"[..], &b"secret"[..])
        );
        assert!(p.acts_as_self());
        let p = Plain::parse(b"bob\0alice\0se\0cret").unwrap();
        assert_eq!((p.authzid, p.password), (&b"bob"[..], &b"se\0cret"[..]));
        assert!(!p.acts_as_self());
        assert_eq!(Plain::parse(b"alicesecret"), None);
        assert_eq!(Plain::parse(b"\0alice"), None);
        assert_eq!(Plain::parse(b"\0\0secret"), None);
        assert_eq!(Plain::parse(b""), None);
    }
}
