//! The demo plugin server's operations, defined once: `tessera plugin-server` and the
//! integration-test harness both serve exactly this.
//!
//! ```no_run
//! # async fn demo(url: &str) -> Result<(), tessera_sdk::Error> {
//! use tessera_sdk::{PluginServerBuilder, Shutdown};
//! let shutdown = Shutdown::new();
//! let builder = PluginServerBuilder::connect(url, Default::default(), "ps1").await?;
//! let server = tessera_plugin_server::with_echo(builder, "ps1")
//!     .start(shutdown.clone())
//!     .await?;
//! # Ok(()) }
//! ```

use tessera_schemas::messages::{ECHO, EchoReply};
use tessera_sdk::{PluginScope, PluginServerBuilder, Reply};

/// Name of the echo operation (`svc.<server_id>.echo`).
pub const ECHO_OPERATION: &str = "echo";

/// Adds the `echo` operation: for any plugin routed to this server, answers with the request
/// body and who asked (account id and plugin id from the stored token, and `server_id`), as a
/// MessagePack [`EchoReply`] with the `svc.echo/1` schema header.
pub fn with_echo(builder: PluginServerBuilder, server_id: &str) -> PluginServerBuilder {
    let server_id = server_id.to_owned();
    builder.operation(ECHO_OPERATION, PluginScope::Any, move |req| {
        let reply = EchoReply {
            body: req.body.to_vec(),
            account_id: req.token.account_id.clone(),
            plugin_id: req.token.plugin_id.clone(),
            server_id: server_id.clone(),
        };
        async move { Ok(Reply::msgpack(ECHO, &reply)) }
    })
}
