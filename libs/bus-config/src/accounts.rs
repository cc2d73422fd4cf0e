//! The three NATS accounts and what crosses between them: the trust boundary of the bus.
//!
//! - [`Account::Workers`] (`TESSERA`): broker, auth, gateway and the admin; every stream,
//!   KV bucket and object store. Only static users with nats.conf passwords live here.
//! - [`Account::Clients`] (`CLIENTS`): every client app connection, placed here by the auth
//!   callout, each with an inbox of its own.
//! - [`Account::PluginServers`] (`PLUGINS`): every plugin server connection, placed here by
//!   the auth callout with the permissions of its own id.
//!
//! Nothing crosses except the [`services`] below: each is exported by one account to the
//! accounts named and imported by them. A request that crosses gets a reply subject the
//! server makes (`_R_.<...>` in the exporting account) and maps back to the requester's reply
//! subject in the requester's account, so **no reply can land on a subject of the exporting
//! account that the requester named**: the `$KV.`, `$JS.`, `$O.` subjects, the audit stream
//! and the workers' own request subjects are out of reach of anyone outside the workers'
//! account, whatever reply subject they choose (docs/security.md).
//!
//! Why one account for every plugin server rather than one each: accounts of a nats.conf
//! are fixed when the server starts, while plugin servers are registered at run time
//! (`tessera plugin-servers add`); within the shared account each connection's user
//! permissions (from the callout) confine it to its own `svc.<id>.*`, its own inbox and its
//! own distributions, and none of them may publish on `svc.>`, so no plugin server can send
//! another a request.

use tessera_schemas::Subjects;

/// A NATS account of the Tessera bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Account {
    /// The workers, the admin and all JetStream state.
    Workers,
    /// Client apps.
    Clients,
    /// Plugin servers.
    PluginServers,
}

impl Account {
    pub const ALL: [Account; 3] = [Account::Workers, Account::Clients, Account::PluginServers];

    /// The account's name in nats.conf (and the `aud` of a user JWT the callout issues).
    /// The workers' account keeps the name of the single account of earlier versions, so a
    /// deployment's JetStream data (stored per account name) stays where it is.
    pub fn name(self) -> &'static str {
        match self {
            Account::Workers => "TESSERA",
            Account::Clients => "CLIENTS",
            Account::PluginServers => "PLUGINS",
        }
    }
}

/// One service exported by `from` and imported by each of `importers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub from: Account,
    /// The subject in the exporting account (may end in a wildcard).
    pub subject: String,
    /// The subject the importers send to (the same, or the exporting account's JetStream
    /// API moved under [`Subjects::js_api_import`]).
    pub local: String,
    pub importers: Vec<Account>,
    /// Many replies to one request (a JetStream pull delivers a batch).
    pub stream_response: bool,
    /// nats-server adds the requester's connection (`Nats-Request-Info`: account, user,
    /// server, connection id, address) to each request, overwriting any such header the
    /// requester sent. Costs a JSON encoding per request, so only where it is used: the
    /// auth worker's per-connection login limit.
    pub share: bool,
}

impl Service {
    fn same(from: Account, subject: String, importers: &[Account]) -> Service {
        Service {
            from,
            local: subject.clone(),
            subject,
            importers: importers.to_vec(),
            stream_response: false,
            share: false,
        }
    }

    fn shared(mut self) -> Service {
        self.share = true;
        self
    }

    /// A request to the workers' JetStream API, `$JS.API.<rest>`, imported under
    /// `<prefix>.js.<rest>`.
    fn js(s: &Subjects, rest: &str, importers: &[Account], stream_response: bool) -> Service {
        Service {
            from: Account::Workers,
            subject: format!("$JS.API.{rest}"),
            local: format!("{}.{rest}", s.js_api_import()),
            importers: importers.to_vec(),
            stream_response,
            share: false,
        }
    }
}

/// Every service that crosses an account boundary. Nothing else does.
pub fn services(s: &Subjects) -> Vec<Service> {
    use Account::{Clients, PluginServers, Workers};
    let asset_versions = format!("KV_{}", s.asset_versions_bucket());
    let assets = format!("OBJ_{}", s.assets_bucket());
    vec![
        // What a client app asks the workers.
        Service::same(Workers, s.auth_login(), &[Clients]).shared(),
        Service::same(Workers, s.token_request(), &[Clients]),
        Service::same(Workers, s.data_all(), &[Clients]),
        Service::same(Workers, s.plugins_key(), &[Clients]),
        // Public keys, for clients (manifests) and plugin servers (tokens).
        Service::same(Workers, s.keys(), &[Clients, PluginServers]),
        // Plugin assets, read only: direct gets of the latest-manifest bucket and of the
        // assets object store (an object's info, then its chunks by sequence). No consumer
        // can be created (a push consumer's deliver subject is any subject the creator
        // names), nothing written.
        Service::js(
            s,
            &format!("DIRECT.GET.{asset_versions}.>"),
            &[Clients],
            false,
        ),
        Service::js(s, &format!("DIRECT.GET.{assets}"), &[Clients], false),
        Service::js(s, &format!("DIRECT.GET.{assets}.>"), &[Clients], false),
        // What a plugin server asks the workers: token checks, and its distributions
        // through a consumer the broker creates for it (`dist_open`; the filter is the
        // broker's choice) and pulls from by name (a pull names no deliver subject).
        Service::same(Workers, s.token_introspect(), &[PluginServers]),
        Service::same(Workers, s.dist_open_all(), &[PluginServers]),
    ]
    .into_iter()
    // Every stream the distribution may be split into (`tessera_schemas::dist_shards`).
    .chain(s.dist_streams_possible().iter().map(|stream| {
        Service::js(
            s,
            &format!("CONSUMER.MSG.NEXT.{stream}.*"),
            &[PluginServers],
            true,
        )
    }))
    // Plugin servers' operations, called by client apps and forwarded by the gateway.
    .chain([Service::same(
        PluginServers,
        s.svc_all(),
        &[Clients, Workers],
    )])
    .collect()
}

/// The subjects `account`'s connections may send requests to across a boundary.
pub fn imported_by(account: Account, s: &Subjects) -> Vec<String> {
    services(s)
        .into_iter()
        .filter(|svc| svc.importers.contains(&account))
        .map(|svc| svc.local)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roles::subject_matches;

    #[test]
    fn nothing_of_the_workers_state_is_exported() {
        let s = Subjects::default();
        for svc in services(&s) {
            for forbidden in ["$KV.", "$O.", "$SYS.", "_INBOX", "_R_"] {
                assert!(!svc.subject.starts_with(forbidden), "{svc:?}");
            }
            // The only JetStream API exported: direct gets of the assets' store and
            // manifest bucket, and pulls from the distribution stream.
            if let Some(rest) = svc.subject.strip_prefix("$JS.API.") {
                assert!(
                    rest.starts_with("DIRECT.GET.OBJ_TESSERA_ASSETS")
                        || rest.starts_with("DIRECT.GET.KV_TESSERA_ASSET_VERSIONS.")
                        || rest == "CONSUMER.MSG.NEXT.TESSERA_DIST.*"
                        || (1..8).any(|k| rest == format!("CONSUMER.MSG.NEXT.TESSERA_DIST_{k}.*")),
                    "{rest}"
                );
            }
            for sensitive in [
                s.users_add(),
                s.token_revoke(),
                s.auth_verify(),
                s.assets_publish(),
                s.auth_packages_upload(),
                s.audit_all(),
                s.dist("ps1"),
                s.dist_in(2, "ps1"),
            ] {
                assert!(!subject_matches(&svc.subject, &sensitive), "{svc:?}");
            }
            assert!(!svc.importers.contains(&svc.from));
            assert!(!svc.importers.is_empty());
        }
    }

    #[test]
    fn clients_import_what_they_call() {
        let s = Subjects::default();
        let clients = imported_by(Account::Clients, &s);
        for subject in [s.token_request(), s.auth_login(), s.keys(), s.plugins_key()] {
            assert!(clients.contains(&subject), "{subject}");
        }
        assert!(clients.contains(&s.svc_all()));
        assert!(!clients.contains(&s.token_introspect()));
        let plugins = imported_by(Account::PluginServers, &s);
        assert!(plugins.contains(&s.token_introspect()));
        assert!(!plugins.contains(&s.token_request()));
        assert!(!plugins.contains(&s.svc_all()));
    }
}
