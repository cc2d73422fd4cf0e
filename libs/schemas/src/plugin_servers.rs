//! Per-plugin-server bus credentials: how a plugin server names itself when it connects,
//! and the record the admin stores for it (never the secret, only its SHA-256).
//!
//! A plugin server `ps1` connects as user `plugin-server.ps1` with the secret that
//! `tessera plugin-servers add ps1` printed once. nats-server hands that connection to the
//! auth callout (it is not a static role user), which looks the id up in the
//! `<P>_PLUGIN_SERVERS` bucket, compares the secret's SHA-256 and answers with permissions
//! scoped to `ps1` alone (docs/protocol.md, "Plugin-server credentials").

use serde::{Deserialize, Serialize};

use crate::ids::{self, InvalidId};

/// The user name prefix of plugin-server connections. A dot cannot occur in an id, so a
/// plugin-server user never collides with a static role user (`client`, `admin`, ...).
pub const USER_PREFIX: &str = "plugin-server.";

/// Bytes of a plugin server's bus secret (random; sent base64url-encoded, 43 characters).
pub const SECRET_LEN: usize = 32;

/// The user name prefix of a plugin server's *distribution* connection: the same secret,
/// permissions to read its distributions and nothing else. It is a connection of its own
/// because it must not carry the serving connection's response permission: nats-server
/// remembers the reply subject of every message delivered to a connection that may
/// respond, and JetStream deliveries (reply `$JS.ACK...`, never answered by an ordered
/// consumer) would pile up there for ever, each delivery scanning them all.
pub const DIST_USER_PREFIX: &str = "plugin-server-dist.";

/// The bus user name of plugin server `server_id` (its serving connection).
pub fn user_name(server_id: &str) -> String {
    format!("{USER_PREFIX}{server_id}")
}

/// The bus user name of plugin server `server_id`'s distribution connection.
pub fn dist_user_name(server_id: &str) -> String {
    format!("{DIST_USER_PREFIX}{server_id}")
}

/// The plugin server id a (serving) bus user name stands for; `None` for any other user.
pub fn server_id_of(user: &str) -> Option<&str> {
    user.strip_prefix(USER_PREFIX)
        .filter(|id| ids::check("server id", id).is_ok())
}

/// The plugin server id a distribution connection's user name stands for.
pub fn dist_server_id_of(user: &str) -> Option<&str> {
    user.strip_prefix(DIST_USER_PREFIX)
        .filter(|id| ids::check("server id", id).is_ok())
}

/// Checks a plugin server id the same way as every other id.
pub fn check_id(server_id: &str) -> Result<(), InvalidId> {
    ids::check("plugin server id", server_id)
}

/// The value stored under a plugin server id (MessagePack, named fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginServerRecord {
    /// SHA-256 of the raw 32-byte secret.
    #[serde(with = "serde_bytes")]
    pub secret_sha256: Vec<u8>,
    /// Unix seconds.
    pub created_at: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_round_trip_and_never_name_a_role() {
        assert_eq!(user_name("ps1"), "plugin-server.ps1");
        assert_eq!(server_id_of("plugin-server.ps1"), Some("ps1"));
        assert_eq!(dist_user_name("ps1"), "plugin-server-dist.ps1");
        assert_eq!(dist_server_id_of("plugin-server-dist.ps1"), Some("ps1"));
        assert_eq!(dist_server_id_of("plugin-server.ps1"), None);
        assert_eq!(server_id_of("plugin-server-dist.ps1"), None);
        for other in [
            "client",
            "plugin-server",
            "plugin-server.",
            "plugin-server.a.b",
            "plugin-server.a*",
            "x.ps1",
        ] {
            assert_eq!(server_id_of(other), None, "{other}");
        }
    }
}
