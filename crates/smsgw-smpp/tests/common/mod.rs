//! Helpers shared by the integration tests: a gateway pointed at a test SMSC.
#![allow(dead_code)]

use std::time::Duration;

use smsgw_core::{Config, Gateway, Gateways, Registry};
use smsgw_smpp as _;
use smsgw_testkit::smsc::Smsc;

/// The password every test gateway binds with.
pub const PASSWORD: &str = "secret12";

/// Builds gateway `smsc` against `smsc` with the base options plus `extra`.
pub fn gateway(smsc: &Smsc, extra: &[(&str, &str)]) -> Gateway {
    try_gateway(smsc, extra).unwrap_or_else(|e| panic!("{e}"))
}

/// Like [`gateway`], returning the configuration errors.
pub fn try_gateway(
    smsc: &Smsc,
    extra: &[(&str, &str)],
) -> Result<Gateway, smsgw_core::ConfigErrors> {
    let mut opts: Vec<(String, String)> = vec![
        ("SMSC_HOST".into(), "127.0.0.1".into()),
        ("SMSC_PORT".into(), smsc.addr().port().to_string()),
        ("SYSTEM_ID".into(), "pi-peer".into()),
        ("PASSWORD".into(), PASSWORD.into()),
        ("S_ADDR".into(), "privacyIDEA".into()),
        ("S_ADDR_TON".into(), "5".into()),
        ("S_ADDR_NPI".into(), "0".into()),
        ("D_ADDR_TON".into(), "1".into()),
        ("D_ADDR_NPI".into(), "1".into()),
        ("TIMEOUT".into(), "2".into()),
    ];
    for (k, v) in extra {
        opts.retain(|(ok, _)| ok != k);
        opts.push(((*k).into(), (*v).into()));
    }
    build("smpp", &opts)
}

/// Builds gateway `smsc` of `provider` with exactly these options.
pub fn build(
    provider: &str,
    opts: &[(String, String)],
) -> Result<Gateway, smsgw_core::ConfigErrors> {
    let mut toml = format!("[gateways.smsc]\nprovider = \"{provider}\"\n[gateways.smsc.options]\n");
    for (k, v) in opts {
        toml.push_str(&format!("{k} = {}\n", toml_str(v)));
    }
    let cfg = Config::from_toml_str(&toml)?;
    let gws = Gateways::build(&cfg, Registry::global())?;
    Ok(gws.get("smsc").expect("built").clone())
}

fn toml_str(v: &str) -> String {
    serde_json::to_string(v).expect("string")
}

/// Waits up to a second for `cond`.
pub async fn eventually(smsc: &Smsc, cond: impl Fn(&Smsc) -> bool) -> bool {
    smsc.wait_until(Duration::from_secs(2), cond).await
}
