//! Runs the stub identity provider by hand, to try the auth packages against it:
//! `cargo run -p tessera-devstack --example stub-idp`. Client `tessera`/`s3cret`, user
//! `ann`/`pw` (sub `user-42`), authorization codes `code-1`..`code-9` for redirect URI
//! `http://app.example/cb`. Prints the base URL, serves until stdin closes, then prints
//! the hit counts.

use std::io::Read as _;

use tessera_devstack::StubIdp;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let idp = StubIdp::start("tessera", "s3cret").await?;
    idp.add_user("ann", "pw", "user-42", "Ann Example");
    for n in 1..=9 {
        idp.add_code(&format!("code-{n}"), "http://app.example/cb", "user-42");
    }
    println!("{}", idp.base_url());
    // Blocking read on its own thread: the runtime keeps serving meanwhile.
    tokio::task::spawn_blocking(|| std::io::stdin().read_to_end(&mut Vec::new())).await??;
    for path in ["/userinfo", "/oauth/token"] {
        println!("{path} {}", idp.hits(path));
    }
    Ok(())
}
