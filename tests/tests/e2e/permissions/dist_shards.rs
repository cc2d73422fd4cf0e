//! With the distribution in three shards, a plugin server still reads only its own
//! `dist.<id>`: the broker opens its consumer on its shard's stream, and every way into
//! another server's events, in its shard or in others, is refused by nats-server.

use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use futures::StreamExt;
use serde_json::json;

use tessera_protocol::rpc::{self, RpcError};
use tessera_schemas::dist_shards::dist_shard;
use tessera_schemas::messages::{DIST_OPEN, DistEvent, DistOpenRequest};
use tessera_schemas::{codec, headers};
use tessera_tests::assert_eventually;

use super::plugin_servers::refused_api_call;
use super::{PASSWORD, local};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_three_shards_a_plugin_server_cannot_get_another_servers_events() {
    // ps1, ps2, ps3 are in shards 2, 0 and 1.
    assert_eq!(["ps1", "ps2", "ps3"].map(|id| dist_shard(id, 3)), [2, 0, 1]);
    let stack = local().dist_shards(3).start().await;
    let ann = stack.user("ann", PASSWORD).await;
    stack.route("weather", &["ps1", "ps2", "ps3"]).await;
    let client = stack.client().await;
    let token = client
        .request_token(&ann.account_token, "weather", None)
        .await
        .unwrap();
    let s = stack.subjects().clone();
    let (ps1, errors) = stack.plugin_server_dist_nats_recording("ps1").await;
    let mut h = async_nats::HeaderMap::new();
    h.insert(headers::SCHEMA, DIST_OPEN.header_value().as_str());
    let open_body = || codec::encode(&DistOpenRequest::default());

    // The control: its own consumer is on shard 2's stream, filtered on its own subject,
    // and delivers its own copy of the token.
    let opened = ps1
        .request_with_headers(s.dist_open("ps1"), h.clone(), open_body().into())
        .await
        .unwrap();
    let info: consumer::Info = serde_json::from_slice(&opened.payload).unwrap();
    assert_eq!(info.stream_name, s.dist_stream_in(2));
    assert_eq!(info.config.filter_subject, s.dist_in(2, "ps1"));
    let js = jetstream::with_prefix(ps1.clone(), &s.js_api_import());
    let own = consumer::Consumer::new(
        consumer::pull::Config {
            name: Some(info.name.clone()),
            filter_subject: info.config.filter_subject.clone(),
            ack_policy: consumer::AckPolicy::None,
            ..Default::default()
        },
        info,
        js,
    );
    let mut messages = own.messages().await.unwrap();
    let msg = tokio::time::timeout(Duration::from_secs(10), messages.next())
        .await
        .expect("ps1's distribution within 10 s")
        .unwrap()
        .unwrap();
    assert_eq!(msg.subject.as_str(), s.dist_in(2, "ps1"));
    match codec::decode::<DistEvent>(&msg.payload).unwrap() {
        DistEvent::Tokens { tokens } => assert_eq!(tokens, std::slice::from_ref(&token.token)),
        other => panic!("{other:?}"),
    }

    // Asking the broker for another server's consumer: refused.
    for other in ["ps2", "ps3"] {
        let r = rpc::request_raw(
            &ps1,
            s.dist_open(other),
            h.clone(),
            open_body().into(),
            Duration::from_millis(500),
        )
        .await;
        assert!(matches!(r, Err(RpcError::Timeout(..))), "{other}: {r:?}");
        let subject = s.dist_open(other);
        assert_eventually!(errors.publish_denied(&subject), "{:?}", errors.all());
    }
    // Creating a consumer, reading stored messages or listing consumers, on the other
    // servers' shard streams and on its own: refused.
    let mut refused = Vec::new();
    for (other, k) in [("ps2", 0), ("ps3", 1), ("ps1", 2)] {
        let dist = s.dist_stream_in(k);
        let filter = s.dist_in(k, other);
        let config = json!({"stream_name": dist, "config": {"name": "steal",
            "filter_subject": filter, "ack_policy": "none", "deliver_policy": "all",
            "mem_storage": true}});
        for subject in [
            format!("$JS.API.CONSUMER.CREATE.{dist}.steal.{filter}"),
            format!(
                "{}.CONSUMER.CREATE.{dist}.steal.{filter}",
                s.js_api_import()
            ),
            format!("$JS.API.CONSUMER.CREATE.{dist}"),
        ] {
            refused_api_call(&ps1, &subject, config.clone()).await;
            refused.push(subject);
        }
        for (subject, body) in [
            (
                format!("$JS.API.DIRECT.GET.{dist}"),
                json!({"last_by_subj": filter}),
            ),
            (format!("$JS.API.DIRECT.GET.{dist}.{filter}"), json!({})),
            (format!("$JS.API.STREAM.MSG.GET.{dist}"), json!({"seq": 1})),
            (format!("$JS.API.CONSUMER.NAMES.{dist}"), json!({})),
        ] {
            refused_api_call(&ps1, &subject, body).await;
            refused.push(subject);
        }
    }
    for subject in &refused {
        assert_eventually!(
            errors.publish_denied(subject),
            "a permissions violation for {subject}, got {:?}",
            errors.all()
        );
    }
    // Subscribing to another shard's subjects: refused.
    let subject = s.dist_in(1, "ps3");
    let _held = ps1.subscribe(subject.clone()).await.unwrap();
    ps1.flush().await.unwrap();
    assert_eventually!(errors.subscribe_denied(&subject), "{:?}", errors.all());
}
