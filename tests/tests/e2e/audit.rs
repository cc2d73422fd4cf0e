//! The audit stream: every issuance, revocation, login decision and package change
//! is an event on `<PREFIX>_AUDIT` with who, what, when and outcome, and never a secret.
//! Real nats-server, real Redis, the real broker and auth workers; the events are published
//! in the background, so every check waits for them with a bound.

use std::time::Duration;

use tessera_schemas::ErrorCode;
use tessera_schemas::audit::{AuditEvent, AuditKind, AuditOutcome, AuditRole};
use tessera_sdk::operator::audit::AuditQuery;
use tessera_sdk::operator::packages::sign;
use tessera_tests::packages::dist_wasm;
use tessera_tests::{Backend, Role, Stack, assert_eventually};

const PASSWORD: &str = "correct horse battery staple";
const WRONG_PASSWORD: &str = "incorrect mule battery stapler";

/// Every decoded event in the stream, oldest first.
async fn events(stack: &Stack, kind: Option<&str>, last: Option<usize>) -> Vec<AuditEvent> {
    let query = AuditQuery {
        last,
        kind: kind.map(str::to_owned),
        follow: false,
    };
    stack
        .admin()
        .await
        .audit_events(&query)
        .await
        .expect("reading the audit stream")
        .into_iter()
        .map(|e| e.event.expect("every event decodes"))
        .collect()
}

fn one(all: &[AuditEvent], kind: AuditKind) -> &AuditEvent {
    let found: Vec<&AuditEvent> = all.iter().filter(|e| e.kind == kind).collect();
    assert_eq!(found.len(), 1, "{kind}: {found:#?}");
    found[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_decision_is_audited_without_secrets() {
    tessera_tests::init_logging();
    let stack = Stack::builder().backend(Backend::Local).start().await;
    let ann = stack.user("ann", PASSWORD).await; // users.add + a good login
    let client = stack.client().await;
    let refused = client.login("ann", WRONG_PASSWORD).await.unwrap_err();
    assert_eq!(refused.code(), ErrorCode::Unauthenticated);

    stack.route("weather", &["ps1"]).await;
    let _ps1 = stack.plugin_server("ps1").await;
    let token = client
        .request_token(&ann.account_token, "weather", None)
        .await
        .expect("a token");
    let bad = client
        .request_token("not-an-account-token", "weather", None)
        .await
        .unwrap_err();
    assert_eq!(bad.code(), ErrorCode::Unauthenticated);
    let admin = stack.admin().await;
    assert_eq!(
        admin.revoke_token(&token.token_id).await.unwrap().revoked,
        1
    );

    // A package that passes every check, then one whose bytes are not what it signed.
    let wasm = dist_wasm("http-password");
    let stored = stack
        .upload_package(&wasm, "http-password", "1.0.0")
        .await
        .expect("upload");
    let other = dist_wasm("oauth2-code");
    let manifest = sign(stack.publisher(), &other, "oauth2-code", "1.0.0").unwrap();
    let rejected = admin.upload_package(&wasm, &manifest).await.unwrap_err();
    assert_eq!(rejected.code(), ErrorCode::PackageRejected);

    let wanted = [
        AuditKind::UserAdded,
        AuditKind::LoginSucceeded,
        AuditKind::LoginFailed,
        AuditKind::TokenIssued,
        AuditKind::TokenRefused,
        AuditKind::TokenRevoked,
        AuditKind::PackageUploaded,
        AuditKind::PackageInstalled,
        AuditKind::PackageRejected,
    ];
    assert_eventually!(
        timeout = Duration::from_secs(20),
        {
            let all = events(&stack, None, None).await;
            wanted.iter().all(|k| all.iter().any(|e| e.kind == *k))
        },
        "every kind of event within 20 s"
    );
    let all = events(&stack, None, None).await;

    let e = one(&all, AuditKind::UserAdded);
    assert_eq!(e.outcome, AuditOutcome::Ok);
    assert_eq!(e.actor.role, Some(AuditRole::Admin));
    assert_eq!(e.actor.username.as_deref(), Some("ann"));
    assert_eq!(
        e.target.account_id.as_deref(),
        Some(ann.account_id.as_str())
    );
    assert_eq!(e.worker, "auth");
    assert_eq!(e.node, stack.auth_node_id(0));

    let e = one(&all, AuditKind::LoginSucceeded);
    assert_eq!(e.outcome, AuditOutcome::Ok);
    assert_eq!(e.actor.username.as_deref(), Some("ann"));
    assert_eq!(e.actor.account_id.as_deref(), Some(ann.account_id.as_str()));
    assert!(e.request_id.is_some());

    let e = one(&all, AuditKind::LoginFailed);
    assert_eq!(e.outcome, AuditOutcome::Error(ErrorCode::Unauthenticated));
    assert_eq!(e.actor.role, Some(AuditRole::Client));
    assert_eq!(e.actor.username.as_deref(), Some("ann"));
    assert_eq!(e.actor.account_id, None);

    let e = one(&all, AuditKind::TokenIssued);
    assert_eq!(e.outcome, AuditOutcome::Ok);
    assert_eq!(e.actor.account_id.as_deref(), Some(ann.account_id.as_str()));
    assert_eq!(e.target.plugin_id.as_deref(), Some("weather"));
    assert_eq!(e.target.token_ids, vec![token.token_id.clone()]);
    assert_eq!(e.target.servers, vec!["ps1".to_owned()]);
    assert_eq!(e.worker, "broker");
    assert!(e.node.starts_with("broker-"), "{}", e.node);

    let e = one(&all, AuditKind::TokenRefused);
    assert_eq!(e.outcome, AuditOutcome::Error(ErrorCode::Unauthenticated));
    assert_eq!(e.target.plugin_id.as_deref(), Some("weather"));
    assert_eq!(e.actor.account_id, None);

    let e = one(&all, AuditKind::TokenRevoked);
    assert_eq!(e.outcome, AuditOutcome::Ok);
    assert_eq!(e.actor.role, Some(AuditRole::Admin));
    assert_eq!(e.target.token_ids, vec![token.token_id.clone()]);
    assert_eq!(e.target.count, Some(1));

    let e = one(&all, AuditKind::PackageUploaded);
    assert_eq!(e.outcome, AuditOutcome::Ok);
    let p = e.target.package.as_ref().expect("the package");
    assert_eq!(
        (p.name.as_str(), p.version.as_str()),
        ("http-password", "1.0.0")
    );
    assert_eq!(p.sha256, stored.sha256);

    // The uploading node installs at once; a sync pass woken by the index change may race
    // it and install the same build again (each install is a real one, so each is audited).
    let installs: Vec<&AuditEvent> = all
        .iter()
        .filter(|e| e.kind == AuditKind::PackageInstalled)
        .collect();
    assert!((1..=2).contains(&installs.len()), "{installs:#?}");
    for e in installs {
        assert_eq!(e.actor.role, Some(AuditRole::Node));
        assert_eq!(e.node, stack.auth_node_id(0));
        assert_eq!(e.target.package.as_ref().unwrap().sha256, stored.sha256);
    }

    let e = one(&all, AuditKind::PackageRejected);
    assert_eq!(e.outcome, AuditOutcome::Error(ErrorCode::PackageRejected));
    assert_eq!(e.target.package.as_ref().unwrap().name, "oauth2-code");
    assert!(e.detail.is_some());

    // No secret in any stored byte: headers and bodies, read raw from the stream.
    let jwt_signature = |t: &str| t.rsplit('.').next().unwrap().to_owned();
    let secrets = [
        PASSWORD.to_owned(),
        WRONG_PASSWORD.to_owned(),
        ann.account_token.clone(),
        jwt_signature(&ann.account_token),
        token.token.clone(),
        jwt_signature(&token.token),
    ];
    let js = async_nats::jetstream::new(stack.nats(Role::Admin).await);
    let mut stream = js
        .get_stream(stack.subjects().audit_stream())
        .await
        .unwrap();
    let info = stream.info().await.unwrap().clone();
    let mut checked = 0;
    for seq in info.state.first_sequence..=info.state.last_sequence {
        let raw = stream.direct_get(seq).await.expect("direct get");
        let mut bytes = raw.payload.to_vec();
        for (name, values) in raw.headers.iter() {
            bytes.extend_from_slice(name.as_ref());
            for v in values {
                bytes.extend_from_slice(v.as_str().as_bytes());
            }
        }
        for secret in &secrets {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "event {seq} holds a secret"
            );
        }
        checked += 1;
    }
    assert!(checked >= wanted.len(), "{checked} events checked");

    // Bounded by age and size (the defaults: 30 days, 1 GiB).
    assert_eq!(info.config.max_age, Duration::from_secs(30 * 24 * 3600));
    assert_eq!(info.config.max_bytes, 1024 * 1024 * 1024);

    // Filters: a group of kinds, one kind, the last N.
    let logins = events(&stack, Some("login"), None).await;
    assert_eq!(logins.len(), 2, "{logins:#?}");
    assert!(logins.iter().all(|e| e.kind.as_str().starts_with("login.")));
    let failed = events(&stack, Some("login.failed"), None).await;
    assert_eq!(failed.len(), 1);
    let last = events(&stack, Some("token"), Some(1)).await;
    assert_eq!(last.len(), 1);
    assert_eq!(last[0].kind, AuditKind::TokenRevoked);
    // The last two of everything are the tail of a full read (retried: a late event, such as
    // a sync pass's install, may land between the two reads).
    assert_eventually!(
        {
            let full = events(&stack, None, None).await;
            let last_two = events(&stack, None, Some(2)).await;
            let ids = |v: &[AuditEvent]| v.iter().map(|e| e.id.clone()).collect::<Vec<_>>();
            ids(&last_two) == ids(&full[full.len() - 2..])
        },
        "the last two events are the stream's tail"
    );
    let unknown = AuditQuery {
        kind: Some("nonsense".into()),
        ..Default::default()
    };
    let err = admin.audit_events(&unknown).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::BadRequest);
}

/// Events queued together are stored together: one message per kind for many events (what
/// keeps the audit trail from costing JetStream a stored message and an ack per token), at
/// most 128 to a message, and none is lost; the reader gives them back one by one. Fails
/// if the publishing task sends each event alone, or drops any.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_queued_together_are_stored_in_few_messages_and_none_is_lost() {
    use std::collections::BTreeSet;
    use tessera_schemas::audit::{AUDIT_EVENTS, AuditEvents};
    use tessera_schemas::{codec, headers};

    tessera_tests::init_logging();
    let stack = Stack::builder().backend(Backend::Local).start().await;
    let js = async_nats::jetstream::new(stack.nats(Role::Broker).await);
    let auditor = tessera_runtime::audit::Auditor::start(
        js,
        stack.subjects().clone(),
        "broker",
        "broker-batching".into(),
        1024,
    );
    const N: usize = 300;
    let mut ours = BTreeSet::new();
    for kind in [AuditKind::TokenIssued, AuditKind::TokenRefused] {
        for _ in 0..N / 2 {
            let event = auditor.event(kind, AuditOutcome::Ok);
            ours.insert(event.id.clone());
            auditor.emit(event);
        }
    }
    assert!(auditor.flush(Duration::from_secs(10)).await, "flushed");

    let admin_js = async_nats::jetstream::new(stack.nats(Role::Admin).await);
    let mut stream = admin_js
        .get_stream(stack.subjects().audit_stream())
        .await
        .unwrap();
    let info = stream.info().await.unwrap().clone();
    let (mut found, mut messages) = (BTreeSet::new(), 0);
    for seq in info.state.first_sequence..=info.state.last_sequence {
        let raw = stream.direct_get(seq).await.expect("direct get");
        let schema = raw
            .headers
            .get(headers::SCHEMA)
            .map(|v| v.as_str().to_owned());
        if schema.as_deref() != Some(AUDIT_EVENTS.header_value().as_str()) {
            continue;
        }
        let batch: AuditEvents = codec::decode(&raw.payload).expect("a batch decodes");
        let kind = batch.events[0].kind;
        assert!(
            batch.events.iter().all(|e| e.kind == kind),
            "one kind per message, on its subject"
        );
        let mine: Vec<_> = batch
            .events
            .iter()
            .filter(|e| e.node == "broker-batching")
            .collect();
        if mine.is_empty() {
            continue;
        }
        messages += 1;
        assert!(batch.events.len() <= 128, "{} events", batch.events.len());
        found.extend(mine.iter().map(|e| e.id.clone()));
    }
    assert_eq!(found, ours, "every event stored once");
    // 300 events of 2 kinds: at least 4 messages (128 at most each); one each would be 300.
    assert!(
        (4..=N / 10).contains(&messages),
        "{messages} messages for {N} events"
    );
    // The reader hands them on one by one: the last N token events are ours (no token was
    // requested on this stack).
    let last = events(&stack, Some("token"), Some(N)).await;
    assert_eq!(last.len(), N);
    let read: BTreeSet<_> = last.into_iter().map(|e| e.id).collect();
    assert_eq!(read, ours);
}
