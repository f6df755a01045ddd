//! What the command prints: provider and gateway listings, receipts and failures.

use serde_json::json;
use smsgw::{Config, ProviderDescriptor, Receipt, Registry, SendError};

/// `smsgw providers`.
pub fn providers(registry: &Registry, as_json: bool) -> u8 {
    if as_json {
        let list: Vec<_> = registry
            .providers()
            .iter()
            .map(|d| provider_json(d))
            .collect();
        println!("{}", serde_json::to_string_pretty(&list).expect("json"));
        return 0;
    }
    for d in registry.providers() {
        println!("{} — {}", d.name, d.description);
        for a in d.aliases {
            println!("  alias: {a}");
        }
        println!(
            "  free options: {}; headers: {}",
            if d.free_options {
                "sent as request parameters"
            } else {
                "none"
            },
            if d.headers { "yes" } else { "no" }
        );
        for p in d.all_params() {
            let mut notes = vec![p.kind.describe()];
            if p.required {
                notes.push("required".into());
            }
            if let Some(def) = p.default {
                notes.push(format!("default {def}"));
            }
            if !p.allowed.is_empty() {
                notes.push(format!("one of {}", p.allowed.join("/")));
            }
            if p.secret {
                notes.push("secret".into());
            }
            println!("  {:<18} {} [{}]", p.name, p.description, notes.join(", "));
        }
        println!();
    }
    0
}

pub fn provider_json(d: &ProviderDescriptor) -> serde_json::Value {
    json!({
        "name": d.name,
        "aliases": d.aliases,
        "description": d.description,
        "free_options": d.free_options,
        "headers": d.headers,
        "capabilities": {
            "long_messages": d.capabilities.long_messages,
            "delivery_reports": d.capabilities.delivery_reports,
            "headers": d.capabilities.headers,
            "verbatim_phone": d.capabilities.verbatim_phone,
        },
        "parameters": d.all_params().iter().map(|p| json!({
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

/// `smsgw gateways`: the configuration, secrets censored.
pub fn gateways(cfg: &Config, as_json: bool) -> u8 {
    if as_json {
        let censored: toml::Value =
            toml::from_str(&cfg.to_toml_censored()).expect("own output parses");
        println!("{}", serde_json::to_string_pretty(&censored).expect("json"));
    } else {
        print!("{}", cfg.to_toml_censored());
    }
    0
}

/// Prints the outcome of one send and returns the exit status.
pub fn single_result(result: &Result<Receipt, SendError>, as_json: bool) -> u8 {
    match result {
        Ok(r) => {
            if as_json {
                println!(
                    "{}",
                    json!({"status": "sent", "gateway": r.gateway, "provider": r.provider, "message_ids": r.message_ids, "parts": r.parts})
                );
            } else {
                let ids = if r.message_ids.is_empty() {
                    "no id given".to_owned()
                } else {
                    format!("id {}", r.message_ids.join(", "))
                };
                println!(
                    "sent via {} ({}): {}, {} part{}",
                    r.gateway,
                    r.provider,
                    ids,
                    r.parts,
                    if r.parts == 1 { "" } else { "s" }
                );
            }
            0
        }
        Err(e) => {
            if as_json {
                println!("{}", error_json(e));
            }
            eprintln!("error: {e}");
            super::EXIT_FAILED
        }
    }
}

pub fn error_json(e: &SendError) -> serde_json::Value {
    json!({
        "status": "failed",
        "gateway": e.gateway(),
        "kind": e.kind().as_str(),
        "retry_safe": e.is_retry_safe(),
        "may_have_been_sent": e.may_have_been_sent(),
        "code": e.code(),
        "error": e.message(),
    })
}
