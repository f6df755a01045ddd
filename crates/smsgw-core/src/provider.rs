//! The provider plug-in interface: the [`Provider`] trait, its [`ProviderDescriptor`] and
//! [`ParamSpec`]s, and the [`BuildContext`] a factory reads a gateway definition from.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use indexmap::IndexMap;

use crate::config::SmtpServer;
use crate::error::{ConfigErrors, ConfigProblem, SendError};
use crate::message::{DeliveryReport, Message, Receipt};

/// A configured gateway of one provider kind, ready to send.
///
/// The phone number a provider receives has already been rewritten by the gateway's `REGEXP`;
/// the provider applies the tags `{phone}` and `{otp}` where its options use them
/// ([`render`](crate::render)). Implementations are shared between tasks and must be cheap to call
/// concurrently; connections are opened lazily on the first send, never in the factory.
#[async_trait]
pub trait Provider: Send + Sync + std::fmt::Debug {
    /// Sends one message. Every outcome is a receipt or a classified [`SendError`]; every wait is
    /// bounded by the gateway's timeouts.
    async fn send(&self, message: &Message) -> Result<Receipt, SendError>;

    /// Delivery receipts reported by the gateway after a send, for providers with the
    /// [`Capabilities::delivery_reports`] capability. `None` otherwise.
    fn delivery_reports(&self) -> Option<tokio::sync::broadcast::Receiver<DeliveryReport>> {
        None
    }

    /// Closes connections cleanly (e.g. SMPP unbind). Sends after shutdown may reconnect.
    async fn shutdown(&self) {}
}

/// How a parameter's value is checked before a factory sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParamKind {
    /// Any text (tags allowed).
    Text,
    /// An absolute `http`/`https` (or the provider's) URL.
    Url,
    /// A whole number within the range.
    Integer {
        /// Smallest value allowed.
        min: i64,
        /// Largest value allowed.
        max: i64,
    },
    /// A duration in seconds, fractions allowed, greater than zero.
    Seconds,
    /// `yes` or `no` (also `true`/`false`, `1`/`0`; case-insensitive).
    YesNo,
    /// A `REGEXP` rule `/pattern/replacement/`.
    Regexp,
    /// A JSON object, or (in TOML) a table.
    JsonObject,
}

impl ParamKind {
    /// A short human name of the kind, for the reference and for `smsgw providers`.
    pub fn describe(&self) -> String {
        match self {
            ParamKind::Text => "text".into(),
            ParamKind::Url => "URL".into(),
            ParamKind::Integer { min, max } => format!("integer {min}..={max}"),
            ParamKind::Seconds => "seconds".into(),
            ParamKind::YesNo => "yes/no".into(),
            ParamKind::Regexp => "/pattern/replacement/".into(),
            ParamKind::JsonObject => "JSON object".into(),
        }
    }
}

/// One parameter a provider understands, with its exact (privacyIDEA) name.
#[derive(Debug, Clone, Copy)]
pub struct ParamSpec {
    /// The option name, e.g. `URL`.
    pub name: &'static str,
    /// Other accepted spellings (e.g. `SMTPIDENTIFIED`, the spec's typo).
    pub aliases: &'static [&'static str],
    /// Whether a gateway must set it.
    pub required: bool,
    /// One sentence for people.
    pub description: &'static str,
    /// How the value is checked.
    pub kind: ParamKind,
    /// The only values allowed (case-insensitive), empty for any.
    pub allowed: &'static [&'static str],
    /// The value used when the option is absent, as text.
    pub default: Option<&'static str>,
    /// Whether the value is a secret (never shown).
    pub secret: bool,
}

impl ParamSpec {
    /// An optional text parameter with no default; adjust with the builder methods.
    pub const fn new(name: &'static str, description: &'static str) -> Self {
        ParamSpec {
            name,
            aliases: &[],
            required: false,
            description,
            kind: ParamKind::Text,
            allowed: &[],
            default: None,
            secret: false,
        }
    }
    /// Marks it required.
    pub const fn required(mut self) -> Self {
        self.required = true;
        self
    }
    /// Sets the kind.
    pub const fn kind(mut self, kind: ParamKind) -> Self {
        self.kind = kind;
        self
    }
    /// Sets the allowed values.
    pub const fn allowed(mut self, allowed: &'static [&'static str]) -> Self {
        self.allowed = allowed;
        self
    }
    /// Sets the default.
    pub const fn default_value(mut self, default: &'static str) -> Self {
        self.default = Some(default);
        self
    }
    /// Marks it secret.
    pub const fn secret(mut self) -> Self {
        self.secret = true;
        self
    }
    /// Sets other accepted names.
    pub const fn aliases(mut self, aliases: &'static [&'static str]) -> Self {
        self.aliases = aliases;
        self
    }
    /// True when `key` is this parameter's name or one of its aliases.
    pub fn matches(&self, key: &str) -> bool {
        self.name == key || self.aliases.contains(&key)
    }
}

/// The parameter every provider takes, handled by the core before the provider sees the phone.
pub const REGEXP: ParamSpec = ParamSpec::new(
    "REGEXP",
    "Rewrites the phone number before sending: /pattern/replacement/ with Python re.sub semantics.",
)
.kind(ParamKind::Regexp);

/// What a provider can do; decides which conformance checks apply and what callers may expect.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// Texts longer than one SMS are sent whole (split into parts by the provider or the gateway).
    pub long_messages: bool,
    /// Delivery receipts are reported through [`Provider::delivery_reports`].
    pub delivery_reports: bool,
    /// The gateway's `headers` are sent.
    pub headers: bool,
    /// The phone number arrives byte for byte (not reduced to digits, as sipgate does).
    pub verbatim_phone: bool,
}

impl Capabilities {
    /// No capabilities; set the fields with the builder methods.
    pub const fn none() -> Self {
        Capabilities {
            long_messages: false,
            delivery_reports: false,
            headers: false,
            verbatim_phone: false,
        }
    }
    /// Sets `long_messages`.
    pub const fn long_messages(mut self) -> Self {
        self.long_messages = true;
        self
    }
    /// Sets `delivery_reports`.
    pub const fn delivery_reports(mut self) -> Self {
        self.delivery_reports = true;
        self
    }
    /// Sets `headers`.
    pub const fn headers(mut self) -> Self {
        self.headers = true;
        self
    }
    /// Sets `verbatim_phone`.
    pub const fn verbatim_phone(mut self) -> Self {
        self.verbatim_phone = true;
        self
    }
}

/// Builds a provider for one gateway definition, or says everything that is wrong with it.
/// It must not touch the network and must work outside a tokio runtime.
pub type Factory = fn(&BuildContext<'_>) -> Result<Arc<dyn Provider>, ConfigErrors>;

/// A provider kind, registered with [`register_provider!`](crate::register_provider).
#[derive(Debug)]
pub struct ProviderDescriptor {
    /// The short name used in configuration (`http`).
    pub name: &'static str,
    /// Other names that select it, e.g. privacyIDEA's module path.
    pub aliases: &'static [&'static str],
    /// One line for people.
    pub description: &'static str,
    /// The parameters it takes (`REGEXP` is added by the core for every provider).
    pub params: &'static [ParamSpec],
    /// Whether options other than `params` are accepted (sent along by the provider).
    pub free_options: bool,
    /// Whether the gateway may define headers.
    pub headers: bool,
    /// What it can do.
    pub capabilities: Capabilities,
    /// Builds a provider from a validated definition.
    pub factory: Factory,
}

impl ProviderDescriptor {
    /// The parameter spec for `key` (by name or alias), including the core's `REGEXP`.
    pub fn param(&self, key: &str) -> Option<&'static ParamSpec> {
        self.params
            .iter()
            .find(|p| p.matches(key))
            .or_else(|| REGEXP.matches(key).then_some(&REGEXP))
    }

    /// All parameters: the provider's, then `REGEXP` unless it lists it itself.
    pub fn all_params(&self) -> Vec<&'static ParamSpec> {
        let mut v: Vec<&'static ParamSpec> = self.params.iter().collect();
        if !self.params.iter().any(|p| p.name == REGEXP.name) {
            v.push(&REGEXP);
        }
        v
    }
}

inventory::collect!(ProviderDescriptor);

/// Registers a [`ProviderDescriptor`] with the global registry.
///
/// ```
/// use std::sync::Arc;
/// use smsgw_core::*;
///
/// #[derive(Debug)]
/// struct Mine;
///
/// #[async_trait]
/// impl Provider for Mine {
///     async fn send(&self, _m: &Message) -> Result<Receipt, SendError> {
///         Ok(Receipt::new("gw", "mine"))
///     }
/// }
///
/// fn build(_ctx: &BuildContext<'_>) -> Result<Arc<dyn Provider>, ConfigErrors> {
///     Ok(Arc::new(Mine))
/// }
///
/// register_provider!(ProviderDescriptor {
///     name: "mine",
///     aliases: &[],
///     description: "An example.",
///     params: &[ParamSpec::new("URL", "Where to send.").required().kind(ParamKind::Url)],
///     free_options: false,
///     headers: false,
///     capabilities: Capabilities::none(),
///     factory: build,
/// });
///
/// assert_eq!(Registry::global().get("mine").unwrap().name, "mine");
/// ```
#[macro_export]
macro_rules! register_provider {
    ($descriptor:expr) => {
        $crate::inventory::submit! { $descriptor }
    };
}

/// What a factory reads a gateway definition from, with typed accessors that apply the spec's
/// defaults. The core has already checked required parameters, allowed values and kinds, so the
/// accessors only fall back to defaults for absent options.
pub struct BuildContext<'a> {
    /// The gateway identifier.
    pub gateway: &'a str,
    /// The provider descriptor.
    pub descriptor: &'static ProviderDescriptor,
    /// The options as written (keys exactly as configured, in order).
    pub options: &'a IndexMap<String, String>,
    /// The headers as written.
    pub headers: &'a IndexMap<String, String>,
    /// The central SMTP server definitions.
    pub smtp_servers: &'a IndexMap<String, SmtpServer>,
}

impl<'a> BuildContext<'a> {
    /// The value of parameter `name` (or one of its aliases) as written, if set.
    pub fn get(&self, name: &str) -> Option<&'a str> {
        if let Some(v) = self.options.get(name) {
            return Some(v.as_str());
        }
        let spec = self.descriptor.param(name)?;
        spec.aliases
            .iter()
            .find_map(|a| self.options.get(*a).map(String::as_str))
    }

    /// The value of `name`, or its spec default.
    pub fn text(&self, name: &str) -> Option<&'a str> {
        self.get(name)
            .or_else(|| self.descriptor.param(name).and_then(|p| p.default))
    }

    /// A `yes`/`no` parameter (spec default when absent, `false` when it has none).
    pub fn yes_no(&self, name: &str) -> bool {
        self.text(name).and_then(parse_yes_no).unwrap_or(false)
    }

    /// A seconds parameter (spec default when absent).
    pub fn seconds(&self, name: &str) -> Option<Duration> {
        self.text(name).and_then(|v| parse_seconds(v).ok())
    }

    /// An integer parameter (spec default when absent).
    pub fn integer(&self, name: &str) -> Option<i64> {
        self.text(name).and_then(|v| v.trim().parse().ok())
    }

    /// The options that are not parameters of the provider (its free options), in order.
    pub fn free_options(&self) -> impl Iterator<Item = (&'a str, &'a str)> + '_ {
        self.options
            .iter()
            .filter(|(k, _)| self.descriptor.param(k).is_none())
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// A problem about option `key` of this gateway.
    pub fn problem(&self, key: &str, message: impl Into<String>) -> ConfigProblem {
        ConfigProblem::gateway(self.gateway, Some(key), message)
    }
}

/// Parses `yes`/`no`, `true`/`false`, `1`/`0`, `on`/`off` (case-insensitive).
pub fn parse_yes_no(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "yes" | "true" | "1" | "on" => Some(true),
        "no" | "false" | "0" | "off" => Some(false),
        _ => None,
    }
}

/// Parses a positive number of seconds, fractions allowed (`3`, `0.5`).
pub fn parse_seconds(v: &str) -> Result<Duration, String> {
    let secs: f64 = v
        .trim()
        .parse()
        .map_err(|_| format!("'{v}' is not a number of seconds"))?;
    if !secs.is_finite() || secs <= 0.0 || secs > 86_400.0 {
        return Err(format!(
            "'{v}' must be more than 0 and at most 86400 seconds"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}
