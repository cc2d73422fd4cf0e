//! A call the bus refuses, through a connection the SDK made: `Forbidden`, at once, not
//! `Unavailable` after the request timeout. (Local servers only: an external server has its
//! own idea of permissions.)

use std::time::{Duration, Instant};

use tessera_schemas::ErrorCode;
use tessera_sdk::{Client, ErrorKind};
use tessera_tests::{Backend, Role, Stack};

const PASSWORD: &str = "correct horse battery";

/// Far longer than a refusal takes to arrive: a call that waited it out would show.
const TIMEOUT: Duration = Duration::from_secs(30);
/// What "at once" means here: well inside the timeout, with room for a slow machine.
const PROMPTLY: Duration = Duration::from_secs(5);

/// A client app's connection, made by the SDK (so it hears the server's refusals).
async fn client_app(stack: &Stack) -> Client {
    Client::connect_named(&stack.url(Role::Client), "e2e-client-app")
        .await
        .expect("connecting as a client app")
        .with_subjects(stack.subjects().clone())
        .with_timeout(TIMEOUT)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_call_on_a_client_connection_is_forbidden_promptly() {
    let stack = Stack::builder().backend(Backend::Local).start().await;
    let ann = stack.user("ann", PASSWORD).await;
    stack.route("weather", &["ps1"]).await;
    let _ps1 = stack.plugin_server("ps1").await;
    let client = client_app(&stack).await;

    // Admin-only subjects, concurrently: each call is told about its own subject.
    let started = Instant::now();
    let (add, introspect) = tokio::join!(
        client.add_user("mallory", PASSWORD),
        client.introspect("not-even-a-token"),
    );
    let elapsed = started.elapsed();
    for (subject, r) in [
        (stack.subjects().users_add(), add.map(drop)),
        (stack.subjects().token_introspect(), introspect.map(drop)),
    ] {
        let err = r.expect_err("an admin call on a client connection");
        assert_eq!(err.kind(), ErrorKind::Forbidden, "{subject}: {err:?}");
        assert_eq!(err.code(), ErrorCode::Forbidden);
        assert!(!err.is_retryable());
        assert_eq!(err.subject(), Some(subject.as_str()));
    }
    assert!(
        elapsed < PROMPTLY,
        "refused calls took {elapsed:?} (timeout {TIMEOUT:?}): the refusal was not noticed"
    );

    // The connection still does what a client app may, and a permitted subject nobody
    // serves is unavailable, not forbidden.
    let login = client.login("ann", PASSWORD).await.unwrap();
    assert_eq!(login.account_id, ann.account_id);
    let token = client
        .request_token(&login.account_token, "weather", None)
        .await
        .unwrap();
    let echoed = client.echo("ps1", &token.token, b"hi".to_vec()).await;
    assert_eq!(echoed.unwrap().body, b"hi");
    let started = Instant::now();
    let nobody = client
        .call_raw("ps-nobody", "echo", &token.token, "x".into())
        .await
        .unwrap_err();
    assert_eq!(nobody.kind(), ErrorKind::Unavailable, "{nobody:?}");
    assert!(
        started.elapsed() < PROMPTLY,
        "no responders took the timeout"
    );

    // Nothing happened: mallory does not exist.
    let err = stack
        .admin()
        .await
        .login("mallory", PASSWORD)
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Unauthenticated, "{err:?}");
}
