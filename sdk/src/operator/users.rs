//! Local accounts and revocation (admin role).

use tessera_schemas::ids;
use tessera_schemas::messages::{
    RevokeRequest, RevokeResponse, TOKEN_REVOKE, USERS_ADD, UsersAddRequest, UsersAddResponse,
};

use crate::{Client, Error};

impl Client {
    /// Creates a local account (admin role).
    pub async fn add_user(
        &self,
        username: &str,
        password: &str,
    ) -> Result<UsersAddResponse, Error> {
        ids::check("username", username)?;
        self.call(
            self.subjects().users_add(),
            USERS_ADD,
            &UsersAddRequest {
                username: username.into(),
                password: password.into(),
            },
        )
        .await
    }

    /// Revokes one token (admin role).
    pub async fn revoke_token(&self, token_id: &str) -> Result<RevokeResponse, Error> {
        let req = RevokeRequest {
            token_id: Some(token_id.into()),
            account_id: None,
        };
        self.call(self.subjects().token_revoke(), TOKEN_REVOKE, &req)
            .await
    }

    /// Revokes every live token of an account (admin role).
    pub async fn revoke_account(&self, account_id: &str) -> Result<RevokeResponse, Error> {
        let req = RevokeRequest {
            token_id: None,
            account_id: Some(account_id.into()),
        };
        self.call(self.subjects().token_revoke(), TOKEN_REVOKE, &req)
            .await
    }
}
