//! The core of [smsgw](https://example.invalid/smsgw): the [`Provider`] trait and the
//! [`Registry`] that providers join through `inventory`, typed parameter handles ([`Param`]) that
//! declare each option once and hand the factory its parsed value, configuration sections that
//! crates own ([`SectionDescriptor`]), the gateway model ([`Config`], [`GatewayDef`]) with
//! validation that reports every problem at once, the tags `{phone}` and
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

pub mod bulk;
mod config;
mod context;
mod error;
mod gateway;
pub mod gsm;
mod message;
mod param;
mod phone;
mod provider;
mod registry;
mod secret;
mod section;
mod template;
mod validate;

pub use bulk::Outcome;
pub use config::{Config, GatewayDef, MAX_CONFIG_BYTES, PLACEHOLDER};
pub use context::BuildContext;
pub use error::{ConfigErrors, ConfigProblem, ErrorKind, SendError};
pub use gateway::{Gateway, Gateways};
pub use message::{DeliveryReport, Message, Receipt};
pub use param::{
    Given, JsonObject, Optional, Param, ParamKind, ParamSpec, ParamValue, REGEXP, parse_seconds,
    parse_yes_no,
};
pub use phone::PhoneRewrite;
pub use provider::{Capabilities, Factory, Provider, ProviderDescriptor};
pub use registry::{BUILTIN_PROVIDERS, Duplicate, LookupError, Registry};
pub use secret::{
    CENSORED, censor_toml, censor_url, censor_value, is_secret_key, url_without_credentials,
};
pub use section::{
    ConfigSection, Loaded, LoadedSections, SectionDescriptor, SectionPlace, duplicate_sections,
    section_owner,
};
pub use template::{has_tag, render};

pub use async_trait::async_trait;
#[doc(hidden)]
pub use inventory;
pub use secrecy;
pub use toml;
pub use url;
