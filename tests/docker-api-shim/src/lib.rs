//! The container engine, as the test harness sees it: where it is, whether it answers (and
//! speaks the API version testcontainers uses), and an API-version shim for older engines.
//!
//! A crate of its own (std and tokio only) so that `make test` can build the shim binary
//! before the suite without building the harness twice: a package built alone gets its
//! dependencies' features from itself, and the harness's would differ from the suite's.
//!
//! # Why a shim
//!
//! testcontainers 0.28 (through bollard 0.21) sends every request as Docker API
//! [`TESTCONTAINERS_API`] and never negotiates. An engine older than that (Debian 12's Docker
//! 20.10 speaks at most 1.41) refuses every such request ("client version 1.53 is too new").
//! [`run_api_shim`] listens on a socket of its own and forwards each request to the engine
//! with the version in its path lowered to the engine's; responses pass through untouched.
//! The requests the harness makes exist in both versions, and fields the older engine does
//! not know are ignored by it. `make test` starts the shim (this crate's binary) when the
//! engine needs it and points `DOCKER_HOST` at it (scripts/with-containers.sh).

use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

/// The Docker API version testcontainers 0.28 (bollard 0.21) speaks.
pub const TESTCONTAINERS_API: &str = "1.53";
/// The engine's default socket when `DOCKER_HOST` is unset.
pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

/// Where the engine is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DockerHost {
    Unix(PathBuf),
    Tcp(String),
}

impl DockerHost {
    /// `DOCKER_HOST` (unix:// or tcp://), else the default socket when it exists.
    pub fn from_env() -> Option<DockerHost> {
        match std::env::var("DOCKER_HOST").ok().filter(|v| !v.is_empty()) {
            Some(v) => DockerHost::parse(&v),
            None => Path::new(DEFAULT_SOCKET)
                .exists()
                .then(|| DockerHost::Unix(DEFAULT_SOCKET.into())),
        }
    }

    pub fn parse(v: &str) -> Option<DockerHost> {
        if let Some(p) = v.strip_prefix("unix://") {
            Some(DockerHost::Unix(p.into()))
        } else {
            v.strip_prefix("tcp://")
                .or_else(|| v.strip_prefix("http://"))
                .map(|a| DockerHost::Tcp(a.trim_end_matches('/').to_owned()))
        }
    }
}

/// What the engine said when asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// Nothing answers at `DOCKER_HOST` or the default socket.
    NoEngine(String),
    /// The engine answers but refuses testcontainers' API version (the shim is needed).
    TooOld { api: String },
    /// testcontainers can use it.
    Usable,
}

/// Asks the engine (bounded to a couple of seconds) whether testcontainers can use it.
pub fn probe() -> Probe {
    let Some(host) = DockerHost::from_env() else {
        return Probe::NoEngine(format!("DOCKER_HOST unset and no {DEFAULT_SOCKET}"));
    };
    match http_get(&host, &format!("/v{TESTCONTAINERS_API}/_ping")) {
        Ok((200, _)) => Probe::Usable,
        Ok((400, _)) => Probe::TooOld {
            api: engine_api_version(&host).unwrap_or_else(|_| "?".into()),
        },
        Ok((status, body)) => Probe::NoEngine(format!(
            "{host:?} answered {status}: {}",
            String::from_utf8_lossy(&body)
        )),
        Err(e) => Probe::NoEngine(format!("{host:?}: {e}")),
    }
}

/// The newest API version the engine speaks (`ApiVersion` of `GET /version`).
pub fn engine_api_version(host: &DockerHost) -> io::Result<String> {
    let (status, body) = http_get(host, "/version")?;
    let v: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| io::Error::other(format!("GET /version ({status}): {e}")))?;
    v["ApiVersion"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| io::Error::other("no ApiVersion in GET /version"))
}

/// One blocking `GET` with `Connection: close`; returns the status and the (de-chunked) body.
fn http_get(host: &DockerHost, path: &str) -> io::Result<(u16, Vec<u8>)> {
    const LIMIT: Option<Duration> = Some(Duration::from_secs(3));
    let request = format!("GET {path} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n");
    let mut raw = Vec::new();
    match host {
        DockerHost::Unix(p) => {
            let mut s = std::os::unix::net::UnixStream::connect(p)?;
            s.set_read_timeout(LIMIT)?;
            s.set_write_timeout(LIMIT)?;
            s.write_all(request.as_bytes())?;
            s.read_to_end(&mut raw)?;
        }
        DockerHost::Tcp(a) => {
            let addr = std::net::ToSocketAddrs::to_socket_addrs(a)?
                .next()
                .ok_or_else(|| io::Error::other(format!("cannot resolve {a}")))?;
            let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
            s.set_read_timeout(LIMIT)?;
            s.write_all(request.as_bytes())?;
            s.read_to_end(&mut raw)?;
        }
    }
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| io::Error::other("no HTTP response"))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::other("bad HTTP status line"))?;
    let mut body = raw[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    Ok((status, body))
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&data[..eol])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next()?.trim(), 16).ok())
            .unwrap_or(0);
        if size == 0 || data.len() < eol + 2 + size {
            break;
        }
        out.extend_from_slice(&data[eol + 2..eol + 2 + size]);
        data = &data[(eol + 4 + size).min(data.len())..];
    }
    out
}

/// `/v1.53/containers/json` with the version lowered to `max` when it is newer.
pub fn rewrite_target(target: &str, max: (u32, u32)) -> String {
    let Some(rest) = target.strip_prefix("/v") else {
        return target.to_owned();
    };
    let Some((version, tail)) = rest.split_once('/') else {
        return target.to_owned();
    };
    match parse_version(version) {
        Some(v) if v > max => format!("/v{}.{}/{tail}", max.0, max.1),
        _ => target.to_owned(),
    }
}

fn parse_version(v: &str) -> Option<(u32, u32)> {
    let (a, b) = v.split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// Serves the Docker API on `listen`, forwarding to the engine at `upstream` with request
/// versions lowered to the engine's newest (see the module docs). Runs until the task is
/// dropped or the listener fails.
pub async fn run_api_shim(listen: &Path, upstream: &Path) -> io::Result<()> {
    let up = DockerHost::Unix(upstream.to_owned());
    let api = tokio::task::spawn_blocking(move || engine_api_version(&up))
        .await
        .map_err(io::Error::other)??;
    let max = parse_version(&api)
        .ok_or_else(|| io::Error::other(format!("engine API version {api:?}")))?;
    let _ = std::fs::remove_file(listen);
    let listener = UnixListener::bind(listen)?;
    eprintln!(
        "docker-api-shim: {} -> {} (API {api})",
        listen.display(),
        upstream.display()
    );
    loop {
        let (client, _) = listener.accept().await?;
        let upstream = upstream.to_owned();
        tokio::spawn(async move {
            if let Err(e) = shim_connection(client, &upstream, max).await {
                eprintln!("docker-api-shim: connection ended: {e}");
            }
        });
    }
}

async fn shim_connection(client: UnixStream, upstream: &Path, max: (u32, u32)) -> io::Result<()> {
    let engine = UnixStream::connect(upstream).await?;
    let (client_r, mut client_w) = client.into_split();
    let (mut engine_r, mut engine_w) = engine.into_split();
    // Responses (streams and upgraded connections included) pass through byte for byte.
    let responses = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut engine_r, &mut client_w).await;
        let _ = client_w.shutdown().await;
    });
    let mut client_r = BufReader::new(client_r);
    loop {
        // Request line and headers.
        let mut line = String::new();
        if client_r.read_line(&mut line).await? == 0 {
            break;
        }
        let mut parts = line.trim_end().splitn(3, ' ');
        let (method, target, version) = (
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
            parts.next().unwrap_or("HTTP/1.1"),
        );
        let mut head = format!("{method} {} {version}\r\n", rewrite_target(target, max));
        let (mut length, mut chunked, mut upgrade) = (0u64, false, false);
        loop {
            let mut h = String::new();
            if client_r.read_line(&mut h).await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            head.push_str(&h);
            if h == "\r\n" || h == "\n" {
                break;
            }
            let lower = h.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            } else if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
                chunked = true;
            } else if lower.starts_with("upgrade:") {
                upgrade = true;
            }
        }
        engine_w.write_all(head.as_bytes()).await?;
        if upgrade {
            // attach/exec hijack the connection: from here on, raw bytes both ways.
            tokio::io::copy(&mut client_r, &mut engine_w).await?;
            break;
        }
        if chunked {
            loop {
                let mut size_line = String::new();
                if client_r.read_line(&mut size_line).await? == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                engine_w.write_all(size_line.as_bytes()).await?;
                let size = u64::from_str_radix(
                    size_line.trim().split(';').next().unwrap_or("0").trim(),
                    16,
                )
                .map_err(io::Error::other)?;
                if size == 0 {
                    // Trailers, then the empty line.
                    loop {
                        let mut t = String::new();
                        client_r.read_line(&mut t).await?;
                        engine_w.write_all(t.as_bytes()).await?;
                        if t == "\r\n" || t.is_empty() {
                            break;
                        }
                    }
                    break;
                }
                copy_exact(&mut client_r, &mut engine_w, size + 2).await?;
            }
        } else if length > 0 {
            copy_exact(&mut client_r, &mut engine_w, length).await?;
        }
        engine_w.flush().await?;
    }
    let _ = engine_w.shutdown().await;
    let _ = responses.await;
    Ok(())
}

async fn copy_exact(
    from: &mut (impl tokio::io::AsyncRead + Unpin),
    to: &mut (impl tokio::io::AsyncWrite + Unpin),
    n: u64,
) -> io::Result<()> {
    let copied = tokio::io::copy(&mut from.take(n), to).await?;
    if copied == n {
        Ok(())
    } else {
        Err(io::ErrorKind::UnexpectedEof.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_only_newer_versions() {
        let max = (1, 41);
        assert_eq!(
            rewrite_target("/v1.53/containers/json?all=1", max),
            "/v1.41/containers/json?all=1"
        );
        assert_eq!(rewrite_target("/v1.40/_ping", max), "/v1.40/_ping");
        assert_eq!(rewrite_target("/_ping", max), "/_ping");
        assert_eq!(rewrite_target("/version", max), "/version");
    }

    #[test]
    fn parses_hosts_and_chunks() {
        assert_eq!(
            DockerHost::parse("unix:///run/x.sock"),
            Some(DockerHost::Unix("/run/x.sock".into()))
        );
        assert_eq!(
            DockerHost::parse("tcp://127.0.0.1:2375"),
            Some(DockerHost::Tcp("127.0.0.1:2375".into()))
        );
        assert_eq!(dechunk(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"), b"abcde");
    }
}
