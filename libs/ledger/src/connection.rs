//! One Redis connection per process, to a single Redis or to a Redis Cluster (or Valkey, same
//! protocol), every command bounded by a response timeout: a Redis outage is a prompt,
//! retryable `unavailable`, never a hung request. Both kinds reconnect by themselves; the
//! cluster client also follows the slot map through a failover (`MOVED`, topology refresh).
//!
//! Which kind is chosen by the URL setting (docs/reliability.md, "Redis Cluster"): one URL
//! is a single Redis; several, comma-separated, are seed nodes of a cluster; one URL with
//! `cluster=1` in its query (`redis://host:port/?cluster=1`) is a cluster with one seed.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};
use tessera_schemas::{ErrorCode, WireError};

/// The query parameter that makes a single seed URL a cluster.
const CLUSTER_PARAM: &str = "cluster=1";

/// A connection to the ledger's Redis: one server, or a cluster. Cheap to clone (both kinds
/// multiplex one connection per server).
#[derive(Clone)]
pub enum LedgerConnection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

/// What a Redis URL setting names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisTarget {
    Single(String),
    /// Seed nodes of a cluster (each with the same credentials).
    Cluster(Vec<String>),
}

impl RedisTarget {
    /// Reads a URL setting: comma-separated URLs are a cluster's seeds; one URL is a single
    /// server unless its query holds `cluster=1` (which is removed).
    pub fn parse(setting: &str) -> RedisTarget {
        let urls: Vec<&str> = setting
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .collect();
        let strip = |u: &str| strip_cluster_param(u).unwrap_or_else(|| u.to_owned());
        match urls.as_slice() {
            [one] => match strip_cluster_param(one) {
                Some(seed) => RedisTarget::Cluster(vec![seed]),
                None => RedisTarget::Single((*one).to_owned()),
            },
            many => RedisTarget::Cluster(many.iter().map(|u| strip(u)).collect()),
        }
    }

    pub fn is_cluster(&self) -> bool {
        matches!(self, RedisTarget::Cluster(_))
    }
}

/// `url` without its `cluster=1` query parameter, if it had one.
fn strip_cluster_param(url: &str) -> Option<String> {
    let (base, query) = url.split_once('?')?;
    let params: Vec<&str> = query.split('&').collect();
    if !params.contains(&CLUSTER_PARAM) {
        return None;
    }
    let rest: Vec<&str> = params.into_iter().filter(|p| *p != CLUSTER_PARAM).collect();
    Some(if rest.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", rest.join("&"))
    })
}

/// Connects to what `setting` names (see [`RedisTarget::parse`]; credentials in the URLs:
/// each process has its own Redis user, and every cluster node holds the same users).
pub async fn connect(setting: &str, timeout: Duration) -> redis::RedisResult<LedgerConnection> {
    match RedisTarget::parse(setting) {
        RedisTarget::Single(url) => {
            let client = redis::Client::open(url.as_str())?;
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(timeout))
                .set_response_timeout(Some(timeout))
                .set_number_of_retries(1)
                .set_max_delay(Duration::from_millis(500));
            Ok(LedgerConnection::Single(
                ConnectionManager::new_with_config(client, config).await?,
            ))
        }
        RedisTarget::Cluster(seeds) => {
            // The whole request, retries and redirections included, within `timeout`: during
            // a failover a command to the lost master fails promptly as `unavailable`; the
            // next one finds the promoted replica through a topology refresh.
            let client = ClusterClient::builder(seeds)
                .connection_timeout(timeout)
                .response_timeout(timeout)
                .overall_response_timeout(Some(timeout))
                .retries(3)
                .min_retry_wait(20)
                .max_retry_wait(200)
                .build()?;
            Ok(LedgerConnection::Cluster(
                client.get_async_connection().await?,
            ))
        }
    }
}

impl ConnectionLike for LedgerConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            LedgerConnection::Single(c) => c.req_packed_command(cmd),
            LedgerConnection::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            LedgerConnection::Single(c) => c.req_packed_commands(pipeline, offset, count),
            LedgerConnection::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            LedgerConnection::Single(c) => c.get_db(),
            LedgerConnection::Cluster(c) => c.get_db(),
        }
    }
}

/// Redis failures become `unavailable` on the wire; the detail stays in the log.
pub(crate) fn unavailable(e: redis::RedisError) -> WireError {
    tracing::warn!(error = %e, "redis command failed");
    WireError::new(ErrorCode::Unavailable, "token ledger unavailable")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_url_is_a_single_server_several_or_cluster_1_a_cluster() {
        assert_eq!(
            RedisTarget::parse("redis://u:p@h:6379/"),
            RedisTarget::Single("redis://u:p@h:6379/".into())
        );
        assert_eq!(
            RedisTarget::parse("redis://u:p@a:1/, redis://u:p@b:2/"),
            RedisTarget::Cluster(vec!["redis://u:p@a:1/".into(), "redis://u:p@b:2/".into()])
        );
        assert_eq!(
            RedisTarget::parse("rediss://u:p@a:1/?cluster=1"),
            RedisTarget::Cluster(vec!["rediss://u:p@a:1/".into()])
        );
        assert_eq!(
            RedisTarget::parse("redis://a:1/?protocol=resp3&cluster=1"),
            RedisTarget::Cluster(vec!["redis://a:1/?protocol=resp3".into()])
        );
        // Another query alone does not make a cluster.
        assert!(!RedisTarget::parse("redis://a:1/?protocol=resp3").is_cluster());
    }
}
