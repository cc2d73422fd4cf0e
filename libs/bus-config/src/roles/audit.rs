//! Who may touch the audit stream, kept apart so the rule reads in one place:
//! each worker publishes only the audit kinds it decides (broker: tokens; auth: logins,
//! accounts, packages) and may create, update and inspect the stream it provisions, but not
//! read, purge or delete its events; the admin reads it (an ordered consumer, for
//! `tessera audit tail`) and cannot write, purge or delete; clients, plugin servers and the
//! gateway get nothing.

use tessera_schemas::Subjects;
use tessera_schemas::audit::AuditKind;

use super::{Role, js_read};

/// The kinds each worker role emits (and so may publish).
pub(super) fn kinds(role: Role) -> &'static [AuditKind] {
    match role {
        Role::Broker => &[
            AuditKind::TokenIssued,
            AuditKind::TokenRefused,
            AuditKind::TokenRevoked,
        ],
        Role::Auth => &[
            AuditKind::LoginSucceeded,
            AuditKind::LoginFailed,
            AuditKind::UserAdded,
            AuditKind::PackageUploaded,
            AuditKind::PackageRejected,
            AuditKind::PackageInstalled,
            AuditKind::PackageRemoved,
        ],
        Role::Client | Role::Admin | Role::Gateway => &[],
    }
}

/// Publish and subscribe additions for `role`.
pub(super) fn permissions(role: Role, s: &Subjects) -> (Vec<String>, Vec<String>) {
    let stream = s.audit_stream();
    match role {
        Role::Broker | Role::Auth => {
            let mut publish: Vec<String> = kinds(role).iter().map(|k| s.audit(*k)).collect();
            // Provisioning only (get-or-create, then bring the bounds up to date).
            publish.extend([
                "$JS.API.INFO".to_owned(),
                format!("$JS.API.STREAM.CREATE.{stream}"),
                format!("$JS.API.STREAM.UPDATE.{stream}"),
                format!("$JS.API.STREAM.INFO.{stream}"),
            ]);
            (publish, vec![])
        }
        Role::Admin => {
            let mut publish = js_read(&stream, true);
            // `tessera audit tail` reads through an ordered pull consumer.
            publish.push(format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.>"));
            (publish, vec![])
        }
        Role::Client | Role::Gateway => (vec![], vec![]),
    }
}

#[cfg(test)]
mod tests {
    use super::super::Permissions;
    use super::*;

    /// Only the deciding worker writes each kind; only the admin reads; nobody purges or
    /// deletes an event, and nobody subscribes to the audit subjects directly.
    #[test]
    fn audit_stream_is_written_by_workers_and_read_by_admin() {
        let s = Subjects::default();
        let stream = s.audit_stream();
        let read = [
            format!("$JS.API.CONSUMER.CREATE.{stream}.c.{}", s.audit_all()),
            format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.c"),
            format!("$JS.API.DIRECT.GET.{stream}"),
        ];
        let erase = [
            format!("$JS.API.STREAM.PURGE.{stream}"),
            format!("$JS.API.STREAM.MSG.DELETE.{stream}"),
            format!("$JS.API.STREAM.DELETE.{stream}"),
        ];
        for role in Role::ALL {
            let p = Permissions::for_role(role, &s);
            for kind in AuditKind::ALL {
                assert_eq!(
                    p.may_publish(&s.audit(kind)),
                    kinds(role).contains(&kind),
                    "{role:?} {kind}"
                );
                assert!(!p.may_subscribe(&s.audit(kind)), "{role:?} {kind}");
            }
            for api in &read {
                assert_eq!(p.may_publish(api), role == Role::Admin, "{role:?} {api}");
            }
            for api in &erase {
                assert!(!p.may_publish(api), "{role:?} {api}");
            }
            let create = format!("$JS.API.STREAM.CREATE.{stream}");
            assert_eq!(
                p.may_publish(&create),
                matches!(role, Role::Broker | Role::Auth),
                "{role:?}"
            );
        }
        // Every kind has exactly one emitting role.
        for kind in AuditKind::ALL {
            let n = Role::ALL
                .iter()
                .filter(|r| kinds(**r).contains(&kind))
                .count();
            assert_eq!(n, 1, "{kind}");
        }
    }
}
