//! Plugin static assets on real servers: publish a directory, download
//! the signed bundle into a cache, change one file, publish again: only that file moves
//! (in the SDK's counts and in the object store); a corrupted blob or a forged manifest is
//! refused and the cache keeps its good copy; bad publishes get typed errors.

use std::path::Path;
use std::sync::Mutex;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::TryStreamExt as _;
use tessera_protocol::signing::SigningKey;
use tessera_schemas::ErrorCode;
use tessera_schemas::assets::{
    ASSETS_PUBLISH, AssetFile, AssetsPublishRequest, AssetsPublishResponse, ManifestClaims,
    blob_name,
};
use tessera_sdk::assets::{Progress, sha256_hex};
use tessera_sdk::{Error, ErrorKind};
use tessera_tests::{Role, Stack};

const APP_JS_V1: &[u8] = b"console.log('v1');";
const APP_JS_V2: &[u8] = b"console.log('v2: changed');";
/// Not valid PNG, but bytes that are not text: enough to be an image by extension.
const LOGO: &[u8] = &[0x89, b'P', b'N', b'G', 0, 1, 2, 3, 255, 254];

fn write(dir: &Path, rel: &str, bytes: &[u8]) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
}

/// A bundle of four files: three the client caches (HTML, CSS, JS), one image it does not.
fn bundle_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "index.html",
        b"<html><script src=js/app.js></script></html>",
    );
    write(dir.path(), "css/app.css", b"body { color: teal }");
    write(dir.path(), "js/app.js", APP_JS_V1);
    write(dir.path(), "img/logo.png", LOGO);
    dir
}

async fn stack_with_plugin() -> Stack {
    let stack = Stack::start().await;
    stack.route("weather", &["ps1"]).await;
    stack
}

async fn assets_store(stack: &Stack) -> async_nats::jetstream::object_store::ObjectStore {
    async_nats::jetstream::new(stack.nats(Role::Admin).await)
        .get_object_store(stack.subjects().assets_bucket())
        .await
        .unwrap()
}

/// How many blob objects the store holds.
async fn blob_count(stack: &Stack) -> usize {
    let infos: Vec<_> = assets_store(stack)
        .await
        .list()
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    infos.iter().filter(|i| i.name.starts_with("blob/")).count()
}

fn cached(cache: &Path, rel: &str) -> Option<Vec<u8>> {
    std::fs::read(cache.join("weather").join("files").join(rel)).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_moves_only_the_changed_file() {
    tessera_tests::init_logging();
    let stack = stack_with_plugin().await;
    let admin = stack.admin().await;
    let client = stack.client().await;
    let src = bundle_dir();
    let cache = tempfile::tempdir().unwrap();

    let first = admin
        .publish_assets("weather", src.path(), &|_| {})
        .await
        .unwrap();
    assert_eq!((first.version, first.files), (1, 4));
    assert_eq!((first.stored, first.skipped), (4, 0));
    assert_eq!(blob_count(&stack).await, 4);

    // Progress adds up to the bytes the report gives.
    let seen = Mutex::new((0u64, 0u64, 0usize));
    let on_progress = |p: Progress<'_>| {
        let mut s = seen.lock().unwrap();
        match p {
            Progress::Started { bytes, .. } => s.0 = bytes,
            Progress::Bytes(n) => s.1 += n,
            Progress::FileDone(_) => s.2 += 1,
        }
    };
    let got = client
        .download_bundle("weather", cache.path(), &on_progress)
        .await
        .unwrap();
    assert_eq!((got.version, got.fetched, got.reused), (1, 3, 0));
    let (announced, moved, done) = *seen.lock().unwrap();
    assert_eq!((announced, moved, done), (got.bytes, got.bytes, 3));
    assert_eq!(cached(cache.path(), "js/app.js").unwrap(), APP_JS_V1);
    assert_eq!(
        cached(cache.path(), "css/app.css").unwrap(),
        b"body { color: teal }"
    );
    // Images are not cached; they come on demand, verified.
    assert!(cached(cache.path(), "img/logo.png").is_none());
    assert_eq!(
        &client.fetch_asset("weather", "img/logo.png").await.unwrap()[..],
        LOGO
    );

    // Change one file and publish again: one blob stored, the others skipped.
    write(src.path(), "js/app.js", APP_JS_V2);
    let second = admin
        .publish_assets("weather", src.path(), &|_| {})
        .await
        .unwrap();
    assert_eq!(second.version, 2);
    assert_eq!((second.stored, second.skipped), (1, 3));
    assert_eq!(second.bytes_stored, APP_JS_V2.len() as u64);
    assert_eq!(blob_count(&stack).await, 5, "exactly one new blob");

    let got = client
        .download_bundle("weather", cache.path(), &|_| {})
        .await
        .unwrap();
    assert_eq!((got.version, got.fetched, got.reused), (2, 1, 2));
    assert_eq!(got.bytes, APP_JS_V2.len() as u64);
    assert_eq!(cached(cache.path(), "js/app.js").unwrap(), APP_JS_V2);

    // Up to date: nothing moves. A file removed from the bundle leaves the cache.
    let got = client
        .download_bundle("weather", cache.path(), &|_| {})
        .await
        .unwrap();
    assert_eq!((got.fetched, got.reused, got.bytes), (0, 3, 0));
    std::fs::remove_file(src.path().join("css/app.css")).unwrap();
    let third = admin
        .publish_assets("weather", src.path(), &|_| {})
        .await
        .unwrap();
    assert_eq!((third.version, third.stored, third.files), (3, 0, 3));
    let got = client
        .download_bundle("weather", cache.path(), &|_| {})
        .await
        .unwrap();
    assert_eq!((got.version, got.fetched, got.removed), (3, 0, 1));
    assert!(cached(cache.path(), "css/app.css").is_none());

    // A cache damaged on disk is repaired: the bytes decide, not the cached manifest.
    write(
        &cache.path().join("weather/files"),
        "index.html",
        b"tampered",
    );
    let got = client
        .download_bundle("weather", cache.path(), &|_| {})
        .await
        .unwrap();
    assert_eq!((got.fetched, got.reused), (1, 1));
    assert_eq!(
        cached(cache.path(), "index.html").unwrap(),
        std::fs::read(src.path().join("index.html")).unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_blob_is_refused_and_the_cache_keeps_its_good_copy() {
    let stack = stack_with_plugin().await;
    let admin = stack.admin().await;
    let client = stack.client().await;
    let src = bundle_dir();
    let cache = tempfile::tempdir().unwrap();
    admin
        .publish_assets("weather", src.path(), &|_| {})
        .await
        .unwrap();
    client
        .download_bundle("weather", cache.path(), &|_| {})
        .await
        .unwrap();
    let manifest_v1 = std::fs::read(cache.path().join("weather/manifest.jws")).unwrap();

    write(src.path(), "js/app.js", APP_JS_V2);
    admin
        .publish_assets("weather", src.path(), &|_| {})
        .await
        .unwrap();
    // Overwrite the new blob with other bytes under the same name (admin may write blobs).
    let evil = b"console.log('evil');";
    assets_store(&stack)
        .await
        .put(blob_name(&sha256_hex(APP_JS_V2)).as_str(), &mut &evil[..])
        .await
        .unwrap();

    let err = client
        .download_bundle("weather", cache.path(), &|_| {})
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupted, "{err:?}");
    assert_eq!(err.path(), Some("js/app.js"));
    assert_eq!(err.code(), ErrorCode::PackageRejected);
    assert!(!err.is_retryable());
    // Nothing half-written: the old file, the old manifest, no staging left behind.
    assert_eq!(cached(cache.path(), "js/app.js").unwrap(), APP_JS_V1);
    assert_eq!(
        std::fs::read(cache.path().join("weather/manifest.jws")).unwrap(),
        manifest_v1
    );
    let leftovers: Vec<_> = std::fs::read_dir(cache.path().join("weather"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let mut leftovers = leftovers;
    leftovers.sort();
    assert_eq!(leftovers, ["files", "manifest.jws"]);
    assert!(matches!(
        client.fetch_asset("weather", "js/app.js").await,
        Err(e) if e.kind() == ErrorKind::Corrupted
    ));

    // Publishing again uploads the damaged blob anew (its digest is checked), which repairs it.
    let again = admin
        .publish_assets("weather", src.path(), &|_| {})
        .await
        .unwrap();
    assert_eq!(again.stored, 1);
    let got = client
        .download_bundle("weather", cache.path(), &|_| {})
        .await
        .unwrap();
    assert_eq!(got.fetched, 1);
    assert_eq!(cached(cache.path(), "js/app.js").unwrap(), APP_JS_V2);
}

/// Replaces the plugin's latest manifest in the versions bucket (as the broker role: the
/// only one allowed to), to show what the client does with what it finds there.
async fn put_latest(stack: &Stack, plugin_id: &str, jws: &str) {
    let kv = async_nats::jetstream::new(stack.nats(Role::Broker).await)
        .get_key_value(stack.subjects().asset_versions_bucket())
        .await
        .unwrap();
    kv.put(plugin_id, jws.to_owned().into()).await.unwrap();
}

fn refused(r: Result<tessera_sdk::assets::VerifiedManifest, Error>, why: &str) {
    match r {
        Err(e) if e.kind() == ErrorKind::BadManifest => {}
        other => panic!("{why}: expected BadManifest, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_not_signed_by_the_platform_is_refused() {
    let stack = stack_with_plugin().await;
    stack.route("other", &["ps1"]).await;
    let admin = stack.admin().await;
    let client = stack.client().await;
    let src = bundle_dir();
    admin
        .publish_assets("weather", src.path(), &|_| {})
        .await
        .unwrap();
    let good = client.asset_manifest("weather").await.unwrap();
    assert_eq!(good.claims.version, 1);
    assert_eq!(good.claims.files.len(), 4);

    // Signed by a key that is not in the JWKS.
    let forged = SigningKey::generate().sign(&good.claims).unwrap();
    put_latest(&stack, "weather", &forged).await;
    refused(client.asset_manifest("weather").await, "unknown key");
    // The same, claiming the platform key's kid (the header of a genuine manifest).
    let genuine_header = good.jws.split('.').next().unwrap();
    let (_, rest) = forged.split_once('.').unwrap();
    put_latest(&stack, "weather", &format!("{genuine_header}.{rest}")).await;
    refused(
        client.asset_manifest("weather").await,
        "another key under our kid",
    );

    // The platform's signature over a tampered file list.
    let mut parts: Vec<String> = good.jws.split('.').map(str::to_owned).collect();
    let mut claims: ManifestClaims =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
    claims.files[0].sha256 = sha256_hex(b"something else");
    parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
    put_latest(&stack, "weather", &parts.join(".")).await;
    refused(client.asset_manifest("weather").await, "tampered file list");

    // A genuine manifest of another plugin, or a genuine plugin token, is not this one.
    put_latest(&stack, "other", &good.jws).await;
    refused(client.asset_manifest("other").await, "another plugin's");
    let ann = stack.user("ann", "correct horse battery").await;
    let token = client
        .request_token(&ann.account_token, "weather", None)
        .await
        .unwrap();
    put_latest(&stack, "weather", &token.token).await;
    refused(client.asset_manifest("weather").await, "a plugin token");

    // The cache is not touched by a refused manifest.
    let cache = tempfile::tempdir().unwrap();
    assert!(matches!(
        client
            .download_bundle("weather", cache.path(), &|_| {})
            .await,
        Err(e) if e.kind() == ErrorKind::BadManifest
    ));
    assert!(!cache.path().join("weather/manifest.jws").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_publishes_get_typed_errors() {
    let stack = stack_with_plugin().await;
    let admin = stack.admin().await;
    let client = stack.client().await;
    let src = bundle_dir();

    // No route: the platform does not know the plugin.
    let err = admin
        .publish_assets("nobody", src.path(), &|_| {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::NotFound, "{err}");
    // An empty directory, a missing one, a bad plugin id: refused before anything is sent.
    let empty = tempfile::tempdir().unwrap();
    for (plugin, dir) in [
        ("weather", empty.path()),
        ("weather", &empty.path().join("missing")),
        ("bad.id", src.path()),
    ] {
        let err = admin
            .publish_assets(plugin, dir, &|_| {})
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err:?}");
        assert_eq!(err.code(), ErrorCode::BadRequest);
    }
    // Nothing published for these.
    for plugin in ["weather", "nobody"] {
        let err = client.asset_manifest(plugin).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::NotFound, "{err}");
    }

    // The broker checks the request itself, whoever sends it.
    let file = |path: &str, sha256: String| AssetFile {
        path: path.into(),
        size: APP_JS_V1.len() as u64,
        sha256,
        content_type: "text/javascript".into(),
    };
    let nats = stack.nats(Role::Admin).await;
    let publish = |files: Vec<AssetFile>| {
        let nats = nats.clone();
        let subject = stack.subjects().assets_publish();
        async move {
            let req = AssetsPublishRequest {
                plugin_id: "weather".into(),
                files,
            };
            tessera_protocol::rpc::request::<_, AssetsPublishResponse>(
                &nats,
                subject,
                ASSETS_PUBLISH,
                &req,
                std::time::Duration::from_secs(5),
            )
            .await
            .unwrap_err()
            .code()
        }
    };
    // (The refused publish of "nobody" above did upload its blobs: uploads come before the
    // broker's check, and content-addressed blobs harm nobody. This one was never uploaded.)
    let sha = sha256_hex(b"never uploaded, 18b");
    assert_eq!(publish(vec![]).await, ErrorCode::BadRequest);
    assert_eq!(
        publish(vec![file("../escape.js", sha.clone())]).await,
        ErrorCode::BadRequest
    );
    assert_eq!(
        publish(vec![file("a.js", "nothex".into())]).await,
        ErrorCode::BadRequest
    );
    // A blob nobody uploaded.
    assert_eq!(
        publish(vec![file("a.js", sha.clone())]).await,
        ErrorCode::NotFound
    );
    // A blob whose stored bytes are not the claimed ones.
    assets_store(&stack)
        .await
        .put(blob_name(&sha).as_str(), &mut &b"other bytes"[..])
        .await
        .unwrap();
    assert_eq!(
        publish(vec![file("a.js", sha)]).await,
        ErrorCode::BadRequest
    );
    assert!(client.asset_manifest("weather").await.is_err());
}

/// Publishes of one plugin racing through two broker replicas each get their own version:
/// the pointer moves by compare-and-set, so none is lost and none is signed twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_publishes_get_distinct_versions() {
    let stack = Stack::builder().brokers(2).start().await;
    stack.route("weather", &["ps1"]).await;
    let admin = stack.admin().await;
    let src = bundle_dir();
    // Upload once, so the racing publishes only race at the broker.
    admin
        .publish_assets("weather", src.path(), &|_| {})
        .await
        .unwrap();
    // Fewer racers than the broker's compare-and-set attempts, so none may give up.
    let racers = (0..4).map(|_| admin.publish_assets("weather", src.path(), &|_| {}));
    let mut versions: Vec<u64> = futures::future::join_all(racers)
        .await
        .into_iter()
        .map(|r| r.unwrap().version)
        .collect();
    versions.sort();
    assert_eq!(versions, [2, 3, 4, 5]);
    let latest = stack
        .client()
        .await
        .asset_manifest("weather")
        .await
        .unwrap();
    assert_eq!(latest.claims.version, 5);
}
