//! Validating definitions and building [`Gateway`]s: the life of one send starts here.

use std::sync::Arc;
use std::time::Instant;

use indexmap::IndexMap;
use tracing::Instrument;

use crate::bulk::Outcome;
use crate::config::{Config, GatewayDef};
use crate::context::BuildContext;
use crate::error::{ConfigErrors, ConfigProblem, ErrorKind, SendError};
use crate::message::{DeliveryReport, Message, Receipt};
use crate::param::REGEXP;
use crate::phone::PhoneRewrite;
use crate::provider::{Provider, ProviderDescriptor};
use crate::registry::Registry;
use crate::section::LoadedSections;
use crate::validate::check_definition;

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
    /// `sections` are the configuration's top-level tables ([`Config::sections`]): each is
    /// checked by its owner, and what the owners load is what the factory reads.
    ///
    /// ```
    /// use smsgw_core::{Gateway, GatewayDef, Registry};
    /// let def = GatewayDef { id: "sms1".into(), provider: "nope".into(), ..Default::default() };
    /// let errs = Gateway::build(&def, &Default::default(), Registry::global()).unwrap_err();
    /// assert!(errs.to_string().contains("unknown provider 'nope'"));
    /// ```
    pub fn build(
        def: &GatewayDef,
        sections: &IndexMap<String, toml::Value>,
        registry: &Registry,
    ) -> Result<Gateway, ConfigErrors> {
        let (loaded, mut errors) = LoadedSections::load(sections);
        match Self::build_loaded(def, &loaded, registry) {
            Ok(g) => errors.into_result(g),
            Err(e) => {
                errors.extend(e);
                Err(errors)
            }
        }
    }

    /// Builds one definition against sections already loaded (once per configuration).
    pub fn build_loaded(
        def: &GatewayDef,
        sections: &LoadedSections,
        registry: &Registry,
    ) -> Result<Gateway, ConfigErrors> {
        let descriptor = registry.get(&def.provider).map_err(|e| {
            ConfigErrors::from(ConfigProblem::gateway(
                &def.id,
                Some("provider"),
                e.to_string(),
            ))
        })?;
        let values = check_definition(def, descriptor)?;
        let ctx = BuildContext::new(def, descriptor, &values, sections);
        let rewrite = ctx.opt(&REGEXP);
        let built = (descriptor.factory)(&ctx);
        // A factory that read an undeclared parameter gets no gateway, whatever it returned.
        let mut errors = ctx.take_misuse();
        match built {
            Ok(provider) => errors.into_result(Gateway {
                id: def.id.as_str().into(),
                descriptor,
                rewrite,
                provider,
            }),
            Err(e) => {
                errors.extend(e);
                Err(errors)
            }
        }
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
                Err(e) => tracing::warn!(kind = %e.kind(), code = e.code(), "{}: {}", e.kind().log_label(), e.message()),
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

/// Gateways built one by one (a service that defines them at run time), by id; a later one with
/// the id of an earlier one replaces it.
impl FromIterator<Gateway> for Gateways {
    fn from_iter<I: IntoIterator<Item = Gateway>>(iter: I) -> Self {
        Gateways {
            map: iter.into_iter().map(|g| (g.id().to_owned(), g)).collect(),
        }
    }
}

/// Every gateway of a configuration, built.
#[derive(Debug, Clone, Default)]
pub struct Gateways {
    map: IndexMap<String, Gateway>,
}

impl Gateways {
    /// Validates and builds every gateway of `config`, reporting all problems of all gateways (and
    /// of the sections registered crates own, each checked once) at once.
    pub fn build(config: &Config, registry: &Registry) -> Result<Gateways, ConfigErrors> {
        let (loaded, mut errors) = LoadedSections::load(&config.sections);
        let mut map = IndexMap::new();
        for (id, def) in &config.gateways {
            match Gateway::build_loaded(def, &loaded, registry) {
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
        crate::bulk::stream(messages, concurrency, async |m: &Message| {
            self.send(m).await
        })
    }

    /// Sends all `messages` with at most `concurrency` in flight and returns the outcomes in input
    /// order, one per message.
    pub async fn send_all(&self, messages: Vec<Message>, concurrency: usize) -> Vec<Outcome> {
        crate::bulk::all(messages, concurrency, async |m: &Message| {
            self.send(m).await
        })
        .await
    }
}
