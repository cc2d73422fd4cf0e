//! Unit tests of the role permissions: each subject is served by the role that owns it,
//! and every role can reach only what it must.

use super::*;

#[test]
fn wildcards() {
    assert!(subject_matches("a.>", "a.b.c"));
    assert!(!subject_matches("a.>", "a"));
    assert!(subject_matches("a.*.c", "a.b.c"));
    assert!(!subject_matches("a.*", "a.b.c"));
    assert!(subject_matches("a.b", "a.b"));
}

/// Each request subject is served by exactly the role that owns it, and the client role
/// can reach only what the issue allows.
#[test]
fn subjects_agree_with_permissions() {
    let s = Subjects::default();
    let serves = |r: Role, subj: &str| Permissions::for_role(r, &s).may_subscribe(subj);
    assert!(serves(Role::Broker, &s.token_request()));
    assert!(serves(Role::Broker, &s.token_revoke()));
    assert!(serves(Role::Broker, &s.token_introspect()));
    assert!(serves(Role::Broker, &s.keys()));
    assert!(serves(Role::Auth, &s.auth_login()));
    assert!(serves(Role::Auth, &s.auth_verify()));
    assert!(serves(Role::Auth, &s.users_add()));
    assert!(Permissions::for_plugin_server("ps1", &s).may_subscribe(&s.svc("ps1", "echo")));
    assert!(serves(Role::Auth, &s.auth_packages_upload()));
    assert!(serves(Role::Auth, &s.auth_packages_updated()));
    assert!(serves(Role::Auth, &s.auth_nodes_joined()));
    assert!(serves(Role::Auth, &s.auth_nodes_status()));
    let admin = Permissions::for_role(Role::Admin, &s);
    assert!(admin.may_publish(&s.auth_packages_upload()));
    assert!(admin.may_publish(&s.auth_nodes_status()));
    // Packages reach the store only through an auth node's checks; app secrets are
    // written by admin and read by auth alone.
    let packages_chunks = format!("$O.{}.C.x", s.packages_store());
    let staging_chunks = format!("$O.{}.C.x", s.package_staging_store());
    let secrets_api = format!("$JS.API.DIRECT.GET.KV_{}", s.app_secrets_bucket());
    for role in Role::ALL {
        let p = Permissions::for_role(role, &s);
        assert_eq!(
            p.may_publish(&packages_chunks),
            role == Role::Auth,
            "{role:?}"
        );
        assert_eq!(
            p.may_publish(&staging_chunks),
            matches!(role, Role::Auth | Role::Admin),
            "{role:?}"
        );
        assert_eq!(
            p.may_publish(&secrets_api),
            matches!(role, Role::Auth | Role::Admin),
            "{role:?}"
        );
        assert_eq!(
            p.may_publish(&s.auth_packages_updated()),
            role == Role::Auth,
            "{role:?}"
        );
    }

    let client = Permissions::for_role(Role::Client, &s);
    for ok in [
        s.token_request(),
        s.auth_login(),
        s.keys(),
        s.svc("ps1", "echo"),
    ] {
        assert!(client.may_publish(&ok), "{ok}");
    }
    for no in [
        s.dist("ps1"),
        s.auth_verify(),
        s.token_revoke(),
        s.users_add(),
        s.token_introspect(),
        s.auth_packages_upload(),
        s.auth_nodes_status(),
    ] {
        assert!(!client.may_publish(&no), "{no}");
    }
    assert!(!client.may_subscribe(&s.token_request()));
    assert!(!client.may_subscribe(&s.dist("ps1")));

    let broker = Permissions::for_role(Role::Broker, &s);
    assert!(broker.may_publish(&s.auth_verify()));
    assert!(broker.may_publish(&s.dist("ps1")));
    // Only the auth worker can touch the users bucket (password hashes).
    let users_api = format!("$JS.API.STREAM.MSG.GET.KV_{}", s.users_bucket());
    for role in Role::ALL {
        let may = Permissions::for_role(role, &s).may_publish(&users_api);
        assert_eq!(may, role == Role::Auth, "{role:?}");
    }
    let ps = Permissions::for_plugin_server("ps1", &s);
    assert!(!ps.may_publish(&s.dist("ps1")));
    assert!(ps.may_publish(&s.token_introspect()));

    // Data access: clients send packets, only the gateway serves them and forwards.
    assert!(serves(Role::Gateway, &s.data("weather")));
    for role in Role::ALL {
        let may = Permissions::for_role(role, &s).may_subscribe(&s.data("weather"));
        assert_eq!(may, role == Role::Gateway, "{role:?}");
    }
    assert!(client.may_publish(&s.data("weather")));
    let gw = Permissions::for_role(Role::Gateway, &s);
    assert!(gw.may_publish(&s.svc("ps1", "echo")));
    // Client-app secrets: only the gateway and admin reach that bucket's API; only the
    // admin may write a value.
    let apps_api = format!("$JS.API.DIRECT.GET.KV_{}", s.client_apps_bucket());
    let apps_put = format!("$KV.{}.app1", s.client_apps_bucket());
    let routes_put = format!("$KV.{}.weather.now", s.data_routes_bucket());
    for role in Role::ALL {
        let p = Permissions::for_role(role, &s);
        let reads = matches!(role, Role::Gateway | Role::Admin);
        assert_eq!(p.may_publish(&apps_api), reads, "{role:?}");
        assert_eq!(p.may_publish(&apps_put), role == Role::Admin, "{role:?}");
        assert_eq!(p.may_publish(&routes_put), role == Role::Admin, "{role:?}");
    }
    assert!(!gw.may_publish(&format!("$KV.{}.kid", s.keys_bucket())));
}

/// Assets: the broker serves the two new requests; clients may read the store and the
/// latest manifests but write neither; only the broker moves a manifest pointer; only
/// the admin registers plugin keys.
#[test]
fn assets_permissions_agree_with_subjects() {
    let s = Subjects::default();
    let p = |r: Role| Permissions::for_role(r, &s);
    assert!(p(Role::Broker).may_subscribe(&s.assets_publish()));
    assert!(p(Role::Broker).may_subscribe(&s.plugins_key()));
    for role in Role::ALL {
        if role != Role::Broker {
            assert!(!p(role).may_subscribe(&s.assets_publish()), "{role:?}");
            assert!(!p(role).may_subscribe(&s.plugins_key()), "{role:?}");
        }
    }
    let client = p(Role::Client);
    assert!(client.may_publish(&s.plugins_key()));
    assert!(!client.may_publish(&s.assets_publish()));
    let obj = format!("OBJ_{}", s.assets_bucket());
    let versions = format!("KV_{}", s.asset_versions_bucket());
    let keys = format!("KV_{}", s.plugin_keys_bucket());
    // A client app reads through direct gets imported from the workers' account, and has
    // no JetStream API of its own: no stream info, no consumer (whose deliver subject it
    // would choose).
    let js = s.js_api_import();
    assert!(!client.may_publish(&format!("$JS.API.STREAM.INFO.{obj}")));
    assert!(!client.may_publish(&format!("$JS.API.CONSUMER.CREATE.{obj}.x.y")));
    assert!(!client.may_publish(&format!("$JS.API.DIRECT.GET.{versions}.x")));
    assert!(!client.may_publish(&format!("{js}.CONSUMER.CREATE.{obj}.x.y")));
    assert!(client.may_publish(&format!("{js}.DIRECT.GET.{versions}.$KV.x.y")));
    assert!(client.may_publish(&format!("{js}.DIRECT.GET.{obj}")));
    assert!(client.may_publish(&format!("{js}.DIRECT.GET.{obj}.$O.x.M.y")));
    let chunk = format!("$O.{}.C.abc", s.assets_bucket());
    let versions_put = format!("$KV.{}.weather", s.asset_versions_bucket());
    let keys_put = format!("$KV.{}.weather", s.plugin_keys_bucket());
    for role in Role::ALL {
        let may = p(role);
        assert_eq!(
            may.may_publish(&chunk),
            matches!(role, Role::Admin | Role::Broker),
            "{role:?}"
        );
        assert_eq!(
            may.may_publish(&versions_put),
            role == Role::Broker,
            "{role:?}"
        );
        assert_eq!(may.may_publish(&keys_put), role == Role::Admin, "{role:?}");
        for purge in [&obj, &versions, &keys] {
            let api = format!("$JS.API.STREAM.PURGE.{purge}");
            if matches!(role, Role::Client | Role::Auth) {
                assert!(!may.may_publish(&api), "{role:?} {api}");
            }
        }
    }
}

/// A plugin server's permissions name its own id only: its service subjects, its
/// distributions (through the broker's `distribution.open.<id>`), its inbox.
#[test]
fn plugin_server_permissions_are_scoped_to_its_id() {
    const SRV_ALL: &str = "$SRV.>";
    let s = Subjects::default();
    let ps1 = Permissions::for_plugin_server("ps1", &s);
    let dist = s.dist_stream();
    assert!(ps1.may_subscribe(&s.svc("ps1", "echo")));
    assert!(ps1.may_subscribe(&s.svc_server("ps1")));
    assert!(!ps1.may_subscribe(&s.svc("ps2", "echo")));
    assert!(!ps1.may_subscribe(&s.svc_all()));
    assert!(ps1.may_subscribe(&format!("{}.abc.1", s.plugin_server_inbox("ps1"))));
    assert!(!ps1.may_subscribe(&format!("{}.abc", s.plugin_server_inbox("ps2"))));
    assert!(!ps1.may_subscribe("_INBOX.abc"));
    assert!(!ps1.may_subscribe(&s.dist("ps1")));
    let create =
        |name: &str, filter: &str| format!("$JS.API.CONSUMER.CREATE.{dist}.{name}.{filter}");
    // The serving connection reads no distributions (and may respond); the distribution
    // connection reads its own only (and may not respond).
    assert!(!ps1.may_publish(&create("c1", &s.dist("ps1"))));
    assert!(ps1.allow_responses);
    let ps1_dist = Permissions::for_plugin_server_distribution("ps1", &s);
    assert!(!ps1_dist.allow_responses);
    // It creates no consumer itself (a consumer's deliver subject is the creator's choice):
    // it asks the broker for one on its own id, and pulls from it.
    assert!(!ps1_dist.may_publish(&create("c1", &s.dist("ps1"))));
    assert!(ps1_dist.may_publish(&s.dist_open("ps1")));
    assert!(!ps1_dist.may_publish(&s.dist_open("ps2")));
    let pull = format!("{}.CONSUMER.MSG.NEXT.{dist}.c1", s.js_api_import());
    assert!(ps1_dist.may_publish(&pull));
    assert!(!ps1.may_publish(&s.dist_open("ps1")));
    assert!(ps1_dist.may_subscribe(&format!("{}.abc.1", s.plugin_server_inbox("ps1"))));
    for no in [
        s.svc_server("ps1"),
        SRV_ALL.to_owned(),
        "_INBOX.x".to_owned(),
    ] {
        assert!(!ps1_dist.may_subscribe(&no), "{no}");
    }
    for no in [
        s.token_introspect(),
        s.keys(),
        s.token_request(),
        s.dist("ps1"),
    ] {
        assert!(!ps1_dist.may_publish(&no), "{no}");
    }
    for no in [
        format!("$JS.API.CONSUMER.CREATE.{dist}"),
        format!("$JS.API.CONSUMER.CREATE.{dist}.c1"),
        format!("$JS.API.STREAM.MSG.GET.{dist}"),
        format!("$JS.API.DIRECT.GET.{dist}"),
        format!("$JS.API.DIRECT.GET.{dist}.{}", s.dist("ps2")),
        format!("$JS.API.CONSUMER.LIST.{dist}"),
        format!("$JS.API.CONSUMER.NAMES.{dist}"),
        format!("$JS.API.STREAM.PURGE.{dist}"),
        s.dist("ps1"),
        s.token_request(),
        s.token_revoke(),
        s.auth_verify(),
        s.svc("ps2", "echo"),
        format!("$KV.{}.ps1", s.plugin_servers_bucket()),
    ] {
        assert!(!ps1.may_publish(&no), "{no}");
        assert!(!ps1_dist.may_publish(&no), "{no}");
    }
    assert!(ps1.may_publish(&s.token_introspect()));
    assert!(ps1.may_publish(&s.keys()));
    // Only the admin writes plugin-server records; the auth callout reads them.
    let record = format!("$KV.{}.ps1", s.plugin_servers_bucket());
    let read = format!("$JS.API.DIRECT.GET.KV_{}", s.plugin_servers_bucket());
    for role in Role::ALL {
        let p = Permissions::for_role(role, &s);
        assert_eq!(p.may_publish(&record), role == Role::Admin, "{role:?}");
        assert_eq!(
            p.may_publish(&read),
            matches!(role, Role::Admin | Role::Auth),
            "{role:?}"
        );
        assert_eq!(
            p.may_subscribe(AUTH_CALLOUT),
            role == Role::Auth,
            "{role:?}"
        );
    }
}

/// A client connection subscribes to its own inbox and nothing else: not `_INBOX.>`, not
/// another client's inbox, not a plugin server's.
#[test]
fn client_permissions_are_scoped_to_its_own_inbox() {
    let s = Subjects::default();
    let mine = "_C_INBOX.0123456789abcdef0123456789abcdef";
    let other = "_C_INBOX.fedcba9876543210fedcba9876543210";
    let c = Permissions::for_client(mine, &s);
    assert!(c.may_subscribe(&format!("{mine}.abc.1")));
    assert!(c.may_subscribe(&format!("{mine}.>")));
    for no in [
        format!("{other}.abc"),
        "_C_INBOX.>".to_owned(),
        "_INBOX.>".to_owned(),
        "_INBOX.abc.1".to_owned(),
        format!("{}.x", s.plugin_server_inbox("ps1")),
        s.dist("ps1"),
        s.token_request(),
    ] {
        assert!(!c.may_subscribe(&no), "{no}");
    }
    assert_eq!(c.publish, Permissions::for_role(Role::Client, &s).publish);
    assert!(!c.allow_responses);
    // The client role alone (what no connection gets) subscribes to nothing.
    assert!(Permissions::for_role(Role::Client, &s).subscribe.is_empty());
}

/// With the distribution in shards, a plugin server gets on every shard's stream what it
/// gets on the single one: pulls by consumer name, and no consumer create, message get,
/// listing or purge; only the broker publishes to any shard's subjects.
#[test]
fn every_distribution_shard_is_guarded_like_the_single_stream() {
    use tessera_schemas::dist_shards::MAX_DIST_SHARDS;
    let s = Subjects::default();
    let ps1 = Permissions::for_plugin_server("ps1", &s);
    let ps1_dist = Permissions::for_plugin_server_distribution("ps1", &s);
    for k in 0..MAX_DIST_SHARDS {
        let dist = s.dist_stream_in(k);
        let pull = format!("{}.CONSUMER.MSG.NEXT.{dist}.c1", s.js_api_import());
        assert!(ps1_dist.may_publish(&pull), "{pull}");
        assert!(!ps1.may_publish(&pull), "{pull}");
        for no in [
            format!("$JS.API.CONSUMER.CREATE.{dist}"),
            format!("$JS.API.CONSUMER.CREATE.{dist}.c1.{}", s.dist_in(k, "ps1")),
            format!("$JS.API.STREAM.MSG.GET.{dist}"),
            format!("$JS.API.DIRECT.GET.{dist}"),
            format!("$JS.API.DIRECT.GET.{dist}.{}", s.dist_in(k, "ps2")),
            format!("$JS.API.CONSUMER.NAMES.{dist}"),
            format!("$JS.API.STREAM.PURGE.{dist}"),
            s.dist_in(k, "ps1"),
        ] {
            assert!(!ps1.may_publish(&no), "{no}");
            assert!(!ps1_dist.may_publish(&no), "{no}");
        }
        for role in Role::ALL {
            let p = Permissions::for_role(role, &s);
            assert_eq!(
                p.may_publish(&s.dist_in(k, "ps1")),
                role == Role::Broker,
                "{role:?} shard {k}"
            );
            let create = format!("$JS.API.STREAM.CREATE.{dist}");
            assert_eq!(
                p.may_publish(&create),
                matches!(role, Role::Broker | Role::Admin),
                "{role:?} {create}"
            );
        }
    }
    // Past the bound, nothing: the setting refuses more shards than nats.conf allows.
    let beyond = s.dist_stream_in(MAX_DIST_SHARDS);
    let pull = format!("{}.CONSUMER.MSG.NEXT.{beyond}.c1", s.js_api_import());
    assert!(!ps1_dist.may_publish(&pull));
    assert!(!Permissions::for_role(Role::Broker, &s).may_publish(&s.dist_in(MAX_DIST_SHARDS, "x")));
}
