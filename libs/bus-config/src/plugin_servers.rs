//! Per-plugin-server bus secrets: made by the admin (`tessera plugin-servers add`), checked
//! by the auth callout. Only the SHA-256 of a secret is ever stored; the secret itself is
//! shown once and then lives only with the plugin server.
//!
//! A plain SHA-256 is enough here (no password hash): the secret is 32 random bytes, so
//! there is nothing to guess and nothing a slow hash would protect.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tessera_schemas::plugin_servers::{PluginServerRecord, SECRET_LEN, user_name};

/// A plugin server's bus credentials, as `plugin-servers add` hands them out.
#[derive(Clone, PartialEq, Eq)]
pub struct PluginServerSecret {
    pub server_id: String,
    secret: [u8; SECRET_LEN],
}

impl std::fmt::Debug for PluginServerSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginServerSecret")
            .field("server_id", &self.server_id)
            .field("secret", &"***")
            .finish()
    }
}

impl PluginServerSecret {
    /// A fresh random secret for `server_id`.
    pub fn generate(server_id: &str) -> PluginServerSecret {
        let mut secret = [0u8; SECRET_LEN];
        aws_lc_rs::rand::fill(&mut secret).expect("system randomness");
        PluginServerSecret {
            server_id: server_id.to_owned(),
            secret,
        }
    }

    /// The bus user name (`plugin-server.<id>`).
    pub fn user(&self) -> String {
        user_name(&self.server_id)
    }

    /// The password to connect with: the secret, base64url without padding (URL-safe).
    pub fn password(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.secret)
    }

    /// The record to store under the id (the hash, never the secret).
    pub fn record(&self, created_at: u64) -> PluginServerRecord {
        PluginServerRecord {
            secret_sha256: digest(&self.secret).to_vec(),
            created_at,
        }
    }

    /// `nats://<user>:<password>@h1,nats://<user>:<password>@h2,...` for `hosts`
    /// (`host:port` each).
    pub fn url(&self, hosts: &[String]) -> String {
        hosts
            .iter()
            .map(|h| format!("nats://{}:{}@{h}", self.user(), self.password()))
            .collect::<Vec<_>>()
            .join(",")
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    d.as_ref().try_into().expect("SHA-256 is 32 bytes")
}

/// Whether `password` (as a plugin server sends it) is the secret `record` holds the hash
/// of. Constant time in the compared digests; a malformed password is simply wrong.
pub fn password_matches(record: &PluginServerRecord, password: &str) -> bool {
    let Ok(secret) = URL_SAFE_NO_PAD.decode(password.as_bytes()) else {
        return false;
    };
    if secret.len() != SECRET_LEN {
        return false;
    }
    aws_lc_rs::constant_time::verify_slices_are_equal(&digest(&secret), &record.secret_sha256)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_issued_secret_matches() {
        let s = PluginServerSecret::generate("ps1");
        let record = s.record(1);
        assert_eq!(record.secret_sha256.len(), 32);
        assert!(password_matches(&record, &s.password()));
        let other = PluginServerSecret::generate("ps1");
        assert!(!password_matches(&record, &other.password()));
        for bad in ["", "x", "!!!", &s.password()[..40]] {
            assert!(!password_matches(&record, bad), "{bad:?}");
        }
        assert_eq!(s.password().len(), 43);
        assert!(!format!("{s:?}").contains(&s.password()));
    }

    #[test]
    fn urls_carry_the_user_and_secret_for_each_host() {
        let s = PluginServerSecret::generate("ps1");
        let url = s.url(&["n1:4222".into(), "n2:4222".into()]);
        let want = format!("nats://plugin-server.ps1:{}@n1:4222", s.password());
        assert_eq!(url.split(',').next(), Some(want.as_str()));
        assert_eq!(url.split(',').count(), 2);
    }
}
