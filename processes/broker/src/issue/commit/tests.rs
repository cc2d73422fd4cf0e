//! Every outcome of record-distribute-commit, against in-memory seams: what is handed out,
//! what is published, and what the ledger is told, for each way a step can end.

use std::sync::Mutex;
use std::time::Duration;

use tessera_ledger::{Commit, TokenRecord};
use tessera_schemas::messages::{DistEvent, TokenResponse};
use tessera_schemas::{ErrorCode, WireError};

use super::{Distributor, Issued, Ledger, record_distribute_commit, withdraw};
use crate::issue::mint::Minted;

/// The ledger's answers, scripted, and every call it got, in order.
#[derive(Default)]
struct ScriptedLedger {
    previous: Option<TokenResponse>,
    commit: Mutex<Option<Result<Commit<TokenResponse>, WireError>>>,
    calls: Mutex<Vec<String>>,
}

impl ScriptedLedger {
    fn committing(outcome: Result<Commit<TokenResponse>, WireError>) -> Self {
        ScriptedLedger {
            commit: Mutex::new(Some(outcome)),
            ..Default::default()
        }
    }
    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
    fn call(&self, what: String) {
        self.calls.lock().unwrap().push(what);
    }
}

impl Ledger for ScriptedLedger {
    async fn record(
        &self,
        minted: &Minted,
        _max_ttl: Duration,
        key: Option<&str>,
    ) -> Result<Option<TokenResponse>, WireError> {
        self.call(format!("record {} key={key:?}", minted.token_id));
        Ok(self.previous.clone())
    }
    async fn commit(
        &self,
        minted: &Minted,
        key: Option<&str>,
    ) -> Result<Commit<TokenResponse>, WireError> {
        let remembered = key.map(|k| (k.to_owned(), minted.token_id.clone()));
        self.call(format!(
            "commit {} remember={remembered:?}",
            minted.token_id
        ));
        self.commit.lock().unwrap().take().expect("one commit")
    }
    async fn forget(&self, token_id: &str, _record: &TokenRecord) {
        self.call(format!("forget {token_id}"));
    }
    async fn repend(&self, token_id: &str) {
        self.call(format!("repend {token_id}"));
    }
}

/// Publishes succeed unless their kind is in `fail`; every attempt is kept.
#[derive(Default)]
struct ScriptedDistributor {
    fail: Vec<&'static str>,
    published: Mutex<Vec<(String, Vec<String>, String)>>,
}

impl Distributor for ScriptedDistributor {
    async fn publish(
        &self,
        servers: &[String],
        msg_id: &str,
        event: &DistEvent,
    ) -> Result<(), WireError> {
        let kind = match event {
            DistEvent::Token { .. } => "token",
            DistEvent::Tokens { .. } => "tokens",
            DistEvent::Revoke { .. } => "revoke",
        };
        self.published
            .lock()
            .unwrap()
            .push((kind.to_owned(), servers.to_vec(), msg_id.to_owned()));
        match self.fail.contains(&kind) {
            true => Err(WireError::new(ErrorCode::Unavailable, "stream down")),
            false => Ok(()),
        }
    }
}

impl ScriptedDistributor {
    fn failing(kind: &'static str) -> Self {
        ScriptedDistributor {
            fail: vec![kind],
            ..Default::default()
        }
    }
    fn published(&self) -> Vec<(String, Vec<String>, String)> {
        self.published.lock().unwrap().clone()
    }
}

fn response(token_id: &str) -> TokenResponse {
    TokenResponse {
        token: format!("jwt-{token_id}"),
        token_id: token_id.into(),
        plugin_id: "weather".into(),
        account_id: "acc".into(),
        expires_at: 2_000_000_000,
        servers: vec!["ps1".into(), "ps2".into()],
    }
}

fn minted() -> Minted {
    let response = response("t1");
    Minted {
        token_id: "t1".into(),
        token: response.token.clone(),
        record: TokenRecord {
            account_id: "acc".into(),
            plugin_id: "weather".into(),
            servers: response.servers.clone(),
            token_hash: "h".into(),
            expires_at: response.expires_at,
            issued_at: response.expires_at - 60,
            device_id: None,
            user_ip: None,
        },
        response,
        record_ttl: Duration::from_secs(60),
        binding: String::new(),
    }
}

const TTL: Duration = Duration::from_secs(900);

fn servers() -> Vec<String> {
    vec!["ps1".into(), "ps2".into()]
}

#[tokio::test]
async fn a_committed_token_is_handed_out_once_distributed() {
    let ledger = ScriptedLedger::committing(Ok(Commit::Committed));
    let dist = ScriptedDistributor::default();
    let issued = record_distribute_commit(&ledger, &dist, minted(), TTL, Some("k"))
        .await
        .unwrap();
    assert_eq!(issued, Issued::Fresh(response("t1")));
    assert_eq!(dist.published(), [("token".into(), servers(), "t1".into())]);
    assert_eq!(
        ledger.calls(),
        [
            "record t1 key=Some(\"k\")",
            "commit t1 remember=Some((\"k\", \"t1\"))"
        ]
    );
}

#[tokio::test]
async fn a_live_earlier_reply_is_returned_and_nothing_is_distributed() {
    let ledger = ScriptedLedger {
        previous: Some(response("t0")),
        ..Default::default()
    };
    let dist = ScriptedDistributor::default();
    let issued = record_distribute_commit(&ledger, &dist, minted(), TTL, Some("k"))
        .await
        .unwrap();
    assert_eq!(issued, Issued::Replayed(response("t0")));
    assert!(dist.published().is_empty());
    assert_eq!(ledger.calls(), ["record t1 key=Some(\"k\")"]);
}

#[tokio::test]
async fn a_failed_distribution_forgets_the_record_and_commits_nothing() {
    let ledger = ScriptedLedger::default();
    let dist = ScriptedDistributor::failing("token");
    let err = record_distribute_commit(&ledger, &dist, minted(), TTL, None)
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Unavailable);
    assert_eq!(ledger.calls(), ["record t1 key=None", "forget t1"]);
}

#[tokio::test]
async fn a_token_no_longer_pending_at_its_commit_is_withdrawn_not_handed_out() {
    let ledger = ScriptedLedger::committing(Ok(Commit::Withdrawn));
    let dist = ScriptedDistributor::default();
    let err = record_distribute_commit(&ledger, &dist, minted(), TTL, None)
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Unavailable);
    // A sweeper may have withdrawn it already, or a Redis failover lost its pending entry
    // (then nobody else would): this request withdraws it too.
    let published = dist.published();
    assert_eq!(published.len(), 2);
    assert_eq!(
        published[1],
        ("revoke".into(), servers(), "withdraw.t1".into())
    );
    assert_eq!(
        ledger.calls(),
        ["record t1 key=None", "commit t1 remember=None", "forget t1"]
    );
}

#[tokio::test]
async fn a_commit_the_replicas_did_not_acknowledge_is_withdrawn_not_handed_out() {
    let ledger = ScriptedLedger::committing(Ok(Commit::Unreplicated));
    let dist = ScriptedDistributor::default();
    let err = record_distribute_commit(&ledger, &dist, minted(), TTL, Some("k"))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Unavailable);
    let published = dist.published();
    assert_eq!(published.len(), 2);
    assert_eq!(
        published[1],
        ("revoke".into(), servers(), "withdraw.t1".into())
    );
    assert_eq!(
        ledger.calls(),
        [
            "record t1 key=Some(\"k\")",
            "commit t1 remember=Some((\"k\", \"t1\"))",
            "forget t1"
        ]
    );
}

#[tokio::test]
async fn a_commit_of_unknown_outcome_leaves_the_token_pending() {
    let ledger = ScriptedLedger::committing(Err(WireError::new(ErrorCode::Unavailable, "down")));
    let dist = ScriptedDistributor::default();
    let err = record_distribute_commit(&ledger, &dist, minted(), TTL, None)
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Unavailable);
    // Neither forgotten nor withdrawn here: a sweeper decides once the deadline passes.
    assert_eq!(
        ledger.calls(),
        ["record t1 key=None", "commit t1 remember=None"]
    );
}

#[tokio::test]
async fn losing_the_idempotency_race_returns_the_winner_and_withdraws_ours() {
    let ledger = ScriptedLedger::committing(Ok(Commit::Lost(response("t0"))));
    let dist = ScriptedDistributor::default();
    let issued = record_distribute_commit(&ledger, &dist, minted(), TTL, Some("k"))
        .await
        .unwrap();
    assert_eq!(issued, Issued::Replayed(response("t0")));
    assert_eq!(
        dist.published(),
        [
            ("token".into(), servers(), "t1".into()),
            ("revoke".into(), servers(), "withdraw.t1".into())
        ]
    );
    assert_eq!(ledger.calls().last().unwrap(), "forget t1");
}

#[tokio::test]
async fn a_withdrawal_that_cannot_be_distributed_goes_back_to_pending() {
    let ledger = ScriptedLedger::committing(Ok(Commit::Lost(response("t0"))));
    let dist = ScriptedDistributor::failing("revoke");
    let issued = record_distribute_commit(&ledger, &dist, minted(), TTL, Some("k"))
        .await
        .unwrap();
    // The caller still gets the winner's token; ours waits for a sweep, never forgotten
    // while plugin servers may hold it.
    assert_eq!(issued, Issued::Replayed(response("t0")));
    let calls = ledger.calls();
    assert_eq!(calls.last().unwrap(), "repend t1");
    assert!(!calls.iter().any(|c| c.starts_with("forget")));
}

#[tokio::test]
async fn a_sweeper_withdrawal_revokes_then_forgets() {
    let ledger = ScriptedLedger::default();
    let dist = ScriptedDistributor::default();
    withdraw(&ledger, &dist, "t9", &minted().record)
        .await
        .unwrap();
    assert_eq!(
        dist.published(),
        [("revoke".into(), servers(), "withdraw.t9".into())]
    );
    assert_eq!(ledger.calls(), ["forget t9"]);
}
