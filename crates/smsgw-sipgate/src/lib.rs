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
    BuildContext, CENSORED, Capabilities, ConfigErrors, Given, Param, ParamSpec, Provider,
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

const USERNAME: Param<String, Given> =
    Param::text("USERNAME", "The sipgate user name (REST: the token id).").required();
const PASSWORD: Param<SecretString, Given> = Param::secret(
    "PASSWORD",
    "The sipgate password (REST: the personal access token).",
)
.required();
const PROXY: Param<Url> = Param::proxy("PROXY", "A proxy URL for all requests.");
// The declared default is the XML-RPC endpoint; with API = rest the factory uses REST_URL.
const URL: Param<Url, Given> = Param::url(
    "URL",
    "The XML-RPC endpoint; with API = rest the REST base URL (default https://api.sipgate.com/v2).",
)
.default_value(XMLRPC_URL);
const TIMEOUT: Param<Duration, Given> =
    Param::seconds("TIMEOUT", "Seconds the whole exchange may take.").default_value("60");
const API: Param<&str, Given> = Param::choice(
    "API",
    "xmlrpc (samurai.SessionInitiate, as privacyIDEA) or rest (POST /sessions/sms).",
    &["xmlrpc", "rest"],
)
.default_value("xmlrpc");
const SMS_ID: Param<String, Given> = Param::text(
    "SMS_ID",
    "REST only: the id of the SMS extension to send from.",
)
.default_value("s0");

/// The parameters.
pub const PARAMS: &[ParamSpec] = &[
    USERNAME.spec(),
    PASSWORD.spec(),
    PROXY.spec(),
    URL.spec(),
    TIMEOUT.spec(),
    API.spec(),
    SMS_ID.spec(),
];

smsgw_core::register_provider!(
    ProviderDescriptor::new(
        NAME,
        "sipgate: XML-RPC samurai.SessionInitiate (privacyIDEA's SipgateSMSProvider) or the REST API.",
        build,
    )
    .aliases(&[PRIVACYIDEA_MODULE])
    .params(PARAMS)
    .capabilities(Capabilities::none().long_messages())
);

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
    let api = match ctx.get(&API) {
        "rest" => Api::Rest,
        _ => Api::XmlRpc,
    };
    let url = match (ctx.opt(&URL), api) {
        (Some(u), _) => u,
        (None, Api::XmlRpc) => ctx.get(&URL),
        (None, Api::Rest) => match Url::parse(REST_URL) {
            Ok(u) => u,
            Err(e) => {
                errs.push(ctx.problem("URL", format!("the built-in REST URL is invalid: {e}")));
                return Err(errs);
            }
        },
    };
    if !matches!(url.scheme(), "http" | "https") {
        errs.push(ctx.problem(
            "URL",
            format!("scheme '{}' is not http:// or https://", url.scheme()),
        ));
    } else if !url.username().is_empty() || url.password().is_some() {
        errs.push(ctx.problem(
            "URL",
            "put the credentials in USERNAME and PASSWORD, not in the URL",
        ));
    }
    if api == Api::XmlRpc && ctx.opt(&SMS_ID).is_some() {
        errs.push(ctx.problem("SMS_ID", "only used with API = \"rest\""));
    }
    let provider = SipgateProvider {
        gateway: ctx.gateway().to_owned(),
        api,
        url,
        username: ctx.get(&USERNAME),
        password: ctx.get(&PASSWORD),
        proxy: ctx.opt(&PROXY).map(|u| SecretString::from(String::from(u))),
        timeout: ctx.get(&TIMEOUT),
        sms_id: ctx.get(&SMS_ID),
        client: OnceLock::new(),
    };
    errs.into_result(Arc::new(provider) as Arc<dyn Provider>)
}
