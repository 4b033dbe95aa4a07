//! HTTP/1.1 server framing: an incremental request parser, a response writer and a glommio
//! server loop. It knows HTTP, not Consul: the API layer above maps requests to handlers.
//!
//! - [`parser`]: pure, incremental request parsing over `httparse`: Content-Length and chunked
//!   bodies, `Expect: 100-continue`, pipelining, and limits on the head, the header count and
//!   the body (per request, decided from its head), with errors that name their status.
//! - [`response`]: [`Response`] and its encoding (status line, fields, `Content-Length`,
//!   `Connection: close`, no body for `HEAD`).
//! - [`server`]: [`HttpServer`]: accept loop with a connection limit, one task per connection,
//!   keep-alive, in-order answers to pipelined requests, idle/request/handler/write timeouts,
//!   graceful close after errors, stop on [`Shutdown`](crate::runtime::Shutdown).
//!
//! A minimal server on a glommio executor:
//! ```no_run
//! use cairn_io::http::{HttpServer, HttpServerOptions, Request, Response};
//! use cairn_io::runtime::Shutdown;
//! # async fn serve(shutdown: Shutdown) -> Result<(), cairn_io::http::HttpServerError> {
//! let addr = "127.0.0.1:8500".parse().expect("address");
//! let server = HttpServer::bind(addr, HttpServerOptions::default(), &shutdown, |request: Request| async move {
//!     Response::json(200, format!("{{\"path\":{:?}}}", request.path))
//! })?;
//! shutdown.wait().await;
//! server.close().await;
//! # Ok(())
//! # }
//! ```

pub mod parser;
pub mod request;
pub mod response;
pub mod server;

pub use parser::{
    BodyLimit, ParseError, ParseEvent, Parsed, ParserLimits, RequestParser, BODY_BYTES_MAX_DEFAULT,
    CONTINUE_RESPONSE, HEADER_BYTES_MAX_DEFAULT, HEADER_COUNT_MAX_DEFAULT,
};
pub use request::{Headers, Method, Request, Version};
pub use response::{
    encode_chunk, encode_head, encode_response, reason_phrase, BodyStream, Response,
    ResponseFraming,
};
pub use server::{HttpServer, HttpServerError, HttpServerOptions, HttpServerStats};

#[cfg(test)]
mod tests;
