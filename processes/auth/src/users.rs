//! Local accounts: username -> {account id, argon2id hash} in the users KV bucket.
//!
//! Hashing runs on the blocking pool, at most `hash_concurrency` at a time: argon2id is
//! deliberately slow and memory-hard (19 MiB per hash with the default parameters), so an
//! unbounded number in parallel would exhaust memory before CPU.

use std::sync::Arc;

use argon2::password_hash::{PasswordHasher, SaltString, rand_core::OsRng};
use argon2::{Argon2, PasswordHash, PasswordVerifier};
use async_nats::jetstream::kv;
use serde::{Deserialize, Serialize};
use tessera_protocol::now_unix;
use tessera_schemas::{ErrorCode, WireError, codec};
use tokio::sync::Semaphore;

pub const MIN_PASSWORD: usize = 8;
pub const MAX_PASSWORD: usize = 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserRecord {
    pub account_id: String,
    /// PHC string (`$argon2id$v=19$m=19456,t=2,p=1$...`).
    pub password_hash: String,
    pub created_at: u64,
}

pub struct Users {
    kv: kv::Store,
    hashing: Arc<Semaphore>,
    /// A hash of a random password, checked when the user does not exist, so an unknown
    /// username takes as long as a wrong password.
    decoy: String,
}

fn unavailable(e: impl std::fmt::Display) -> WireError {
    tracing::warn!(error = %e, "users store failed");
    WireError::new(ErrorCode::Unavailable, "user store unavailable")
}

fn hash(password: &str) -> Result<String, WireError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| WireError::new(ErrorCode::Internal, format!("hashing failed: {e}")))
}

fn matches(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

impl Users {
    pub fn new(kv: kv::Store, hash_concurrency: usize) -> Users {
        let decoy =
            hash(&uuid::Uuid::new_v4().to_string()).expect("argon2 with default parameters works");
        Users {
            kv,
            hashing: Arc::new(Semaphore::new(hash_concurrency.max(1))),
            decoy,
        }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, WireError> {
        let _permit = self
            .hashing
            .acquire()
            .await
            .expect("semaphore is never closed");
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| WireError::new(ErrorCode::Internal, e.to_string()))
    }

    /// Creates a local account; `conflict` if the username is taken.
    pub async fn add(&self, username: &str, password: &str) -> Result<String, WireError> {
        tessera_schemas::ids::check("username", username)
            .map_err(|e| WireError::new(ErrorCode::BadRequest, e.to_string()))?;
        if password.len() < MIN_PASSWORD || password.len() > MAX_PASSWORD {
            return Err(WireError::new(
                ErrorCode::BadRequest,
                format!("password must be {MIN_PASSWORD}-{MAX_PASSWORD} bytes"),
            ));
        }
        let pw = password.to_owned();
        let password_hash = self.blocking(move || hash(&pw)).await??;
        let record = UserRecord {
            account_id: uuid::Uuid::new_v4().to_string(),
            password_hash,
            created_at: now_unix(),
        };
        match self
            .kv
            .create(username, codec::encode(&record).into())
            .await
        {
            Ok(_) => Ok(record.account_id),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Err(WireError::new(
                ErrorCode::Conflict,
                format!("user {username:?} already exists"),
            )),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Checks a username and password; the same error, after the same work, whether the
    /// user is unknown or the password wrong.
    pub async fn check(&self, username: &str, password: &str) -> Result<UserRecord, WireError> {
        let denied = || WireError::new(ErrorCode::Unauthenticated, "invalid username or password");
        if password.len() > MAX_PASSWORD {
            return Err(denied());
        }
        let record = if tessera_schemas::ids::check("username", username).is_ok() {
            match self.kv.get(username).await.map_err(unavailable)? {
                Some(bytes) => codec::decode::<UserRecord>(&bytes).ok(),
                None => None,
            }
        } else {
            None
        };
        let phc = record
            .as_ref()
            .map_or_else(|| self.decoy.clone(), |r| r.password_hash.clone());
        let pw = password.to_owned();
        let ok = self.blocking(move || matches(&pw, &phc)).await?;
        match record {
            Some(r) if ok => Ok(r),
            _ => Err(denied()),
        }
    }
}
