//! The provider registry: every [`ProviderDescriptor`] submitted through `inventory`, looked up
//! by name or alias.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use crate::provider::ProviderDescriptor;

/// The providers this project ships, by name: (name, umbrella feature, privacyIDEA module path).
/// Used to say "compiled out" instead of "unknown" for a known provider that is not linked in.
pub const BUILTIN_PROVIDERS: &[(&str, &str, &str)] = &[
    (
        "http",
        "http",
        "privacyidea.lib.smsprovider.HttpSMSProvider.HttpSMSProvider",
    ),
    (
        "sipgate",
        "sipgate",
        "privacyidea.lib.smsprovider.SipgateSMSProvider.SipgateSMSProvider",
    ),
    (
        "smtp",
        "smtp",
        "privacyidea.lib.smsprovider.SmtpSMSProvider.SmtpSMSProvider",
    ),
    (
        "smpp",
        "smpp",
        "privacyidea.lib.smsprovider.SmppSMSProvider.SmppSMSProvider",
    ),
];

/// Why a provider name did not resolve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LookupError {
    /// No provider has this name or alias.
    #[error("unknown provider '{name}'; known providers: {}", known.join(", "))]
    Unknown {
        /// The name asked for.
        name: String,
        /// The registered names, sorted.
        known: Vec<String>,
    },
    /// The provider exists but this build does not include it.
    #[error(
        "provider '{name}' is not compiled into this build: enable the feature \"{feature}\" of the smsgw crate (compiled in: {})",
        known.join(", ")
    )]
    NotCompiledIn {
        /// The provider's name.
        name: String,
        /// The umbrella crate feature that adds it.
        feature: String,
        /// The registered names, sorted.
        known: Vec<String>,
    },
    /// Two registrations claim the name.
    #[error(
        "provider name '{name}' is registered more than once ({count} registrations, by {}); remove one of the crates",
        crates.join(" and ")
    )]
    Duplicate {
        /// The contested name or alias.
        name: String,
        /// How many registrations claim it.
        count: usize,
        /// The registering modules (`module_path!()` of each registration).
        crates: Vec<String>,
    },
}

/// All registered providers, sorted by name.
pub struct Registry {
    by_key: BTreeMap<&'static str, Vec<&'static ProviderDescriptor>>,
    providers: Vec<&'static ProviderDescriptor>,
}

impl Registry {
    /// Builds a registry from descriptors (the global one uses every `inventory` submission).
    pub fn from_descriptors(descs: impl IntoIterator<Item = &'static ProviderDescriptor>) -> Self {
        let mut by_key: BTreeMap<&'static str, Vec<&'static ProviderDescriptor>> = BTreeMap::new();
        let mut providers: Vec<&'static ProviderDescriptor> = descs.into_iter().collect();
        providers.sort_by_key(|d| d.name);
        for d in &providers {
            by_key.entry(d.name).or_default().push(d);
            for a in d.aliases {
                if *a != d.name {
                    by_key.entry(a).or_default().push(d);
                }
            }
        }
        Registry { by_key, providers }
    }

    /// The process-wide registry of every provider linked into the binary.
    ///
    /// Link providers in by naming the umbrella crate (`use smsgw as _;`): a provider crate that
    /// no code names is dropped by the linker together with its registration.
    pub fn global() -> &'static Registry {
        static GLOBAL: OnceLock<Registry> = OnceLock::new();
        GLOBAL.get_or_init(|| Registry::from_descriptors(inventory::iter::<ProviderDescriptor>))
    }

    /// Finds a provider by name or alias.
    pub fn get(&self, name: &str) -> Result<&'static ProviderDescriptor, LookupError> {
        match self.by_key.get(name).map(Vec::as_slice) {
            Some([one]) => Ok(one),
            Some(many) if many.len() > 1 => Err(LookupError::Duplicate {
                name: name.to_owned(),
                count: many.len(),
                crates: many.iter().map(|d| d.module.to_owned()).collect(),
            }),
            _ => {
                let mut known = self.names();
                if known.is_empty() {
                    known.push("none".into());
                }
                match BUILTIN_PROVIDERS
                    .iter()
                    .find(|(n, _, alias)| *n == name || *alias == name)
                {
                    Some((n, feature, _)) => Err(LookupError::NotCompiledIn {
                        name: (*n).to_owned(),
                        feature: (*feature).to_owned(),
                        known,
                    }),
                    None => Err(LookupError::Unknown {
                        name: name.to_owned(),
                        known,
                    }),
                }
            }
        }
    }

    /// Every registered provider, sorted by name (duplicates included).
    pub fn providers(&self) -> &[&'static ProviderDescriptor] {
        &self.providers
    }

    /// Every name or alias claimed by more than one registration, sorted by name, with the
    /// registering modules: `smsgw providers` and `smsgw check` refuse to go on with these.
    ///
    /// ```
    /// assert!(smsgw_core::Registry::global().duplicates().is_empty());
    /// ```
    pub fn duplicates(&self) -> Vec<Duplicate> {
        self.by_key
            .iter()
            .filter(|(_, v)| v.len() > 1)
            .map(|(name, v)| Duplicate {
                name,
                modules: v.iter().map(|d| d.module).collect(),
            })
            .collect()
    }

    /// The registered names, sorted and deduplicated.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.providers.iter().map(|d| d.name.to_owned()).collect();
        v.dedup();
        v
    }
}

/// A provider name or alias registered more than once.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Duplicate {
    /// The contested name or alias.
    pub name: &'static str,
    /// The module of each registration (`module_path!()`; its first segment is the crate).
    pub modules: Vec<&'static str>,
}

impl std::fmt::Display for Duplicate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "provider name '{}' is registered {} times, by {}; link only one of these crates",
            self.name,
            self.modules.len(),
            self.modules.join(" and ")
        )
    }
}
