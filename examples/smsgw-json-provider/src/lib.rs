//! `jsonsms`: an example third-party provider for a typical REST SMS API — `POST` a JSON object
//! `{"to": …, "text": …}` with an `X-Api-Key` header, get `{"id": …}` back. Timeout, bounded
//! reply, redirect policy, status classification (429/503 retry-safe) and censoring of the key
//! come from [`smsgw_reqwest`].
//!
//! ```
//! use smsgw_json_provider as _; // link the crate in, or the linker drops its registration
//! assert!(smsgw_core::Registry::global().get("jsonsms").is_ok());
//! ```
#![deny(missing_docs)]

use std::sync::Arc;

use smsgw_core::{ParamKind::*, *};
use smsgw_reqwest::HttpGateway;

const PARAMS: &[ParamSpec] = &[
    ParamSpec::new("URL", "The endpoint.").required().kind(Url),
    ParamSpec::new("API_KEY", "Your key.").required().secret(),
    ParamSpec::new("TIMEOUT", "Seconds a send may take.")
        .kind(Seconds)
        .default_value("5"),
];

register_provider!(ProviderDescriptor {
    name: "jsonsms",
    aliases: &[],
    description: "Example: a JSON REST SMS API.",
    params: PARAMS,
    free_options: false,
    headers: false,
    capabilities: Capabilities::none().long_messages(),
    factory: build,
});

/// A configured `jsonsms` gateway: its [`HttpGateway`] carries the URL, the key and the timeout.
#[derive(Debug)]
pub struct JsonSms(HttpGateway);

fn build(ctx: &BuildContext<'_>) -> Result<Arc<dyn Provider>, ConfigErrors> {
    // The core has checked every option against PARAMS and supplies the defaults.
    let url = url::Url::parse(ctx.get("URL").unwrap_or_default())
        .map_err(|e| ctx.problem("URL", e.to_string()))?;
    let timeout = ctx.seconds("TIMEOUT").unwrap_or_default();
    let http = HttpGateway::new(ctx.gateway, &url, timeout);
    let key = ctx.get("API_KEY").unwrap_or_default();
    Ok(Arc::new(JsonSms(http.secret_header("x-api-key", key))))
}

#[async_trait]
impl Provider for JsonSms {
    async fn send(&self, m: &Message) -> Result<Receipt, SendError> {
        // Non-2xx replies, timeouts, oversized replies and redirects elsewhere are classified there.
        let body = serde_json::json!({ "to": m.phone, "text": m.text });
        let reply = self.0.send(self.0.post_json(&body)?).await?;
        let id = self.0.json_id(&reply, "/id")?;
        Ok(Receipt::new(self.0.gateway(), "jsonsms").with_id(id))
    }
}
