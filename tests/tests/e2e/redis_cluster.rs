//! The token ledger on a Redis Cluster: three masters with a replica each, local
//! `redis-server` processes (`tessera_devstack::LocalRedisCluster`), every node with the same
//! Redis users. Tokens, revocations, the gateway's checks and the pending sweep work across
//! the masters (every request's pipeline stays in its account's slot); with replica acks, a
//! revocation survives a master's failover, and what the replicas did not acknowledge is
//! reported (revocation) or withdrawn (issuance), never handed out half-valid.
//!
//! The failover drill under load is `redis_cluster_drill` (`#[ignore]`, `make
//! redis-cluster-drill`).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use tessera_ledger::keys::{RedisKeys, Shard, new_token_id};
use tessera_ledger::{LedgerConnection, LedgerWriter, TokenRecord};
use tessera_schemas::ErrorCode;
use tessera_sdk::Client;
use tessera_sdk::data::{ClientAppCredentials, DataCall, build_packet, new_nonce, now_ms};
use tessera_tests::{Backend, RedisClusterSpec, Servers, Stack, StackBuilder, assert_eventually};

const PASSWORD: &str = "correct horse battery";
const PLUGIN: &str = "weather";
const SERVER: &str = "ps1";
const APP: &str = "demo-app";
/// Bound on a failover: the node timeout, the election, the clients' topology refresh.
const FAILOVER: Duration = Duration::from_secs(30);

pub(crate) fn cluster_builder(spec: RedisClusterSpec) -> StackBuilder {
    tessera_tests::init_logging();
    Stack::builder().redis_cluster(spec).gateways(1)
}

/// A stack on a Redis Cluster with a gateway, `weather` routed to `ps1`, a client app and
/// the data route `weather.now` -> `ps1.echo`.
pub(crate) struct World {
    pub stack: Stack,
    pub client: Client,
    pub admin: Client,
    pub app: ClientAppCredentials,
    _ps1: tessera_tests::PluginServerHandle,
}

impl World {
    pub async fn start(builder: StackBuilder) -> World {
        let stack = builder.start().await;
        stack.route(PLUGIN, &[SERVER]).await;
        let ps1 = stack.plugin_server(SERVER).await;
        let admin = stack.admin().await;
        let app = admin.add_client_app(APP).await.unwrap();
        admin
            .set_data_route(PLUGIN, "now", SERVER, "echo")
            .await
            .unwrap();
        World {
            client: stack.client().await,
            stack,
            admin,
            app,
            _ps1: ps1,
        }
    }

    /// A fresh signed packet for `token` through the gateway: `None` when served.
    pub async fn data(&self, token: &str) -> Option<ErrorCode> {
        let call = DataCall::new(PLUGIN, token, "now", "192.0.2.10", "device-42");
        let packet = build_packet(&self.app, &call, now_ms(), &new_nonce());
        self.client
            .send_packet(PLUGIN, &packet)
            .await
            .err()
            .map(|e| e.code())
    }

    pub async fn active(&self, token: &str) -> Option<bool> {
        self.admin.introspect(token).await.ok().map(|r| r.active)
    }

    pub fn keys(&self) -> RedisKeys {
        RedisKeys::new(self.stack.subjects().prefix())
    }

    /// The cluster node serving `key` (asked of a node that is up).
    pub async fn master_of(&self, key: &str) -> usize {
        let cluster = self.stack.servers().redis_cluster().unwrap();
        for ask in 0..cluster.len() {
            if let Ok(m) = cluster.master_of(ask, key).await {
                return m;
            }
        }
        panic!("no node knows who serves {key}")
    }
}

/// An admin connection to the cluster through the ledger's own client.
async fn admin_conn(servers: &Servers) -> LedgerConnection {
    tessera_ledger::connect(&servers.redis_url(), Duration::from_secs(2))
        .await
        .expect("connecting to the Redis Cluster")
}

async fn exists(conn: &LedgerConnection, key: &str) -> bool {
    let mut conn = conn.clone();
    redis::cmd("EXISTS")
        .arg(key)
        .query_async::<bool>(&mut conn)
        .await
        .expect("EXISTS")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_flow_revoke_and_reach_the_gateway_across_the_clusters_masters() {
    let w = World::start(cluster_builder(RedisClusterSpec::default())).await;
    let keys = w.keys();
    // Accounts land on shards all over the slot space, so on every master.
    let mut tokens = Vec::new();
    let mut masters = BTreeSet::new();
    for i in 0..12 {
        let user = w.stack.user(&format!("user{i}"), PASSWORD).await;
        let token = w
            .client
            .request_token(&user.account_token, PLUGIN, Some("k1"))
            .await
            .unwrap();
        assert_eq!(
            Shard::of_token(&token.token_id),
            Shard::of_account(&user.account_id),
            "the token id names its account's shard"
        );
        masters.insert(w.master_of(&keys.token(&token.token_id)).await);
        // An idempotent retry gets the same token (its reply is in the account's slot).
        let again = w
            .client
            .request_token(&user.account_token, PLUGIN, Some("k1"))
            .await
            .unwrap();
        assert_eq!(again.token_id, token.token_id);
        tokens.push((user, token));
    }
    assert!(masters.len() >= 2, "12 accounts on one master: {masters:?}");

    for (_, t) in &tokens {
        assert_eq!(w.active(&t.token).await, Some(true));
        assert_eq!(w.data(&t.token).await, None, "the gateway serves it");
    }
    // A replayed packet is caught (its nonce is not tied to a shard).
    let call = DataCall::new(PLUGIN, &tokens[0].1.token, "now", "192.0.2.10", "device-42");
    let packet = build_packet(&w.app, &call, now_ms(), &new_nonce());
    w.client.send_packet(PLUGIN, &packet).await.unwrap();
    let replay = w.client.send_packet(PLUGIN, &packet).await.unwrap_err();
    assert_eq!(replay.code(), ErrorCode::ReplayedNonce);

    // Revoked by id (the admin knows only the id): refused by introspection and gateway.
    let (_, first) = &tokens[0];
    assert_eq!(
        w.admin.revoke_token(&first.token_id).await.unwrap().revoked,
        1
    );
    assert_eq!(w.active(&first.token).await, Some(false));
    assert_eq!(w.data(&first.token).await, Some(ErrorCode::Unauthenticated));
    // Revoked by account: every token of it, the others untouched.
    let (user, second) = &tokens[1];
    let more = w
        .client
        .request_token(&user.account_token, PLUGIN, None)
        .await
        .unwrap();
    assert_eq!(
        w.admin
            .revoke_account(&user.account_id)
            .await
            .unwrap()
            .revoked,
        2
    );
    for t in [second, &more] {
        assert_eq!(w.active(&t.token).await, Some(false));
        assert_eq!(w.data(&t.token).await, Some(ErrorCode::Unauthenticated));
    }
    assert_eq!(w.active(&tokens[2].1.token).await, Some(true));
    let conn = admin_conn(w.stack.servers()).await;
    assert!(!exists(&conn, &keys.token(&first.token_id)).await);
    assert!(exists(&conn, &keys.token(&tokens[2].1.token_id)).await);
}

fn pending_record(account_id: &str) -> TokenRecord {
    TokenRecord {
        account_id: account_id.into(),
        plugin_id: PLUGIN.into(),
        servers: vec![SERVER.into()],
        token_hash: "0".repeat(64),
        expires_at: tessera_protocol::now_unix() + 600,
        issued_at: tessera_protocol::now_unix(),
        device_id: None,
        user_ip: None,
    }
}

/// Records `n` tokens, for accounts spread over the shards, that nobody commits (their
/// replica "died"); returns (account, token id).
async fn record_uncommitted(store: &LedgerWriter, n: usize) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for i in 0..n {
        let account = format!("acct-{i}");
        let id = new_token_id(&account);
        store
            .record(
                &id,
                &pending_record(&account),
                Duration::from_secs(600),
                Duration::from_secs(600),
                None,
                |_, _| None::<()>,
            )
            .await
            .expect("recording");
        out.push((account, id));
    }
    out
}

/// Tokens left pending on every master are withdrawn by the broker's sweeper, which walks
/// all the shards: the records go, and the distribution stream revokes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweeper_withdraws_what_dead_replicas_left_pending_on_every_master() {
    let deadline = Duration::from_secs(1);
    let w =
        World::start(cluster_builder(RedisClusterSpec::default()).pending_deadline(deadline)).await;
    let keys = w.keys();
    let broker_url = w
        .stack
        .servers()
        .redis_url_as(tessera_bus_config::redis_acl::RedisUser::Broker);
    let conn = tessera_ledger::connect(&broker_url, Duration::from_secs(2))
        .await
        .unwrap();
    let store = LedgerWriter::new(conn, w.stack.subjects().prefix(), deadline);
    let left = record_uncommitted(&store, 12).await;
    let mut masters = BTreeSet::new();
    for (_, id) in &left {
        masters.insert(w.master_of(&keys.token(id)).await);
    }
    assert!(masters.len() >= 2, "12 accounts on one master: {masters:?}");
    let admin = admin_conn(w.stack.servers()).await;
    for (_, id) in &left {
        assert!(exists(&admin, &keys.token(id)).await);
    }
    assert_eventually!(
        timeout = Duration::from_secs(20),
        {
            let mut gone = true;
            for (_, id) in &left {
                gone &= !exists(&admin, &keys.token(id)).await;
            }
            gone
        },
        "every uncommitted token withdrawn"
    );
    for (account, _) in &left {
        let mut c = admin.clone();
        let pending: usize = redis::cmd("ZCARD")
            .arg(keys.pending(Shard::of_account(account)))
            .query_async(&mut c)
            .await
            .unwrap();
        assert_eq!(pending, 0, "{account}'s shard still has pending tokens");
    }
}

/// A sweep reads every shard; a master that does not answer (frozen, not yet failed over)
/// costs its own shards only, promptly, and they are swept once it answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_master_does_not_stop_the_sweep_of_the_other_shards() {
    tessera_tests::init_logging();
    let mut servers = Servers::start_with(Backend::Local, None).await;
    // A long node timeout: the stalled master stays a master for the whole test.
    servers
        .start_redis_cluster(RedisClusterSpec {
            node_timeout: Duration::from_secs(60),
            ..Default::default()
        })
        .await;
    let deadline = Duration::from_millis(1);
    let conn = tessera_ledger::connect(&servers.redis_url(), Duration::from_millis(300))
        .await
        .unwrap();
    let prefix = servers.subjects().prefix().to_owned();
    let store = LedgerWriter::new(conn, &prefix, deadline);
    let keys = RedisKeys::new(&prefix);
    let left = record_uncommitted(&store, 12).await;
    let cluster = servers.redis_cluster().unwrap();
    let mut by_master = std::collections::BTreeMap::<usize, Vec<String>>::new();
    for (_, id) in &left {
        let m = cluster.master_of(0, &keys.token(id)).await.unwrap();
        by_master.entry(m).or_default().push(id.clone());
    }
    assert!(by_master.len() >= 2, "12 accounts on one master");
    let (&stalled, stalled_ids) = by_master.iter().max_by_key(|(_, v)| v.len()).unwrap();
    let stalled_ids: BTreeSet<String> = stalled_ids.iter().cloned().collect();
    cluster.freeze(stalled).await.unwrap();

    let started = Instant::now();
    let claimed: BTreeSet<String> = store
        .sweep(100)
        .await
        .expect("the shards of the masters that answer are swept")
        .into_iter()
        .map(|(id, record)| {
            assert!(record.is_some());
            id
        })
        .collect();
    let took = started.elapsed();
    let others: BTreeSet<String> = left
        .iter()
        .map(|(_, id)| id.clone())
        .filter(|id| !stalled_ids.contains(id))
        .collect();
    assert_eq!(claimed, others);
    // Bounded: each of the stalled master's shards costs one response timeout, 16 at once.
    assert!(took < Duration::from_secs(10), "the sweep took {took:?}");

    cluster.thaw(stalled).await.unwrap();
    let claimed: BTreeSet<String> = store
        .sweep(100)
        .await
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(claimed, stalled_ids);
}

/// The master of a token's shard and that master's replica.
async fn master_and_replica(w: &World, token_id: &str) -> (usize, usize) {
    let m = w.master_of(&w.keys().token(token_id)).await;
    let cluster = w.stack.servers().redis_cluster().unwrap();
    let other = (m + 1) % cluster.len();
    (m, cluster.replica_of(other, m).await.unwrap())
}

/// Waits until `replica` has taken over from its killed master and the gateway reads its
/// shard again.
async fn wait_for_failover(w: &World, replica: usize, token: &str) {
    let cluster = w.stack.servers().redis_cluster().unwrap();
    assert_eventually!(
        timeout = FAILOVER,
        cluster.is_master(replica).await.unwrap_or(false),
        "replica {replica} promoted"
    );
    assert_eventually!(
        timeout = FAILOVER,
        w.data(token).await != Some(ErrorCode::Unavailable),
        "the gateway reads the shard from the promoted replica"
    );
}

/// With one replica ack asked for: a revocation is acknowledged before it is reported done,
/// so when the master dies right after, its replica takes over without the token's record
/// and the token stays refused by the gateway and introspection; a token committed (and
/// acknowledged) before stays valid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_stays_refused_after_its_master_fails_over() {
    let mut w = World::start(
        cluster_builder(RedisClusterSpec::default()).replica_acks(1, Duration::from_millis(500)),
    )
    .await;
    let ann = w.stack.user("ann", PASSWORD).await;
    let kept = w
        .client
        .request_token(&ann.account_token, PLUGIN, None)
        .await
        .unwrap();
    let revoked = w
        .client
        .request_token(&ann.account_token, PLUGIN, None)
        .await
        .unwrap();
    assert_eq!(
        w.admin
            .revoke_token(&revoked.token_id)
            .await
            .unwrap()
            .revoked,
        1
    );
    let (master, replica) = master_and_replica(&w, &revoked.token_id).await;
    w.stack
        .servers_mut()
        .redis_cluster_mut()
        .unwrap()
        .node_mut(master)
        .kill()
        .await;
    wait_for_failover(&w, replica, &kept.token).await;

    assert_eq!(
        w.data(&revoked.token).await,
        Some(ErrorCode::Unauthenticated)
    );
    assert_eq!(w.active(&revoked.token).await, Some(false));
    assert_eq!(w.data(&kept.token).await, None);
    assert_eq!(w.active(&kept.token).await, Some(true));
}

/// What the replicas did not acknowledge in time: a token request answers `unavailable`
/// and its token is withdrawn (never handed out, revoked at the plugin servers); a
/// revocation answers `unavailable`. That report matters: when the master then dies, its
/// replica takes over without the deletion and the token is valid again at the gateway,
/// until the revocation is retried, which then holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_replicas_did_not_acknowledge_is_withdrawn_or_reported_failed() {
    let mut w = World::start(
        cluster_builder(RedisClusterSpec {
            // The frozen replica must not be given up on while it is frozen.
            node_timeout: Duration::from_secs(3),
            ..Default::default()
        })
        .replica_acks(1, Duration::from_millis(200)),
    )
    .await;
    let ann = w.stack.user("ann", PASSWORD).await;
    let token = w
        .client
        .request_token(&ann.account_token, PLUGIN, None)
        .await
        .unwrap();
    let (master, replica) = master_and_replica(&w, &token.token_id).await;
    let nats = w.stack.servers().connect(tessera_tests::Role::Admin).await;
    let live_before =
        tessera_tests::load::distributed_token_ids(&nats, w.stack.subjects(), SERVER).await;
    assert!(live_before.contains(&token.token_id));

    // The replica cut off: frozen (SIGSTOP), and its replication link closed by the master
    // (frozen alone, it would still read what the master wrote into its socket once thawed).
    let cluster = w.stack.servers().redis_cluster().unwrap();
    cluster.freeze(replica).await.unwrap();
    let links: i64 = cluster
        .cmd(
            master,
            redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("replica"),
        )
        .await
        .unwrap();
    assert_eq!(links, 1);
    let refused = w
        .client
        .request_token(&ann.account_token, PLUGIN, None)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), ErrorCode::Unavailable);
    let failed = w.admin.revoke_token(&token.token_id).await.unwrap_err();
    assert_eq!(failed.code(), ErrorCode::Unavailable);
    // Nothing new is live at the plugin server: every token the refused requests minted
    // was withdrawn (and the revoked one is revoked there: its event went first).
    let live = tessera_tests::load::distributed_token_ids(&nats, w.stack.subjects(), SERVER).await;
    assert!(live.is_empty(), "live at {SERVER}: {live:?}");

    // The master dies before its replica got the deletion: the replica takes over with the
    // record, and the token the failed revocation named is valid again at the gateway.
    let cluster = w.stack.servers_mut().redis_cluster_mut().unwrap();
    cluster.node_mut(master).kill().await;
    cluster.thaw(replica).await.unwrap();
    wait_for_failover(&w, replica, &token.token).await;
    // Introspection says so; the gateway lets it through to the plugin server, which
    // refuses it only because the revocation event reached it first.
    assert_eq!(
        w.active(&token.token).await,
        Some(true),
        "the lost deletion"
    );
    // The old master back, as the new one's replica: the retried revocation holds.
    w.stack
        .servers_mut()
        .redis_cluster_mut()
        .unwrap()
        .node_mut(master)
        .restart()
        .await
        .unwrap();
    assert_eventually!(
        timeout = FAILOVER,
        w.admin.revoke_token(&token.token_id).await.is_ok(),
        "the retried revocation is acknowledged"
    );
    assert_eq!(w.data(&token.token).await, Some(ErrorCode::Unauthenticated));
    assert_eq!(w.active(&token.token).await, Some(false));
}
