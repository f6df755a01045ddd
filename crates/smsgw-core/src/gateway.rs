//! Validating definitions and building [`Gateway`]s: the life of one send starts here.

use std::sync::Arc;
use std::time::Instant;

use indexmap::IndexMap;
use tracing::Instrument;

use crate::config::{Config, GatewayDef, PLACEHOLDER, SmtpServer};
use crate::error::{ConfigErrors, ConfigProblem, ErrorKind, SendError};
use crate::message::{DeliveryReport, Message, Receipt};
use crate::phone::PhoneRewrite;
use crate::provider::{
    BuildContext, ParamKind, Provider, ProviderDescriptor, parse_seconds, parse_yes_no,
};
use crate::registry::Registry;

/// A gateway ready to send: a provider built from a definition, plus what the core does for every
/// provider (the `REGEXP` rewrite, a tracing span, metrics).
#[derive(Debug, Clone)]
pub struct Gateway {
    id: Arc<str>,
    descriptor: &'static ProviderDescriptor,
    rewrite: Option<PhoneRewrite>,
    provider: Arc<dyn Provider>,
}

impl Gateway {
    /// Validates one definition and builds its provider; every problem is reported at once.
    ///
    /// ```
    /// use smsgw_core::{Gateway, GatewayDef, Registry};
    /// let def = GatewayDef { id: "sms1".into(), provider: "nope".into(), ..Default::default() };
    /// let errs = Gateway::build(&def, &Default::default(), Registry::global()).unwrap_err();
    /// assert!(errs.to_string().contains("unknown provider 'nope'"));
    /// ```
    pub fn build(
        def: &GatewayDef,
        smtp_servers: &IndexMap<String, SmtpServer>,
        registry: &Registry,
    ) -> Result<Gateway, ConfigErrors> {
        let descriptor = registry.get(&def.provider).map_err(|e| {
            ConfigErrors::from(ConfigProblem::gateway(
                &def.id,
                Some("provider"),
                e.to_string(),
            ))
        })?;
        let problems = check_definition(def, descriptor);
        if !problems.is_empty() {
            return Err(problems);
        }
        let ctx = BuildContext {
            gateway: &def.id,
            descriptor,
            options: &def.options,
            headers: &def.headers,
            smtp_servers,
        };
        let rewrite = ctx
            .get("REGEXP")
            .filter(|r| !r.is_empty())
            .map(PhoneRewrite::parse)
            .transpose()
            .expect("REGEXP checked above");
        let provider = (descriptor.factory)(&ctx)?;
        Ok(Gateway {
            id: def.id.as_str().into(),
            descriptor,
            rewrite,
            provider,
        })
    }

    /// The gateway identifier.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The provider kind.
    pub fn descriptor(&self) -> &'static ProviderDescriptor {
        self.descriptor
    }

    /// The phone number after `REGEXP`.
    pub fn rewrite_phone(&self, phone: &str) -> String {
        match &self.rewrite {
            Some(r) => r.apply(phone),
            None => phone.to_owned(),
        }
    }

    /// Sends one message: rewrites the phone, calls the provider inside a span, records
    /// `sms_send_total{gateway,result}` and `sms_send_duration_seconds{gateway}`.
    pub async fn send(&self, message: &Message) -> Result<Receipt, SendError> {
        let start = Instant::now();
        let span =
            tracing::info_span!("sms_send", gateway = %self.id, provider = self.descriptor.name);
        let result = async {
            let rewritten;
            let msg = match &self.rewrite {
                Some(r) => {
                    let phone = r.apply(&message.phone);
                    if phone != message.phone {
                        tracing::debug!(from = %message.phone, to = %phone, "REGEXP rewrote the phone number");
                    }
                    rewritten = Message { phone, text: message.text.clone() };
                    &rewritten
                }
                None => message,
            };
            if msg.phone.trim().is_empty() {
                return Err(SendError::new(ErrorKind::Config, &*self.id, "the phone number is empty"));
            }
            let r = self.provider.send(msg).await;
            match &r {
                Ok(rc) => tracing::info!(parts = rc.parts, ids = ?rc.message_ids, "sent"),
                Err(e) => tracing::warn!(kind = %e.kind(), code = e.code(), "not sent: {}", e.message()),
            }
            r
        }
        .instrument(span)
        .await;
        let outcome = match &result {
            Ok(_) => "sent",
            Err(e) => e.kind().as_str(),
        };
        metrics::counter!("sms_send_total", "gateway" => self.id.to_string(), "result" => outcome)
            .increment(1);
        metrics::histogram!("sms_send_duration_seconds", "gateway" => self.id.to_string())
            .record(start.elapsed().as_secs_f64());
        result
    }

    /// Delivery receipts, where the provider reports them.
    pub fn delivery_reports(&self) -> Option<tokio::sync::broadcast::Receiver<DeliveryReport>> {
        self.provider.delivery_reports()
    }

    /// Closes the provider's connections cleanly.
    pub async fn shutdown(&self) {
        self.provider.shutdown().await
    }
}

/// Every gateway of a configuration, built.
#[derive(Debug, Clone, Default)]
pub struct Gateways {
    map: IndexMap<String, Gateway>,
}

impl Gateways {
    /// Validates and builds every gateway of `config`, reporting all problems of all gateways (and
    /// of the SMTP server definitions) at once.
    pub fn build(config: &Config, registry: &Registry) -> Result<Gateways, ConfigErrors> {
        let mut errors = check_smtp_servers(&config.smtp_servers);
        let mut map = IndexMap::new();
        for (id, def) in &config.gateways {
            match Gateway::build(def, &config.smtp_servers, registry) {
                Ok(g) => {
                    map.insert(id.clone(), g);
                }
                Err(e) => errors.extend(e),
            }
        }
        errors.into_result(Gateways { map })
    }

    /// The gateway `id`.
    pub fn get(&self, id: &str) -> Option<&Gateway> {
        self.map.get(id)
    }

    /// All gateways in file order.
    pub fn iter(&self) -> impl Iterator<Item = &Gateway> {
        self.map.values()
    }

    /// Closes every provider's connections.
    pub async fn shutdown(&self) {
        for g in self.map.values() {
            g.shutdown().await;
        }
    }
}

/// The checks the core makes for every provider before its factory runs.
fn check_definition(def: &GatewayDef, desc: &'static ProviderDescriptor) -> ConfigErrors {
    let mut errs = ConfigErrors::new();
    let mut problem = |key: &str, msg: String| {
        errs.push(ConfigProblem::gateway(&def.id, Some(key), msg));
    };
    for spec in desc.all_params() {
        let set: Vec<&String> = def.options.keys().filter(|k| spec.matches(k)).collect();
        if set.len() > 1 {
            problem(
                spec.name,
                format!(
                    "set more than once (as {})",
                    set.iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(" and ")
                ),
            );
        }
        if spec.required && set.iter().all(|k| def.options[*k].trim().is_empty()) {
            problem(spec.name, format!("required: {}", spec.description));
        }
    }
    for (key, value) in &def.options {
        if value.contains(PLACEHOLDER) {
            problem(
                key,
                format!("still holds the placeholder {PLACEHOLDER}: fill in the real value"),
            );
            continue;
        }
        let Some(spec) = desc.param(key) else {
            if !desc.free_options {
                let mut names: Vec<&str> = desc.all_params().iter().map(|p| p.name).collect();
                names.sort_unstable();
                problem(
                    key,
                    format!(
                        "the {} provider takes no free options; its parameters are: {}",
                        desc.name,
                        names.join(", ")
                    ),
                );
            }
            continue;
        };
        if value.is_empty() {
            continue;
        }
        if !spec.allowed.is_empty() && !spec.allowed.iter().any(|a| a.eq_ignore_ascii_case(value)) {
            problem(
                key,
                format!(
                    "'{}' is not one of {}",
                    shown(spec.secret, value),
                    spec.allowed.join(", ")
                ),
            );
            continue;
        }
        if let Err(msg) = check_kind(spec.kind, value) {
            let msg = if spec.secret {
                "the value is not valid".to_owned()
            } else {
                msg
            };
            problem(key, msg);
        }
    }
    if !desc.headers && !def.headers.is_empty() {
        problem(
            "headers",
            format!("the {} provider sends no headers; remove them", desc.name),
        );
    }
    for (key, value) in &def.headers {
        if value.contains(PLACEHOLDER) {
            problem(
                key,
                format!("header still holds the placeholder {PLACEHOLDER}: fill in the real value"),
            );
        }
    }
    errs
}

fn shown(secret: bool, v: &str) -> &str {
    if secret { crate::secret::CENSORED } else { v }
}

fn check_kind(kind: ParamKind, value: &str) -> Result<(), String> {
    match kind {
        ParamKind::Text => Ok(()),
        ParamKind::Url => {
            let u = url::Url::parse(value.trim()).map_err(|e| {
                format!(
                    "'{}' is not a valid URL: {e}",
                    crate::secret::censor_url(value)
                )
            })?;
            if u.host_str().is_none_or(str::is_empty) {
                return Err(format!(
                    "'{}' has no host",
                    crate::secret::censor_url(value)
                ));
            }
            Ok(())
        }
        ParamKind::Integer { min, max } => match value.trim().parse::<i64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(()),
            Ok(n) => Err(format!("{n} is outside {min}..={max}")),
            Err(_) => Err(format!("'{value}' is not a whole number")),
        },
        ParamKind::Seconds => parse_seconds(value).map(|_| ()),
        ParamKind::YesNo => parse_yes_no(value)
            .map(|_| ())
            .ok_or_else(|| format!("'{value}' is not yes or no")),
        ParamKind::Regexp => PhoneRewrite::parse(value).map(|_| ()),
        ParamKind::JsonObject => match serde_json::from_str::<serde_json::Value>(value) {
            Ok(serde_json::Value::Object(_)) => Ok(()),
            Ok(_) => Err("must be a JSON object (or a TOML table)".into()),
            Err(e) => Err(format!("is not valid JSON: {e}")),
        },
    }
}

fn check_smtp_servers(servers: &IndexMap<String, SmtpServer>) -> ConfigErrors {
    let mut errs = ConfigErrors::new();
    for (id, s) in servers {
        let mut p =
            |key: &str, msg: String| errs.push(ConfigProblem::smtp_server(id, Some(key), msg));
        let server = s.server.trim();
        if server.is_empty() {
            p(
                "server",
                "required: a host name, smtp://host:port or smtps://host:port".into(),
            );
        } else if server.contains("://") {
            match url::Url::parse(server) {
                Ok(u) if matches!(u.scheme(), "smtp" | "smtps") && u.host_str().is_some() => {}
                Ok(u) if !matches!(u.scheme(), "smtp" | "smtps") => p(
                    "server",
                    format!("scheme '{}' is not smtp:// or smtps://", u.scheme()),
                ),
                _ => p(
                    "server",
                    format!("'{server}' is not a valid smtp:// or smtps:// address"),
                ),
            }
        } else if server.contains(['/', ' ', '@']) {
            p("server", format!("'{server}' is not a host name"));
        }
        if s.sender.trim().is_empty() || !s.sender.contains('@') {
            p("sender", format!("'{}' is not an email address", s.sender));
        }
        if let Some(t) = s.timeout
            && !(t > 0.0 && t <= 86_400.0)
        {
            p(
                "timeout",
                format!("{t} must be more than 0 and at most 86400 seconds"),
            );
        }
        if s.password.is_some() && s.username.is_none() {
            p("username", "a password is set but no username".into());
        }
        if s.password().is_some_and(|pw| pw.contains(PLACEHOLDER)) {
            p(
                "password",
                format!("still holds the placeholder {PLACEHOLDER}: fill in the real value"),
            );
        }
    }
    errs
}

/// The outcome of one message of a bulk send: its position in the input, and what happened.
#[derive(Debug)]
pub struct Outcome {
    /// The message's index in the input (0-based).
    pub index: usize,
    /// The message.
    pub message: Message,
    /// Sent (with the receipt) or failed (classified).
    pub result: Result<Receipt, SendError>,
    /// How long the send took (from taking the message to its outcome).
    pub elapsed: std::time::Duration,
}

impl Gateway {
    /// Sends many messages with at most `concurrency` in flight, yielding each outcome as it
    /// completes (not in input order). Exactly one outcome is yielded per input message.
    ///
    /// ```no_run
    /// # async fn f(gw: smsgw_core::Gateway) {
    /// use futures::StreamExt;
    /// let msgs = vec![smsgw_core::Message::new("+4915100", "hi"), smsgw_core::Message::new("+4915101", "hi")];
    /// let outcomes: Vec<_> = gw.send_stream(futures::stream::iter(msgs), 64).collect().await;
    /// assert_eq!(outcomes.len(), 2);
    /// # }
    /// ```
    pub fn send_stream<'a, S>(
        &'a self,
        messages: S,
        concurrency: usize,
    ) -> impl futures::Stream<Item = Outcome> + 'a
    where
        S: futures::Stream<Item = Message> + 'a,
    {
        use futures::StreamExt;
        messages
            .enumerate()
            .map(move |(index, message)| async move {
                let start = Instant::now();
                let result = self.send(&message).await;
                Outcome {
                    index,
                    message,
                    result,
                    elapsed: start.elapsed(),
                }
            })
            .buffer_unordered(concurrency.max(1))
    }

    /// Sends all `messages` with at most `concurrency` in flight and returns the outcomes in input
    /// order, one per message.
    pub async fn send_all(&self, messages: Vec<Message>, concurrency: usize) -> Vec<Outcome> {
        use futures::StreamExt;
        let mut out: Vec<Outcome> = self
            .send_stream(futures::stream::iter(messages), concurrency)
            .collect()
            .await;
        out.sort_by_key(|o| o.index);
        out
    }
}
