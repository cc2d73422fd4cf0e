//! OpenID Connect logins through the shipped `oauth2-code` package, against a provider that
//! speaks real OIDC (`StubIdp`: discovery, JWKS, RS256/ES256/EdDSA ID tokens, PKCE, both client
//! authentication methods) over real TCP, through a real auth node, up to a plugin token; and
//! each refusal with its typed wire error.

use std::collections::BTreeMap;

use tessera_devstack::idp::{ClientAuth, SigningAlg, StubIdp, Tamper, pkce_challenge};
use tessera_schemas::ErrorCode;
use tessera_schemas::messages::LoginResponse;
use tessera_sdk::Error;
use tessera_tests::packages::{dist_wasm, local_app};
use tessera_tests::{Backend, Stack};

const SECRET: &str = "s3cret of tessera:&%";
const REDIRECT: &str = "https://app.example/cb";
const VERIFIER: &str = "pkce-verifier-0123456789-0123456789-0123456789";

/// The stack, the provider and the package; apps are added by each test.
async fn setup() -> (Stack, StubIdp) {
    tessera_tests::init_logging();
    let stack = Stack::builder().backend(Backend::Local).start().await;
    let idp = StubIdp::start("tessera", SECRET).await.unwrap();
    idp.add_user("ann", "unused", "user-42", "Ann Example");
    stack
        .upload_package(&dist_wasm("oauth2-code"), "oauth2-code", "1.0.0")
        .await
        .expect("upload");
    (stack, idp)
}

/// An app that finds the provider by discovery; the allow-list names the provider's one
/// host and port (`127.0.0.1`, the app's own port), which serves every endpoint.
async fn put_oidc_app(stack: &Stack, idp: &StubIdp, app_id: &str, settings: &[(&str, &str)]) {
    let mut app = local_app(app_id, "oauth2-code", idp.port());
    app.settings.insert("issuer".into(), idp.issuer());
    for (k, v) in settings {
        app.settings.insert((*k).into(), (*v).into());
    }
    stack.put_app(app, Some(SECRET)).await;
}

fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A login with a fresh code issued with a PKCE challenge and a nonce, both sent back.
async fn login(stack: &Stack, idp: &StubIdp, app: &str) -> Result<LoginResponse, Error> {
    let code = idp.issue_code(
        "user-42",
        REDIRECT,
        Some(&pkce_challenge(VERIFIER)),
        Some("nonce-1"),
    );
    stack
        .client()
        .await
        .login_app(
            app,
            params(&[
                ("code", &code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", VERIFIER),
                ("nonce", "nonce-1"),
            ]),
        )
        .await
}

#[track_caller]
fn assert_refused(result: Result<LoginResponse, Error>, code: ErrorCode, says: &str) {
    let err = result.expect_err("the login is refused");
    assert_eq!(err.code(), code, "{err}");
    assert!(err.to_string().contains(says), "{says:?} not in: {err}");
}

#[tokio::test]
async fn openid_logins_with_basic_and_post_client_auth_reach_a_plugin_token() {
    let (stack, idp) = setup().await;
    put_oidc_app(&stack, &idp, "oidc-basic", &[("pkce", "required")]).await;
    put_oidc_app(
        &stack,
        &idp,
        "oidc-post",
        &[("token_endpoint_auth_method", "client_secret_post")],
    )
    .await;

    // The provider accepts only Basic: the default method logs in, post is refused.
    idp.accept_client_auth(&[ClientAuth::Basic]);
    let basic = login(&stack, &idp, "oidc-basic")
        .await
        .expect("basic login");
    assert_eq!(basic.account_id, "oidc-basic:user-42");
    assert_refused(
        login(&stack, &idp, "oidc-post").await,
        ErrorCode::PackageFailed,
        "token endpoint answered 401 invalid_client",
    );
    // And the other way round.
    idp.accept_client_auth(&[ClientAuth::Post]);
    let post = login(&stack, &idp, "oidc-post").await.expect("post login");
    assert_eq!(post.account_id, "oidc-post:user-42");
    assert_refused(
        login(&stack, &idp, "oidc-basic").await,
        ErrorCode::PackageFailed,
        "invalid_client",
    );
    assert!(idp.hits("/.well-known/openid-configuration") >= 1);
    assert!(idp.hits("/jwks") >= 1);

    // The account token is good for a plugin token.
    stack.route("weather", &["ps1"]).await;
    let ps1 = stack.plugin_server("ps1").await;
    let token = stack
        .client()
        .await
        .request_token(&basic.account_token, "weather", None)
        .await
        .expect("plugin token for an OpenID account");
    assert_eq!(token.account_id, "oidc-basic:user-42");
    drop(ps1);
    stack.shutdown().await;
}

#[tokio::test]
async fn forged_or_misdirected_id_tokens_are_refused() {
    let (stack, idp) = setup().await;
    put_oidc_app(&stack, &idp, "oidc", &[]).await;
    login(&stack, &idp, "oidc")
        .await
        .expect("a good login first");

    for (tamper, says) in [
        (Tamper::ForeignKey, "ID token refused: bad signature"),
        (Tamper::WrongAudience, "ID token refused: aud"),
        (Tamper::WrongNonce, "ID token refused: nonce does not match"),
        (Tamper::UserinfoSub, "is not the ID token's sub"),
    ] {
        idp.tamper_next_login(tamper);
        assert_refused(
            login(&stack, &idp, "oidc").await,
            ErrorCode::PackageFailed,
            says,
        );
    }

    // A discovery document for another issuer is not followed.
    let mut app = local_app("oidc-other", "oauth2-code", idp.port());
    app.settings
        .insert("issuer".into(), format!("{}/tenant", idp.issuer()));
    stack.put_app(app, Some(SECRET)).await;
    assert_refused(
        login(&stack, &idp, "oidc-other").await,
        ErrorCode::PackageFailed,
        "discovery",
    );

    // A provider that is down is the provider's fault, not the user's.
    idp.set_unavailable(true);
    assert_refused(
        login(&stack, &idp, "oidc").await,
        ErrorCode::PackageFailed,
        "503",
    );
    idp.set_unavailable(false);
    login(&stack, &idp, "oidc").await.expect("back in service");
    stack.shutdown().await;
}

#[tokio::test]
async fn pkce_and_the_redirect_uri_are_enforced() {
    let (stack, idp) = setup().await;
    put_oidc_app(
        &stack,
        &idp,
        "oidc-pkce",
        &[("pkce", "required"), ("redirect_uri", REDIRECT)],
    )
    .await;
    put_oidc_app(&stack, &idp, "oidc", &[]).await;
    let client = stack.client().await;

    // The app requires a verifier: refused before the provider is asked.
    let code = idp.issue_code("user-42", REDIRECT, None, None);
    let before = idp.hits("/oauth/token");
    assert_refused(
        client
            .login_app("oidc-pkce", params(&[("code", &code)]))
            .await,
        ErrorCode::Unauthenticated,
        "missing parameter code_verifier",
    );
    assert_eq!(idp.hits("/oauth/token"), before);
    // The configured redirect URI is used without the parameter; another one is refused.
    let ok = client
        .login_app(
            "oidc-pkce",
            params(&[("code", &code), ("code_verifier", VERIFIER)]),
        )
        .await
        .expect("the configured redirect URI");
    assert_eq!(ok.account_id, "oidc-pkce:user-42");
    assert_refused(
        client
            .login_app(
                "oidc-pkce",
                params(&[
                    ("code", "any"),
                    ("code_verifier", VERIFIER),
                    ("redirect_uri", "https://evil.example/cb"),
                ]),
            )
            .await,
        ErrorCode::Unauthenticated,
        "redirect_uri",
    );

    // The provider requires PKCE and the login sends no verifier: its invalid_grant is the
    // user's (401), as is a verifier that does not match the code's challenge.
    idp.require_pkce(true);
    let code = idp.issue_code("user-42", REDIRECT, None, None);
    assert_refused(
        client
            .login_app(
                "oidc",
                params(&[("code", &code), ("redirect_uri", REDIRECT)]),
            )
            .await,
        ErrorCode::Unauthenticated,
        "invalid_grant",
    );
    let code = idp.issue_code("user-42", REDIRECT, Some(&pkce_challenge(VERIFIER)), None);
    assert_refused(
        client
            .login_app(
                "oidc",
                params(&[
                    ("code", &code),
                    ("redirect_uri", REDIRECT),
                    ("code_verifier", "not-the-verifier"),
                ]),
            )
            .await,
        ErrorCode::Unauthenticated,
        "invalid_grant",
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn a_rotated_provider_key_and_other_algorithms_are_picked_up() {
    let (stack, idp) = setup().await;
    put_oidc_app(&stack, &idp, "oidc", &[]).await;
    login(&stack, &idp, "oidc")
        .await
        .expect("login with the first key");
    assert_eq!(idp.hits("/jwks"), 1);

    // The node's cached JWKS lacks the new kid: the package asks for a refresh, once.
    let first = idp.kid();
    assert_ne!(idp.rotate_keys(), first);
    let after = login(&stack, &idp, "oidc")
        .await
        .expect("login after rotation");
    assert_eq!(after.account_id, "oidc:user-42");
    assert_eq!(idp.hits("/jwks"), 2, "one refresh, no more");
    // Discovery came from the node's cache the second time.
    assert_eq!(idp.hits("/.well-known/openid-configuration"), 1);

    // ES256 and EdDSA keys (an app each: each app has its own cache, and a second refresh
    // of one URL within seconds is rate-limited by the node).
    for (app, alg) in [
        ("oidc-es256", SigningAlg::Es256),
        ("oidc-eddsa", SigningAlg::EdDsa),
    ] {
        idp.use_signing_alg(alg);
        put_oidc_app(&stack, &idp, app, &[]).await;
        login(&stack, &idp, app)
            .await
            .unwrap_or_else(|e| panic!("login with {alg:?}: {e}"));
    }
    stack.shutdown().await;
}
