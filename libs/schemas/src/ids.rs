//! Identifiers that become subject tokens or KV keys: plugin ids, server ids, operation
//! names, usernames. One rule for all of them keeps subjects and keys unambiguous.

use thiserror::Error;

pub const MAX_ID_LEN: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{what} {value:?} is invalid: use 1-64 characters from A-Z a-z 0-9 _ -")]
pub struct InvalidId {
    pub what: &'static str,
    pub value: String,
}

/// Checks an id used in a subject or key: `[A-Za-z0-9_-]{1,64}`.
pub fn check(what: &'static str, value: &str) -> Result<(), InvalidId> {
    let ok = !value.is_empty()
        && value.len() <= MAX_ID_LEN
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(InvalidId {
            what,
            value: value.chars().take(80).collect(),
        })
    }
}

/// Checks a subject prefix: dot-separated tokens, each a valid id.
pub fn check_prefix(value: &str) -> Result<(), InvalidId> {
    if value.split('.').all(|t| check("prefix", t).is_ok()) {
        Ok(())
    } else {
        Err(InvalidId {
            what: "prefix",
            value: value.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_rejects() {
        assert!(check("plugin id", "weather-2_x").is_ok());
        for bad in ["", "a.b", "a*", "a>", "a b", "é", &"x".repeat(65)] {
            assert!(check("plugin id", bad).is_err(), "{bad:?}");
        }
        assert!(check_prefix("tessera").is_ok());
        assert!(check_prefix("acme.dev").is_ok());
        assert!(check_prefix("acme..dev").is_err());
    }
}
