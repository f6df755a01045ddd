//! The checks the core makes for every provider before its factory runs; every value is
//! parsed here, once, and handed to the factory.

use crate::config::{GatewayDef, PLACEHOLDER};
use crate::context::Values;
use crate::error::{ConfigErrors, ConfigProblem};
use crate::param::parse_value;
use crate::provider::ProviderDescriptor;
use crate::section::{SectionPlace, section_owner, unknown_section};

/// Checks a definition against its provider's declarations and parses every value; all
/// problems at once.
pub(crate) fn check_definition(
    def: &GatewayDef,
    desc: &'static ProviderDescriptor,
) -> Result<Values, ConfigErrors> {
    let mut errs = ConfigErrors::new();
    let mut values = Values::default();
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
        if let Some(default) = spec.default {
            match parse_value(spec, default) {
                Ok(v) => {
                    values.defaults.insert(spec.name, v);
                }
                Err(msg) => problem(
                    spec.name,
                    format!(
                        "the {} provider's default is invalid: {msg} (a bug in the crate '{}')",
                        desc.name,
                        desc.crate_name()
                    ),
                ),
            }
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
        // An empty value is "not set", except for text, where empty is a value.
        if value.is_empty() && (spec.kind.empty_is_absent() || !spec.allowed.is_empty()) {
            continue;
        }
        match parse_value(spec, value) {
            Ok(v) => {
                values.written.insert(spec.name, (key.clone(), v));
            }
            Err(msg) => problem(key, msg),
        }
    }
    if !desc.capabilities.headers && !def.headers.is_empty() {
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
    let mut table_problems = Vec::new();
    for (name, table) in &def.sections {
        let Some(owner) = section_owner(SectionPlace::Gateway, name) else {
            problem(name, unknown_section(name));
            continue;
        };
        let (_, problems) = owner.load(table);
        table_problems.extend(problems.into_iter().map(|p| in_gateway(&def.id, name, p)));
    }
    for p in table_problems {
        errs.push(p);
    }
    errs.into_result(values)
}

/// Places a problem a gateway table's owner found: in the gateway, under `table.key`.
fn in_gateway(gateway: &str, table: &str, p: ConfigProblem) -> ConfigProblem {
    if !p.scope.is_empty() {
        return p;
    }
    let key = match &p.key {
        Some(k) => format!("{table}.{k}"),
        None => table.to_owned(),
    };
    ConfigProblem::gateway(gateway, Some(&key), p.message)
}
