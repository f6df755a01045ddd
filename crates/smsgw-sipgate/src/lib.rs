//! smsgw provider `sipgate`: SMS through sipgate's XML-RPC interface (`samurai.SessionInitiate`),
//! compatible with privacyIDEA's `SipgateSMSProvider` — but with the message safely escaped — and,
//! beyond privacyIDEA, through sipgate's REST API (`API = "rest"`).
//!
//! The XML-RPC call is encoded with the `xmlrpc` crate and sent with reqwest (one client per
//! gateway, connections kept alive); its reply is parsed with the `xmlrpc` crate. Any text — `<`,
//! `&`, `]]>`, quotes, umlauts, emoji, carriage returns — arrives as sent; characters that XML 1.0
//! cannot carry are refused before anything is sent.
//!
//! ```
//! use smsgw_sipgate as _;
//! use smsgw_core::{Config, Gateways, Registry};
//!
//! let cfg = Config::from_toml_str(r#"
//!     [gateways.sipgate]
//!     provider = "sipgate"
//!     options = { USERNAME = "sipuser", PASSWORD = "sippass" }
//! "#).unwrap();
//! let gateways = Gateways::build(&cfg, Registry::global()).unwrap();
//! assert_eq!(gateways.get("sipgate").unwrap().descriptor().name, smsgw_sipgate::NAME);
//! ```
#![deny(missing_docs)]

mod send;
mod xml;

pub use xml::{MAX_REPLY_BYTES, MAX_XML_DEPTH, ReplyError, read_reply, session_initiate_xml};

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use smsgw_core::secrecy::{ExposeSecret, SecretString};
use smsgw_core::{
    BuildContext, CENSORED, Capabilities, ConfigErrors, ParamKind, ParamSpec, Provider,
    ProviderDescriptor, censor_url,
};
use url::Url;

/// The provider name, `sipgate`.
pub const NAME: &str = "sipgate";

/// privacyIDEA's module path for this provider, accepted as an alias.
pub const PRIVACYIDEA_MODULE: &str =
    "privacyidea.lib.smsprovider.SipgateSMSProvider.SipgateSMSProvider";

/// The XML-RPC endpoint named in the spec (default `URL` with `API = "xmlrpc"`).
pub const XMLRPC_URL: &str = "https://samurai.sipgate.net/RPC2";

/// The REST API base (default `URL` with `API = "rest"`).
pub const REST_URL: &str = "https://api.sipgate.com/v2";

/// The parameters.
pub const PARAMS: &[ParamSpec] = &[
    ParamSpec::new("USERNAME", "The sipgate user name (REST: the token id).").required(),
    ParamSpec::new("PASSWORD", "The sipgate password (REST: the personal access token).")
        .required()
        .secret(),
    ParamSpec::new("PROXY", "A proxy URL for all requests."),
    ParamSpec::new(
        "URL",
        "The XML-RPC endpoint; with API = rest the REST base URL (default https://api.sipgate.com/v2).",
    )
    .kind(ParamKind::Url)
    .default_value(XMLRPC_URL),
    ParamSpec::new("TIMEOUT", "Seconds the whole exchange may take.")
        .kind(ParamKind::Seconds)
        .default_value("60"),
    ParamSpec::new("API", "xmlrpc (samurai.SessionInitiate, as privacyIDEA) or rest (POST /sessions/sms).")
        .allowed(&["xmlrpc", "rest"])
        .default_value("xmlrpc"),
    ParamSpec::new("SMS_ID", "REST only: the id of the SMS extension to send from.")
        .default_value("s0"),
];

smsgw_core::register_provider!(ProviderDescriptor {
    name: NAME,
    aliases: &[PRIVACYIDEA_MODULE],
    description: "sipgate: XML-RPC samurai.SessionInitiate (privacyIDEA's SipgateSMSProvider) or the REST API.",
    params: PARAMS,
    free_options: false,
    headers: false,
    capabilities: Capabilities::none().long_messages(),
    factory: build,
});

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    XmlRpc,
    Rest,
}

/// The `sipgate` provider for one gateway.
pub struct SipgateProvider {
    gateway: String,
    api: Api,
    url: Url,
    username: String,
    password: SecretString,
    proxy: Option<SecretString>,
    timeout: Duration,
    sms_id: String,
    client: OnceLock<smsgw_reqwest::HttpGateway>,
}

impl std::fmt::Debug for SipgateProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SipgateProvider")
            .field("gateway", &self.gateway)
            .field("api", &self.api)
            .field("url", &self.url.as_str())
            .field("username", &self.username)
            .field("password", &CENSORED)
            .field(
                "proxy",
                &self.proxy.as_ref().map(|p| censor_url(p.expose_secret())),
            )
            .field("timeout", &self.timeout)
            .field("sms_id", &self.sms_id)
            .finish()
    }
}

fn build(ctx: &BuildContext<'_>) -> Result<Arc<dyn Provider>, ConfigErrors> {
    let mut errs = ConfigErrors::new();
    let api = match ctx
        .text("API")
        .unwrap_or("xmlrpc")
        .trim()
        .to_ascii_lowercase()
        .as_str()
    {
        "rest" => Api::Rest,
        _ => Api::XmlRpc,
    };
    let default_url = match api {
        Api::XmlRpc => XMLRPC_URL,
        Api::Rest => REST_URL,
    };
    let raw_url = ctx
        .get("URL")
        .filter(|u| !u.trim().is_empty())
        .unwrap_or(default_url);
    let url = match Url::parse(raw_url.trim()) {
        Ok(u) if !matches!(u.scheme(), "http" | "https") => {
            errs.push(ctx.problem(
                "URL",
                format!("scheme '{}' is not http:// or https://", u.scheme()),
            ));
            u
        }
        Ok(u) if !u.username().is_empty() || u.password().is_some() => {
            errs.push(ctx.problem(
                "URL",
                "put the credentials in USERNAME and PASSWORD, not in the URL",
            ));
            u
        }
        Ok(u) => u,
        Err(_) => Url::parse(default_url).expect("default URL"),
    };
    let proxy = ctx
        .get("PROXY")
        .filter(|p| !p.trim().is_empty())
        .and_then(|p| {
            smsgw_reqwest::parse_proxy(p)
                .map_err(|why| errs.push(ctx.problem("PROXY", why)))
                .ok()
        });
    if api == Api::XmlRpc && ctx.get("SMS_ID").is_some() {
        errs.push(ctx.problem("SMS_ID", "only used with API = \"rest\""));
    }
    let provider = SipgateProvider {
        gateway: ctx.gateway.to_owned(),
        api,
        url,
        username: ctx.get("USERNAME").unwrap_or_default().to_owned(),
        password: SecretString::from(ctx.get("PASSWORD").unwrap_or_default().to_owned()),
        proxy,
        timeout: ctx.seconds("TIMEOUT").unwrap_or(Duration::from_secs(60)),
        sms_id: ctx.text("SMS_ID").unwrap_or("s0").to_owned(),
        client: OnceLock::new(),
    };
    errs.into_result(Arc::new(provider) as Arc<dyn Provider>)
}
