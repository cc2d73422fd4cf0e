//! Sealed sensitive data on real servers: the admin registers a plugin's
//! public key, a client app seals data to it through the broker's `plugins.key`, and only
//! the plugin's private key (for that plugin id) opens it.

use tessera_schemas::ErrorCode;
use tessera_schemas::assets::SEAL_SUITE;
use tessera_sdk::ErrorKind;
use tessera_sdk::sealed::{self, PluginSecretKey, SealError};
use tessera_tests::{Stack, assert_eventually};

const SECRET: &[u8] = b"account 42; clicked 'pay'";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_data_opens_only_with_the_plugins_private_key() {
    let stack = Stack::start().await;
    let admin = stack.admin().await;
    let client = stack.client().await;
    let plugin_key = PluginSecretKey::generate();
    let registered = admin
        .register_plugin_key("weather", &plugin_key.public_key().to_base64url())
        .await
        .unwrap();
    assert_eq!(registered.suite, SEAL_SUITE);

    // The client app looks the key up through the broker (client role) and seals.
    let key = client.plugin_key("weather").await.unwrap();
    assert_eq!(key.public_key, plugin_key.public_key().to_base64url());
    let sealed = client.seal_for_plugin("weather", SECRET).await.unwrap();
    assert_eq!(sealed.suite, SEAL_SUITE);
    assert!(
        !sealed.ct.windows(7).any(|w| w == b"account"),
        "the plaintext must not show in the box"
    );

    // The plugin opens it; nobody else does.
    assert_eq!(
        sealed::open(&plugin_key, "weather", &sealed).unwrap(),
        SECRET
    );
    let stranger = PluginSecretKey::generate();
    assert_eq!(
        sealed::open(&stranger, "weather", &sealed),
        Err(SealError::CannotOpen)
    );
    // The same key under another plugin id does not open it either (HPKE info binds it).
    assert_eq!(
        sealed::open(&plugin_key, "other", &sealed),
        Err(SealError::CannotOpen)
    );
    let mut tampered = sealed.clone();
    *tampered.ct.last_mut().unwrap() ^= 0x80;
    assert_eq!(
        sealed::open(&plugin_key, "weather", &tampered),
        Err(SealError::CannotOpen)
    );
    // Two seals of the same data differ (a fresh ephemeral key each time).
    let again = client.seal_for_plugin("weather", SECRET).await.unwrap();
    assert_ne!(again.enc, sealed.enc);
    // The MessagePack form round-trips.
    let bytes = tessera_schemas::codec::encode(&sealed);
    assert_eq!(
        sealed::open_bytes(&plugin_key, "weather", &bytes).unwrap(),
        SECRET
    );

    // A new key replaces the old one: boxes sealed afterwards open only with the new key.
    let rotated = PluginSecretKey::generate();
    admin
        .register_plugin_key("weather", &rotated.public_key().to_base64url())
        .await
        .unwrap();
    let rotated_pub = rotated.public_key().to_base64url();
    assert_eventually!(
        client
            .plugin_key("weather")
            .await
            .is_ok_and(|k| k.public_key == rotated_pub),
        "the broker serves the rotated key"
    );
    let sealed = client.seal_for_plugin("weather", SECRET).await.unwrap();
    assert_eq!(sealed::open(&rotated, "weather", &sealed).unwrap(), SECRET);
    assert_eq!(
        sealed::open(&plugin_key, "weather", &sealed),
        Err(SealError::CannotOpen)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_plugins_and_bad_keys_get_typed_errors() {
    let stack = Stack::start().await;
    let admin = stack.admin().await;
    let client = stack.client().await;

    let err = client.seal_for_plugin("nobody", SECRET).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::NotFound, "{err}");
    let err = client.plugin_key("bad.id").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err:?}");

    for bad in ["", "AAAA", "not base64 at all!", &"A".repeat(44)] {
        let err = admin.register_plugin_key("weather", bad).await.unwrap_err();
        assert!(
            err.kind() == ErrorKind::Sealed
                && matches!(
                    std::error::Error::source(&err).and_then(|s| s.downcast_ref::<SealError>()),
                    Some(SealError::BadKey(_))
                ),
            "{bad:?}: {err:?}"
        );
        assert_eq!(err.code(), ErrorCode::BadRequest);
    }
    // Nothing was registered by the refused attempts.
    let err = client.plugin_key("weather").await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::NotFound, "{err}");
}
