//! `tessera audit tail` (admin): the audit stream, one readable line per event, or JSON
//! lines with `--json`.

use std::ops::ControlFlow;

use clap::{Args, Subcommand};
use tessera_bus_config::Role;
use tessera_schemas::audit::{AuditActor, AuditEvent, AuditTarget};
use tessera_sdk::operator::audit::{AuditEntry, AuditQuery};

use crate::connect::connect;
use crate::env::Settings;

#[derive(Subcommand)]
pub enum AuditCmd {
    /// Print the last audit events (issuances, revocations, login decisions, package changes).
    Tail(TailArgs),
}

#[derive(Args)]
pub struct TailArgs {
    /// How many of the latest matching events to print.
    #[arg(short = 'n', long = "lines", default_value_t = 20)]
    lines: usize,
    /// Keep printing new events as they arrive (until Ctrl-C).
    #[arg(short, long)]
    follow: bool,
    /// Only this kind (e.g. `login.failed`) or group of kinds (`token`, `login`, `user`,
    /// `package`).
    #[arg(long)]
    kind: Option<String>,
    /// One JSON object per line instead of text.
    #[arg(long)]
    json: bool,
}

pub async fn run(settings: &Settings, cmd: AuditCmd) -> anyhow::Result<()> {
    let AuditCmd::Tail(args) = cmd;
    let client = connect(settings, Role::Admin).await?;
    let query = AuditQuery {
        last: Some(args.lines),
        kind: args.kind,
        follow: args.follow,
    };
    let mut failed = None;
    let read = client.audit_read(&query, |entry| match print(&entry, args.json) {
        Ok(()) => ControlFlow::Continue(()),
        Err(e) => {
            // A closed pipe (`| head`) ends the tail quietly.
            failed = Some(e);
            ControlFlow::Break(())
        }
    });
    tokio::select! {
        r = read => r?,
        _ = tokio::signal::ctrl_c() => {}
    }
    match failed {
        Some(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

fn print(entry: &AuditEntry, json: bool) -> std::io::Result<()> {
    use std::io::Write;
    let line = match (&entry.event, json) {
        (Ok(ev), true) => serde_json::json!({"seq": entry.seq, "event": ev}).to_string(),
        (Err(e), true) => serde_json::json!({"seq": entry.seq, "error": e}).to_string(),
        (Ok(ev), false) => line(entry.seq, ev),
        (Err(e), false) => format!("#{} (undecodable event: {e})", entry.seq),
    };
    writeln!(std::io::stdout().lock(), "{line}")
}

/// `#12 2025-01-02T03:04:05.678Z token.issued ok  by client account=a1  on plugin=weather
/// token=t1 servers=ps1  [broker broker-1a2b3c4d req=r1]`
fn line(seq: u64, ev: &AuditEvent) -> String {
    let mut out = format!(
        "#{seq} {} {:<17} {:<15}",
        rfc3339_ms(ev.at),
        ev.kind.as_str(),
        ev.outcome.as_str()
    );
    let who = actor(&ev.actor);
    if !who.is_empty() {
        out.push_str(&format!("  by {who}"));
    }
    let what = target(&ev.target);
    if !what.is_empty() {
        out.push_str(&format!("  on {what}"));
    }
    if let Some(d) = &ev.detail {
        out.push_str(&format!("  ({d})"));
    }
    out.push_str(&format!("  [{} {}", ev.worker, ev.node));
    if let Some(r) = &ev.request_id {
        out.push_str(&format!(" req={r}"));
    }
    out.push(']');
    out
}

fn actor(a: &AuditActor) -> String {
    let mut parts = Vec::new();
    if let Some(role) = a.role {
        parts.push(
            serde_json::to_value(role)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
        );
    }
    push(&mut parts, "account", a.account_id.as_deref());
    push(&mut parts, "user", a.username.as_deref());
    push(&mut parts, "app", a.app_id.as_deref());
    parts.join(" ")
}

fn target(t: &AuditTarget) -> String {
    let mut parts = Vec::new();
    push(&mut parts, "plugin", t.plugin_id.as_deref());
    push(&mut parts, "account", t.account_id.as_deref());
    if !t.token_ids.is_empty() {
        parts.push(format!("token={}", t.token_ids.join(",")));
    }
    if let Some(n) = t.count {
        parts.push(format!("count={n}"));
    }
    if !t.servers.is_empty() {
        parts.push(format!("servers={}", t.servers.join(",")));
    }
    if let Some(p) = &t.package {
        let short = p.sha256.get(..12).unwrap_or(&p.sha256);
        parts.push(format!("package={}@{} sha256={short}", p.name, p.version));
    }
    parts.join(" ")
}

fn push(parts: &mut Vec<String>, key: &str, value: Option<&str>) {
    if let Some(v) = value {
        parts.push(format!("{key}={v}"));
    }
}

/// Unix milliseconds as UTC RFC 3339 (civil-from-days, H. Hinnant), without a date crate.
fn rfc3339_ms(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_rfc3339() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339_ms(1_735_689_599_999), "2024-12-31T23:59:59.999Z");
    }
}
