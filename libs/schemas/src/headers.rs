//! Header names. Values are documented in docs/protocol.md.

/// `<schema name>/<version>`, e.g. `token.request/1`. Absent means version 1.
pub const SCHEMA: &str = "Tessera-Schema";
/// A caller-chosen id for one request; echoed in logs and replies.
pub const REQUEST_ID: &str = "Tessera-Request-Id";
/// W3C trace context, carried through so spans join across workers.
pub const TRACEPARENT: &str = "traceparent";
/// The plugin token on a plugin-server service request: `Bearer <token>`.
pub const AUTHORIZATION: &str = "Authorization";
/// NATS micro error headers (status number and description).
pub const SERVICE_ERROR_CODE: &str = "Nats-Service-Error-Code";
pub const SERVICE_ERROR: &str = "Nats-Service-Error";
/// JetStream de-duplication id on distribution publishes.
pub const MSG_ID: &str = "Nats-Msg-Id";
/// Content type of a body that is not MessagePack (the JWKS reply is JSON).
pub const CONTENT_TYPE: &str = "Content-Type";

pub const BEARER_PREFIX: &str = "Bearer ";

// --- data access (gateway -> plugin server) --------------------------------------------

/// The query string of a data-access packet, forwarded to the plugin server.
pub const DATA_QUERY: &str = "Tessera-Data-Query";
/// The client app that signed the packet.
pub const DATA_APP_ID: &str = "Tessera-Data-App";
/// The verification info of the packet (user IP and device id), as checked by the gateway.
pub const DATA_USER_IP: &str = "Tessera-Data-User-Ip";
pub const DATA_DEVICE_ID: &str = "Tessera-Data-Device";
