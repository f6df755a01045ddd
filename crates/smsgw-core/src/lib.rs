//! The core of [smsgw](https://example.invalid/smsgw): the [`Provider`] trait and the
//! [`Registry`] that providers join through `inventory`, the gateway model ([`Config`],
//! [`GatewayDef`]) with validation that reports every problem at once, the tags `{phone}` and
//! `{otp}` ([`render`]), `REGEXP` phone rewriting ([`PhoneRewrite`]), secret censoring, and the
//! classified [`SendError`]. No network code lives here.
//!
//! ```
//! use smsgw_core::{Config, Gateways, Registry};
//! let cfg = Config::from_toml_str(r#"
//!     [gateways.sms1]
//!     provider = "no-such-provider"
//! "#).unwrap();
//! let errs = Gateways::build(&cfg, Registry::global()).unwrap_err();
//! assert!(errs.to_string().contains("gateway 'sms1', provider: unknown provider"));
//! ```
#![deny(missing_docs)]

mod config;
mod error;
mod gateway;
mod message;
mod phone;
mod provider;
mod registry;
mod secret;
mod template;

pub use config::{Config, GatewayDef, PLACEHOLDER, SmtpServer};
pub use error::{ConfigErrors, ConfigProblem, ErrorKind, SendError};
pub use gateway::{Gateway, Gateways, Outcome};
pub use message::{DeliveryReport, Message, Receipt};
pub use phone::PhoneRewrite;
pub use provider::{
    BuildContext, Capabilities, Factory, ParamKind, ParamSpec, Provider, ProviderDescriptor,
    REGEXP, parse_seconds, parse_yes_no,
};
pub use registry::{BUILTIN_PROVIDERS, LookupError, Registry};
pub use secret::{CENSORED, censor_url, censor_value, is_secret_key, url_without_credentials};
pub use template::{has_tag, render};

pub use async_trait::async_trait;
#[doc(hidden)]
pub use inventory;
pub use secrecy;
