//! The number of distribution shards (admin): read it, and change it while no broker runs.
//!
//! Brokers publish each plugin server's distributions in the stream of its shard
//! (`tessera_schemas::dist_shards`), and every replica must use the same number: one that
//! disagreed would publish a server's revocations where its consumer does not read. The
//! number is recorded in shard 0's stream, a broker refuses to start with another one, and
//! this changes the record only when no broker answers a micro-service ping, so replicas of
//! two layouts never run at once (docs/reliability.md, "Changing the number of distribution
//! shards").
//!
//! ```no_run
//! # async fn demo(admin: tessera_sdk::Client) -> Result<(), tessera_sdk::Error> {
//! // With every broker replica stopped:
//! let before = admin.set_dist_shards(3).await?;
//! // ...then start the brokers with TESSERA_DIST_SHARDS=3.
//! # drop(before); Ok(()) }
//! ```

use std::time::Duration;

use futures::StreamExt as _;
use tessera_bus_config::provision;
use tessera_schemas::dist_shards::MAX_DIST_SHARDS;
use tessera_schemas::{ErrorCode, WireError};

use crate::{Client, Error};

/// How long to wait for broker replicas to answer the ping. A running replica answers
/// within milliseconds; a loaded one within well under a second.
const PING_WAIT: Duration = Duration::from_secs(1);

impl Client {
    /// The number of shards the brokers publish to, as recorded (`None` before the first
    /// broker has made the distribution stream).
    pub async fn dist_shards(&self) -> Result<Option<u32>, Error> {
        provision::dist_shards(&self.js(), self.subjects())
            .await
            .map_err(Error::unavailable)
    }

    /// Broker replicas that answer a micro-service ping (`$SRV.PING.<prefix>-broker`).
    pub async fn running_brokers(&self) -> Result<usize, Error> {
        let nats = self.nats();
        let inbox = nats.new_inbox();
        let mut replies = nats
            .subscribe(inbox.clone())
            .await
            .map_err(Error::unavailable)?;
        let ping = format!("$SRV.PING.{}", self.subjects().service_name("broker"));
        nats.publish_with_reply(ping, inbox, Vec::new().into())
            .await
            .map_err(Error::unavailable)?;
        nats.flush().await.map_err(Error::unavailable)?;
        let deadline = tokio::time::Instant::now() + PING_WAIT;
        let mut n = 0;
        while let Ok(Some(msg)) = tokio::time::timeout_at(deadline, replies.next()).await {
            // With no broker subscribed, nats-server answers at once with a "no responders"
            // status (an empty message): that is not a replica.
            if msg.status.is_none() {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Records `shards` as the number of distribution shards and returns the number it
    /// replaced. Refused (`conflict`) while any broker replica runs, and (`bad_request`)
    /// outside 1 ..= 8; before any broker ran there is nothing to change (`not_found`: the
    /// first broker records its own `TESSERA_DIST_SHARDS`).
    pub async fn set_dist_shards(&self, shards: u32) -> Result<u32, Error> {
        if !(1..=MAX_DIST_SHARDS).contains(&shards) {
            return Err(Error::rejected(WireError::new(
                ErrorCode::BadRequest,
                format!(
                    "the number of distribution shards must be between 1 and {MAX_DIST_SHARDS}"
                ),
            )));
        }
        let running = self.running_brokers().await?;
        if running > 0 {
            return Err(Error::rejected(WireError::new(
                ErrorCode::Conflict,
                format!(
                    "{running} broker replica(s) answer: stop every broker first (replicas of \
                     two layouts must never run at once), then start them with \
                     TESSERA_DIST_SHARDS={shards}"
                ),
            )));
        }
        if self.dist_shards().await?.is_none() {
            return Err(Error::rejected(WireError::new(
                ErrorCode::NotFound,
                "no distribution stream yet: the first broker records its own \
                 TESSERA_DIST_SHARDS",
            )));
        }
        provision::set_dist_shards(&self.js(), self.subjects(), shards)
            .await
            .map_err(Error::unavailable)
    }
}
