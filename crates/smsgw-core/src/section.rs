//! Configuration sections owned by a crate: a top-level table (`[smtp_servers.*]`,
//! `[routes.*]`) or a named table inside a gateway definition (`[gateways.ID.limits]`).
//!
//! The core knows no section by name. A crate registers a [`SectionDescriptor`] with
//! [`register_section!`](crate::register_section); the core then keeps the table instead of
//! rejecting it, has the owner check it once per configuration (every problem reported once),
//! shows it censored in listings, and hands what the owner loaded to factories
//! ([`BuildContext::section`](crate::BuildContext::section)).

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use indexmap::IndexMap;

use crate::error::{ConfigErrors, ConfigProblem};
use crate::secret::censor_toml;

/// Where a section's table lives in the configuration file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SectionPlace {
    /// A top-level table: `[NAME]` / `[NAME.entry]`.
    TopLevel,
    /// A table inside every gateway definition: `[gateways.ID.NAME]`.
    Gateway,
}

/// A section's value after its owner loaded it, as a factory reads it.
pub type Loaded = Arc<dyn Any + Send + Sync>;

#[derive(Clone, Copy)]
enum Loader {
    Check(fn(&toml::Value) -> Vec<ConfigProblem>),
    Typed(fn(&toml::Value) -> (Loaded, Vec<ConfigProblem>)),
}

/// A typed top-level section: the owner parses the table once per configuration into `Self`,
/// which factories read with [`BuildContext::section`](crate::BuildContext::section).
///
/// ```
/// use smsgw_core::{ConfigProblem, ConfigSection, SectionDescriptor, register_section};
///
/// #[derive(Default)]
/// struct Accounts(Vec<String>);
///
/// impl ConfigSection for Accounts {
///     const NAME: &'static str = "example_accounts";
///     fn load(value: &toml::Value) -> (Self, Vec<ConfigProblem>) {
///         let names = value.as_table().map(|t| t.keys().cloned().collect()).unwrap_or_default();
///         (Accounts(names), Vec::new())
///     }
/// }
///
/// register_section!(SectionDescriptor::typed::<Accounts>("Accounts of the example."));
/// let cfg = smsgw_core::Config::from_toml_str("[example_accounts.a]\nkey = 1\n").unwrap();
/// assert!(cfg.sections.contains_key("example_accounts"));
/// ```
pub trait ConfigSection: Any + Send + Sync + Sized {
    /// The table's name (`smtp_servers`).
    const NAME: &'static str;
    /// Reads the table: what is usable, and every problem found (each reported exactly once,
    /// naming the entry and the key, e.g. with [`ConfigProblem::entry`]).
    fn load(value: &toml::Value) -> (Self, Vec<ConfigProblem>);
    /// The table as it may be shown (listings, exports): secrets censored. The default
    /// censors by the core's rules ([`censor_toml`](crate::censor_toml)).
    fn censored(value: &toml::Value) -> toml::Value {
        censor_toml(value)
    }
}

fn load_typed<T: ConfigSection>(value: &toml::Value) -> (Loaded, Vec<ConfigProblem>) {
    let (v, problems) = T::load(value);
    (Arc::new(v), problems)
}

/// A section of the configuration file owned by a crate; registered with
/// [`register_section!`](crate::register_section).
#[derive(Clone, Copy)]
#[non_exhaustive]
pub struct SectionDescriptor {
    /// The table's name.
    pub name: &'static str,
    /// Where the table lives.
    pub place: SectionPlace,
    /// One line for people.
    pub description: &'static str,
    /// The registering module (`module_path!()`).
    pub module: &'static str,
    loader: Loader,
    censor: fn(&toml::Value) -> toml::Value,
}

impl std::fmt::Debug for SectionDescriptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SectionDescriptor")
            .field("name", &self.name)
            .field("place", &self.place)
            .field("module", &self.module)
            .finish_non_exhaustive()
    }
}

impl SectionDescriptor {
    /// A typed top-level section (see [`ConfigSection`]).
    pub const fn typed<T: ConfigSection>(description: &'static str) -> Self {
        SectionDescriptor {
            name: T::NAME,
            place: SectionPlace::TopLevel,
            description,
            module: "",
            loader: Loader::Typed(load_typed::<T>),
            censor: T::censored,
        }
    }

    /// A section checked by `check` and read raw ([`Config::sections`](crate::Config::sections),
    /// [`GatewayDef::sections`](crate::GatewayDef::sections)). For a gateway table, problems
    /// without a scope ([`ConfigProblem::in_table`]) are placed in the gateway by the core.
    pub const fn checked(
        name: &'static str,
        place: SectionPlace,
        description: &'static str,
        check: fn(&toml::Value) -> Vec<ConfigProblem>,
    ) -> Self {
        SectionDescriptor {
            name,
            place,
            description,
            module: "",
            loader: Loader::Check(check),
            censor: censor_toml,
        }
    }

    /// Replaces how the table is censored for listings (default: the core's secret rules).
    pub const fn censor_with(mut self, censor: fn(&toml::Value) -> toml::Value) -> Self {
        self.censor = censor;
        self
    }

    /// Records the registering module; called by [`register_section!`](crate::register_section).
    #[doc(hidden)]
    pub const fn registered_by(mut self, module: &'static str) -> Self {
        self.module = module;
        self
    }

    /// Checks (and loads) a table; every problem its owner finds.
    pub fn load(&self, value: &toml::Value) -> (Option<Loaded>, Vec<ConfigProblem>) {
        match self.loader {
            Loader::Check(f) => (None, f(value)),
            Loader::Typed(f) => {
                let (v, p) = f(value);
                (Some(v), p)
            }
        }
    }

    /// The table as it may be shown to a person.
    pub fn censored(&self, value: &toml::Value) -> toml::Value {
        (self.censor)(value)
    }
}

inventory::collect!(SectionDescriptor);

/// Registers a [`SectionDescriptor`]: the core keeps the table and lets its owner check it.
#[macro_export]
macro_rules! register_section {
    ($descriptor:expr) => {
        $crate::inventory::submit! { ($descriptor).registered_by(::core::module_path!()) }
    };
}

/// Every registered section, by place and name.
pub(crate) fn registered()
-> &'static HashMap<(SectionPlace, &'static str), Vec<&'static SectionDescriptor>> {
    static ALL: OnceLock<HashMap<(SectionPlace, &'static str), Vec<&'static SectionDescriptor>>> =
        OnceLock::new();
    ALL.get_or_init(|| {
        let mut m: HashMap<_, Vec<_>> = HashMap::new();
        for s in inventory::iter::<SectionDescriptor> {
            m.entry((s.place, s.name)).or_default().push(s);
        }
        m
    })
}

/// The owner of the table `name` at `place`, if one is registered.
pub fn section_owner(place: SectionPlace, name: &str) -> Option<&'static SectionDescriptor> {
    registered()
        .get(&(place, name))
        .and_then(|v| v.first().copied())
}

/// Sections registered more than once: (place, name, registering modules).
pub fn duplicate_sections() -> Vec<(SectionPlace, &'static str, Vec<&'static str>)> {
    let mut v: Vec<_> = registered()
        .iter()
        .filter(|(_, d)| d.len() > 1)
        .map(|((p, n), d)| (*p, *n, d.iter().map(|s| s.module).collect()))
        .collect();
    v.sort_by_key(|(_, n, _)| *n);
    v
}

/// The top-level sections of one configuration, loaded by their owners.
#[derive(Clone, Default)]
pub struct LoadedSections {
    typed: HashMap<&'static str, Loaded>,
}

impl std::fmt::Debug for LoadedSections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.typed.keys()).finish()
    }
}

impl LoadedSections {
    /// Has every top-level table checked (and loaded) by its owner, once; a table without an
    /// owner is a problem (only possible when built by hand: the file parser rejects it).
    pub fn load(raw: &IndexMap<String, toml::Value>) -> (LoadedSections, ConfigErrors) {
        let mut errs = ConfigErrors::new();
        let mut typed = HashMap::new();
        for (name, value) in raw {
            let Some(owner) = section_owner(SectionPlace::TopLevel, name) else {
                errs.push(ConfigProblem::file(unknown_section(name)));
                continue;
            };
            let (loaded, problems) = owner.load(value);
            for mut p in problems {
                if p.scope.is_empty() {
                    p.scope = format!("section '{name}'");
                }
                errs.push(p);
            }
            if let Some(l) = loaded {
                typed.insert(owner.name, l);
            }
        }
        (LoadedSections { typed }, errs)
    }

    /// What the owner of section `T` loaded, if the configuration has that table.
    pub fn get<T: ConfigSection>(&self) -> Option<&T> {
        self.typed.get(T::NAME).and_then(|l| l.downcast_ref::<T>())
    }
}

/// The message for a table no crate owns.
pub(crate) fn unknown_section(name: &str) -> String {
    format!("unknown section '{name}': no provider or module of this build reads it")
}
