use serde_json::json;
use tessera_bus_config::Permissions;
use tessera_schemas::Subjects;

use super::*;

/// An authorization request as nats-server builds it, signed by a server key.
fn request(server: &nkeys::KeyPair, user_nkey: &str, user: &str, pass: &str) -> String {
    let claims = json!({
        "jti": "X", "iat": now(), "iss": server.public_key(), "sub": "A...",
        "aud": REQUEST_AUDIENCE, "exp": now() + 2,
        "nats": {
            "server_id": {"name": "t", "host": "127.0.0.1", "id": server.public_key(), "version": "2.15.0"},
            "user_nkey": user_nkey,
            "client_info": {"host": "127.0.0.1", "id": 7, "user": user, "name": "n", "kind": "Client", "type": "nats"},
            "connect_opts": {"user": user, "pass": pass, "lang": "rust", "version": "0.51", "protocol": 1},
            "type": "authorization_request", "version": 2
        }
    });
    encode(&claims, server)
}

fn parts(token: &str) -> (serde_json::Value, serde_json::Value, Vec<u8>) {
    let p: Vec<&str> = token.split('.').collect();
    assert_eq!(p.len(), 3);
    let d = |s: &str| URL_SAFE_NO_PAD.decode(s).unwrap();
    (
        serde_json::from_slice(&d(p[0])).unwrap(),
        serde_json::from_slice(&d(p[1])).unwrap(),
        d(p[2]),
    )
}

#[test]
fn a_server_request_decodes_and_a_forgery_does_not() {
    let server = nkeys::KeyPair::new_server();
    let user = nkeys::KeyPair::new_user();
    let token = request(&server, &user.public_key(), "plugin-server.ps1", "s3cret");
    let r = decode_request(&token).unwrap();
    assert_eq!(r.nats.connect_opts.user, "plugin-server.ps1");
    assert_eq!(r.nats.connect_opts.pass, "s3cret");
    assert_eq!(r.nats.user_nkey, user.public_key());
    assert_eq!(r.nats.server_id.id, server.public_key());
    assert!(!format!("{:?}", r.nats.connect_opts).contains("s3cret"));

    // Signed by an account key instead of a server key.
    let account = nkeys::KeyPair::new_account();
    let forged = request(&account, &user.public_key(), "plugin-server.ps1", "x");
    assert_eq!(
        decode_request(&forged).unwrap_err(),
        JwtError::Issuer("server")
    );
    // Claims changed after signing.
    let (h, mut c, sig) = parts(&token);
    c["nats"]["connect_opts"]["user"] = json!("plugin-server.ps2");
    let tampered = format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(h.to_string()),
        URL_SAFE_NO_PAD.encode(c.to_string()),
        URL_SAFE_NO_PAD.encode(sig)
    );
    assert_eq!(decode_request(&tampered).unwrap_err(), JwtError::Signature);
    for junk in ["", "a.b", "a.b.c.d", "!.!.!"] {
        assert!(decode_request(junk).is_err(), "{junk:?}");
    }
}

/// The answer: the response and the user JWT inside it are both signed by the issuer (the
/// signature verifies with its public key, as nats-server checks it), for the right user
/// nkey, server and account, with the plugin server's permissions.
#[test]
fn responses_carry_a_user_jwt_signed_by_the_issuer() {
    let issuer = nkeys::KeyPair::new_account();
    let server = nkeys::KeyPair::new_server();
    let user = nkeys::KeyPair::new_user();
    let req = decode_request(&request(&server, &user.public_key(), "u", "p")).unwrap();
    let s = Subjects::default();
    let perms = Permissions::for_plugin_server("ps1", &s);
    let ujwt = user_jwt(
        &issuer,
        &user.public_key(),
        "plugin-server.ps1",
        "TESSERA",
        &perms,
    );
    let resp = response(&issuer, &req.nats, Ok(ujwt.clone()));

    // Verify with the public key alone, as nats-server does.
    let public = nkeys::KeyPair::from_public_key(&issuer.public_key()).unwrap();
    let stranger =
        nkeys::KeyPair::from_public_key(&nkeys::KeyPair::new_account().public_key()).unwrap();
    for token in [&resp, &ujwt] {
        let (header, _, sig) = parts(token);
        assert_eq!(header, json!({"typ": "JWT", "alg": "ed25519-nkey"}));
        let input = token.rsplit_once('.').unwrap().0;
        public.verify(input.as_bytes(), &sig).unwrap();
        assert!(stranger.verify(input.as_bytes(), &sig).is_err());
    }

    let r: ResponseClaims = decode(&resp, IssuerKind::Account).unwrap();
    assert_eq!(r.iss, issuer.public_key());
    assert_eq!(r.sub, user.public_key());
    assert_eq!(r.aud, server.public_key());
    assert_eq!(r.nats.kind, "authorization_response");
    assert_eq!(r.nats.version, 2);
    assert_eq!(r.nats.error, None);
    assert_eq!(r.nats.jwt.as_deref(), Some(ujwt.as_str()));

    let u: UserClaims = decode(&ujwt, IssuerKind::Account).unwrap();
    assert_eq!(u.sub, user.public_key());
    assert_eq!(u.aud, "TESSERA");
    assert_eq!(u.name, "plugin-server.ps1");
    assert_eq!(u.nats.kind, "user");
    assert_eq!(u.nats.publish.allow, perms.publish);
    assert_eq!(u.nats.subscribe.allow, perms.subscribe);
    assert_eq!(u.nats.resp, Some(ResponsePermission { max: 1, ttl: 0 }));
    assert_eq!((u.nats.subs, u.nats.data, u.nats.payload), (-1, -1, -1));
    // `pub`/`sub` are the JSON names nats-server reads.
    let (_, raw, _) = parts(&ujwt);
    assert!(raw["nats"]["pub"]["allow"].is_array());
    assert!(raw["nats"]["sub"]["allow"].is_array());

    // A refusal carries the reason and no JWT.
    let no = response(&issuer, &req.nats, Err("unknown plugin server".into()));
    let r: ResponseClaims = decode(&no, IssuerKind::Account).unwrap();
    assert_eq!(r.nats.jwt, None);
    assert_eq!(r.nats.error.as_deref(), Some("unknown plugin server"));
    let (_, raw, _) = parts(&no);
    assert!(raw["nats"].get("jwt").is_none());
}
