//! Third-party logins through auth packages across several auth nodes: upload,
//! update broadcast, a node that missed it, node join, the consistency check against a
//! tampered file, and the fall-back to local accounts. Real nats-server, real Redis, real
//! Extism, and a real HTTP third party (`StubIdp`).
//!
//! The sandbox limits and upload rejections are in `auth_packages_sandbox.rs`.

use std::collections::BTreeMap;

use base64::Engine;
use tessera_devstack::idp::StubIdp;
use tessera_schemas::ErrorCode;
use tessera_schemas::claims::AccountClaims;
use tessera_schemas::packages::NodeStatus;
use tessera_tests::packages::{dist_wasm, local_app};
use tessera_tests::{Backend, Role, Stack, assert_eventually};

const SECRET: &str = "s3cret-of-tessera";

fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The claims of an account token, read without verifying (the broker verifies).
fn claims(token: &str) -> AccountClaims {
    let payload = token.split('.').nth(1).expect("a JWT");
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&json).expect("account claims")
}

fn runs(nodes: &[NodeStatus], package: &str, version: &str) -> bool {
    nodes.iter().all(|n| {
        n.in_sync
            && n.packages
                .iter()
                .any(|p| p.name == package && p.version == version && p.matches_store)
    })
}

/// Logs in through `app` with mode=version until a node answers without a mismatch;
/// returns the subject (the misbehave build's version).
async fn version_answer(stack: &Stack, app: &str) -> Option<String> {
    match stack
        .client()
        .await
        .login_app(app, params(&[("mode", "version")]))
        .await
    {
        Ok(r) => Some(claims(&r.account_token).idp_sub.expect("idp_sub")),
        Err(e) => {
            assert_eq!(e.code(), ErrorCode::PackageMismatch, "{e}");
            assert!(e.is_retryable());
            None
        }
    }
}

#[tokio::test]
async fn third_party_login_issues_an_account_token_the_broker_accepts() {
    tessera_tests::init_logging();
    let stack = Stack::builder().backend(Backend::Local).start().await;
    let idp = StubIdp::start("tessera", SECRET).await.unwrap();
    idp.add_user("ann", "ann-password", "user-42", "Ann Example");
    idp.add_code("code-1", "https://app.example/cb", "user-77");
    stack
        .upload_package(&dist_wasm("http-password"), "http-password", "1.0.0")
        .await
        .expect("upload");
    stack
        .upload_package(&dist_wasm("oauth2-code"), "oauth2-code", "1.0.0")
        .await
        .expect("upload");
    stack
        .put_app(local_app("acme", "http-password", idp.port()), Some(SECRET))
        .await;
    stack
        .put_app(
            local_app("acme-oauth", "oauth2-code", idp.port()),
            Some(SECRET),
        )
        .await;
    let client = stack.client().await;

    let login = client
        .login_app(
            "acme",
            params(&[("username", "ann"), ("password", "ann-password")]),
        )
        .await
        .expect("third-party login");
    assert_eq!(login.account_id, "acme:user-42");
    let c = claims(&login.account_token);
    assert_eq!(c.idp.as_deref(), Some("acme"));
    assert_eq!(c.idp_sub.as_deref(), Some("user-42"));
    assert_eq!(c.name.as_deref(), Some("Ann Example"));
    assert!(idp.hits("/userinfo") >= 1);

    // The broker takes it like any account token (auth.verify accepts it).
    stack.route("weather", &["ps1"]).await;
    let ps1 = stack.plugin_server("ps1").await;
    let token = client
        .request_token(&login.account_token, "weather", None)
        .await
        .expect("plugin token for a third-party account");
    assert_eq!(token.account_id, "acme:user-42");
    drop(ps1);

    // A wrong password is a typed 401 naming the app.
    let err = client
        .login_app(
            "acme",
            params(&[("username", "ann"), ("password", "wrong")]),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Unauthenticated, "{err}");
    assert!(err.to_string().contains("acme"), "{err}");

    // The second shipped package: authorization code flow.
    let login = client
        .login_app(
            "acme-oauth",
            params(&[
                ("code", "code-1"),
                ("redirect_uri", "https://app.example/cb"),
            ]),
        )
        .await
        .expect("oauth2 login");
    assert_eq!(login.account_id, "acme-oauth:user-77");
    let err = client
        .login_app(
            "acme-oauth",
            params(&[
                ("code", "code-1"),
                ("redirect_uri", "https://app.example/cb"),
            ]),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        ErrorCode::Unauthenticated,
        "a code is single-use: {err}"
    );

    // The secret never leaves through the admin listing.
    let apps = stack.admin().await.apps().await.unwrap();
    assert!(!serde_json::to_string(&apps).unwrap().contains(SECRET));

    // An unreachable upstream (outage) is package_failed, not a crash or a 401.
    idp.fail_with(Some(500));
    let err = client
        .login_app(
            "acme",
            params(&[("username", "ann"), ("password", "ann-password")]),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::PackageFailed, "{err}");
    assert!(err.to_string().contains("acme"), "{err}");
    stack.shutdown().await;
}

#[tokio::test]
async fn an_upload_on_one_node_reaches_all_three() {
    tessera_tests::init_logging();
    let stack = Stack::builder()
        .backend(Backend::Local)
        .auth_nodes(3)
        .start()
        .await;
    stack
        .upload_package(&dist_wasm("misbehave"), "misbehave", "1.0.0")
        .await
        .expect("upload v1");
    stack.put_app(local_app("fx", "misbehave", 9), None).await;
    assert_eventually!(runs(&stack.nodes(3).await, "misbehave", "1.0.0"));
    assert_eventually!(version_answer(&stack, "fx").await.as_deref() == Some("1"));

    let stored = stack
        .upload_package(&dist_wasm("misbehave-2"), "misbehave", "2.0.0")
        .await
        .expect("upload v2");
    assert!(stored.replaced);
    // Every node runs the new build: each reports it, each has it under its plugin path.
    assert_eventually!(
        runs(&stack.nodes(3).await, "misbehave", "2.0.0"),
        "all three nodes run 2.0.0: {:?}",
        stack.nodes(3).await
    );
    let nodes = stack.nodes(3).await;
    assert_eq!(nodes.len(), 3, "{nodes:?}");
    for i in 0..3 {
        let dir = stack.auth_plugin_path(i).join("misbehave");
        let files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            files
                .iter()
                .any(|f| f.starts_with("2.0.0-") && f.ends_with(".wasm")),
            "node {i}: {files:?}"
        );
        assert!(
            !files.iter().any(|f| f.starts_with("1.0.0-")),
            "node {i}: {files:?}"
        );
    }
    // And every login, whichever node takes it, answers from build 2.
    for _ in 0..12 {
        let seen = std::sync::Mutex::new(None);
        assert_eventually!({
            let v = version_answer(&stack, "fx").await;
            let answered = v.is_some();
            *seen.lock().unwrap() = v;
            answered
        });
        assert_eq!(seen.lock().unwrap().as_deref(), Some("2"));
    }
    stack.shutdown().await;
}

#[tokio::test]
async fn a_node_stopped_during_an_upload_converges_when_it_returns() {
    tessera_tests::init_logging();
    let mut stack = Stack::builder()
        .backend(Backend::Local)
        .auth_nodes(3)
        .start()
        .await;
    stack
        .upload_package(&dist_wasm("misbehave"), "misbehave", "1.0.0")
        .await
        .expect("upload v1");
    assert_eventually!(runs(&stack.nodes(3).await, "misbehave", "1.0.0"));

    stack.stop_auth_node(2).await;
    stack
        .upload_package(&dist_wasm("misbehave-2"), "misbehave", "2.0.0")
        .await
        .expect("upload v2 while node 3 is down");
    assert_eventually!(runs(&stack.nodes(2).await, "misbehave", "2.0.0"));
    // Node 3 missed the broadcast. Its plugin path still holds 1.0.0.
    let dir = stack.auth_plugin_path(2).join("misbehave");
    let has = |prefix: &str| {
        std::fs::read_dir(&dir)
            .unwrap()
            .any(|e| e.unwrap().file_name().to_string_lossy().starts_with(prefix))
    };
    assert!(has("1.0.0-"));

    // Back, it installs the stored build before it serves.
    stack.restart_auth_node(2).await;
    assert!(has("2.0.0-") && !has("1.0.0-"));
    let nodes = stack.nodes(3).await;
    let node3 = nodes
        .iter()
        .find(|n| n.node_id == stack.auth_node_id(2))
        .expect("node 3 answers");
    assert!(node3.in_sync, "{node3:?}");
    assert_eq!(node3.packages[0].version, "2.0.0");
    stack.shutdown().await;
}

#[tokio::test]
async fn a_joining_node_installs_everything_before_it_serves() {
    tessera_tests::init_logging();
    let mut stack = Stack::builder().backend(Backend::Local).start().await;
    stack
        .upload_package(&dist_wasm("http-password"), "http-password", "1.0.0")
        .await
        .expect("upload");
    stack
        .upload_package(&dist_wasm("misbehave"), "misbehave", "1.0.0")
        .await
        .expect("upload");
    // Listen for the announcement as an auth node would.
    let auth = stack.nats(Role::Auth).await;
    let mut joined = auth
        .subscribe(stack.subjects().auth_nodes_joined())
        .await
        .unwrap();
    auth.flush().await.unwrap();

    stack.start_auth().await;
    // start_auth returns once the node serves; by then both packages are installed.
    for name in ["http-password", "misbehave"] {
        let dir = stack.auth_plugin_path(1).join(name);
        assert!(
            std::fs::read_dir(&dir)
                .map(|mut d| d.any(|e| e.unwrap().path().extension().is_some_and(|x| x == "wasm")))
                .unwrap_or(false),
            "{name} is installed at {}",
            dir.display()
        );
    }
    let msg = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        futures::StreamExt::next(&mut joined),
    )
    .await
    .expect("a joined announcement")
    .unwrap();
    let status: NodeStatus = tessera_schemas::decode(&msg.payload).unwrap();
    assert_eq!(status.node_id, stack.auth_node_id(1));
    assert!(status.in_sync, "{status:?}");
    assert_eq!(status.packages.len(), 2, "{status:?}");
    stack.shutdown().await;
}

#[tokio::test]
async fn a_tampered_installed_package_is_detected_and_reinstalled() {
    tessera_tests::init_logging();
    let stack = Stack::builder()
        .backend(Backend::Local)
        .reconcile_interval(std::time::Duration::from_millis(300))
        .start()
        .await;
    let wasm = dist_wasm("misbehave");
    stack
        .upload_package(&wasm, "misbehave", "1.0.0")
        .await
        .expect("upload");
    stack.put_app(local_app("fx", "misbehave", 9), None).await;
    let client = stack.client().await;
    let ok = params(&[("mode", "ok"), ("subject", "u1")]);
    client.login_app("fx", ok.clone()).await.expect("login");

    let dir = stack.auth_plugin_path(0).join("misbehave");
    let file = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "wasm"))
        .unwrap();
    std::fs::write(&file, b"\0asm tampered").unwrap();

    // The next login sees it: a retryable mismatch, not a run of the changed file.
    let err = client.login_app("fx", ok.clone()).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::PackageMismatch, "{err}");
    assert!(err.is_retryable());
    // The node reinstalls from the stored copy and serves again.
    assert_eventually!(client.login_app("fx", ok.clone()).await.is_ok());
    assert_eq!(std::fs::read(&file).unwrap(), wasm);
    assert!(stack.nodes(1).await[0].in_sync);

    // A change that keeps the size and the modification time passes the per-login `stat`;
    // the node's periodic pass re-hashes the file and puts the stored copy back.
    let stamp = std::fs::metadata(&file).unwrap().modified().unwrap();
    let mut same_size = wasm.clone();
    let mid = same_size.len() / 2;
    same_size[mid] ^= 0xFF;
    std::fs::write(&file, &same_size).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(stamp)
        .unwrap();
    assert_eventually!(std::fs::read(&file).unwrap() == wasm);
    // The restored file is on disk (renamed into place) a moment before the node records
    // its new stamp: a login in between gets the retryable mismatch, so wait for success.
    assert_eventually!(client.login_app("fx", ok.clone()).await.is_ok());
    assert!(stack.nodes(1).await[0].in_sync);
    stack.shutdown().await;
}

#[tokio::test]
async fn a_disabled_app_falls_back_to_local_accounts() {
    tessera_tests::init_logging();
    let stack = Stack::builder().backend(Backend::Local).start().await;
    let idp = StubIdp::start("tessera", SECRET).await.unwrap();
    idp.add_user("ann", "third-party-pw", "user-42", "Ann");
    let local = stack.user("ann", "local-password-1").await;
    stack
        .upload_package(&dist_wasm("http-password"), "http-password", "1.0.0")
        .await
        .expect("upload");
    let mut app = local_app("acme", "http-password", idp.port());
    app.enabled = false;
    stack.put_app(app, Some(SECRET)).await;
    let client = stack.client().await;
    let admin = stack.admin().await;

    // Disabled: the params are checked against local accounts; the third party is not asked.
    let login = client
        .login_app(
            "acme",
            params(&[("username", "ann"), ("password", "local-password-1")]),
        )
        .await
        .expect("local login through a disabled app");
    assert_eq!(login.account_id, local.account_id);
    assert_eq!(claims(&login.account_token).idp, None);
    assert_eq!(idp.hits("/userinfo"), 0);

    // Enabled: the package decides.
    admin.set_app_enabled("acme", true).await.unwrap();
    assert_eventually!(
        client
            .login_app(
                "acme",
                params(&[("username", "ann"), ("password", "third-party-pw")]),
            )
            .await
            .is_ok_and(|r| r.account_id == "acme:user-42")
    );

    // Disabled again: local once more.
    admin.set_app_enabled("acme", false).await.unwrap();
    assert_eventually!(
        client
            .login_app(
                "acme",
                params(&[("username", "ann"), ("password", "local-password-1")]),
            )
            .await
            .is_ok_and(|r| r.account_id == local.account_id)
    );

    // An app nobody configured is a typed not_found.
    let err = client.login_app("nope", params(&[])).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::NotFound, "{err}");
    stack.shutdown().await;
}
