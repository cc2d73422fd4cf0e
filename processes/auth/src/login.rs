//! `auth.login` and `users.add`, each decision also an audit event.

use std::collections::BTreeMap;
use std::sync::Arc;

use tessera_protocol::now_unix;
use tessera_runtime::audit::outcome_of;
use tessera_runtime::service::{Incoming, Reply};
use tessera_schemas::audit::{AuditActor, AuditKind, AuditRole};
use tessera_schemas::claims::{ACCOUNT_TOKEN_AUDIENCE, AccountClaims};
use tessera_schemas::messages::{
    AUTH_LOGIN, LoginRequest, LoginResponse, USERS_ADD, UsersAddRequest, UsersAddResponse,
};
use tessera_schemas::packages::AppConfig;
use tessera_schemas::{ErrorCode, WireError};

use crate::packages::runtime::Verdict;

use crate::State;

/// `auth.login`, with its decision on the audit stream.
pub async fn login(state: Arc<State>, req: Incoming) -> Result<Reply, WireError> {
    let body: LoginRequest = req.decode(AUTH_LOGIN)?;
    // Limits first, before any hash or package call. A refusal here is not audited: it
    // decides nothing about the account, and a flood must not become a flood of events
    // (it is counted in the request metrics as `rate_limited`).
    let connection = crate::limits::connection_of(
        req.from_other_account,
        req.header(crate::limits::REQUEST_INFO),
    );
    let _admitted = state
        .limits
        .admit(connection.as_deref(), local_username(&body))?;
    let result = decide(&state, &body).await;
    audit_login(&state, &req, &body, &result);
    result.map(|ok| Reply::msgpack(AUTH_LOGIN, &ok))
}

/// One login decision: who (the username, or the app, and the account on success) and the
/// outcome. Never the password, the params (a package's may hold codes or passwords) or the
/// account token. A request without credentials (`bad_request`) decides nothing about
/// anyone and is not audited.
fn audit_login(
    state: &State,
    req: &Incoming,
    body: &LoginRequest,
    result: &Result<LoginResponse, WireError>,
) {
    if matches!(result, Err(e) if e.code == ErrorCode::BadRequest) {
        return;
    }
    let kind = match result {
        Ok(_) => AuditKind::LoginSucceeded,
        Err(_) => AuditKind::LoginFailed,
    };
    let mut event = state.auditor.event(kind, outcome_of(result));
    // The app (a third-party login), the username tried (a local one, or a package's
    // `username` param), cut to the id length so a pasted blob does not bloat the trail, and
    // the account once known (`<app_id>:<subject>` for a third-party login).
    event.actor = AuditActor {
        role: Some(AuditRole::Client),
        account_id: result.as_ref().ok().map(|ok| ok.account_id.clone()),
        username: local_username(body).map(capped),
        app_id: body.app_id.as_deref().map(capped),
    };
    event.request_id = Some(req.request_id.clone());
    state.auditor.emit(event);
}

/// A caller-given name as the audit trail keeps it: at most the id length.
fn capped(name: &str) -> String {
    name.chars()
        .take(tessera_schemas::ids::MAX_ID_LEN)
        .collect()
}

/// The username of a local login: the field, or (from a client written for an app) the
/// `username` param.
fn local_username(body: &LoginRequest) -> Option<&str> {
    body.username
        .as_deref()
        .or_else(|| body.params.get("username").map(String::as_str))
}

async fn decide(state: &State, body: &LoginRequest) -> Result<LoginResponse, WireError> {
    if let Some(app_id) = &body.app_id {
        match state.apps.get(app_id).await? {
            Some(app) if app.enabled => return third_party(state, &app, &body.params).await,
            Some(_) => {}
            None => {
                return Err(WireError::new(
                    ErrorCode::NotFound,
                    format!("third-party app {app_id:?} is not configured"),
                ));
            }
        }
    }
    // No app, or a disabled one: local accounts. The
    // credentials may come as fields or, from a client written for the app, as params.
    let username = local_username(body);
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
    Ok(LoginResponse {
        account_token,
        account_id: user.account_id,
        expires_at: claims.exp,
    })
}

/// A login through the app's authentication package.
async fn third_party(
    state: &State,
    app: &std::sync::Arc<AppConfig>,
    params: &BTreeMap<String, String>,
) -> Result<LoginResponse, WireError> {
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
    Ok(LoginResponse {
        account_token,
        account_id,
        expires_at: claims.exp,
    })
}

pub async fn users_add(state: Arc<State>, req: Incoming) -> Result<Reply, WireError> {
    let body: UsersAddRequest = req.decode(USERS_ADD)?;
    let result = state.users.add(&body.username, &body.password).await;
    // A malformed request (a bad username or password length) is not an account decision.
    if let Err(e) = &result
        && e.code == ErrorCode::BadRequest
    {
        return Err(e.clone());
    }
    let mut event = state
        .auditor
        .event(AuditKind::UserAdded, outcome_of(&result));
    event.actor.role = Some(AuditRole::Admin);
    event.actor.username = Some(capped(&body.username));
    event.target.account_id = result.as_ref().ok().cloned();
    event.request_id = Some(req.request_id.clone());
    state.auditor.emit(event);
    let account_id = result?;
    tracing::info!(account_id = %account_id, "user added");
    Ok(Reply::msgpack(USERS_ADD, &UsersAddResponse { account_id }))
}
