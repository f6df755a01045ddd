//! Errors: [`SendError`] for a send, [`ConfigErrors`] for a configuration.

use std::fmt;

/// What a failed send means for the caller. Branch on this, not on the message text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// The gateway definition is wrong (or the message cannot be expressed with it). Nothing was sent;
    /// retrying without changing the configuration or the message fails again.
    Config,
    /// The gateway answered and refused the message. Nothing was sent; retrying the same message
    /// will most likely be refused again.
    Refused,
    /// The message was definitely not sent (connection refused, 429/503, throttled …). A retry is safe.
    NotSent,
    /// The request may have reached the gateway (e.g. a timeout after it was written): the message
    /// may have been sent. Retrying may deliver it twice.
    Unknown,
}

impl ErrorKind {
    /// A short name for logs, metrics and JSON: `config`, `refused`, `not_sent`, `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Config => "config",
            ErrorKind::Refused => "refused",
            ErrorKind::NotSent => "not_sent",
            ErrorKind::Unknown => "unknown",
        }
    }
}

impl ErrorKind {
    /// How a failed send of this kind is introduced in the log: what it means for the message.
    pub fn log_label(self) -> &'static str {
        match self {
            ErrorKind::Config => "not sent (configuration)",
            ErrorKind::Refused => "refused",
            ErrorKind::NotSent => "not sent",
            ErrorKind::Unknown => "may have been sent",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a message was not (or may not have been) sent.
///
/// It names the gateway, carries the provider's own code or status where there is one, and a
/// message a person understands. It never carries a secret: providers build it from their own words
/// and from error sources with URLs and credentials removed.
///
/// ```
/// use smsgw_core::{ErrorKind, SendError};
/// let e = SendError::new(ErrorKind::NotSent, "sms1", "HTTP 503 Service Unavailable").with_code("503");
/// assert!(e.is_retry_safe());
/// assert!(!e.may_have_been_sent());
/// assert_eq!(e.code(), Some("503"));
/// assert!(e.to_string().contains("sms1"));
/// ```
#[derive(Debug, Clone)]
pub struct SendError {
    kind: ErrorKind,
    gateway: String,
    code: Option<String>,
    message: String,
}

impl SendError {
    /// A new error of `kind` for `gateway` with a human-readable `message`.
    pub fn new(kind: ErrorKind, gateway: impl Into<String>, message: impl Into<String>) -> Self {
        SendError {
            kind,
            gateway: gateway.into(),
            code: None,
            message: message.into(),
        }
    }

    /// Attaches the provider's own code or status (HTTP status, SMTP reply code, SMPP status name …).
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    /// Which of the four outcomes happened.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// True when the message was definitely not sent and sending it again is safe.
    pub fn is_retry_safe(&self) -> bool {
        self.kind == ErrorKind::NotSent
    }

    /// True when the outcome is unknown: the message may have been sent.
    pub fn may_have_been_sent(&self) -> bool {
        self.kind == ErrorKind::Unknown
    }

    /// The gateway identifier.
    pub fn gateway(&self) -> &str {
        &self.gateway
    }

    /// The provider's own code or status, if any.
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }

    /// The human-readable reason, without the gateway name.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// A sentence saying what the outcome means for the sender.
    pub fn outcome(&self) -> &'static str {
        match self.kind {
            ErrorKind::Config => "not sent: the gateway configuration must be fixed",
            ErrorKind::Refused => "not sent: refused by the gateway",
            ErrorKind::NotSent => "not sent: safe to retry",
            ErrorKind::Unknown => "outcome unknown: the message may have been sent",
        }
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "gateway '{}': {}", self.gateway, self.message)?;
        if let Some(code) = &self.code
            && !self.message.contains(code.as_str())
        {
            write!(f, " (code {code})")?;
        }
        write!(f, " [{}]", self.outcome())
    }
}

impl std::error::Error for SendError {}

/// One problem found in a configuration: where it is and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct ConfigProblem {
    /// What the problem is in: `gateway 'sms1'`, `smtp server 'mail'`, or the file itself.
    pub scope: String,
    /// The option, header or field, where the problem is about one.
    pub key: Option<String>,
    /// What is wrong, for a person.
    pub message: String,
    /// How the key is named when shown: `option` (gateway options) or `field` (tables).
    #[serde(skip)]
    key_word: KeyWord,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyWord {
    Option,
    Field,
}

impl ConfigProblem {
    /// A problem in gateway `gateway`, about `key` (if any).
    pub fn gateway(gateway: &str, key: Option<&str>, message: impl Into<String>) -> Self {
        ConfigProblem {
            scope: format!("gateway '{gateway}'"),
            key: key.map(str::to_owned),
            message: message.into(),
            key_word: KeyWord::Option,
        }
    }

    /// A problem in entry `entry` of a section's table, shown as `{what} '{entry}', field
    /// '{key}': …` (e.g. `what` = `smtp server`).
    ///
    /// ```
    /// let p = smsgw_core::ConfigProblem::entry("smtp server", "mail", Some("port"), "not a port");
    /// assert_eq!(p.to_string(), "smtp server 'mail', field 'port': not a port");
    /// ```
    pub fn entry(what: &str, entry: &str, key: Option<&str>, message: impl Into<String>) -> Self {
        ConfigProblem {
            scope: format!("{what} '{entry}'"),
            key: key.map(str::to_owned),
            message: message.into(),
            key_word: KeyWord::Field,
        }
    }

    /// A problem about field `key` of the table a section hook is checking; the core fills in
    /// where the table is (`gateway 'sms1'`, key `limits.rate`, or `section 'routes'`).
    pub fn in_table(key: Option<&str>, message: impl Into<String>) -> Self {
        ConfigProblem {
            scope: String::new(),
            key: key.map(str::to_owned),
            message: message.into(),
            key_word: KeyWord::Field,
        }
    }

    /// A problem with the configuration file as a whole.
    pub fn file(message: impl Into<String>) -> Self {
        ConfigProblem {
            scope: "configuration".into(),
            key: None,
            message: message.into(),
            key_word: KeyWord::Option,
        }
    }
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.key.as_deref(), self.key_word) {
            (Some(key @ ("provider" | "headers" | "description")), KeyWord::Option) => {
                write!(f, "{}, {}: {}", self.scope, key, self.message)
            }
            (Some(key), KeyWord::Field) => {
                write!(f, "{}, field '{}': {}", self.scope, key, self.message)
            }
            (Some(key), KeyWord::Option) => {
                write!(f, "{}, option '{}': {}", self.scope, key, self.message)
            }
            (None, _) => write!(f, "{}: {}", self.scope, self.message),
        }
    }
}

/// Every problem found in a configuration, reported together.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConfigErrors {
    problems: Vec<ConfigProblem>,
}

impl ConfigErrors {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a problem.
    pub fn push(&mut self, problem: ConfigProblem) {
        self.problems.push(problem);
    }

    /// Adds all problems of another list.
    pub fn extend(&mut self, other: ConfigErrors) {
        self.problems.extend(other.problems);
    }

    /// True when nothing is wrong.
    pub fn is_empty(&self) -> bool {
        self.problems.is_empty()
    }

    /// The problems, in the order found.
    pub fn problems(&self) -> &[ConfigProblem] {
        &self.problems
    }

    /// `Ok(value)` when empty, else `Err(self)`.
    pub fn into_result<T>(self, value: T) -> Result<T, ConfigErrors> {
        if self.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }
}

impl From<ConfigProblem> for ConfigErrors {
    fn from(p: ConfigProblem) -> Self {
        ConfigErrors { problems: vec![p] }
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(
            f,
            "{n} configuration problem{}",
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            write!(f, "\n  - {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}
