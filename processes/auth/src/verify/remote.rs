//! An external issuer's keys by URL: its JWKS, or the one its discovery document names,
//! fetched with the node's outbound HTTP client (allow-list of that one origin, no redirects,
//! bounded) through its cache (`crate::http::cache`): the issuer's `Cache-Control` says how
//! long the keys are fresh, an unknown `kid` refetches them (at most once per
//! `MIN_REFETCH`), and while the issuer is unreachable the last keys keep serving.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{JwkSet, PublicKeyUse};
use serde::Deserialize;
use ureq::http::Uri;

use crate::config::ExternalIssuer;
use crate::http::cache::CacheMode;
use crate::http::{Addresses, AllowList, HostHttp, HttpCall};

/// A key URL that does not answer within this is unreachable (a token request waits on it).
const FETCH_TIMEOUT: Duration = Duration::from_secs(3);
/// Origins with a client of their own (the issuer's, and where its discovery points).
const MAX_ORIGINS: usize = 4;

/// Keys by `kid` (`None`: a key without one).
pub type KeyList = Vec<(Option<String>, DecodingKey)>;

enum Source {
    Jwks(String),
    Discovery { issuer: String },
}

pub struct RemoteKeys {
    source: Source,
    addresses: Addresses,
    clients: Mutex<HashMap<String, Arc<HostHttp>>>,
    /// The last JWKS text and its keys, so a cached answer is not parsed again.
    parsed: Mutex<Option<(String, Arc<KeyList>)>>,
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

impl RemoteKeys {
    /// `None` when the issuer's keys are not by URL.
    pub fn new(cfg: &ExternalIssuer) -> anyhow::Result<Option<RemoteKeys>> {
        let source = match (&cfg.jwks_url, cfg.discovery) {
            (Some(_), true) => {
                anyhow::bail!("issuer {}: give jwks_url or discovery, not both", cfg.name)
            }
            (Some(url), false) => Source::Jwks(url.clone()),
            (None, true) => Source::Discovery {
                issuer: cfg.issuer.clone(),
            },
            (None, false) => return Ok(None),
        };
        let url = match &source {
            Source::Jwks(url) => url,
            Source::Discovery { issuer } => issuer,
        };
        origin(url).map_err(|e| anyhow::anyhow!("issuer {}: {e}", cfg.name))?;
        Ok(Some(RemoteKeys {
            source,
            addresses: if cfg.allow_private_addresses {
                Addresses::AllowPrivate
            } else {
                Addresses::PublicOnly
            },
            clients: Mutex::default(),
            parsed: Mutex::default(),
        }))
    }

    /// The key for `kid`: from the keys as cached, else once more after a refetch. `Err`
    /// when the keys cannot be had at all (unreachable and nothing cached, or not a JWKS).
    /// Blocking.
    pub fn key_for(&self, kid: Option<&str>) -> Result<Option<DecodingKey>, String> {
        if let Some(key) = pick(&*self.keys(CacheMode::Use)?, kid) {
            return Ok(Some(key));
        }
        Ok(pick(&*self.keys(CacheMode::Refresh)?, kid))
    }

    fn keys(&self, mode: CacheMode) -> Result<Arc<KeyList>, String> {
        let url = match &self.source {
            Source::Jwks(url) => url.clone(),
            Source::Discovery { issuer } => self.discover(issuer)?,
        };
        let body = self.get(&url, mode)?;
        let mut parsed = self.parsed.lock().expect("lock poisoned");
        if let Some((text, keys)) = parsed.as_ref()
            && *text == body
        {
            return Ok(keys.clone());
        }
        let set: JwkSet =
            serde_json::from_str(&body).map_err(|e| format!("{url}: not a JWKS: {e}"))?;
        let keys: KeyList = set
            .keys
            .iter()
            .filter(|jwk| jwk.common.public_key_use != Some(PublicKeyUse::Encryption))
            .filter_map(|jwk| {
                let key = DecodingKey::from_jwk(jwk).ok()?;
                Some((jwk.common.key_id.clone(), key))
            })
            .collect();
        let keys = Arc::new(keys);
        *parsed = Some((body, keys.clone()));
        Ok(keys)
    }

    /// The JWKS URL from the issuer's discovery document (OpenID Connect Discovery 1.0).
    fn discover(&self, issuer: &str) -> Result<String, String> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let doc: Discovery = serde_json::from_str(&self.get(&url, CacheMode::Use)?)
            .map_err(|e| format!("{url}: not a discovery document: {e}"))?;
        // Discovery 4.3: the document must be the issuer's own.
        if doc.issuer != issuer {
            return Err(format!(
                "{url}: names issuer {:?}, not {issuer:?}",
                doc.issuer
            ));
        }
        Ok(doc.jwks_uri)
    }

    fn get(&self, url: &str, mode: CacheMode) -> Result<String, String> {
        let result = self
            .client_for(url)?
            .request(&HttpCall::cached_get(url, mode));
        match (result.error, result.status) {
            (Some(e), _) => Err(e),
            (None, 200) => Ok(result.body),
            (None, status) => Err(format!("{url} answered {status}")),
        }
    }

    /// The client of `url`'s origin: its allow-list is that origin alone.
    fn client_for(&self, url: &str) -> Result<Arc<HostHttp>, String> {
        let origin = origin(url)?;
        let mut clients = self.clients.lock().expect("lock poisoned");
        if let Some(client) = clients.get(&origin) {
            return Ok(client.clone());
        }
        if clients.len() >= MAX_ORIGINS {
            clients.clear();
        }
        let client = HostHttp::new(
            AllowList::of_origin(&origin)?,
            FETCH_TIMEOUT,
            self.addresses,
        );
        clients.insert(origin, client.clone());
        Ok(client)
    }
}

pub fn pick(keys: &KeyList, kid: Option<&str>) -> Option<DecodingKey> {
    match kid {
        Some(kid) => keys.iter().find(|(k, _)| k.as_deref() == Some(kid)),
        None if keys.len() == 1 => keys.first(),
        None => None,
    }
    .map(|(_, key)| key.clone())
}

/// `scheme://host:port` of an http(s) URL.
fn origin(url: &str) -> Result<String, String> {
    let uri: Uri = url.parse().map_err(|e| format!("bad url {url:?}: {e}"))?;
    let (Some(scheme), Some(host)) = (uri.scheme_str(), uri.host()) else {
        return Err(format!("bad url {url:?}: no scheme or host"));
    };
    let port = match (uri.port_u16(), scheme) {
        (Some(p), _) => p,
        (None, "https") => 443,
        (None, "http") => 80,
        _ => return Err(format!("bad url {url:?}: the scheme must be http or https")),
    };
    Ok(format!("{scheme}://{host}:{port}"))
}
