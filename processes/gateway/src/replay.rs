//! The gateway's Redis state: the shared replay cache of nonces, and a read of the token
//! ledger (is the plugin token still recorded, i.e. not revoked?).
//!
//! Both happen in one pipelined round trip per packet. The nonce is claimed with
//! `SET <key> 1 NX PX <window>`: whichever gateway replica claims it first wins, so a
//! packet replayed to another replica is caught too. Every command is bounded by the
//! ledger connection's response timeout: a Redis outage is a prompt `unavailable`, not a
//! hung request.

use std::time::Duration;

use tessera_ledger::{LedgerReader, TokenRecord};
use tessera_schemas::WireError;

#[derive(Clone)]
pub struct ReplayCache {
    ledger: LedgerReader,
}

/// What one round trip found.
pub struct Checked {
    /// Whether this packet claimed its nonce (false: seen before within the window).
    pub fresh_nonce: bool,
    /// The token record, when a token id was given and its record exists.
    pub record: Option<TokenRecord>,
}

impl ReplayCache {
    pub async fn connect(url: &str, prefix: &str, timeout: Duration) -> anyhow::Result<Self> {
        let conn = tessera_ledger::connect(url, timeout).await?;
        Ok(ReplayCache {
            ledger: LedgerReader::new(conn, prefix),
        })
    }

    /// Claims the nonce for `window` and reads the record of `token_id` (if given).
    pub async fn check(
        &self,
        app_id: &str,
        nonce: &str,
        window: Duration,
        token_id: Option<&str>,
    ) -> Result<Checked, WireError> {
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(self.ledger.keys().nonce(app_id, nonce))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(window.as_millis() as u64);
        let ((set,), record): ((Option<String>,), _) = match token_id {
            Some(id) => self.ledger.query_with_record(pipe, id).await?,
            None => (self.ledger.query(pipe).await?, None),
        };
        Ok(Checked {
            fresh_nonce: set.is_some(),
            record,
        })
    }

    /// A cheap command for readiness.
    pub async fn ping(&self) -> Result<(), String> {
        self.ledger.ping().await
    }
}
