//! The shared code of smsgw's HTTP-based providers (`http`, `sipgate`, and yours): one reqwest
//! client per gateway, proxies, error and status classification, bounded replies and the
//! redirect policy. It registers no provider.
//!
//! A provider keeps one [`HttpGateway`] per configured gateway, builds requests on it and sends
//! them through [`HttpGateway::send`] (a 2xx reply, or a classified error) or
//! [`HttpGateway::exchange`] (any final reply). What it guarantees:
//!
//! - **Timeout**: the gateway's timeout bounds the whole send — connecting (90 % of it), every
//!   redirect, reading the reply. A timeout after the request went out is `unknown` (code
//!   `timeout`); failing to connect is `not_sent` (code `connect`).
//! - **Certificates**: checked unless [`HttpGateway::check_ssl`]`(false)`; an untrusted
//!   certificate is `config` (code `untrusted_certificate`): retrying cannot help.
//! - **Proxies**: the core parses proxy options (`Param::proxy`); any proxy set on a gateway switches off the
//!   environment's `HTTP_PROXY`/`HTTPS_PROXY`/`NO_PROXY` for it, and a proxy for
//!   [`ProxyScope::Http`] or [`ProxyScope::Https`] replaces one for [`ProxyScope::All`].
//! - **Statuses**: one table, [`status_kind`]: 408/429/503 `not_sent` (retry-safe), other 4xx and
//!   501/505 `refused`, everything else `unknown`.
//! - **Bounded replies**: at most [`DEFAULT_BODY_LIMIT`] (64 KiB) of a reply is read, while it
//!   streams (a declared longer length is refused before reading); a longer reply is `unknown`
//!   (code `reply_too_large`). Set another bound with [`HttpGateway::body_limit`].
//! - **Redirects**: no `Referer` is ever sent; redirects are followed only to the same origin
//!   (scheme, host, port), at most [`MAX_REDIRECTS`] — credentials and the message never go to a
//!   host the configuration did not name ([`Redirects`]). A redirect not followed is `unknown`
//!   (code `redirect`): the gateway has the request. privacyIDEA follows every redirect; smsgw
//!   does not.
//! - **Once answered, at best unknown**: after any answer (a redirect) a failure is `unknown`,
//!   never `not_sent`.
//! - **Secrets**: errors name the gateway and its URL without user-info; passwords given to
//!   [`HttpGateway::secret`] and proxy passwords are censored in every message.
//!
//! A JSON-over-HTTP provider, whole (the guide is `docs/providers/reqwest.md`):
//!
//! ```
//! use std::{sync::Arc, time::Duration};
//! use smsgw_core::secrecy::{ExposeSecret, SecretString};
//! use smsgw_core::*;
//! use smsgw_reqwest::HttpGateway;
//!
//! const URL: Param<url::Url, Given> = Param::url("URL", "The endpoint.").required();
//! const API_KEY: Param<SecretString, Given> = Param::secret("API_KEY", "Your key.").required();
//! const TIMEOUT: Param<Duration, Given> = Param::seconds("TIMEOUT", "Seconds.").default_value("5");
//!
//! #[derive(Debug)]
//! struct Acme(HttpGateway);
//!
//! fn build(ctx: &BuildContext<'_>) -> Result<Arc<dyn Provider>, ConfigErrors> {
//!     let http = HttpGateway::new(ctx.gateway(), &ctx.get(&URL), ctx.get(&TIMEOUT));
//!     let key = ctx.get(&API_KEY);
//!     Ok(Arc::new(Acme(http.secret_header("x-api-key", key.expose_secret()))))
//! }
//!
//! #[async_trait]
//! impl Provider for Acme {
//!     async fn send(&self, m: &Message) -> Result<Receipt, SendError> {
//!         let body = serde_json::json!({ "to": m.phone, "text": m.text });
//!         let reply = self.0.send(self.0.post_json(&body)?).await?;
//!         let id = self.0.json_id(&reply, "/id")?;
//!         Ok(Receipt::new(self.0.gateway(), "acme").with_id(id))
//!     }
//! }
//! # let _ = build;
//! ```
#![deny(missing_docs)]

mod classify;
mod client;
mod gateway;

pub use classify::{is_untrusted_certificate, status_kind, truncate};
pub use client::{ProxyScope, USER_AGENT};
pub use gateway::{DEFAULT_BODY_LIMIT, HttpGateway, MAX_REDIRECTS, Redirects, Reply};
/// The reqwest this crate builds on, so that providers name the same version.
pub use reqwest;
