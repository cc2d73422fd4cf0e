//! The test identity provider over real TCP, with a raw HTTP/1.1 client (no client crate).

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::timeout;

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use tokio::task::JoinSet;

use super::*;

const WAIT: Duration = Duration::from_secs(10);
const ID: &str = "tessera";
const SECRET: &str = "s3cret";

/// One keep-alive connection.
struct Client {
    conn: BufReader<TcpStream>,
}

struct Reply {
    status: u16,
    headers: HashMap<String, String>,
    body: Value,
}

impl Client {
    async fn connect(idp: &StubIdp) -> Self {
        let stream = timeout(WAIT, TcpStream::connect(idp.addr()))
            .await
            .unwrap()
            .unwrap();
        Self {
            conn: BufReader::new(stream),
        }
    }

    async fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Reply {
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: idp\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        req.push_str(body);
        self.raw(&req).await
    }

    async fn raw(&mut self, bytes: &str) -> Reply {
        timeout(WAIT, async {
            self.conn
                .get_mut()
                .write_all(bytes.as_bytes())
                .await
                .unwrap();
            self.read_reply().await
        })
        .await
        .expect("reply in time")
    }

    async fn read_reply(&mut self) -> Reply {
        let mut line = String::new();
        self.conn.read_line(&mut line).await.unwrap();
        let status = line
            .split(' ')
            .nth(1)
            .expect("status line")
            .parse()
            .unwrap();
        let mut headers = HashMap::new();
        loop {
            let mut line = String::new();
            self.conn.read_line(&mut line).await.unwrap();
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (k, v) = line.split_once(':').unwrap();
            headers.insert(k.to_ascii_lowercase(), v.trim().to_owned());
        }
        let len: usize = headers["content-length"].parse().unwrap();
        let mut body = vec![0; len];
        self.conn.read_exact(&mut body).await.unwrap();
        Reply {
            status,
            headers,
            // Empty for what axum answers itself (405).
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        }
    }

    /// True once the server has closed the connection with nothing more to say (end of
    /// stream, or a reset when it was still in the listen backlog), within the bound.
    async fn closed(&mut self) -> bool {
        let mut rest = Vec::new();
        match timeout(WAIT, self.conn.read_to_end(&mut rest)).await {
            Ok(Ok(n)) => n == 0,
            Ok(Err(e)) => e.kind() == std::io::ErrorKind::ConnectionReset,
            Err(_) => false,
        }
    }
}

fn basic(user: &str, password: &str) -> String {
    let enc = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {enc}")
}

async fn password_login(c: &mut Client, auth: &str, secret: &str) -> Reply {
    let headers = [
        ("Authorization", auth),
        ("X-Client-Id", ID),
        ("X-Client-Secret", secret),
    ];
    c.send("POST", "/userinfo", &headers, "").await
}

#[tokio::test]
async fn password_userinfo_checks_user_and_client() {
    let idp = StubIdp::start(ID, SECRET).await.unwrap();
    idp.add_user("ann", "pw:with colon", "user-42", "Ann Example");
    let mut c = Client::connect(&idp).await;

    let ok = password_login(&mut c, &basic("ann", "pw:with colon"), SECRET).await;
    assert_eq!(ok.status, 200);
    assert_eq!(
        ok.body,
        serde_json::json!({"sub": "user-42", "name": "Ann Example"})
    );

    let wrong = password_login(&mut c, &basic("ann", "nope"), SECRET).await;
    assert_eq!(wrong.status, 401);
    let unknown = password_login(&mut c, &basic("bob", "pw"), SECRET).await;
    assert_eq!(unknown.status, 401);
    let bad_client = password_login(&mut c, &basic("ann", "pw:with colon"), "other").await;
    assert_eq!(
        (bad_client.status, &bad_client.body["error"]),
        (400, &Value::from("invalid_client"))
    );
    let no_auth = c
        .send(
            "POST",
            "/userinfo",
            &[("X-Client-Id", ID), ("X-Client-Secret", SECRET)],
            "",
        )
        .await;
    assert_eq!(no_auth.status, 401);

    // All on one connection (keep-alive), all counted.
    assert_eq!(idp.hits("/userinfo"), 5);
    assert_eq!(idp.hits("/oauth/token"), 0);
}

fn token_form(code: &str, redirect: &str, secret: &str) -> String {
    let enc = |s: &str| {
        s.replace('%', "%25")
            .replace(':', "%3A")
            .replace('/', "%2F")
            .replace(' ', "+")
    };
    format!(
        "grant_type=authorization_code&code={}&redirect_uri={}&client_id={ID}&client_secret={}",
        enc(code),
        enc(redirect),
        enc(secret)
    )
}

async fn exchange(c: &mut Client, form: &str) -> Reply {
    let headers = [("Content-Type", "application/x-www-form-urlencoded")];
    c.send("POST", "/oauth/token", &headers, form).await
}

#[tokio::test]
async fn code_is_exchanged_once_and_the_token_reads_userinfo() {
    let idp = StubIdp::start(ID, SECRET).await.unwrap();
    idp.add_user("ann", "pw", "user-42", "Ann Example");
    idp.add_code("code 1", "http://app.example/cb", "user-42");
    idp.add_code("code-2", "http://app.example/cb", "user-7");
    let mut c = Client::connect(&idp).await;

    let granted = exchange(
        &mut c,
        &token_form("code 1", "http://app.example/cb", SECRET),
    )
    .await;
    assert_eq!(granted.status, 200, "{}", granted.body);
    let token = granted.body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(granted.body["token_type"], "Bearer");

    let again = exchange(
        &mut c,
        &token_form("code 1", "http://app.example/cb", SECRET),
    )
    .await;
    assert_eq!(
        (again.status, &again.body["error"]),
        (400, &Value::from("invalid_grant"))
    );
    let unknown = exchange(&mut c, &token_form("nope", "http://app.example/cb", SECRET)).await;
    assert_eq!(
        (unknown.status, &unknown.body["error"]),
        (400, &Value::from("invalid_grant"))
    );
    let bad_client = exchange(&mut c, &token_form("code-2", "http://app.example/cb", "x")).await;
    assert_eq!(
        (bad_client.status, &bad_client.body["error"]),
        (401, &Value::from("invalid_client"))
    );
    let redirect = exchange(&mut c, &token_form("code-2", "http://other/cb", SECRET)).await;
    assert_eq!(
        (redirect.status, &redirect.body["error"]),
        (400, &Value::from("invalid_grant"))
    );

    let bearer = format!("Bearer {token}");
    let info = c
        .send("GET", "/userinfo", &[("Authorization", &bearer)], "")
        .await;
    assert_eq!(info.status, 200);
    assert_eq!(
        info.body,
        serde_json::json!({"sub": "user-42", "name": "Ann Example"})
    );
    let forged = c
        .send(
            "GET",
            "/userinfo",
            &[("Authorization", "Bearer at-forged")],
            "",
        )
        .await;
    assert_eq!(
        (forged.status, &forged.body["error"]),
        (401, &Value::from("invalid_token"))
    );

    assert_eq!(idp.hits("/oauth/token"), 5);
    assert_eq!(idp.hits("/userinfo"), 2);
}

#[tokio::test]
async fn connection_close_chunked_bodies_and_unknown_paths() {
    let idp = StubIdp::start(ID, SECRET).await.unwrap();

    let mut c = Client::connect(&idp).await;
    let missing = c.send("GET", "/nowhere?x=1", &[], "").await;
    assert_eq!(missing.status, 404);
    let method = c.send("PUT", "/oauth/token", &[], "").await;
    assert_eq!(method.status, 405);
    let closing = c
        .send("GET", "/nowhere", &[("Connection", "close")], "")
        .await;
    assert_eq!(
        closing.headers.get("connection").map(String::as_str),
        Some("close")
    );
    assert!(
        c.closed().await,
        "server keeps a Connection: close socket open"
    );
    assert_eq!(idp.hits("/nowhere"), 2);

    // Chunked bodies are read (Extism's host HTTP sends them): the form arrives whole, so
    // the answer is about the unknown code, not about a missing grant type.
    let form = format!(
        "grant_type=authorization_code&code=nope&redirect_uri=x&client_id={ID}&client_secret={SECRET}"
    );
    let (a, b) = form.split_at(10);
    let mut c = Client::connect(&idp).await;
    let chunked = c
        .raw(&format!(
            "POST /oauth/token HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
            a.len(),
            b.len()
        ))
        .await;
    assert_eq!(
        (chunked.status, &chunked.body["error"]),
        (400, &serde_json::json!("invalid_grant"))
    );
}

#[tokio::test]
async fn outage_answers_every_request_with_the_status() {
    let idp = StubIdp::start(ID, SECRET).await.unwrap();
    idp.add_user("ann", "pw", "user-42", "Ann");
    let mut c = Client::connect(&idp).await;
    idp.fail_with(Some(500));
    assert_eq!(
        password_login(&mut c, &basic("ann", "pw"), SECRET)
            .await
            .status,
        500
    );
    idp.fail_with(None);
    assert_eq!(
        password_login(&mut c, &basic("ann", "pw"), SECRET)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn many_connections_at_once() {
    let idp = Arc::new(StubIdp::start(ID, SECRET).await.unwrap());
    idp.add_user("ann", "pw", "user-42", "Ann");
    let mut clients = JoinSet::new();
    for _ in 0..50 {
        let idp = Arc::clone(&idp);
        clients.spawn(async move {
            let mut c = Client::connect(&idp).await;
            for _ in 0..10 {
                assert_eq!(
                    password_login(&mut c, &basic("ann", "pw"), SECRET)
                        .await
                        .status,
                    200
                );
            }
        });
    }
    while let Some(done) = clients.join_next().await {
        done.unwrap();
    }
    assert_eq!(idp.hits("/userinfo"), 500);
}

#[tokio::test]
async fn drop_stops_the_server() {
    let idp = StubIdp::start(ID, SECRET).await.unwrap();
    let addr = idp.addr();
    let mut open = Client::connect(&idp).await;
    drop(idp);
    assert!(open.closed().await, "open connection survives the drop");
    // The listener closes when the aborted task is dropped on the runtime: poll, bounded.
    let deadline = tokio::time::Instant::now() + WAIT;
    while TcpStream::connect(addr).await.is_ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "still accepting after drop"
        );
        tokio::task::yield_now().await;
    }
}

mod oidc;
