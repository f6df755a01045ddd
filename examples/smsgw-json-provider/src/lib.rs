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

use std::{sync::Arc, time::Duration};

use smsgw_core::secrecy::{ExposeSecret, SecretString};
use smsgw_core::*;
use smsgw_reqwest::HttpGateway;

const URL: Param<url::Url, Given> = Param::url("URL", "The endpoint.").required();
const API_KEY: Param<SecretString, Given> = Param::secret("API_KEY", "Your key.").required();
const TIMEOUT: Param<Duration, Given> = Param::seconds("TIMEOUT", "Seconds.").default_value("5");

register_provider!(
    ProviderDescriptor::new("jsonsms", "Example: a JSON REST SMS API.", build)
        .params(&[URL.spec(), API_KEY.spec(), TIMEOUT.spec()])
        .capabilities(Capabilities::none().long_messages())
);

/// A configured `jsonsms` gateway: its [`HttpGateway`] carries the URL, the key and the timeout.
#[derive(Debug)]
pub struct JsonSms(HttpGateway);

fn build(ctx: &BuildContext<'_>) -> Result<Arc<dyn Provider>, ConfigErrors> {
    // The core has checked and parsed every option against the declarations.
    let http = HttpGateway::new(ctx.gateway(), &ctx.get(&URL), ctx.get(&TIMEOUT));
    let key = ctx.get(&API_KEY);
    Ok(Arc::new(JsonSms(
        http.secret_header("x-api-key", key.expose_secret()),
    )))
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
