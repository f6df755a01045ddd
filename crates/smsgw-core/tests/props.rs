//! Properties of the parsers that take outside input (issue #12): the configuration loader,
//! `REGEXP` rules and templates never panic, whatever they are given.

use proptest::prelude::*;
use smsgw_core::{Config, Gateways, PhoneRewrite, Registry, censor_url, render};

proptest! {
    #[test]
    fn the_config_loader_never_panics(text in "\\PC{0,400}") {
        if let Ok(cfg) = Config::from_toml_str(&text) {
            let _ = Gateways::build(&cfg, Registry::global());
            let _ = cfg.to_toml_censored();
        }
    }

    #[test]
    fn toml_shaped_configs_never_panic(
        id in "[a-z0-9_-]{1,8}",
        key in "[A-Za-z_]{1,12}",
        value in "\\PC{0,40}",
        provider in "(http|smtp|nope|)",
    ) {
        let text = format!(
            "[gateways.{id}]\nprovider = \"{provider}\"\n[gateways.{id}.options]\n{key} = {value:?}\n"
        );
        if let Ok(cfg) = Config::from_toml_str(&text) {
            let _ = Gateways::build(&cfg, Registry::global());
        }
    }

    #[test]
    fn regexp_parsing_and_applying_never_panic(rule in "\\PC{0,40}", phone in "\\PC{0,30}") {
        if let Ok(r) = PhoneRewrite::parse(&rule) {
            let _ = r.apply(&phone);
        }
        let shaped = format!("/{rule}/{phone}/");
        if let Ok(r) = PhoneRewrite::parse(&shaped) {
            let _ = r.apply(&phone);
        }
    }

    #[test]
    fn rendering_replaces_tags_and_keeps_the_rest(
        template in "(\\PC|\\{phone\\}|\\{otp\\}|\\{|\\}){0,60}",
        phone in "\\PC{0,20}",
        otp in "\\PC{0,20}",
    ) {
        let out = render(&template, &phone, &otp);
        if !template.contains("{phone}") && !template.contains("{otp}") {
            prop_assert_eq!(out.as_ref(), template.as_str());
        }
    }

    #[test]
    fn censoring_a_url_hides_its_password(
        user in "[a-z]{1,8}",
        pw in "[A-Za-z0-9]{6,12}",
        port in 0u32..200_000,
        tail in "(/[a-z?=&]{0,12})?",
    ) {
        let url = format!("https://{user}:{pw}@h.example.org:{port}{tail}");
        let shown = censor_url(&url);
        prop_assert!(!shown.contains(&format!(":{pw}@")), "{}", shown);
    }
}
