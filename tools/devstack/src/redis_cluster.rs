//! A local Redis Cluster: `redis-server` children in cluster mode, formed into masters with
//! one replica each by the cluster commands themselves (`CLUSTER MEET`, `ADDSLOTSRANGE`,
//! `REPLICATE`), then waited for until every node reports the cluster whole. For the ledger's
//! cluster tests and failover drill: nodes can be killed (SIGKILL), frozen (SIGSTOP) and
//! thawed like any child.
//!
//! Formed without `redis-cli --cluster create`, whose "waiting for the cluster to join" polls
//! once a second: here every step waits on the condition it needs, so a cluster is up in
//! about a second.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::redis::{ClusterNodeOptions, free_port};
use super::{DevstackError, LocalRedis, RedisOptions};

/// Redis Cluster's slot count.
const SLOTS: u16 = 16384;
/// How often a forming step re-checks its condition.
const POLL: Duration = Duration::from_millis(20);

pub struct RedisClusterOptions {
    /// One subdirectory per node is made below it.
    pub dir: PathBuf,
    pub masters: usize,
    /// Replicas per master.
    pub replicas: usize,
    /// ACL user lines every node loads (each node needs the same users).
    pub acl: Vec<String>,
    /// A user of `acl` allowed everything: forms the cluster, and replicas log in as it.
    pub admin: (String, String),
    /// `cluster-node-timeout`.
    pub node_timeout: Duration,
    /// How long forming may take.
    pub ready_timeout: Duration,
}

/// The running cluster. Nodes are killed on drop.
pub struct LocalRedisCluster {
    nodes: Vec<Node>,
    admin: (String, String),
}

struct Node {
    redis: LocalRedis,
    id: String,
    bus_port: u16,
}

impl LocalRedisCluster {
    pub async fn start(opts: RedisClusterOptions) -> Result<LocalRedisCluster, DevstackError> {
        let count = opts.masters * (1 + opts.replicas);
        // Started together: each waits for its own server's readiness line.
        let mut starting = Vec::with_capacity(count);
        for i in 0..count {
            let mut o = RedisOptions::new(opts.dir.join(format!("node-{i}")));
            o.acl = opts.acl.clone();
            std::fs::create_dir_all(&o.dir).map_err(|source| DevstackError::Io {
                context: format!("creating {}", o.dir.display()),
                source,
            })?;
            let bus_port = free_port()?;
            o.cluster = Some(ClusterNodeOptions {
                bus_port,
                node_timeout: opts.node_timeout,
                master_auth: opts.admin.clone(),
            });
            starting.push((bus_port, tokio::spawn(LocalRedis::start(o))));
        }
        let mut nodes = Vec::with_capacity(count);
        for (bus_port, task) in starting {
            let redis = task
                .await
                .map_err(|e| startup(format!("a node's start panicked: {e}")))??;
            nodes.push(Node {
                redis,
                id: String::new(),
                bus_port,
            });
        }
        let mut cluster = LocalRedisCluster {
            nodes,
            admin: opts.admin,
        };
        cluster
            .form(opts.masters, opts.replicas, opts.ready_timeout)
            .await?;
        Ok(cluster)
    }

    async fn form(
        &mut self,
        masters: usize,
        replicas: usize,
        ready_timeout: Duration,
    ) -> Result<(), DevstackError> {
        let deadline = Instant::now() + ready_timeout;
        for i in 0..self.nodes.len() {
            self.nodes[i].id = self.cmd(i, ::redis::cmd("CLUSTER").arg("MYID")).await?;
        }
        // Everyone meets the first node; gossip does the rest.
        for i in 1..self.nodes.len() {
            let port = self.nodes[i].redis.port();
            let bus = self.bus_port(i);
            let _: () = self
                .cmd(
                    0,
                    ::redis::cmd("CLUSTER")
                        .arg("MEET")
                        .arg("127.0.0.1")
                        .arg(port)
                        .arg(bus),
                )
                .await?;
        }
        let per_master = SLOTS / masters as u16;
        for m in 0..masters {
            let first = m as u16 * per_master;
            let last = if m + 1 == masters {
                SLOTS - 1
            } else {
                first + per_master - 1
            };
            let _: () = self
                .cmd(
                    m,
                    ::redis::cmd("CLUSTER")
                        .arg("ADDSLOTSRANGE")
                        .arg(first)
                        .arg(last),
                )
                .await?;
        }
        // A replica can follow a master only once it knows it.
        let total = self.nodes.len();
        self.wait_all(deadline, "every node knows every other", |nodes: &str| {
            nodes.lines().count() == total && !nodes.contains("handshake")
        })
        .await?;
        for r in 0..masters * replicas {
            let replica = masters + r;
            let master_id = self.nodes[r % masters].id.clone();
            let _: () = self
                .cmd(
                    replica,
                    ::redis::cmd("CLUSTER").arg("REPLICATE").arg(master_id),
                )
                .await?;
        }
        let replicas_total = masters * replicas;
        self.wait_all(deadline, "the cluster is whole", |nodes: &str| {
            nodes.lines().filter(|l| l.contains("slave")).count() == replicas_total
                && !nodes.contains("fail")
        })
        .await?;
        for i in 0..self.nodes.len() {
            self.wait_node(i, deadline, "cluster_state:ok", |info: &str| {
                info.contains("cluster_state:ok") && info.contains("cluster_slots_ok:16384")
            })
            .await?;
        }
        // Replicas have synced once their link to the master is up.
        for r in masters..self.nodes.len() {
            self.wait_info(r, deadline, "master_link_status:up").await?;
        }
        Ok(())
    }

    /// `127.0.0.1:P` of every node (seeds for a cluster client).
    pub fn host_ports(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.redis.host_port()).collect()
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn node(&self, i: usize) -> &LocalRedis {
        &self.nodes[i].redis
    }

    pub fn node_mut(&mut self, i: usize) -> &mut LocalRedis {
        &mut self.nodes[i].redis
    }

    /// The node id of node `i`.
    pub fn node_id(&self, i: usize) -> &str {
        &self.nodes[i].id
    }

    /// The node that serves `key` now, asked of node `ask` (which must be up): the master of
    /// the key's slot in that node's view.
    pub async fn master_of(&self, ask: usize, key: &str) -> Result<usize, DevstackError> {
        let slot: u16 = self
            .cmd(ask, ::redis::cmd("CLUSTER").arg("KEYSLOT").arg(key))
            .await?;
        let nodes: String = self.cmd(ask, ::redis::cmd("CLUSTER").arg("NODES")).await?;
        for line in nodes.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            if fields.len() < 9 || !fields[2].contains("master") || fields[2].contains("fail") {
                continue;
            }
            let serves = fields[8..].iter().any(|range| {
                let (a, b) = range.split_once('-').unwrap_or((range, range));
                matches!((a.parse::<u16>(), b.parse::<u16>()), (Ok(a), Ok(b)) if (a..=b).contains(&slot))
            });
            if serves && let Some(i) = self.nodes.iter().position(|n| n.id == fields[0]) {
                return Ok(i);
            }
        }
        Err(startup(format!("no master serves slot {slot}")))
    }

    /// The replica of master `m` (the first node that follows it, in node `ask`'s view).
    pub async fn replica_of(&self, ask: usize, m: usize) -> Result<usize, DevstackError> {
        let nodes: String = self.cmd(ask, ::redis::cmd("CLUSTER").arg("NODES")).await?;
        let master = &self.nodes[m].id;
        for line in nodes.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            if fields.len() >= 4
                && fields[3] == master
                && let Some(i) = self.nodes.iter().position(|n| n.id == fields[0])
            {
                return Ok(i);
            }
        }
        Err(startup(format!("master {m} has no replica")))
    }

    /// Whether node `i` is a master with slots now, by its own account (`ROLE`).
    pub async fn is_master(&self, i: usize) -> Result<bool, DevstackError> {
        let role: Vec<::redis::Value> = self.cmd(i, &mut ::redis::cmd("ROLE")).await?;
        Ok(matches!(role.first(), Some(::redis::Value::BulkString(b)) if b == b"master"))
    }

    /// Freezes node `i` (SIGSTOP): it holds its connections but answers nothing, as a
    /// stalled host does. [`Self::thaw`] resumes it.
    pub async fn freeze(&self, i: usize) -> Result<(), DevstackError> {
        self.signal(i, "-STOP").await
    }

    pub async fn thaw(&self, i: usize) -> Result<(), DevstackError> {
        self.signal(i, "-CONT").await
    }

    async fn signal(&self, i: usize, sig: &str) -> Result<(), DevstackError> {
        let pid = self.nodes[i]
            .redis
            .pid()
            .ok_or_else(|| startup(format!("node {i} is not running")))?;
        let status = tokio::process::Command::new("kill")
            .arg(sig)
            .arg(pid.to_string())
            .status()
            .await
            .map_err(|source| DevstackError::Io {
                context: format!("kill {sig} {pid}"),
                source,
            })?;
        if status.success() {
            Ok(())
        } else {
            Err(startup(format!("kill {sig} {pid}: {status}")))
        }
    }

    fn bus_port(&self, i: usize) -> u16 {
        self.nodes[i].bus_port
    }

    /// Runs `cmd` on node `i` as the admin user, on a connection of its own.
    pub async fn cmd<T: ::redis::FromRedisValue>(
        &self,
        i: usize,
        cmd: &mut ::redis::Cmd,
    ) -> Result<T, DevstackError> {
        let url = format!(
            "redis://{}:{}@{}/",
            self.admin.0,
            self.admin.1,
            self.nodes[i].redis.host_port()
        );
        let run = async {
            let client = ::redis::Client::open(url.as_str())?;
            let mut conn = client.get_multiplexed_async_connection().await?;
            cmd.query_async::<T>(&mut conn).await
        };
        match tokio::time::timeout(Duration::from_secs(2), run).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(startup(format!("node {i}: {e}"))),
            Err(_) => Err(startup(format!("node {i}: no answer within 2 s"))),
        }
    }

    async fn wait_all(
        &self,
        deadline: Instant,
        what: &str,
        ok: impl Fn(&str) -> bool,
    ) -> Result<(), DevstackError> {
        for i in 0..self.nodes.len() {
            loop {
                let nodes: String = self.cmd(i, ::redis::cmd("CLUSTER").arg("NODES")).await?;
                if ok(&nodes) {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(startup(format!("node {i}: {what} not reached:\n{nodes}")));
                }
                tokio::time::sleep(POLL).await;
            }
        }
        Ok(())
    }

    async fn wait_node(
        &self,
        i: usize,
        deadline: Instant,
        what: &str,
        ok: impl Fn(&str) -> bool,
    ) -> Result<(), DevstackError> {
        loop {
            let info: String = self.cmd(i, ::redis::cmd("CLUSTER").arg("INFO")).await?;
            if ok(&info) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(startup(format!("node {i}: {what} not reached:\n{info}")));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn wait_info(
        &self,
        i: usize,
        deadline: Instant,
        line: &str,
    ) -> Result<(), DevstackError> {
        loop {
            let info: String = self.cmd(i, ::redis::cmd("INFO").arg("replication")).await?;
            if info.contains(line) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(startup(format!("node {i}: {line} not reached:\n{info}")));
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

fn startup(reason: String) -> DevstackError {
    DevstackError::Startup {
        what: "redis cluster",
        reason,
        log_tail: Vec::new(),
    }
}
