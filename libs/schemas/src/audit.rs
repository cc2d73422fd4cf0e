//! The audit stream: one [`AuditEvent`] per issuance, revocation, login decision
//! and package change, published by the workers on `P.audit.<kind>` into the JetStream
//! stream `<PREFIX>_AUDIT` (bounded by age and size).
//!
//! Rule for every field: it says who, what, when and with which outcome, and **never holds a
//! secret**: no password, no account or plugin token (a token is named by its id), no client
//! secret, no signing key. A free-text `detail` is only ever one of our own messages about a
//! package (never a login's reason, which a package or a third party writes).

use serde::{Deserialize, Serialize};

use crate::codec::Schema;
use crate::error::ErrorCode;

pub const AUDIT_EVENT: Schema = Schema::v1("audit.event");
/// A message of several events of one kind (a MessagePack array of [`AuditEvent`]s): how
/// the workers publish them (docs/protocol.md §10).
pub const AUDIT_EVENTS: Schema = Schema::v1("audit.events");

/// The most events one `audit.events` message holds: with the largest events (a
/// `token.revoked` naming 100 token ids, ~4 KiB) the message stays well under
/// [`MAX_MESSAGE_BYTES`](crate::codec::MAX_MESSAGE_BYTES) only when few are that large,
/// so a publisher also cuts a batch by its encoded size.
pub const MAX_AUDIT_BATCH: usize = 128;

/// The body of an [`AUDIT_EVENTS`] message: events of one kind, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvents {
    pub events: Vec<AuditEvent>,
}

/// How many token ids one `token.revoked` event lists; `target.count` has the total.
pub const MAX_AUDIT_TOKEN_IDS: usize = 100;

/// What happened. Closed: adding a kind is a protocol change (docs/protocol.md §10). The
/// wire name (`token.issued`) is also the subject's tail (`P.audit.token.issued`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AuditKind {
    /// The broker issued a plugin token (recorded and distributed).
    #[serde(rename = "token.issued")]
    TokenIssued,
    /// The broker refused a token request for a credentials or route reason
    /// (`unauthenticated`, `not_found`); malformed requests and outages are not audited.
    #[serde(rename = "token.refused")]
    TokenRefused,
    /// An admin's revocation (by token id or by account), ok or not.
    #[serde(rename = "token.revoked")]
    TokenRevoked,
    /// An account token was issued by `auth.login` (local or through an app's package).
    #[serde(rename = "login.succeeded")]
    LoginSucceeded,
    /// `auth.login` refused the credentials (or the app's package failed).
    #[serde(rename = "login.failed")]
    LoginFailed,
    /// An admin created a local account (`users.add`), ok or not.
    #[serde(rename = "user.added")]
    UserAdded,
    /// An uploaded package passed every check and was stored.
    #[serde(rename = "package.uploaded")]
    PackageUploaded,
    /// An uploaded package was refused (nothing stored).
    #[serde(rename = "package.rejected")]
    PackageRejected,
    /// A node installed a stored package build under its plugin path.
    #[serde(rename = "package.installed")]
    PackageInstalled,
    /// A node removed a package that is no longer in the store.
    #[serde(rename = "package.removed")]
    PackageRemoved,
}

impl AuditKind {
    pub const ALL: [AuditKind; 10] = [
        AuditKind::TokenIssued,
        AuditKind::TokenRefused,
        AuditKind::TokenRevoked,
        AuditKind::LoginSucceeded,
        AuditKind::LoginFailed,
        AuditKind::UserAdded,
        AuditKind::PackageUploaded,
        AuditKind::PackageRejected,
        AuditKind::PackageInstalled,
        AuditKind::PackageRemoved,
    ];

    /// The wire name, e.g. `token.issued` (two subject tokens).
    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::TokenIssued => "token.issued",
            AuditKind::TokenRefused => "token.refused",
            AuditKind::TokenRevoked => "token.revoked",
            AuditKind::LoginSucceeded => "login.succeeded",
            AuditKind::LoginFailed => "login.failed",
            AuditKind::UserAdded => "user.added",
            AuditKind::PackageUploaded => "package.uploaded",
            AuditKind::PackageRejected => "package.rejected",
            AuditKind::PackageInstalled => "package.installed",
            AuditKind::PackageRemoved => "package.removed",
        }
    }

    pub fn parse(s: &str) -> Option<AuditKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for AuditKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `ok`, or the [`ErrorCode`] the caller received, as one string on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum AuditOutcome {
    Ok,
    Error(ErrorCode),
}

impl AuditOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::Ok => "ok",
            AuditOutcome::Error(code) => code.as_str(),
        }
    }
}

impl From<AuditOutcome> for String {
    fn from(o: AuditOutcome) -> String {
        o.as_str().to_owned()
    }
}

impl TryFrom<String> for AuditOutcome {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s == "ok" {
            return Ok(AuditOutcome::Ok);
        }
        ErrorCode::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .map(AuditOutcome::Error)
            .ok_or_else(|| format!("unknown outcome {s:?}"))
    }
}

impl std::fmt::Display for AuditOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which bus role acted. The workers cannot see a caller's NATS user, so this is the role
/// the subject is open to (`token.revoke`: admin), or `node` for what a worker does by itself
/// (a sync pass installing a package).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditRole {
    Client,
    Admin,
    Node,
}

/// Who acted. Fields that do not apply are left out.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AuditActor {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<AuditRole>,
    /// The account, once known (a token request after `auth.verify`; a successful login).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// The username a local login or `users.add` named (also on a failed login).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The third-party app a login went through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
}

/// A package build: name, version and SHA-256 of its `.wasm`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditPackage {
    pub name: String,
    pub version: String,
    pub sha256: String,
}

/// What was acted on. Fields that do not apply are left out.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AuditTarget {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin_id: Option<String>,
    /// Token ids (never tokens): the issued one, or up to [`MAX_AUDIT_TOKEN_IDS`] revoked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub token_ids: Vec<String>,
    /// The account a revocation named, or the account created by `users.add`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// The plugin servers an issued token was distributed to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<String>,
    /// How many tokens a revocation revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<AuditPackage>,
}

/// One entry of the audit stream. MessagePack (named fields) with header
/// `Tessera-Schema: audit.event/1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Unique id (also the JetStream `Nats-Msg-Id`, so a retried publish lands once).
    pub id: String,
    /// Unix milliseconds, when the worker decided.
    pub at: u64,
    pub kind: AuditKind,
    #[serde(default)]
    pub actor: AuditActor,
    #[serde(default)]
    pub target: AuditTarget,
    pub outcome: AuditOutcome,
    /// Our own message about a package rejection; never a login reason or anything a
    /// caller or a package wrote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The `Tessera-Request-Id` of the request that caused the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// `broker` or `auth`.
    pub worker: String,
    /// The worker instance (`broker-1a2b3c4d`, the auth node id).
    pub node: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{decode, encode};

    #[test]
    fn kinds_are_two_subject_tokens_and_round_trip() {
        for kind in AuditKind::ALL {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{kind}\""));
            assert_eq!(AuditKind::parse(kind.as_str()), Some(kind));
            let tokens: Vec<&str> = kind.as_str().split('.').collect();
            assert_eq!(tokens.len(), 2, "{kind}");
            assert!(tokens.iter().all(|t| crate::ids::check("kind", t).is_ok()));
        }
    }

    #[test]
    fn events_round_trip_with_outcome_as_a_string() {
        let ev = AuditEvent {
            id: "e1".into(),
            at: 1_700_000_000_000,
            kind: AuditKind::LoginFailed,
            actor: AuditActor {
                role: Some(AuditRole::Client),
                username: Some("ann".into()),
                ..Default::default()
            },
            target: AuditTarget::default(),
            outcome: AuditOutcome::Error(ErrorCode::Unauthenticated),
            detail: None,
            request_id: Some("r1".into()),
            worker: "auth".into(),
            node: "auth-1".into(),
        };
        let bytes = encode(&ev);
        assert_eq!(decode::<AuditEvent>(&bytes).unwrap(), ev);
        let value: serde_json::Value = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(value["outcome"], "unauthenticated");
        assert_eq!(value["kind"], "login.failed");
        assert!(value["target"].as_object().unwrap().is_empty());
        let ok: AuditOutcome = serde_json::from_str("\"ok\"").unwrap();
        assert_eq!(ok, AuditOutcome::Ok);
        assert!(serde_json::from_str::<AuditOutcome>("\"nope\"").is_err());
    }
}
