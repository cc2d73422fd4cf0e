//! Client apps' replies:
//! every client connection reads its replies under an inbox bound to a key only it holds,
//! and may subscribe to nothing else. nats-server enforces it with the permissions the auth
//! callout gives each connection.

use std::time::Duration;

use futures::StreamExt;

use tessera_sdk::Client;
use tessera_tests::{Role, assert_eventually};

use super::{PASSWORD, local};

/// A responder never sees a client's inbox: the request crosses from the client apps'
/// account into the workers', and the broker gets a reply subject nats-server made
/// (`_R_...`). And even knowing a client's inbox prefix is not enough: another client
/// connection (with the same client password and an inbox key of its own) is refused every
/// subscription that would see the reply, exact or wildcard, in the client inboxes or the
/// default `_INBOX.>`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_reads_its_own_replies_and_no_other_clients() {
    let stack = local().start().await;
    let ann = stack.user("ann", PASSWORD).await;
    stack.route("weather", &["ps1"]).await;
    let _ps1 = stack.plugin_server("ps1").await;
    let s = stack.subjects().clone();

    // What a responder sees: the broker role may subscribe to token requests; a plain (not
    // queue) subscription gets a copy of each beside the real broker.
    let sniffer = stack.nats(Role::Broker).await;
    let mut requests = sniffer.subscribe(s.token_request()).await.unwrap();
    sniffer.flush().await.unwrap();

    let alice = Client::new(stack.nats(Role::Client).await, s.clone());
    let token = alice
        .request_token(&ann.account_token, "weather", None)
        .await
        .expect("a client gets its own reply");
    let seen = tokio::time::timeout(Duration::from_secs(10), requests.next())
        .await
        .expect("the sniffer saw the request")
        .unwrap()
        .reply
        .expect("a request has a reply subject")
        .to_string();
    assert!(seen.starts_with("_R_."), "{seen}");
    // Alice's real inbox, as if it had leaked anyway.
    let reply = alice.nats().new_inbox();
    assert!(reply.starts_with("_C_INBOX."), "{reply}");
    let (prefix, _) = reply.rsplit_once('.').unwrap();

    // Mallory: a client connection of her own, with the client password.
    let (mallory, errors) = stack.nats_recording(Role::Client).await;
    let attempts = [
        reply.clone(),
        seen.clone(),
        format!("{prefix}.>"),
        format!("{prefix}.*"),
        "_C_INBOX.>".to_owned(),
        "_C_INBOX.*.*".to_owned(),
        "_INBOX.>".to_owned(),
        ">".to_owned(),
    ];
    let mut subs = Vec::new();
    for subject in &attempts {
        subs.push(mallory.subscribe(subject.clone()).await.unwrap());
    }
    mallory.flush().await.unwrap();
    for subject in &attempts {
        assert_eventually!(
            errors.subscribe_denied(subject),
            "a permissions violation for subscribing to {subject}, got {:?}",
            errors.all()
        );
    }
    // Her connection still works for what a client may do, on her own inbox.
    let mallory = Client::new(mallory, s.clone());
    let hers = mallory
        .request_token(&ann.account_token, "weather", None)
        .await
        .unwrap();
    assert_ne!(hers.token_id, token.token_id);
    // And Alice is unaffected.
    assert!(alice.echo("ps1", &token.token, b"x".to_vec()).await.is_ok());
    drop(subs);
}

/// The callout admits a client only with the password `<client password>:<inbox key>`, what
/// a stock NATS client sends with its ordinary user and password options; a refusal is
/// immediate (an authorization violation, not a timeout) and gives its reason. A client of
/// the earlier contract (the key as the CONNECT's `auth_token`) is told what changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_connections_need_the_password_and_an_inbox_key() {
    let mut stack = local().start().await;
    let url = stack.url(Role::Client);
    let addr: async_nats::ServerAddr = url.parse().unwrap();
    let password = addr.password().unwrap().to_owned();
    let host = url.rsplit_once('@').map(|(_, h)| h.to_owned()).unwrap();
    // Plain user-and-password options, as any NATS client library has them.
    let attempt = |user: &str, pass: &str, key: Option<String>| {
        let mut opts = async_nats::ConnectOptions::new().connection_timeout(Duration::from_secs(5));
        opts = match key {
            Some(key) => opts
                .custom_inbox_prefix(tessera_protocol::bus::client_inbox(&key))
                .user_and_password(user.to_owned(), format!("{pass}:{key}")),
            None => opts.user_and_password(user.to_owned(), pass.to_owned()),
        };
        let host = host.clone();
        async move { opts.connect(host.as_str()).await }
    };
    // The earlier contract: the bare password, and the key as the CONNECT's auth_token.
    let key_in_auth_token = {
        let key = tessera_protocol::bus::new_inbox_key();
        async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(5))
            .custom_inbox_prefix(tessera_protocol::bus::client_inbox(&key))
            .user_and_password("client".to_owned(), password.clone())
            .token(key)
            .connect(host.as_str())
            .await
            .unwrap_err()
    };
    assert_eq!(
        key_in_auth_token.kind(),
        async_nats::ConnectErrorKind::AuthorizationViolation,
        "{key_in_auth_token}"
    );
    let key = tessera_protocol::bus::new_inbox_key;

    // The control: password and key.
    let ok = attempt("client", &password, Some(key())).await.unwrap();
    Client::new(ok, stack.subjects().clone())
        .keys()
        .await
        .expect("an admitted client works");

    let cases = [
        ("wrong password", "client", "x".repeat(32), Some(key())),
        ("no inbox key", "client", password.clone(), None),
        (
            "an empty inbox key",
            "client",
            password.clone(),
            Some(String::new()),
        ),
        (
            "the key before the password",
            "client",
            key(),
            Some(password.clone()),
        ),
        (
            "a short key",
            "client",
            password.clone(),
            Some("k".repeat(20)),
        ),
        (
            "a key with a dot",
            "client",
            password.clone(),
            Some(format!("{}.", key())),
        ),
        ("another user", "mallory", password.clone(), Some(key())),
    ];
    for (what, user, pass, key) in cases {
        let err = attempt(user, &pass, key).await.unwrap_err();
        assert_eq!(
            err.kind(),
            async_nats::ConnectErrorKind::AuthorizationViolation,
            "{what}: {err}"
        );
    }
    // nats-server logs a refusal around the time it sends it: wait for the lines.
    let nats = stack.servers_mut().nats_mut().unwrap();
    for reason in [
        "wrong secret",
        "needs an inbox key",
        "not a client or plugin-server user",
        "not in auth_token",
    ] {
        assert_eventually!(
            nats.log_tail().join("\n").contains(reason),
            "nats-server's log names {reason:?}"
        );
    }
    let log = nats.log_tail().join("\n");
    assert!(!log.contains(&password), "the password is never logged");
}

/// The inbox a connection may read is the one its own key opens, whatever inbox prefix it
/// names: a connection that knows another's inbox prefix and sets it as its own (a stock
/// client's `inbox_prefix` option) with a key of its own is refused the subscription, and
/// its requests get no reply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_cannot_take_another_connections_inbox_with_its_own_key() {
    let stack = local().start().await;
    let url = stack.url(Role::Client);
    let addr: async_nats::ServerAddr = url.parse().unwrap();
    let password = addr.password().unwrap().to_owned();
    let host = url.rsplit_once('@').map(|(_, h)| h.to_owned()).unwrap();

    let alice = stack.nats(Role::Client).await;
    let alices_inbox = alice.new_inbox();
    let (alices_prefix, _) = alices_inbox.rsplit_once('.').unwrap();

    let key = tessera_protocol::bus::new_inbox_key();
    let (tx, mut server_errors) = tokio::sync::mpsc::unbounded_channel();
    let mallory = async_nats::ConnectOptions::new()
        .user_and_password("client".to_owned(), format!("{password}:{key}"))
        .custom_inbox_prefix(alices_prefix)
        .request_timeout(Some(Duration::from_millis(500)))
        .event_callback(move |event| {
            if let async_nats::Event::ServerError(e) = event {
                let _ = tx.send(e.to_string());
            }
            std::future::ready(())
        })
        .connect(host.as_str())
        .await
        .expect("her own key admits her");
    let err = mallory
        .request(stack.subjects().keys(), Vec::new().into())
        .await
        .expect_err("no reply reaches an inbox she may not read");
    assert_eq!(err.kind(), async_nats::RequestErrorKind::TimedOut, "{err}");
    let violation = tokio::time::timeout(Duration::from_secs(10), server_errors.recv())
        .await
        .expect("the server says why")
        .unwrap();
    assert!(
        violation.contains(alices_prefix) && violation.contains("Subscription"),
        "{violation}"
    );
    // Alice, with the key that opens it, still gets her replies.
    let keys = Client::new(alice, stack.subjects().clone()).keys().await;
    assert!(keys.is_ok(), "{keys:?}");
}
