//! [`BuildContext`]: what a factory reads a validated gateway definition from.

use std::cell::RefCell;
use std::collections::HashMap;

use indexmap::IndexMap;

use crate::config::GatewayDef;
use crate::error::{ConfigErrors, ConfigProblem};
use crate::param::parsed::Parsed;
use crate::param::{Given, Param, ParamSpec, ParamValue};
use crate::provider::ProviderDescriptor;
use crate::section::{ConfigSection, LoadedSections};

/// The values of one definition, parsed once by the core while it validated them.
#[derive(Default)]
pub(crate) struct Values {
    /// Values set in the definition, by parameter name: the key as written, and the value.
    pub written: HashMap<&'static str, (String, Parsed)>,
    /// Parsed defaults, by parameter name.
    pub defaults: HashMap<&'static str, Parsed>,
}

/// What a factory reads a gateway definition from. Parameters are read through the typed
/// handles the provider declared ([`Param`]): the core has checked and parsed every value, so
/// [`get`](Self::get) and [`opt`](Self::opt) return the parsed value (or the declared default).
///
/// Asking for a parameter the descriptor does not declare is a bug in the provider: the core
/// turns it into a configuration problem of the gateway (the build fails, naming the parameter),
/// never into a silent default.
pub struct BuildContext<'a> {
    def: &'a GatewayDef,
    descriptor: &'static ProviderDescriptor,
    values: &'a Values,
    sections: &'a LoadedSections,
    misuse: RefCell<ConfigErrors>,
}

impl<'a> BuildContext<'a> {
    pub(crate) fn new(
        def: &'a GatewayDef,
        descriptor: &'static ProviderDescriptor,
        values: &'a Values,
        sections: &'a LoadedSections,
    ) -> Self {
        BuildContext {
            def,
            descriptor,
            values,
            sections,
            misuse: RefCell::new(ConfigErrors::new()),
        }
    }

    /// Problems the factory caused by asking for what its descriptor does not declare.
    pub(crate) fn take_misuse(&self) -> ConfigErrors {
        std::mem::take(&mut *self.misuse.borrow_mut())
    }

    /// The gateway identifier.
    pub fn gateway(&self) -> &'a str {
        &self.def.id
    }

    /// The provider descriptor.
    pub fn descriptor(&self) -> &'static ProviderDescriptor {
        self.descriptor
    }

    /// The value of a parameter that always has one (required, or with a default).
    pub fn get<T: ParamValue>(&self, param: &Param<T, Given>) -> T {
        let spec = param.spec();
        let found = self.check_declared(&spec).and_then(|()| {
            self.values
                .written
                .get(spec.name)
                .map(|(_, v)| v)
                .or_else(|| self.values.defaults.get(spec.name))
        });
        match found.map(T::from_parsed) {
            Some(Some(v)) => v,
            Some(None) => {
                self.misuse_problem(&spec, "its value does not fit the type the provider reads");
                T::placeholder()
            }
            // Declared, but neither set nor defaulted: only when the provider's default is
            // invalid, which validation already reported.
            None => T::placeholder(),
        }
    }

    /// The value of a parameter as set in the definition, without any default; `None` when the
    /// option is absent (or, except for text, empty).
    pub fn opt<T: ParamValue, P>(&self, param: &Param<T, P>) -> Option<T> {
        let spec = param.spec();
        self.check_declared(&spec)?;
        let (_, v) = self.values.written.get(spec.name)?;
        let out = T::from_parsed(v);
        if out.is_none() {
            self.misuse_problem(&spec, "its value does not fit the type the provider reads");
        }
        out
    }

    /// The option name as the definition spells it (an alias, for example), or the
    /// parameter's name when it is not set: for problems that should name what the user wrote.
    pub fn key<T, P>(&self, param: &Param<T, P>) -> &str {
        self.values
            .written
            .get(param.name())
            .map_or(param.name(), |(k, _)| k.as_str())
    }

    /// The options that are not parameters of the provider (its free options), in order.
    pub fn free_options(&self) -> impl Iterator<Item = (&'a str, &'a str)> + '_ {
        self.def
            .options
            .iter()
            .filter(|(k, _)| self.descriptor.param(k).is_none())
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The headers as written, in order (only for providers with the headers capability).
    pub fn headers(&self) -> &'a IndexMap<String, String> {
        &self.def.headers
    }

    /// What the owner of top-level section `T` loaded from this configuration (`None` when the
    /// configuration has no such table).
    pub fn section<T: ConfigSection>(&self) -> Option<&'a T> {
        self.sections.get::<T>()
    }

    /// The raw table `[gateways.ID.name]` of this gateway, for its registered owner.
    pub fn gateway_table(&self, name: &str) -> Option<&'a toml::Value> {
        self.def.sections.get(name)
    }

    /// A problem about option `key` of this gateway.
    pub fn problem(&self, key: &str, message: impl Into<String>) -> ConfigProblem {
        ConfigProblem::gateway(&self.def.id, Some(key), message)
    }

    fn check_declared(&self, spec: &ParamSpec) -> Option<()> {
        if self.descriptor.all_params().iter().any(|p| **p == *spec) {
            return Some(());
        }
        self.misuse_problem(
            spec,
            &format!(
                "the {} provider reads a parameter its descriptor does not declare",
                self.descriptor.name
            ),
        );
        None
    }

    fn misuse_problem(&self, spec: &ParamSpec, what: &str) {
        tracing::error!(gateway = %self.def.id, parameter = spec.name, "provider bug: {what}");
        self.misuse.borrow_mut().push(self.problem(
            spec.name,
            format!(
                "{what} (a bug in the provider crate '{}'; report it to its authors)",
                self.descriptor.crate_name()
            ),
        ));
    }
}

impl std::fmt::Debug for BuildContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The definition's Debug censors secrets.
        f.debug_struct("BuildContext")
            .field("definition", self.def)
            .field("provider", &self.descriptor.name)
            .finish_non_exhaustive()
    }
}
