//! `auth.login` and `users.add`.

use std::sync::Arc;

use tessera_core::now_unix;
use tessera_core::service::{Incoming, Reply};
use tessera_schemas::claims::{ACCOUNT_TOKEN_AUDIENCE, AccountClaims};
use tessera_schemas::messages::{
    AUTH_LOGIN, LoginRequest, LoginResponse, USERS_ADD, UsersAddRequest, UsersAddResponse,
};
use tessera_schemas::{ErrorCode, WireError};

use crate::State;

pub async fn login(state: Arc<State>, req: Incoming) -> Result<Reply, WireError> {
    let body: LoginRequest = req.decode(AUTH_LOGIN)?;
    if let Some(app) = &body.app_id {
        // Third-party apps come with the auth-packages work; until then no app exists.
        return Err(WireError::new(
            ErrorCode::NotFound,
            format!("third-party app {app:?} is not configured"),
        ));
    }
    let (Some(username), Some(password)) = (body.username.as_deref(), body.password.as_deref())
    else {
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

pub async fn users_add(state: Arc<State>, req: Incoming) -> Result<Reply, WireError> {
    let body: UsersAddRequest = req.decode(USERS_ADD)?;
    let account_id = state.users.add(&body.username, &body.password).await?;
    tracing::info!(account_id = %account_id, "user added");
    Ok(Reply::msgpack(USERS_ADD, &UsersAddResponse { account_id }))
}
