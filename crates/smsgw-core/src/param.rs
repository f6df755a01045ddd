//! Parameters, declared once: [`ParamSpec`] (what `smsgw providers` and the reference show) and
//! the typed handle [`Param`] a factory reads the parsed value through.
//!
//! The core parses every value once, while it validates a definition; the factory gets the
//! parsed value through the same handle that declared it, so a name, a default or a range is
//! written in exactly one place.

use std::marker::PhantomData;
use std::time::Duration;

use secrecy::SecretString;

use crate::phone::PhoneRewrite;

/// How a parameter's value is checked (and parsed) before a factory sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParamKind {
    /// Any text (tags allowed). With allowed values: one of them, case-insensitive.
    Text,
    /// An absolute URL with a host.
    Url,
    /// A proxy: `host:port` or an `http://` / `https://` URL.
    Proxy,
    /// A whole number within the range.
    Integer {
        /// Smallest value allowed.
        min: i64,
        /// Largest value allowed.
        max: i64,
    },
    /// A duration in seconds, fractions allowed, greater than zero.
    Seconds,
    /// `yes` or `no` (also `true`/`false`, `1`/`0`, `on`/`off`; case-insensitive).
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
            // A proxy is shown as text: `host:port` is accepted as well as a URL.
            ParamKind::Text | ParamKind::Proxy => "text".into(),
            ParamKind::Url => "URL".into(),
            ParamKind::Integer { min, max } => format!("integer {min}..={max}"),
            ParamKind::Seconds => "seconds".into(),
            ParamKind::YesNo => "yes/no".into(),
            ParamKind::Regexp => "/pattern/replacement/".into(),
            ParamKind::JsonObject => "JSON object".into(),
        }
    }

    /// True for kinds where an empty value means "not set" (for text, empty is a value).
    pub(crate) fn empty_is_absent(&self) -> bool {
        !matches!(self, ParamKind::Text)
    }
}

/// The declaration of one parameter, with its exact (privacyIDEA) name. Built through a typed
/// [`Param`] handle; the descriptor's table holds these (`HANDLE.spec()`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
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
    const fn base(name: &'static str, description: &'static str, kind: ParamKind) -> Self {
        ParamSpec {
            name,
            aliases: &[],
            required: false,
            description,
            kind,
            allowed: &[],
            default: None,
            secret: false,
        }
    }

    /// True when `key` is this parameter's name or one of its aliases.
    pub fn matches(&self, key: &str) -> bool {
        self.name == key || self.aliases.contains(&key)
    }
}

/// Marks a [`Param`] whose value may be absent: read it with
/// [`BuildContext::opt`](crate::BuildContext::opt).
#[derive(Debug, Clone, Copy)]
pub enum Optional {}

/// Marks a [`Param`] that always has a value (required, or with a default): read it with
/// [`BuildContext::get`](crate::BuildContext::get).
#[derive(Debug, Clone, Copy)]
pub enum Given {}

/// A typed parameter handle: declared once as a `const`, listed in the descriptor
/// (`params: &[TIMEOUT.spec(), …]`) and read by the factory (`ctx.get(&TIMEOUT)`).
///
/// `T` is the parsed type: `String` ([`text`](Param::text)), [`SecretString`]
/// ([`secret`](Param::secret)), `&'static str` ([`choice`](Param::choice)), [`url::Url`]
/// ([`url`](Param::url), [`proxy`](Param::proxy)), integers ([`integer`](Param::integer)),
/// [`Duration`] ([`seconds`](Param::seconds)), `bool` ([`yes_no`](Param::yes_no)),
/// [`PhoneRewrite`] ([`regexp`](Param::regexp)) and [`JsonObject`]
/// ([`json_object`](Param::json_object)). `P` says whether a value is always there
/// ([`Given`]: [`required`](Param::required) or [`default_value`](Param::default_value)) or may
/// be absent ([`Optional`]).
///
/// ```
/// use std::time::Duration;
/// use smsgw_core::{Param, ParamSpec};
/// const TIMEOUT: Param<Duration, smsgw_core::Given> =
///     Param::seconds("TIMEOUT", "Seconds one send may take.").default_value("10");
/// const PARAMS: &[ParamSpec] = &[TIMEOUT.spec()];
/// assert_eq!(PARAMS[0].default, Some("10"));
/// ```
pub struct Param<T, P = Optional> {
    spec: ParamSpec,
    _type: PhantomData<fn() -> (T, P)>,
}

impl<T, P> Clone for Param<T, P> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T, P> Copy for Param<T, P> {}

impl<T, P> std::fmt::Debug for Param<T, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Param").field(&self.spec).finish()
    }
}

impl<T, P> Param<T, P> {
    const fn of(spec: ParamSpec) -> Self {
        Param {
            spec,
            _type: PhantomData,
        }
    }

    /// The declaration, for the descriptor's parameter table.
    pub const fn spec(&self) -> ParamSpec {
        self.spec
    }

    /// The parameter's name.
    pub const fn name(&self) -> &'static str {
        self.spec.name
    }

    /// Sets other accepted names.
    pub const fn aliases(mut self, aliases: &'static [&'static str]) -> Self {
        self.spec.aliases = aliases;
        self
    }
}

impl<T> Param<T, Optional> {
    /// Marks it required: a gateway must set it (to a non-empty value).
    pub const fn required(mut self) -> Param<T, Given> {
        self.spec.required = true;
        Param::of(self.spec)
    }

    /// Sets the default, as the text a configuration would hold. The core checks it like a
    /// configured value; a default that does not pass its own check is reported as a problem of
    /// every gateway of the provider.
    pub const fn default_value(mut self, default: &'static str) -> Param<T, Given> {
        self.spec.default = Some(default);
        Param::of(self.spec)
    }
}

impl Param<String> {
    /// Any text (tags allowed); an empty value is a value.
    pub const fn text(name: &'static str, description: &'static str) -> Self {
        Param::of(ParamSpec::base(name, description, ParamKind::Text))
    }
}

impl Param<SecretString> {
    /// A secret text: never shown, read as a [`SecretString`].
    pub const fn secret(name: &'static str, description: &'static str) -> Self {
        let mut spec = ParamSpec::base(name, description, ParamKind::Text);
        spec.secret = true;
        Param::of(spec)
    }
}

impl Param<&'static str> {
    /// One of `allowed` (case-insensitive); read as the matching entry of `allowed`.
    pub const fn choice(
        name: &'static str,
        description: &'static str,
        allowed: &'static [&'static str],
    ) -> Self {
        let mut spec = ParamSpec::base(name, description, ParamKind::Text);
        spec.allowed = allowed;
        Param::of(spec)
    }
}

impl Param<url::Url> {
    /// An absolute URL with a host (any scheme: the factory decides which it supports).
    pub const fn url(name: &'static str, description: &'static str) -> Self {
        Param::of(ParamSpec::base(name, description, ParamKind::Url))
    }

    /// A proxy: `host:port` (taken as `http://host:port`) or an `http://`/`https://` URL.
    pub const fn proxy(name: &'static str, description: &'static str) -> Self {
        Param::of(ParamSpec::base(name, description, ParamKind::Proxy))
    }
}

impl Param<Duration> {
    /// Seconds, fractions allowed, more than 0 and at most a day.
    pub const fn seconds(name: &'static str, description: &'static str) -> Self {
        Param::of(ParamSpec::base(name, description, ParamKind::Seconds))
    }
}

impl Param<bool> {
    /// `yes` / `no`.
    pub const fn yes_no(name: &'static str, description: &'static str) -> Self {
        Param::of(ParamSpec::base(name, description, ParamKind::YesNo))
    }
}

impl Param<PhoneRewrite> {
    /// A `REGEXP` rule `/pattern/replacement/`, read compiled.
    pub const fn regexp(name: &'static str, description: &'static str) -> Self {
        Param::of(ParamSpec::base(name, description, ParamKind::Regexp))
    }
}

/// The parsed value of a JSON object parameter.
pub type JsonObject = serde_json::Map<String, serde_json::Value>;

impl Param<JsonObject> {
    /// A JSON object (in TOML also a table).
    pub const fn json_object(name: &'static str, description: &'static str) -> Self {
        Param::of(ParamSpec::base(name, description, ParamKind::JsonObject))
    }
}

impl<T: parsed::Integer> Param<T> {
    /// A whole number in `min..=max`. The range must fit `T` (checked when the definition is
    /// validated: a range that does not fit is a configuration problem, never a silent clamp).
    pub const fn integer(
        name: &'static str,
        description: &'static str,
        min: i64,
        max: i64,
    ) -> Self {
        Param::of(ParamSpec::base(
            name,
            description,
            ParamKind::Integer { min, max },
        ))
    }
}

/// The parameter every provider takes, handled by the core before the provider sees the phone.
pub const REGEXP: Param<PhoneRewrite> = Param::regexp(
    "REGEXP",
    "Rewrites the phone number before sending: /pattern/replacement/ with Python re.sub semantics.",
);

/// A type a [`Param`] can be read as; implemented for the types the constructors of [`Param`]
/// produce. Sealed: the core parses, so it must know every type.
pub trait ParamValue: parsed::FromParsed {}
impl<T: parsed::FromParsed> ParamValue for T {}

pub(crate) mod parsed {
    //! The parsed values the core keeps, and how a handle's type reads them.
    use super::*;

    /// One parsed value.
    #[derive(Clone)]
    pub enum Parsed {
        Text(String),
        Secret(SecretString),
        Choice(&'static str),
        Url(url::Url),
        Int(i64),
        Seconds(Duration),
        Bool(bool),
        Regexp(PhoneRewrite),
        Json(JsonObject),
    }

    /// How a handle's type is taken out of a [`Parsed`] value; `None` when the kinds disagree
    /// (a handle used with another provider's descriptor).
    pub trait FromParsed: Sized {
        fn from_parsed(p: &Parsed) -> Option<Self>;
        /// What a misused handle yields; the gateway then fails to build, so it is never used.
        fn placeholder() -> Self;
    }

    /// Integer types a [`Param::integer`] can be read as.
    pub trait Integer: FromParsed + TryFrom<i64> {}

    macro_rules! simple {
        ($t:ty, $variant:ident, $placeholder:expr) => {
            impl FromParsed for $t {
                fn from_parsed(p: &Parsed) -> Option<Self> {
                    match p {
                        Parsed::$variant(v) => Some(v.clone()),
                        _ => None,
                    }
                }
                fn placeholder() -> Self {
                    $placeholder
                }
            }
        };
    }
    simple!(String, Text, String::new());
    simple!(SecretString, Secret, SecretString::from(String::new()));
    simple!(&'static str, Choice, "");
    simple!(
        url::Url,
        Url,
        url::Url::parse("data:,").expect("a static URL parses")
    );
    simple!(Duration, Seconds, Duration::from_secs(1));
    simple!(bool, Bool, false);
    simple!(PhoneRewrite, Regexp, PhoneRewrite::identity());
    simple!(JsonObject, Json, JsonObject::new());

    macro_rules! integer {
        ($($t:ty),*) => {$(
            impl FromParsed for $t {
                fn from_parsed(p: &Parsed) -> Option<Self> {
                    match p {
                        Parsed::Int(v) => <$t>::try_from(*v).ok(),
                        _ => None,
                    }
                }
                fn placeholder() -> Self {
                    0
                }
            }
            impl Integer for $t {}
        )*};
    }
    integer!(i64, i32, u8, u16, u32, u64, usize);
}

/// Parses one value of `spec` (already known to be set and, for non-text kinds, non-empty).
/// The error never contains a secret.
pub(crate) fn parse_value(spec: &ParamSpec, value: &str) -> Result<parsed::Parsed, String> {
    use crate::secret::censor_url;
    use parsed::Parsed;
    if !spec.allowed.is_empty() {
        return match spec.allowed.iter().find(|a| a.eq_ignore_ascii_case(value)) {
            Some(a) => Ok(Parsed::Choice(a)),
            None => Err(format!(
                "'{}' is not one of {}",
                if spec.secret { crate::CENSORED } else { value },
                spec.allowed.join(", ")
            )),
        };
    }
    let result = match spec.kind {
        ParamKind::Text if spec.secret => Ok(Parsed::Secret(SecretString::from(value.to_owned()))),
        ParamKind::Text => Ok(Parsed::Text(value.to_owned())),
        ParamKind::Url => {
            let u = url::Url::parse(value.trim())
                .map_err(|e| format!("'{}' is not a valid URL: {e}", censor_url(value)))?;
            if u.host_str().is_none_or(str::is_empty) {
                return Err(format!("'{}' has no host", censor_url(value)));
            }
            Ok(Parsed::Url(u))
        }
        ParamKind::Proxy => parse_proxy(value.trim()).map(Parsed::Url),
        ParamKind::Integer { min, max } => match value.trim().parse::<i64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(Parsed::Int(n)),
            Ok(n) => Err(format!("{n} is outside {min}..={max}")),
            Err(_) => Err(format!("'{value}' is not a whole number")),
        },
        ParamKind::Seconds => parse_seconds(value).map(Parsed::Seconds),
        ParamKind::YesNo => parse_yes_no(value)
            .map(Parsed::Bool)
            .ok_or_else(|| format!("'{value}' is not yes or no")),
        ParamKind::Regexp => PhoneRewrite::parse(value).map(Parsed::Regexp),
        ParamKind::JsonObject => match serde_json::from_str::<serde_json::Value>(value) {
            Ok(serde_json::Value::Object(m)) => Ok(Parsed::Json(m)),
            Ok(_) => Err("must be a JSON object (or a TOML table)".into()),
            Err(e) => Err(format!("is not valid JSON: {e}")),
        },
    };
    result.map_err(|msg| {
        if spec.secret {
            "the value is not valid".to_owned()
        } else {
            msg
        }
    })
}

fn parse_proxy(raw: &str) -> Result<url::Url, String> {
    use crate::secret::censor_url;
    let full = if raw.contains("://") {
        raw.to_owned()
    } else {
        format!("http://{raw}")
    };
    match url::Url::parse(&full) {
        Ok(u) if !matches!(u.scheme(), "http" | "https") => Err(format!(
            "proxy scheme '{}' is not supported (use http:// or https://)",
            u.scheme()
        )),
        Ok(u) if u.host_str().is_some_and(|h| !h.is_empty()) => Ok(u),
        _ => Err(format!("'{}' is not a proxy URL", censor_url(&full))),
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

/// Parses a positive number of seconds, fractions allowed (`3`, `0.5`), at most a day.
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
