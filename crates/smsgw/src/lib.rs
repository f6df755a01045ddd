//! **smsgw** sends SMS — one-time passwords and notifications — through gateways defined once, by
//! name, in a configuration file that privacyIDEA administrators will recognise.
//!
//! This umbrella crate re-exports [`smsgw_core`] and links in every provider enabled by a Cargo
//! feature, so that naming this crate is enough for the providers to be in the [`Registry`].
//!
//! ## Features
//! | feature | provider | crate |
//! |---|---|---|
//! | `http` (default) | any HTTP GET/POST gateway | `smsgw-http` |
//! | `sipgate` (default) | sipgate XML-RPC / REST | `smsgw-sipgate` |
//! | `smtp` (default) | email-to-SMS via a central SMTP server | `smsgw-smtp` |
//! | `smpp` (default) | SMS centers over SMPP 3.4 | `smsgw-smpp` |
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use smsgw::{Config, Gateways, Message, Registry};
//! let config = Config::load("smsgw.toml".as_ref())?;
//! let gateways = Gateways::build(&config, Registry::global())?;
//! let receipt = gateways.get("sms1").expect("defined").send(&Message::new("+491511234567", "123456")).await?;
//! println!("sent: {:?}", receipt.message_ids);
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub use smsgw_core::*;

/// The HTTP provider.
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
#[doc(inline)]
pub use smsgw_http as http;

/// The sipgate provider.
#[cfg(feature = "sipgate")]
#[cfg_attr(docsrs, doc(cfg(feature = "sipgate")))]
#[doc(inline)]
pub use smsgw_sipgate as sipgate;

/// The SMTP provider.
#[cfg(feature = "smtp")]
#[cfg_attr(docsrs, doc(cfg(feature = "smtp")))]
#[doc(inline)]
pub use smsgw_smtp as smtp;

/// The SMPP provider.
#[cfg(feature = "smpp")]
#[cfg_attr(docsrs, doc(cfg(feature = "smpp")))]
#[doc(inline)]
pub use smsgw_smpp as smpp;

/// Routes: failover between gateways, retries, limits and a circuit breaker (always on: routing
/// is not a provider; linking it registers the `routes` and `limits` configuration sections).
#[doc(inline)]
pub use smsgw_routing as routing;

/// The names of the providers this build was compiled with, by feature.
pub const ENABLED_FEATURES: &[&str] = &[
    #[cfg(feature = "http")]
    "http",
    #[cfg(feature = "sipgate")]
    "sipgate",
    #[cfg(feature = "smtp")]
    "smtp",
    #[cfg(feature = "smpp")]
    "smpp",
];
