//! Which URLs an outbound request may reach: the allow-list (scheme, host, port) and which
//! resolved addresses count as public.

use std::net::IpAddr;

use tessera_schemas::packages::AppConfig;

/// One allow-list entry: a scheme, a host (an IP literal, or a name glob) and a port.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    scheme: String,
    host: Host,
    port: u16,
}

#[derive(Debug, Clone, PartialEq)]
enum Host {
    Ip(IpAddr),
    /// Lower case; `*` matches any run of characters, `?` one.
    Name(String),
}

/// An app's allow-list. An entry is `scheme://host:port` (the port defaults to the scheme's)
/// or a bare `host`, which means the app's own scheme and port. Host globs as before
/// (`*.example.com`); an IP literal matches only itself, never a glob.
#[derive(Debug, Clone)]
pub struct AllowList {
    entries: Vec<Entry>,
}

impl AllowList {
    pub fn for_app(app: &AppConfig) -> Result<AllowList, String> {
        let entries = app
            .allowed_hosts
            .iter()
            .map(|e| parse_entry(e, &app.scheme, app.port))
            .collect::<Result<_, _>>()?;
        Ok(AllowList { entries })
    }

    /// Whether a request to `scheme://host:port` is allowed.
    pub(crate) fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        let ip = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .ok();
        self.entries.iter().any(|e| {
            e.scheme == scheme
                && e.port == port
                && match (&e.host, ip) {
                    (Host::Ip(allowed), Some(ip)) => *allowed == ip,
                    (Host::Name(glob), None) => glob_match(glob, &host.to_ascii_lowercase()),
                    _ => false,
                }
        })
    }
}

fn parse_entry(entry: &str, app_scheme: &str, app_port: u16) -> Result<Entry, String> {
    let bad = |why: &str| format!("allowed_hosts entry {entry:?}: {why}");
    let (scheme, rest, default_port) = match entry.split_once("://") {
        Some((scheme, rest)) => {
            let port = match scheme {
                "http" => 80,
                "https" => 443,
                _ => return Err(bad("the scheme must be http or https")),
            };
            (scheme.to_owned(), rest, Some(port))
        }
        None => (app_scheme.to_owned(), entry, None),
    };
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() || rest.contains(['/', '@', '?', '#']) {
        return Err(bad("give scheme://host:port or a host name"));
    }
    // `[v6]:port`, `host:port`, or a bare host (or bare v6 address).
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (addr, after) = v6.split_once(']').ok_or_else(|| bad("unclosed ["))?;
        let port = after.strip_prefix(':').map(str::parse::<u16>).transpose();
        (addr.to_owned(), port.map_err(|_| bad("bad port"))?)
    } else if rest.matches(':').count() == 1 {
        let (h, p) = rest.split_once(':').expect("one colon");
        (
            h.to_owned(),
            Some(p.parse::<u16>().map_err(|_| bad("bad port"))?),
        )
    } else {
        (rest.to_owned(), None)
    };
    let port = match (port, default_port) {
        (Some(p), _) => p,
        (None, Some(d)) => d,
        // A bare host: the app's own port (its `base_url`).
        (None, None) => app_port,
    };
    let host = match host.parse::<IpAddr>() {
        Ok(ip) => Host::Ip(ip),
        Err(_) if !host.is_empty() => Host::Name(host.to_ascii_lowercase()),
        Err(_) => return Err(bad("no host")),
    };
    Ok(Entry { scheme, host, port })
}

/// `*` matches any run of characters (dots included, as Extism's globs did), `?` one.
fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Whether an address is one a name on the public internet may resolve to.
pub(crate) fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                // Shared address space (RFC 6598) and "this network".
                || (a == 100 && (64..128).contains(&b))
                || a == 0)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                // Unique local fc00::/7 and link-local fe80::/10.
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80)
        }
    }
}

impl AllowList {
    /// The list of one origin, `scheme://host[:port]` (an external issuer's key URL).
    pub fn of_origin(origin: &str) -> Result<AllowList, String> {
        if !origin.contains("://") {
            return Err(format!("{origin:?}: give scheme://host[:port]"));
        }
        // The app defaults are unused: an entry with a scheme has its own default port.
        Ok(AllowList {
            entries: vec![parse_entry(origin, "https", 443)?],
        })
    }
}
