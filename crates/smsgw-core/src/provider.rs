//! The provider plug-in interface: the [`Provider`] trait, its [`ProviderDescriptor`] and
//! [`Capabilities`].

use std::sync::Arc;

use async_trait::async_trait;

use crate::context::BuildContext;
use crate::error::{ConfigErrors, SendError};
use crate::message::{DeliveryReport, Message, Receipt};
use crate::param::{ParamSpec, REGEXP};

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

/// What a provider can do; decides which conformance checks apply and what callers may expect.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// Texts longer than one SMS are sent whole (split into parts by the provider or the gateway).
    pub long_messages: bool,
    /// Delivery receipts are reported through [`Provider::delivery_reports`].
    pub delivery_reports: bool,
    /// The gateway may define `headers`, and they are sent (without it, headers in a
    /// definition are a configuration error).
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
///
/// Built with [`ProviderDescriptor::new`] and the `const fn` builder methods, so that a field
/// added later never breaks a provider crate.
#[derive(Debug)]
#[non_exhaustive]
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
    /// What it can do (including whether the gateway may define headers).
    pub capabilities: Capabilities,
    /// Builds a provider from a validated definition.
    pub factory: Factory,
    /// The module that registered it (`module_path!()` of the registration), to name both
    /// crates when a name is registered twice.
    pub module: &'static str,
}

impl ProviderDescriptor {
    /// A provider `name` built by `factory`, with no aliases, no parameters, no free options and
    /// no capabilities; adjust with the builder methods.
    pub const fn new(name: &'static str, description: &'static str, factory: Factory) -> Self {
        ProviderDescriptor {
            name,
            aliases: &[],
            description,
            params: &[],
            free_options: false,
            capabilities: Capabilities::none(),
            factory,
            module: "",
        }
    }
    /// Sets other names that select it.
    pub const fn aliases(mut self, aliases: &'static [&'static str]) -> Self {
        self.aliases = aliases;
        self
    }
    /// Sets the parameters (`HANDLE.spec()` of each declared [`Param`](crate::Param)).
    pub const fn params(mut self, params: &'static [ParamSpec]) -> Self {
        self.params = params;
        self
    }
    /// Accepts options other than its parameters (the provider sends them along).
    pub const fn free_options(mut self) -> Self {
        self.free_options = true;
        self
    }
    /// Sets the capabilities.
    pub const fn capabilities(mut self, capabilities: Capabilities) -> Self {
        self.capabilities = capabilities;
        self
    }
    /// Records the registering module; called by [`register_provider!`](crate::register_provider).
    #[doc(hidden)]
    pub const fn registered_by(mut self, module: &'static str) -> Self {
        self.module = module;
        self
    }

    /// The parameter spec for `key` (by name or alias), including the core's `REGEXP`.
    pub fn param(&self, key: &str) -> Option<&'static ParamSpec> {
        self.params
            .iter()
            .find(|p| p.matches(key))
            .or_else(|| REGEXP_SPEC.matches(key).then_some(&REGEXP_SPEC))
    }

    /// All parameters: the provider's, then `REGEXP` unless it lists it itself.
    pub fn all_params(&self) -> Vec<&'static ParamSpec> {
        let mut v: Vec<&'static ParamSpec> = self.params.iter().collect();
        if !self.params.iter().any(|p| p.name == REGEXP_SPEC.name) {
            v.push(&REGEXP_SPEC);
        }
        v
    }

    /// The crate that registered it: the first segment of [`module`](Self::module).
    pub fn crate_name(&self) -> &'static str {
        self.module.split("::").next().unwrap_or(self.module)
    }

    /// The provider's schema as JSON: what `smsgw providers --json` prints and what the
    /// service's `GET /v1/providers` answers (one shape, made here from the declarations).
    ///
    /// ```
    /// use smsgw_core::Registry;
    /// # fn f(reg: &Registry) {
    /// for d in reg.providers() {
    ///     let schema = d.to_json();
    ///     assert_eq!(schema["name"], d.name);
    /// }
    /// # }
    /// ```
    pub fn to_json(&self) -> serde_json::Value {
        let c = &self.capabilities;
        serde_json::json!({
            "name": self.name,
            "aliases": self.aliases,
            "description": self.description,
            "free_options": self.free_options,
            "headers": c.headers,
            "capabilities": {
                "long_messages": c.long_messages,
                "delivery_reports": c.delivery_reports,
                "headers": c.headers,
                "verbatim_phone": c.verbatim_phone,
            },
            "parameters": self.all_params().iter().map(|p| serde_json::json!({
                "name": p.name,
                "aliases": p.aliases,
                "required": p.required,
                "description": p.description,
                "kind": p.kind.describe(),
                "allowed": p.allowed,
                "default": p.default,
                "secret": p.secret,
            })).collect::<Vec<_>>(),
        })
    }
}

static REGEXP_SPEC: ParamSpec = REGEXP.spec();

inventory::collect!(ProviderDescriptor);

/// Registers a [`ProviderDescriptor`] with the global registry, recording the registering
/// module so that a name registered twice can be traced to both crates.
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
/// const URL: Param<url::Url, Given> = Param::url("URL", "Where to send.").required();
///
/// fn build(ctx: &BuildContext<'_>) -> Result<Arc<dyn Provider>, ConfigErrors> {
///     let _url: url::Url = ctx.get(&URL);
///     Ok(Arc::new(Mine))
/// }
///
/// register_provider!(
///     ProviderDescriptor::new("mine", "An example.", build)
///         .params(&[URL.spec()])
///         .capabilities(Capabilities::none().long_messages())
/// );
///
/// assert_eq!(Registry::global().get("mine").unwrap().name, "mine");
/// ```
#[macro_export]
macro_rules! register_provider {
    ($descriptor:expr) => {
        $crate::inventory::submit! { ($descriptor).registered_by(::core::module_path!()) }
    };
}
