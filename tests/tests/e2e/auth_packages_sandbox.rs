//! The auth-package sandbox and the upload checks: a package that loops
//! or allocates without bound is cut off and the node stays healthy; a package reaching for
//! a host the app does not allow is refused; an upload with a bad signature, an untrusted
//! key, a wrong digest or a module that is not a package is rejected with nothing stored.

use std::collections::BTreeMap;

use futures::TryStreamExt;
use tessera_devstack::idp::StubIdp;
use tessera_schemas::ErrorCode;
use tessera_sdk::operator::packages::{PublisherKey, sign};
use tessera_tests::packages::{dist_wasm, local_app};
use tessera_tests::{Backend, Role, Stack};

fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[tokio::test]
async fn runaway_packages_are_cut_off_and_the_node_stays_healthy() {
    tessera_tests::init_logging();
    let stack = Stack::builder().backend(Backend::Local).start().await;
    stack
        .upload_package(&dist_wasm("misbehave"), "misbehave", "1.0.0")
        .await
        .expect("upload");
    let mut app = local_app("fx", "misbehave", 9);
    app.timeout_ms = Some(300);
    app.max_memory_pages = Some(64); // 4 MiB
    stack.put_app(app, None).await;
    let client = stack
        .client()
        .await
        .with_timeout(std::time::Duration::from_secs(10));
    let ok = params(&[("mode", "ok"), ("subject", "u1")]);
    client.login_app("fx", ok.clone()).await.expect("warm-up");

    for mode in ["loop", "alloc"] {
        let err = client
            .login_app("fx", params(&[("mode", mode)]))
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::PackageFailed, "{mode}: {err}");
        assert!(
            err.to_string().contains("fx"),
            "{mode}: names the app: {err}"
        );
    }
    // Several at once, more than the pool: all cut off, none hangs the node.
    let runaway: Vec<_> = (0..4)
        .map(|_| client.login_app("fx", params(&[("mode", "loop")])))
        .collect();
    for r in futures::future::join_all(runaway).await {
        assert_eq!(r.unwrap_err().code(), ErrorCode::PackageFailed);
    }
    // Healthy: the same app still serves, and so do local logins.
    let login = client
        .login_app("fx", ok)
        .await
        .expect("after the runaways");
    assert_eq!(login.account_id, "fx:u1");
    stack.user("ann", "local-password-1").await;
    stack.shutdown().await;
}

#[tokio::test]
async fn a_host_the_app_does_not_allow_is_refused() {
    tessera_tests::init_logging();
    let stack = Stack::builder().backend(Backend::Local).start().await;
    let idp = StubIdp::start("tessera", "x").await.unwrap();
    stack
        .upload_package(&dist_wasm("misbehave"), "misbehave", "1.0.0")
        .await
        .expect("upload");
    // Allowed: 127.0.0.1 only. "localhost" reaches the same server, by another host name.
    stack
        .put_app(local_app("fx", "misbehave", idp.port()), None)
        .await;
    let url = format!("http://localhost:{}/userinfo", idp.port());
    let err = stack
        .client()
        .await
        .login_app("fx", params(&[("mode", "host"), ("url", &url)]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::PackageFailed, "{err}");
    assert!(err.to_string().contains("not allowed"), "{err}");
    assert_eq!(
        idp.hits("/userinfo"),
        0,
        "the request never left the sandbox"
    );
    stack.shutdown().await;
}

/// Names of the objects in an object store (read with the auth role, which owns them).
async fn objects(stack: &Stack, bucket: String) -> Vec<String> {
    let js = async_nats::jetstream::new(stack.nats(Role::Auth).await);
    let store = js.get_object_store(bucket).await.unwrap();
    store
        .list()
        .await
        .unwrap()
        .map_ok(|o| o.name)
        .try_collect()
        .await
        .unwrap()
}

#[tokio::test]
async fn bad_signatures_and_digests_are_rejected_with_nothing_stored() {
    tessera_tests::init_logging();
    let stack = Stack::builder().backend(Backend::Local).start().await;
    let admin = stack.admin().await;
    let wasm = dist_wasm("misbehave");
    let good = sign(stack.publisher(), &wasm, "misbehave", "1.0.0").unwrap();

    let stranger = PublisherKey::generate();
    let mut bumped = good.clone();
    bumped.version = "9.9.9".into();
    let mut swapped_key = sign(&stranger, &wasm, "misbehave", "1.0.0").unwrap();
    swapped_key.publisher_key = good.publisher_key.clone();
    let garbage = b"\0asm not really a module".to_vec();
    let cases = [
        (
            "untrusted publisher",
            wasm.clone(),
            sign(&stranger, &wasm, "misbehave", "1.0.0").unwrap(),
        ),
        ("field changed after signing", wasm.clone(), bumped),
        ("signature by another key", wasm.clone(), swapped_key),
        (
            "digest of other bytes",
            dist_wasm("misbehave-2"),
            good.clone(),
        ),
        (
            "not a package",
            garbage.clone(),
            sign(stack.publisher(), &garbage, "misbehave", "1.0.0").unwrap(),
        ),
    ];
    for (what, bytes, manifest) in cases {
        let err = admin.upload_package(&bytes, &manifest).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::PackageRejected, "{what}: {err}");
        assert!(!err.is_retryable(), "{what}");
    }
    // Nothing stored: no index record, no package object, no staged leftover, nothing installed.
    assert!(admin.packages().await.unwrap().is_empty());
    assert!(
        objects(&stack, stack.subjects().packages_store())
            .await
            .is_empty()
    );
    assert!(
        objects(&stack, stack.subjects().package_staging_store())
            .await
            .is_empty()
    );
    assert!(
        std::fs::read_dir(stack.auth_plugin_path(0))
            .unwrap()
            .next()
            .is_none()
    );
    let node = &stack.nodes(1).await[0];
    assert!(
        node.packages.is_empty() && node.missing.is_empty(),
        "{node:?}"
    );

    // The good one goes through, which shows the failures were about the input.
    let stored = admin.upload_package(&wasm, &good).await.expect("upload");
    assert!(!stored.replaced);
    assert_eq!(admin.packages().await.unwrap().len(), 1);
    assert!(
        objects(&stack, stack.subjects().package_staging_store())
            .await
            .is_empty()
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn a_missing_package_or_pinned_version_is_a_typed_error_naming_the_app() {
    tessera_tests::init_logging();
    let stack = Stack::builder().backend(Backend::Local).start().await;
    stack
        .put_app(local_app("ghost", "not-uploaded", 9), None)
        .await;
    let client = stack.client().await;
    let err = client.login_app("ghost", params(&[])).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::PackageFailed, "{err}");
    assert!(err.to_string().contains("ghost"), "{err}");

    stack
        .upload_package(&dist_wasm("misbehave"), "misbehave", "1.0.0")
        .await
        .expect("upload");
    let mut pinned = local_app("pinned", "misbehave", 9);
    pinned.package_version = Some("3.0.0".into());
    stack.put_app(pinned, None).await;
    let err = client
        .login_app("pinned", params(&[("mode", "ok"), ("subject", "u")]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::PackageFailed, "{err}");
    assert!(err.to_string().contains("pinned"), "{err}");
    stack.shutdown().await;
}

/// Nothing a package keeps in memory passes from one login to the next: the `misbehave`
/// package in "remember" mode keeps each login's `secret` param in a static and answers with
/// what an earlier call left there. Every login, one after the other on the same app and
/// node, finds nothing: each ran in an instance no login used before. (With instances
/// returned to the pool after a call, the second login read the first one's secret.)
#[tokio::test]
async fn one_login_never_sees_what_another_left_in_the_package() {
    tessera_tests::init_logging();
    let stack = Stack::builder().backend(Backend::Local).start().await;
    stack
        .upload_package(&dist_wasm("misbehave"), "misbehave", "1.0.0")
        .await
        .expect("upload");
    stack.put_app(local_app("fx", "misbehave", 9), None).await;
    let client = stack.client().await;
    for user in ["alice", "bob", "carol", "dave", "erin", "frank"] {
        let secret = format!("{user}-one-time-code");
        let err = client
            .login_app("fx", params(&[("mode", "remember"), ("secret", &secret)]))
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::Unauthenticated, "{user}: {err}");
        assert!(
            err.to_string().contains("nothing from an earlier login"),
            "{user}'s login saw another's memory: {err}"
        );
    }
    stack.shutdown().await;
}
