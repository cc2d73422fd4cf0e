//! What every verifier of tokens shares: one clock leeway, the JOSE header read (and its
//! algorithm refused) before any key is looked up, and every rejection a typed
//! `unauthenticated` naming one reason from a closed set, counted in
//! `tessera_tokens_rejected_total{verifier, reason}`.
//!
//! Used by the plugin-server SDK, the gateway, the broker's introspection and the auth
//! worker's `auth.verify`, so an attack is refused and counted the same way everywhere.
//!
//! No I/O, no async and nothing from this crate but the counter's name: the fuzz target
//! `plugin_token` (fuzz/) compiles this very file.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::de::DeserializeOwned;
use tessera_schemas::claims::{PLUGIN_TOKEN_ISSUER, PluginClaims};
use tessera_schemas::{ErrorCode, WireError};

/// The leeway when none is configured (`TESSERA_CLOCK_LEEWAY`, read by the runtime crate's `config`).
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(5);

/// Why a token was refused: the `reason` label of the rejection counter. Closed, so the
/// counter's cardinality is bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// `alg` is not the one this verifier allows (`none`, HS256 with a public key...).
    Alg,
    /// No `kid`, or a `kid` of no published (or no longer published) key.
    Kid,
    Signature,
    /// `aud` does not name what the verifier expects (account tokens).
    Audience,
    /// A plugin token for another plugin than the one asked for.
    Plugin,
    /// A plugin token whose `aud` does not list this plugin server.
    Server,
    Expired,
    /// `nbf` or `iat` later than now, beyond the leeway.
    NotYetValid,
    Revoked,
    /// `iss` is not one this verifier trusts.
    Issuer,
    Malformed,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Alg => "alg",
            Reason::Kid => "kid",
            Reason::Signature => "signature",
            Reason::Audience => "audience",
            Reason::Plugin => "plugin",
            Reason::Server => "server",
            Reason::Expired => "expired",
            Reason::NotYetValid => "not_yet_valid",
            Reason::Revoked => "revoked",
            Reason::Issuer => "issuer",
            Reason::Malformed => "malformed",
        }
    }
}

/// Who refused: the `verifier` label of the rejection counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verifier {
    PluginServer,
    Gateway,
    Broker,
    Auth,
}

impl Verifier {
    pub fn as_str(self) -> &'static str {
        match self {
            Verifier::PluginServer => "plugin_server",
            Verifier::Gateway => "gateway",
            Verifier::Broker => "broker",
            Verifier::Auth => "auth",
        }
    }
}

/// A refused token: the reason and a message for the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub reason: Reason,
    pub message: String,
}

impl Rejection {
    pub fn new(reason: Reason, message: impl Into<String>) -> Rejection {
        Rejection {
            reason,
            message: message.into(),
        }
    }

    /// Counts the rejection and turns it into the `unauthenticated` reply; the message ends
    /// with the reason in brackets, e.g. `plugin token rejected: ExpiredSignature [expired]`.
    pub fn into_wire(self, verifier: Verifier) -> WireError {
        self.into_wire_as(verifier, ErrorCode::Unauthenticated)
    }

    /// Like [`Rejection::into_wire`] with another code, for the documented 403s
    /// (`forbidden` at a plugin server, `wrong_plugin` at the gateway).
    pub fn into_wire_as(self, verifier: Verifier, code: ErrorCode) -> WireError {
        count(verifier, self.reason);
        WireError::new(code, format!("{} [{}]", self.message, self.reason.as_str()))
    }
}

/// The rejection counter's name (described by the runtime's metrics exporter).
pub const TOKENS_REJECTED: &str = "tessera_tokens_rejected_total";

/// Counts one rejected token. Goes through the `metrics` facade whatever recorder is
/// installed (none: nothing happens); both labels are static, so nothing is allocated.
pub fn count(verifier: Verifier, reason: Reason) {
    metrics::counter!(
        TOKENS_REJECTED,
        "verifier" => verifier.as_str(),
        "reason" => reason.as_str()
    )
    .increment(1);
}

/// The parts of a JOSE header we act on, read without trusting anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The algorithm name exactly as sent (`none` and unknown names included).
    pub alg: String,
    pub kid: Option<String>,
}

#[derive(serde::Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

/// Reads the header of a compact JWS. `alg: none` and unsupported algorithms are returned
/// as they are, so the caller refuses them as [`Reason::Alg`], not as malformed.
pub fn header(token: &str) -> Result<Header, Rejection> {
    let malformed = || Rejection::new(Reason::Malformed, "token is not a compact JWS");
    let mut parts = token.split('.');
    let (Some(h), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed());
    };
    let bytes = URL_SAFE_NO_PAD.decode(h).map_err(|_| malformed())?;
    let raw: RawHeader = serde_json::from_slice(&bytes).map_err(|_| malformed())?;
    Ok(Header {
        alg: raw.alg,
        kid: raw.kid,
    })
}

/// The header's algorithm, if it is one of `allowed`.
pub fn allowed_alg(header: &Header, allowed: &[Algorithm]) -> Result<Algorithm, Rejection> {
    let refused = || {
        Rejection::new(
            Reason::Alg,
            format!("algorithm {:?} is not allowed", header.alg),
        )
    };
    let alg: Algorithm = header.alg.parse().map_err(|_| refused())?;
    if allowed.contains(&alg) {
        Ok(alg)
    } else {
        Err(refused())
    }
}

/// A validation for `alg` with the leeway on `exp` and `nbf`, and `nbf` checked when present.
pub fn validation(alg: Algorithm, leeway: Duration) -> Validation {
    let mut v = Validation::new(alg);
    v.leeway = leeway.as_secs();
    v.validate_nbf = true;
    v
}

/// Verifies signature and the claims `v` asks for; a failure says why.
pub fn decode<T: DeserializeOwned>(
    token: &str,
    key: &DecodingKey,
    v: &Validation,
) -> Result<T, Rejection> {
    jsonwebtoken::decode::<T>(token, key, v)
        .map(|d| d.claims)
        .map_err(|e| {
            let reason = match e.kind() {
                ErrorKind::InvalidSignature => Reason::Signature,
                ErrorKind::ExpiredSignature => Reason::Expired,
                ErrorKind::ImmatureSignature => Reason::NotYetValid,
                ErrorKind::InvalidIssuer => Reason::Issuer,
                ErrorKind::InvalidAudience => Reason::Audience,
                ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => Reason::Alg,
                _ => Reason::Malformed,
            };
            Rejection::new(reason, format!("token rejected: {e}"))
        })
}

/// `iat` in the future beyond the leeway: the issuer's clock (or the token) is wrong.
pub fn check_iat(iat: u64, now: u64, leeway: Duration) -> Result<(), Rejection> {
    if iat > now.saturating_add(leeway.as_secs()) {
        return Err(Rejection::new(
            Reason::NotYetValid,
            format!("token issued in the future (iat {iat}, now {now})"),
        ));
    }
    Ok(())
}

/// A plugin token under a known key, as the gateway checks it: EdDSA signature, our
/// issuer, and `exp`, `nbf`, `iat` within the leeway (the audience is the caller's
/// business). Pure, so the fuzz target `plugin_token` (fuzz/, which compiles this file)
/// runs exactly this.
pub fn verify_plugin_claims(
    token: &str,
    key: &DecodingKey,
    leeway: Duration,
    now: u64,
) -> Result<PluginClaims, Rejection> {
    let mut v = validation(Algorithm::EdDSA, leeway);
    v.set_issuer(&[PLUGIN_TOKEN_ISSUER]);
    v.validate_aud = false;
    decode::<PluginClaims>(token, key, &v).and_then(|c| check_iat(c.iat, now, leeway).map(|()| c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    #[test]
    fn header_reads_alg_none_and_refuses_it_as_alg() {
        let t = format!("{}.{}.", b64(r#"{"alg":"none","typ":"JWT"}"#), b64("{}"));
        let h = header(&t).unwrap();
        assert_eq!(h.alg, "none");
        assert_eq!(
            allowed_alg(&h, &[Algorithm::EdDSA]).unwrap_err().reason,
            Reason::Alg
        );
        let t = format!("{}.{}.x", b64(r#"{"alg":"HS256","kid":"k"}"#), b64("{}"));
        let h = header(&t).unwrap();
        assert_eq!(h.kid.as_deref(), Some("k"));
        assert_eq!(
            allowed_alg(&h, &[Algorithm::EdDSA]).unwrap_err().reason,
            Reason::Alg
        );
        assert_eq!(allowed_alg(&h, &[Algorithm::HS256]), Ok(Algorithm::HS256));
    }

    #[test]
    fn header_refuses_what_is_not_a_jws_as_malformed() {
        for t in [
            "",
            "a",
            "a.b",
            "a.b.c.d",
            "!!.e30.x",
            &format!("{}.e30.x", b64("[]")),
        ] {
            assert_eq!(header(t).unwrap_err().reason, Reason::Malformed, "{t:?}");
        }
    }

    #[test]
    fn iat_is_allowed_up_to_the_leeway() {
        let l = Duration::from_secs(5);
        assert!(check_iat(105, 100, l).is_ok());
        assert_eq!(
            check_iat(106, 100, l).unwrap_err().reason,
            Reason::NotYetValid
        );
    }

    #[test]
    fn rejections_are_unauthenticated_and_name_the_reason() {
        let w = Rejection::new(Reason::Kid, "unknown key").into_wire(Verifier::Gateway);
        assert_eq!(w.code, ErrorCode::Unauthenticated);
        assert!(w.message.ends_with("[kid]"), "{}", w.message);
    }
}
