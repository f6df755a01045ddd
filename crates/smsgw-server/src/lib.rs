//! `smsgw serve`: smsgw as a service. A durable queue ([`smsgw_queue`]), an HTTP API with bearer
//! tokens, endpoints that privacyIDEA and Kannel clients already speak, a delivery worker that
//! feeds every gateway on its own, signed status callbacks, health and Prometheus metrics.
//!
//! The CLI calls [`serve`] with [`ServeArgs`] and [`token`] with [`TokenArgs`]; tests and
//! embedders call [`start`] with [`ServerOptions`] and get a [`Running`] server.
//!
//! ```no_run
//! # async fn f() -> Result<(), smsgw_server::ServeError> {
//! let opts = smsgw_server::ServerOptions::new("127.0.0.1:0".parse().unwrap(), "smsgw.db".into());
//! let server = smsgw_server::start(opts).await?;
//! println!("listening on {}", server.addr());
//! server.shutdown().await;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod api;
mod auth;
mod callbacks;
mod catalog;
mod cli;
mod compat;
mod dispatch;
mod lanes;
pub mod openapi;
mod problem;
mod server;
pub mod worker;
mod worker_only;

pub use auth::{generate_token, hash_token};
pub use callbacks::sign;
pub use cli::{ServeArgs, TokenArgs, TokenCommand, serve, serve_with_queue, token, token_on};
pub use problem::{FieldProblem, Problem};
pub use server::{Running, ServeError, ServerOptions, start, start_with_queue};
pub use worker::{Dispatched, Dispatcher, RouterDispatcher, WorkerOptions};
pub use worker_only::run_worker;
