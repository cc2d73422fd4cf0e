//! `auth.login` and `users.add`.

use std::collections::BTreeMap;
use std::sync::Arc;

use tessera_core::now_unix;
use tessera_core::service::{Incoming, Reply};
use tessera_schemas::claims::{ACCOUNT_TOKEN_AUDIENCE, AccountClaims};
use tessera_schemas::messages::{
    AUTH_LOGIN, LoginRequest, LoginResponse, USERS_ADD, UsersAddRequest, UsersAddResponse,
};
use tessera_schemas::packages::AppConfig;
use tessera_schemas::{ErrorCode, WireError};

use crate::packages::runtime::Verdict;

use crate::State;

pub async fn login(state: Arc<State>, req: Incoming) -> Result<Reply, WireError> {
    let body: LoginRequest = req.decode(AUTH_LOGIN)?;
    if let Some(app_id) = &body.app_id {
        match state.apps.get(app_id).await? {
            Some(app) if app.enabled => return third_party(&state, &app, &body.params).await,
            Some(_) => {}
            None => {
                return Err(WireError::new(
                    ErrorCode::NotFound,
                    format!("third-party app {app_id:?} is not configured"),
                ));
            }
        }
    }
    // No app, or a disabled one: local accounts (seed 003 step 2). The
    // credentials may come as fields or, from a client written for the app, as params.
    let username = body
        .username
        .as_deref()
        .or_else(|| body.params.get("username").map(String::as_str));
    let password = body
        .password
        .as_deref()
        .or_else(|| body.params.get("password").map(String::as_str));
    let (Some(username), Some(password)) = (username, password) else {
        return Err(WireError::new(
            ErrorCode::BadRequest,
            "username and password are required",
        ));
    };
    let user = state.users.check(username, password).await?;
    let now = now_unix();
    let claims = AccountClaims {
        iss: state.config.issuer.clone(),
        sub: user.account_id.clone(),
        aud: ACCOUNT_TOKEN_AUDIENCE.to_owned(),
        jti: uuid::Uuid::new_v4().to_string(),
        iat: now,
        exp: now + state.config.account_token_ttl.as_secs(),
        name: Some(username.to_owned()),
        idp: None,
        idp_sub: None,
    };
    let account_token = state
        .config
        .signing_key
        .sign(&claims)
        .map_err(|e| WireError::new(ErrorCode::Internal, format!("signing failed: {e}")))?;
    tracing::info!(account_id = %user.account_id, "login");
    Ok(Reply::msgpack(
        AUTH_LOGIN,
        &LoginResponse {
            account_token,
            account_id: user.account_id,
            expires_at: claims.exp,
        },
    ))
}

/// A login through the app's authentication package.
async fn third_party(
    state: &State,
    app: &std::sync::Arc<AppConfig>,
    params: &BTreeMap<String, String>,
) -> Result<Reply, WireError> {
    let secret = state.apps.secret(app).await?;
    let runtime = state.packages.runtime_for(app, secret).await?;
    let (subject, name) = match runtime.authenticate(params).await? {
        Verdict::Accepted { subject, name } => (subject, name),
        Verdict::Denied { reason } => {
            return Err(WireError::new(
                ErrorCode::Unauthenticated,
                format!("app {}: {reason}", app.app_id),
            ));
        }
    };
    let account_id = format!("{}:{subject}", app.app_id);
    let now = now_unix();
    let claims = AccountClaims {
        iss: state.config.issuer.clone(),
        sub: account_id.clone(),
        aud: ACCOUNT_TOKEN_AUDIENCE.to_owned(),
        jti: uuid::Uuid::new_v4().to_string(),
        iat: now,
        exp: now + state.config.account_token_ttl.as_secs(),
        name,
        idp: Some(app.app_id.clone()),
        idp_sub: Some(subject),
    };
    let account_token = state
        .config
        .signing_key
        .sign(&claims)
        .map_err(|e| WireError::new(ErrorCode::Internal, format!("signing failed: {e}")))?;
    tracing::debug!(account_id = %account_id, app = %app.app_id, "third-party login");
    Ok(Reply::msgpack(
        AUTH_LOGIN,
        &LoginResponse {
            account_token,
            account_id,
            expires_at: claims.exp,
        },
    ))
}

pub async fn users_add(state: Arc<State>, req: Incoming) -> Result<Reply, WireError> {
    let body: UsersAddRequest = req.decode(USERS_ADD)?;
    let account_id = state.users.add(&body.username, &body.password).await?;
    tracing::info!(account_id = %account_id, "user added");
    Ok(Reply::msgpack(USERS_ADD, &UsersAddResponse { account_id }))
}
