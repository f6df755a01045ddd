//! Helpers shared by the http provider's tests.
#![allow(dead_code)]

use smsgw_core::{ConfigErrors, Gateway, GatewayDef, Message, Receipt, Registry, SendError};

/// Builds a gateway of provider `http` from option and header pairs.
pub fn gateway(
    options: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> Result<Gateway, ConfigErrors> {
    gateway_of("http", options, headers)
}

/// Builds a gateway of `provider` from option and header pairs.
pub fn gateway_of(
    provider: &str,
    options: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> Result<Gateway, ConfigErrors> {
    // Name the crate so that its registration is linked in.
    assert_eq!(smsgw_http::NAME, "http");
    let def = GatewayDef {
        id: "test-gw".into(),
        provider: provider.into(),
        options: options
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    };
    Gateway::build(&def, &Default::default(), Registry::global())
}

/// Sends one message through a gateway built from `options`.
pub async fn send(options: &[(&str, &str)], phone: &str, text: &str) -> Result<Receipt, SendError> {
    gateway(options, &[])
        .expect("valid gateway")
        .send(&Message::new(phone, text))
        .await
}
