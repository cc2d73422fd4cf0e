//! Redis users (ACL), one per role that reaches Redis, each with only the keys and commands
//! it needs: Redis is part of the trust boundary (whoever can write a token record can revive
//! a revoked token). The default user is off, so a connection without credentials can do
//! nothing but authenticate.
//!
//! | user | keys | commands |
//! |---|---|---|
//! | `broker` | `<P>:{??}:token:*`, `<P>:{??}:account:*`, `<P>:{??}:idem:*`, `<P>:{??}:pending` (read and write) | strings, sorted sets, expiry, `DEL`, `EXISTS`, transactions, `WAIT`, `PING` |
//! | `gateway` | `<P>:{??}:token:*` **read only**; `<P>:nonce:*` (write) | `GET`, `SET`, `PING` |
//! | `admin` | all | all |
//!
//! `{??}` is a ledger shard's hash tag (`tessera_ledger::keys`, "Shards"): two characters
//! between braces (a glob's `?`; braces are plain characters to Redis's matcher). Both
//! workers may also ask a Redis Cluster for its slot map (`CLUSTER SLOTS`, which names no
//! key), which the cluster client needs; on one Redis the command is refused harmlessly.
//!
//! On a Redis Cluster every node needs the same users (the same ACL file or `--user` lines
//! on each, as the test harness's cluster does): a client logs in to each master it is sent
//! to, and a replica promoted in a failover must know them too.
//!
//! `admin` is the operator's (inspection, `INFO`, `KEYS` while debugging) and the test
//! harness's; no worker uses it, and no rendered worker env file carries its password.

use std::fmt::Write as _;

/// A Redis user of the deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RedisUser {
    Broker,
    Gateway,
    Admin,
}

impl RedisUser {
    pub const ALL: [RedisUser; 3] = [RedisUser::Broker, RedisUser::Gateway, RedisUser::Admin];

    pub fn name(self) -> &'static str {
        match self {
            RedisUser::Broker => "broker",
            RedisUser::Gateway => "gateway",
            RedisUser::Admin => "admin",
        }
    }

    /// The environment variable carrying this user's password in rendered env files.
    pub fn password_env(self) -> String {
        format!(
            "TESSERA_REDIS_PASSWORD_{}",
            self.name().to_ascii_uppercase()
        )
    }

    /// The ACL rules (after `on >password`) for keys under `prefix`.
    pub fn rules(self, prefix: &str) -> String {
        // Connection housekeeping client libraries send (HELLO, AUTH, PING, CLIENT SETNAME,
        // SELECT 0): allowed to all. (`CLIENT SETINFO` is newer than Redis 7.0, which refuses
        // to load a rule naming it; a library that sends it ignores the refusal.)
        const CONNECTION: &str = "+@connection +client|setname +select +cluster|slots";
        match self {
            RedisUser::Broker => format!(
                "resetkeys ~{prefix}:{{??}}:token:* ~{prefix}:{{??}}:account:* \
                 ~{prefix}:{{??}}:idem:* ~{prefix}:{{??}}:pending \
                 resetchannels -@all {CONNECTION} +get +mget +set +del +exists +pexpire +expire \
                 +zadd +zrem +zrangebyscore +zremrangebyscore +multi +exec +discard +wait"
            ),
            RedisUser::Gateway => format!(
                "resetkeys %R~{prefix}:{{??}}:token:* %RW~{prefix}:nonce:* resetchannels -@all \
                 {CONNECTION} +get +set"
            ),
            RedisUser::Admin => "resetkeys ~* resetchannels &* +@all".to_owned(),
        }
    }

    /// The whole ACL line for this user with `password`.
    pub fn acl_line(self, password: &str, prefix: &str) -> String {
        format!(
            "user {} reset on >{password} {}",
            self.name(),
            self.rules(prefix)
        )
    }

    /// `redis://<user>:<password>@<host:port>/` (the password is alphanumeric).
    pub fn url(self, password: &str, host_port: &str) -> String {
        format!("redis://{}:{password}@{host_port}/", self.name())
    }
}

/// A password for each [`RedisUser`]. Generated fresh for a dev stack or a deployment;
/// never committed, never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisCredentials {
    passwords: Vec<(RedisUser, String)>,
}

impl std::fmt::Debug for RedisCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedisCredentials(***)")
    }
}

impl RedisCredentials {
    pub fn generate() -> RedisCredentials {
        RedisCredentials {
            passwords: RedisUser::ALL
                .into_iter()
                .map(|u| (u, crate::server::random_password()))
                .collect(),
        }
    }

    /// Rebuilds them from `get(user)`; `None` if any is missing or not alphanumeric.
    pub fn from_passwords(mut get: impl FnMut(RedisUser) -> Option<String>) -> Option<Self> {
        let mut passwords = Vec::new();
        for user in RedisUser::ALL {
            let p = get(user)?;
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return None;
            }
            passwords.push((user, p));
        }
        Some(RedisCredentials { passwords })
    }

    pub fn password(&self, user: RedisUser) -> &str {
        self.passwords
            .iter()
            .find(|(u, _)| *u == user)
            .map(|(_, p)| p.as_str())
            .expect("every user has a password")
    }

    /// The ACL file for keys under `prefix`.
    pub fn acl_file(&self, prefix: &str) -> String {
        acl_file(&self.passwords, prefix)
    }

    /// `user`'s URL to the Redis at `host_port`.
    pub fn url(&self, user: RedisUser, host_port: &str) -> String {
        user.url(self.password(user), host_port)
    }

    /// `base` (`redis://host:port/...` or `rediss://...` for TLS) with `user`'s credentials
    /// in place of any it had.
    pub fn url_from(&self, user: RedisUser, base: &str) -> String {
        let (scheme, rest) = base.split_once("://").unwrap_or(("redis", base));
        let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
        format!("{scheme}://{}:{}@{rest}", user.name(), self.password(user))
    }

    /// `(user, ACL rules with its password)` for each user, as `redis-server --user` lines.
    pub fn acl_lines(&self, prefix: &str) -> Vec<String> {
        self.passwords
            .iter()
            .map(|(u, p)| u.acl_line(p, prefix))
            .collect()
    }
}

/// An ACL file: the default user off, then each user with its password.
pub fn acl_file(passwords: &[(RedisUser, String)], prefix: &str) -> String {
    let mut out = String::from("user default off resetkeys -@all\n");
    for (user, password) in passwords {
        let _ = writeln!(out, "{}", user.acl_line(password, prefix));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gateway_reads_token_records_and_writes_nonces_only() {
        let rules = RedisUser::Gateway.rules("tessera");
        assert!(rules.contains("%R~tessera:{??}:token:*"));
        assert!(rules.contains("%RW~tessera:nonce:*"));
        assert!(!rules.contains("~tessera:idem"));
        assert!(!rules.contains("+del"));
        let broker = RedisUser::Broker.rules("acme.dev");
        assert!(broker.contains("~acme.dev:{??}:token:*"));
        assert!(broker.contains("~acme.dev:{??}:pending "));
        assert!(broker.contains("+wait"));
        assert!(!broker.contains("nonce"));
        let c = RedisCredentials::generate();
        let url = c.url_from(RedisUser::Gateway, "rediss://old:pw@redis:6380/0");
        assert_eq!(
            url,
            format!(
                "rediss://gateway:{}@redis:6380/0",
                c.password(RedisUser::Gateway)
            )
        );
        let file = acl_file(&[(RedisUser::Broker, "pw1".into())], "tessera");
        assert!(file.starts_with("user default off"));
        assert!(file.contains("user broker reset on >pw1 resetkeys"));
    }
}
