//! Writes the seed corpora (fuzz/seeds/<target>/): real encoded messages, tokens and
//! manifests, one file each, starting with the target's selector byte where it has one.
//! Deterministic (fixed key, fixed values), so a rerun rewrites the same files.
//!
//! `cargo run --manifest-path fuzz/Cargo.toml --example seeds` (no nightly flags needed).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::json;
use tessera_fuzz::FixedKey;
use tessera_schemas::assets::*;
use tessera_schemas::data::*;
use tessera_schemas::messages::*;
use tessera_schemas::packages::*;
use tessera_schemas::{ErrorCode, WireError, codec};

struct Out {
    dir: PathBuf,
}

impl Out {
    fn new(root: &Path, target: &str) -> Out {
        let dir = root.join(target);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Out { dir }
    }
    fn put(&self, name: &str, sel: Option<u8>, body: &[u8]) {
        let mut bytes = sel.map(|s| vec![s]).unwrap_or_default();
        bytes.extend_from_slice(body);
        fs::write(self.dir.join(name), bytes).unwrap();
    }
    fn msg<T: Serialize>(&self, name: &str, sel: u8, value: &T) {
        self.put(name, Some(sel), &codec::encode(value));
    }
}

fn packet() -> DataRequest {
    DataRequest {
        version: PACKET_VERSION,
        app_id: "demo-app".into(),
        plugin_token: "eyJhbGciOiJFZERTQSJ9.e30.c2ln".into(),
        timestamp: 1_764_000_000_000,
        nonce: "bm9uY2Utbm9uY2Utbm9uY2U".into(),
        operation: "forecast".into(),
        query: "city=Oslo".into(),
        body: br#"{"days":3}"#.to_vec(),
        verification: Verification {
            plugin_id: "weather".into(),
            user_ip: "192.0.2.10".into(),
            device_id: "device-42".into(),
        },
        signature: "wu6JCYjZNARHSZZAPkMtPk_QU9DEWUU301eEYfesOH4".into(),
    }
}

fn manifest(key: &FixedKey) -> PackageManifest {
    let mut m = PackageManifest {
        name: "http-password".into(),
        version: "1.0.0".into(),
        interface: INTERFACE_VERSION,
        sha256: "ab".repeat(32),
        publisher_key: base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            key.public,
        ),
        signature: String::new(),
    };
    m.signature = key.sign_raw(&m.signed_bytes());
    m
}

fn file(path: &str, ct: &str) -> AssetFile {
    AssetFile {
        path: path.into(),
        sha256: "cd".repeat(32),
        size: 42,
        content_type: ct.into(),
    }
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    let key = FixedKey::new();
    let s = |v: &str| v.to_owned();

    // wire_decode: selector = the type's index in the target's table.
    let w = Out::new(&root, "wire_decode");
    w.msg(
        "login",
        0,
        &LoginRequest {
            username: Some(s("ann")),
            password: Some(s("correct horse")),
            ..Default::default()
        },
    );
    w.msg(
        "login_app",
        0,
        &LoginRequest {
            app_id: Some(s("acme")),
            params: BTreeMap::from([(s("code"), s("xyz"))]),
            ..Default::default()
        },
    );
    w.msg(
        "login_reply",
        1,
        &LoginResponse {
            account_token: s("a.b.c"),
            account_id: s("acct"),
            expires_at: 1,
        },
    );
    w.msg(
        "verify",
        2,
        &VerifyRequest {
            account_token: s("a.b.c"),
        },
    );
    w.msg(
        "verify_reply",
        3,
        &VerifyResponse {
            account_id: s("acct"),
            issuer: s("tessera-auth"),
            expires_at: 1,
        },
    );
    w.msg(
        "users_add",
        4,
        &UsersAddRequest {
            username: s("ann"),
            password: s("pw"),
        },
    );
    w.msg(
        "users_add_reply",
        5,
        &UsersAddResponse {
            account_id: s("acct"),
        },
    );
    w.msg(
        "token_request",
        6,
        &TokenRequest {
            account_token: s("a.b.c"),
            plugin_id: s("weather"),
            idempotency_key: Some(s("k1")),
            device_id: Some(s("d1")),
            user_ip: Some(s("192.0.2.1")),
        },
    );
    w.msg(
        "token_reply",
        7,
        &TokenResponse {
            token: s("a.b.c"),
            token_id: s("t1"),
            plugin_id: s("weather"),
            account_id: s("acct"),
            expires_at: 1,
            servers: vec![s("ps1"), s("ps2")],
        },
    );
    w.msg(
        "revoke",
        8,
        &RevokeRequest {
            token_id: Some(s("t1")),
            account_id: None,
        },
    );
    w.msg("revoke_reply", 9, &RevokeResponse { revoked: 3 });
    w.msg("introspect", 10, &IntrospectRequest { token: s("a.b.c") });
    w.msg(
        "introspect_reply",
        11,
        &IntrospectResponse {
            active: true,
            token_id: Some(s("t1")),
            servers: vec![s("ps1")],
            ..Default::default()
        },
    );
    w.msg("dist_token", 12, &DistEvent::Token { token: s("a.b.c") });
    w.msg(
        "dist_tokens",
        12,
        &DistEvent::Tokens {
            tokens: vec![s("a.b.c"), s("d.e.f")],
        },
    );
    w.msg(
        "dist_revoke",
        12,
        &DistEvent::Revoke {
            token_ids: vec![s("t1"), s("t2")],
        },
    );
    w.msg(
        "route",
        13,
        &Route {
            servers: vec![s("ps1")],
            bind_device: true,
            bind_ip: false,
        },
    );
    w.msg(
        "echo_reply",
        14,
        &EchoReply {
            body: b"hi".to_vec(),
            account_id: s("acct"),
            plugin_id: s("weather"),
            server_id: s("ps1"),
        },
    );
    w.msg("data_request", 15, &packet());
    w.msg(
        "data_route",
        16,
        &DataRoute {
            server_id: s("ps1"),
            server_operation: s("echo"),
        },
    );
    w.msg(
        "client_app",
        17,
        &ClientApp {
            secret: vec![1; CLIENT_SECRET_LEN],
            created_at: 1,
        },
    );
    w.msg(
        "assets_publish",
        18,
        &AssetsPublishRequest {
            plugin_id: s("weather"),
            files: vec![
                file("index.html", "text/html"),
                file("img/logo.png", "image/png"),
            ],
        },
    );
    w.msg(
        "assets_publish_reply",
        19,
        &AssetsPublishResponse {
            plugin_id: s("weather"),
            version: 2,
            files: 2,
            bytes: 84,
            kid: s("k"),
        },
    );
    w.msg(
        "plugin_key",
        20,
        &PluginKeyRequest {
            plugin_id: s("weather"),
        },
    );
    w.msg(
        "plugin_key_record",
        21,
        &PluginKeyRecord {
            public_key: s("AAAA"),
            suite: s(SEAL_SUITE),
            created_at: 1,
        },
    );
    w.msg(
        "plugin_key_reply",
        22,
        &PluginKeyResponse {
            plugin_id: s("weather"),
            public_key: s("AAAA"),
            suite: s(SEAL_SUITE),
            created_at: 1,
        },
    );
    w.msg(
        "sealed",
        23,
        &SealedBox {
            suite: s(SEAL_SUITE),
            enc: vec![9; 32],
            ct: vec![8; 20],
        },
    );
    w.msg(
        "package_upload",
        24,
        &PackageUploadRequest {
            manifest: manifest(&key),
            staging: s("upload-1"),
        },
    );
    w.msg(
        "package_upload_reply",
        25,
        &PackageUploadResponse {
            name: s("p"),
            version: s("1"),
            sha256: "ab".repeat(32),
            replaced: false,
            node_id: s("n1"),
        },
    );
    w.msg(
        "packages_updated",
        26,
        &PackagesUpdated {
            name: s("p"),
            version: s("1"),
            sha256: "ab".repeat(32),
        },
    );
    w.msg(
        "node_status",
        27,
        &NodeStatus {
            node_id: s("n1"),
            in_sync: true,
            packages: vec![InstalledPackage {
                name: s("p"),
                version: s("1"),
                sha256: "ab".repeat(32),
                matches_store: true,
            }],
            missing: vec![s("q")],
            started_at: 1,
        },
    );
    w.msg(
        "package_record",
        28,
        &PackageRecord {
            manifest: manifest(&key),
            object: s("p/ab"),
            size: 10,
            uploaded_at: 1,
            uploaded_by: s("n1"),
        },
    );
    w.msg(
        "wire_error",
        29,
        &WireError::new(ErrorCode::Unavailable, "redis is down"),
    );
    w.put("schema_header", Some(30), b"token.request/1");
    w.put(
        "content_type",
        Some(30),
        b"application/msgpack; charset=binary",
    );
    w.put(
        "oversized",
        Some(31),
        &codec::encode(&VerifyRequest {
            account_token: s("a.b.c"),
        }),
    );

    let d = Out::new(&root, "data_packet");
    d.put("worked_example", None, &codec::encode(&packet()));
    let mut p = packet();
    p.verification.user_ip = s("2001:db8::1");
    p.body.clear();
    p.query.clear();
    d.put("ipv6_empty_body", None, &codec::encode(&p));

    let exp = 4_102_444_800u64; // 2100-01-01: stays unexpired.
    let plugin = json!({"iss": "tessera-broker", "sub": "acct", "plugin_id": "weather", "aud": ["ps1"], "jti": "t1", "iat": 1_764_000_000u64, "exp": exp});
    let bound = json!({"iss": "tessera-broker", "sub": "acct", "plugin_id": "weather", "aud": ["ps1", "ps2"], "jti": "t2", "iat": 1_764_000_000u64, "exp": exp, "device_id": "d1", "user_ip": "192.0.2.1"});
    let t = Out::new(&root, "plugin_token");
    t.put("signed_token", Some(0), key.sign_json(&plugin).as_bytes());
    t.put(
        "signed_bound_token",
        Some(0),
        key.sign_json(&bound).as_bytes(),
    );
    t.put("expired_token", Some(0), key.sign_json(&json!({"iss": "tessera-broker", "sub": "a", "plugin_id": "w", "aud": [], "jti": "x", "iat": 1, "exp": 2})).as_bytes());
    t.put(
        "alg_none",
        Some(0),
        b"eyJhbGciOiJub25lIiwia2lkIjoiZnV6ei1rZXkifQ.e30.",
    );
    t.put("claims", Some(1), plugin.to_string().as_bytes());
    t.put("bound_claims", Some(1), bound.to_string().as_bytes());

    let files = json!([
        {"path": "index.html", "sha256": "cd".repeat(32), "size": 42, "content_type": "text/html"},
        {"path": "img/logo.png", "sha256": "ef".repeat(32), "size": 7, "content_type": "image/png"}
    ]);
    let claims = json!({"iss": MANIFEST_ISSUER, "kind": MANIFEST_KIND, "plugin_id": "weather", "version": 1, "iat": 1_764_000_000u64, "files": files});
    let a = Out::new(&root, "asset_manifest");
    a.put(
        "signed_manifest",
        Some(0),
        key.sign_json(&claims).as_bytes(),
    );
    a.put("claims", Some(1), claims.to_string().as_bytes());

    let m = Out::new(&root, "package_manifest");
    let json_manifest = serde_json::to_vec(&manifest(&key)).unwrap();
    m.put("manifest", Some(0), &json_manifest);
    m.put("manifest_to_sign", Some(1), &json_manifest);
    m.msg(
        "upload",
        2,
        &PackageUploadRequest {
            manifest: manifest(&key),
            staging: s("upload-1"),
        },
    );
    m.msg(
        "record",
        3,
        &PackageRecord {
            manifest: manifest(&key),
            object: s("p/ab"),
            size: 10,
            uploaded_at: 1,
            uploaded_by: s("n1"),
        },
    );
    m.put("app_config", Some(4), br#"{"app_id":"acme","domain":"127.0.0.1","port":8080,"scheme":"http","client_id":"c","secret_ref":"kv:acme","package":"http-password","package_version":"1.0.0","enabled":true,"allowed_hosts":["127.0.0.1"],"settings":{"path":"/login"},"timeout_ms":2000}"#);
    println!("seeds written under {}", root.display());
}
