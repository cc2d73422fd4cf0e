//! The app face's calls: log in (local account or third-party app), request plugin tokens,
//! call plugin-server operations.

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::HeaderMap;
use bytes::Bytes;
use tessera_schemas::messages::{
    AUTH_LOGIN, EchoReply, LoginRequest, LoginResponse, TOKEN_REQUEST, TokenRequest, TokenResponse,
};
use tessera_schemas::{codec, headers, ids};

use crate::{Client, Error};

/// How many times [`Client::request_token`] tries a request that failed retryably.
const TOKEN_ATTEMPTS: u32 = 3;

/// What a plugin token is to be bound to ([`Client::request_token_bound`]). Only the fields
/// the plugin's route binds are used; a bound field left `None` is refused (`bad_request`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Binding {
    /// The end user's device id (1-128 of `A-Z a-z 0-9 - _ . :`).
    pub device_id: Option<String>,
    /// The end user's IP address (IPv4 or IPv6).
    pub user_ip: Option<String>,
}

impl Client {
    /// Logs in with a local account; returns the account token.
    pub async fn login(&self, username: &str, password: &str) -> Result<LoginResponse, Error> {
        let req = LoginRequest {
            username: Some(username.into()),
            password: Some(password.into()),
            ..Default::default()
        };
        self.call(self.subjects().auth_login(), AUTH_LOGIN, &req)
            .await
    }

    /// Logs in through a third-party app (or, if the app is disabled, a local account from
    /// `params` `username`/`password`).
    pub async fn login_app(
        &self,
        app_id: &str,
        params: BTreeMap<String, String>,
    ) -> Result<LoginResponse, Error> {
        let req = LoginRequest {
            app_id: Some(app_id.to_owned()),
            params,
            ..Default::default()
        };
        self.call(self.subjects().auth_login(), AUTH_LOGIN, &req)
            .await
    }

    /// Asks the broker for a plugin token. A timed-out or `unavailable` request is retried
    /// with the same idempotency key (one is generated when none is given), so a retry never
    /// mints a second token.
    pub async fn request_token(
        &self,
        account_token: &str,
        plugin_id: &str,
        idempotency_key: Option<&str>,
    ) -> Result<TokenResponse, Error> {
        self.request_token_bound(
            account_token,
            plugin_id,
            idempotency_key,
            Binding::default(),
        )
        .await
    }

    /// [`Client::request_token`] for a plugin whose route binds tokens to the end user's
    /// device and/or IP: the token is only accepted (by the gateway) on packets whose
    /// verification info carries the same values.
    pub async fn request_token_bound(
        &self,
        account_token: &str,
        plugin_id: &str,
        idempotency_key: Option<&str>,
        binding: Binding,
    ) -> Result<TokenResponse, Error> {
        ids::check("plugin_id", plugin_id)?;
        let key = idempotency_key.map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
        let req = TokenRequest {
            account_token: account_token.to_owned(),
            plugin_id: plugin_id.to_owned(),
            idempotency_key: Some(key),
            device_id: binding.device_id,
            user_ip: binding.user_ip,
        };
        let mut attempt = 1;
        loop {
            match self
                .call(self.subjects().token_request(), TOKEN_REQUEST, &req)
                .await
            {
                Err(e) if e.is_retryable() && attempt < TOKEN_ATTEMPTS => {
                    tracing::debug!(attempt, error = %e, "token request failed; retrying with the same idempotency key");
                    tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// Calls `operation` on plugin server `server_id` with a plugin token; returns the raw
    /// reply body.
    pub async fn call_raw(
        &self,
        server_id: &str,
        operation: &str,
        plugin_token: &str,
        body: Bytes,
    ) -> Result<Bytes, Error> {
        ids::check("server id", server_id)?;
        ids::check("operation", operation)?;
        let mut h = HeaderMap::new();
        h.insert(
            headers::AUTHORIZATION,
            format!("{}{plugin_token}", headers::BEARER_PREFIX).as_str(),
        );
        let msg = self
            .request_raw(self.subjects().svc(server_id, operation), h, body)
            .await?;
        Ok(msg.payload)
    }

    /// Calls the demo plugin server's `echo` operation.
    pub async fn echo(
        &self,
        server_id: &str,
        plugin_token: &str,
        body: Vec<u8>,
    ) -> Result<EchoReply, Error> {
        let raw = self
            .call_raw(server_id, "echo", plugin_token, body.into())
            .await?;
        codec::decode(&raw).map_err(Error::bad_reply)
    }
}
