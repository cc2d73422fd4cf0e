//! A sample of every MessagePack message's Rust type, each a struct literal (so the compiler
//! makes it name every field), checked against docs/asyncapi.json.

use std::collections::BTreeSet;

use serde_json::Value;

use super::Checker;
use crate::assets::*;
use crate::audit::*;
use crate::data::{DataRequest, Verification};
use crate::messages::*;
use crate::packages::*;
use crate::{ErrorCode, WireError};

fn s(text: &str) -> String {
    text.to_owned()
}

/// Every MessagePack message of the document, with a sample of its Rust type (a struct
/// literal: the compiler makes it name every field). Returns the ids checked.
pub(super) fn check_every_message(doc: &Value) -> BTreeSet<String> {
    let mut c = Checker {
        doc,
        checked: BTreeSet::new(),
    };
    let node = NodeStatus {
        node_id: s("n"),
        in_sync: true,
        packages: vec![InstalledPackage {
            name: s("p"),
            version: s("1"),
            sha256: s("a"),
            matches_store: true,
        }],
        missing: vec![s("m")],
        started_at: 1,
    };
    let file = AssetFile {
        path: s("a"),
        sha256: s("b"),
        size: 1,
        content_type: s("text/css"),
    };
    c.check(
        "authLoginRequest",
        LoginRequest {
            username: Some(s("u")),
            password: Some(s("p")),
            app_id: Some(s("a")),
            params: [(s("k"), s("v"))].into(),
        },
    );
    c.check(
        "authLoginReply",
        LoginResponse {
            account_token: s("t"),
            account_id: s("a"),
            expires_at: 1,
        },
    );
    c.check(
        "authVerifyRequest",
        VerifyRequest {
            account_token: s("t"),
        },
    );
    c.check(
        "authVerifyReply",
        VerifyResponse {
            account_id: s("a"),
            issuer: s("i"),
            expires_at: 1,
        },
    );
    c.check(
        "usersAddRequest",
        UsersAddRequest {
            username: s("u"),
            password: s("p"),
        },
    );
    c.check("usersAddReply", UsersAddResponse { account_id: s("a") });
    c.check(
        "tokenRequest",
        TokenRequest {
            account_token: s("t"),
            plugin_id: s("p"),
            idempotency_key: Some(s("k")),
            device_id: Some(s("d")),
            user_ip: Some(s("192.0.2.1")),
        },
    );
    c.check(
        "tokenReply",
        TokenResponse {
            token: s("t"),
            token_id: s("i"),
            plugin_id: s("p"),
            account_id: s("a"),
            expires_at: 1,
            servers: vec![s("ps1")],
        },
    );
    c.check(
        "tokenRevokeRequest",
        RevokeRequest {
            token_id: Some(s("t")),
            account_id: Some(s("a")),
        },
    );
    c.check("tokenRevokeReply", RevokeResponse { revoked: 1 });
    c.check(
        "tokenIntrospectRequest",
        IntrospectRequest { token: s("t") },
    );
    c.check(
        "tokenIntrospectReply",
        IntrospectResponse {
            active: true,
            token_id: Some(s("t")),
            account_id: Some(s("a")),
            plugin_id: Some(s("p")),
            expires_at: Some(1),
            servers: vec![s("ps1")],
        },
    );
    c.check(
        "distributionOpenRequest",
        DistOpenRequest {
            start_seq: 1,
            stream: "TESSERA_DIST".into(),
        },
    );
    c.check("distEventToken", DistEvent::Token { token: s("t") });
    c.check(
        "distEventTokens",
        DistEvent::Tokens {
            tokens: vec![s("t")],
        },
    );
    c.check(
        "distEventRevoke",
        DistEvent::Revoke {
            token_ids: vec![s("t")],
        },
    );
    c.check(
        "echoReply",
        EchoReply {
            body: vec![1],
            account_id: s("a"),
            plugin_id: s("p"),
            server_id: s("s"),
        },
    );
    c.check(
        "dataRequest",
        DataRequest {
            version: 1,
            app_id: s("a"),
            plugin_token: s("t"),
            timestamp: 1,
            nonce: s("n"),
            operation: s("o"),
            query: s("q"),
            body: vec![1],
            verification: Verification {
                plugin_id: s("p"),
                user_ip: s("192.0.2.1"),
                device_id: s("d"),
            },
            signature: s("s"),
        },
    );
    c.check(
        "packagesUploadRequest",
        PackageUploadRequest {
            manifest: PackageManifest {
                name: s("n"),
                version: s("1"),
                interface: 1,
                sha256: s("h"),
                publisher_key: s("k"),
                signature: s("s"),
            },
            staging: s("st"),
        },
    );
    c.check(
        "packagesUploadReply",
        PackageUploadResponse {
            name: s("n"),
            version: s("1"),
            sha256: s("h"),
            replaced: true,
            node_id: s("n"),
        },
    );
    c.check(
        "packagesUpdated",
        PackagesUpdated {
            name: s("n"),
            version: s("1"),
            sha256: s("h"),
        },
    );
    c.check("nodesJoined", node.clone());
    c.check("nodesStatusReply", node);
    c.check(
        "assetsPublishRequest",
        AssetsPublishRequest {
            plugin_id: s("p"),
            files: vec![file],
        },
    );
    c.check(
        "assetsPublishReply",
        AssetsPublishResponse {
            plugin_id: s("p"),
            version: 1,
            files: 1,
            bytes: 1,
            kid: s("k"),
        },
    );
    c.check("pluginsKeyRequest", PluginKeyRequest { plugin_id: s("p") });
    c.check(
        "pluginsKeyReply",
        PluginKeyResponse {
            plugin_id: s("p"),
            public_key: s("k"),
            suite: s(SEAL_SUITE),
            created_at: 1,
        },
    );
    c.check(
        "sealedBox",
        SealedBox {
            suite: s(SEAL_SUITE),
            enc: vec![1],
            ct: vec![2],
        },
    );
    let event = AuditEvent {
        id: s("i"),
        at: 1,
        kind: AuditKind::TokenIssued,
        actor: AuditActor {
            role: Some(AuditRole::Client),
            account_id: Some(s("a")),
            username: Some(s("u")),
            app_id: Some(s("p")),
        },
        target: AuditTarget {
            plugin_id: Some(s("p")),
            token_ids: vec![s("t")],
            account_id: Some(s("a")),
            servers: vec![s("ps1")],
            count: Some(1),
            package: Some(AuditPackage {
                name: s("n"),
                version: s("1"),
                sha256: s("h"),
            }),
        },
        outcome: AuditOutcome::Ok,
        detail: Some(s("d")),
        request_id: Some(s("r")),
        worker: s("broker"),
        node: s("broker-1"),
    };
    c.check("auditEvent", event.clone());
    c.check(
        "auditEvents",
        AuditEvents {
            events: vec![event],
        },
    );
    c.check(
        "error",
        WireError {
            retry_after_ms: Some(1),
            ..WireError::new(ErrorCode::RateLimited, "m")
        },
    );
    c.checked
}
