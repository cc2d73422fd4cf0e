use super::from_pairs as env;
use super::registry::{self, BROKER_KEY_FILE, CLOCK_LEEWAY, DEV_EPHEMERAL_KEYS, GRACE, NATS_URL};
use super::*;

#[test]
fn durations() {
    assert_eq!(parse_duration("90"), Some(Duration::from_secs(90)));
    assert_eq!(parse_duration("15m"), Some(Duration::from_secs(900)));
    assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
    assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
    assert_eq!(parse_duration("x"), None);
    assert_eq!(parse_duration("5d"), None);
}

#[test]
fn first_of_prefers_the_first_and_names_it() {
    let own = &registry::BROKER_URL;
    let mut src = env(&[]);
    let mut r = Reader::new(&src);
    r.first_of(&[own, &NATS_URL]);
    assert_eq!(r.finish().unwrap_err().keys(), [own.name]);
    src.insert(NATS_URL.name.to_owned(), "b".to_owned());
    assert_eq!(read(&src, |r| r.first_of(&[own, &NATS_URL])).unwrap(), "b");
    src.insert(own.name.to_owned(), "a".to_owned());
    assert_eq!(read(&src, |r| r.first_of(&[own, &NATS_URL])).unwrap(), "a");
}

#[test]
fn the_registry_defaults_are_what_the_code_applies() {
    assert_eq!(
        read(&env(&[]), |r| r.duration(&GRACE)).unwrap(),
        Duration::from_secs(10)
    );
    assert_eq!(
        CLOCK_LEEWAY.default_duration(),
        tessera_protocol::jwt::DEFAULT_LEEWAY
    );
    assert_eq!(
        prefix(&env(&[])).unwrap().prefix(),
        tessera_schemas::subjects::DEFAULT_PREFIX
    );
}

/// Every bad setting of a read is in its error, each once, with its reason.
#[test]
fn every_bad_setting_is_reported_at_once() {
    let src = env(&[
        ("TESSERA_PREFIX", "bad prefix"),
        ("TESSERA_GRACE", "soon"),
        ("TESSERA_MAX_IN_FLIGHT", "0"),
        ("TESSERA_JS_REPLICAS", "many"),
        ("TESSERA_CLOCK_LEEWAY", "10m"),
        ("TESSERA_HEALTH_ADDR", "nowhere"),
        ("TESSERA_LOG_FORMAT", "xml"),
    ]);
    let err = read(&src, |r| {
        WorkerSettings::read(r, &registry::GATEWAY_URL);
    })
    .unwrap_err();
    assert_eq!(
        err.keys(),
        [
            "TESSERA_PREFIX",
            "TESSERA_GATEWAY_URL",
            "TESSERA_GRACE",
            "TESSERA_MAX_IN_FLIGHT",
            "TESSERA_JS_REPLICAS",
            "TESSERA_CLOCK_LEEWAY",
            "TESSERA_HEALTH_ADDR",
            "TESSERA_LOG_FORMAT",
        ]
    );
    let text = err.to_string();
    assert!(text.starts_with("8 bad settings:"), "{text}");
    assert!(
        text.contains("TESSERA_GRACE: \"soon\" is not a duration"),
        "{text}"
    );
    // Merging the same read twice (two workers sharing the settings) lists each once.
    assert_eq!(ConfigError::merge([err.clone(), err.clone()]), Some(err));
}

#[test]
fn an_unset_key_file_is_refused_unless_ephemeral_keys_are_asked_for() {
    let err = read(&env(&[]), |r| keys::signing_key(r, &BROKER_KEY_FILE)).unwrap_err();
    assert_eq!(err.keys(), [BROKER_KEY_FILE.name]);
    assert!(err.to_string().contains(DEV_EPHEMERAL_KEYS.name), "{err}");

    let dev = env(&[(DEV_EPHEMERAL_KEYS.name, "1")]);
    assert!(
        read(&dev, |r| keys::signing_key(r, &BROKER_KEY_FILE))
            .unwrap()
            .is_some()
    );
    let typo = env(&[(DEV_EPHEMERAL_KEYS.name, "yes")]);
    assert_eq!(
        read(&typo, |r| keys::signing_key(r, &BROKER_KEY_FILE))
            .unwrap_err()
            .keys(),
        [DEV_EPHEMERAL_KEYS.name, BROKER_KEY_FILE.name]
    );
}

/// Validation reads key files and never writes one: a missing file is reported and stays
/// missing, its directory too.
#[test]
fn a_missing_key_file_is_reported_and_not_created() {
    let dir = std::env::temp_dir().join(format!(
        "tessera-config-{}-{}",
        std::process::id(),
        tessera_protocol::now_unix()
    ));
    let path = dir.join("keys/broker.pem");
    let src = env(&[(BROKER_KEY_FILE.name, path.to_str().unwrap())]);
    let err = read(&src, |r| keys::signing_key(r, &BROKER_KEY_FILE)).unwrap_err();
    assert_eq!(err.keys(), [BROKER_KEY_FILE.name]);
    assert!(err.to_string().contains("no such file"), "{err}");
    assert!(
        !path.exists() && !dir.exists(),
        "validation created {}",
        dir.display()
    );

    // A file that is there but not a key is refused, and left as it was.
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, "not a key").unwrap();
    let err = read(&src, |r| keys::signing_key(r, &BROKER_KEY_FILE)).unwrap_err();
    assert!(err.to_string().contains("PKCS#8"), "{err}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "not a key");
    // And a real one loads.
    let key = tessera_protocol::signing::SigningKey::generate();
    std::fs::write(&path, key.to_pem()).unwrap();
    let loaded = read(&src, |r| keys::signing_key(r, &BROKER_KEY_FILE))
        .unwrap()
        .unwrap();
    assert_eq!(loaded.kid(), key.kid());
    std::fs::remove_dir_all(&dir).unwrap();
}
