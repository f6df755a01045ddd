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

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use smsgw_core::secrecy::{ExposeSecret, SecretString};
use smsgw_core::{
    BuildContext, CENSORED, Capabilities, ConfigErrors, ErrorKind, Given, Message, Param,
    ParamSpec, Provider, ProviderDescriptor, Receipt, SendError, censor_url,
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
    client: OnceLock<Result<reqwest::Client, String>>,
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

/// The first character XML 1.0 cannot carry, if any.
fn invalid_xml_char(s: &str) -> Option<char> {
    s.chars().find(|&c| {
        let u = c as u32;
        !(matches!(c, '\t' | '\n' | '\r')
            || (0x20..=0xD7FF).contains(&u)
            || (0xE000..=0xFFFD).contains(&u)
            || u >= 0x10000)
    })
}

/// Hands an already fetched reply to the `xmlrpc` crate's parser.
struct Fetched(Vec<u8>);

impl xmlrpc::Transport for Fetched {
    type Stream = std::io::Cursor<Vec<u8>>;
    fn transmit(
        self,
        _request: &xmlrpc::Request<'_>,
    ) -> Result<Self::Stream, Box<dyn std::error::Error + Send + Sync>> {
        Ok(std::io::Cursor::new(self.0))
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        s.chars().take(max).collect::<String>() + "…"
    }
}

/// The XML-RPC `samurai.SessionInitiate` call for `number` and `text`, as bytes. Carriage returns
/// are written as `&#13;` so that XML parsers do not turn them into line feeds.
pub fn session_initiate_xml(number: &str, text: &str) -> Vec<u8> {
    let mut s = BTreeMap::new();
    s.insert(
        "RemoteUri".to_owned(),
        xmlrpc::Value::String(format!("sip:{number}@sipgate.de")),
    );
    s.insert("TOS".to_owned(), xmlrpc::Value::String("text".into()));
    s.insert("Content".to_owned(), xmlrpc::Value::String(text.to_owned()));
    let req = xmlrpc::Request::new("samurai.SessionInitiate").arg(xmlrpc::Value::Struct(s));
    let mut out = Vec::new();
    req.write_as_xml(&mut out)
        .expect("writing to a Vec cannot fail");
    // The crate writes its own line breaks as \n; any \r comes from a value.
    let mut fixed = Vec::with_capacity(out.len());
    for b in out {
        if b == b'\r' {
            fixed.extend_from_slice(b"&#13;");
        } else {
            fixed.push(b);
        }
    }
    fixed
}

impl SipgateProvider {
    fn client(&self) -> Result<&reqwest::Client, SendError> {
        self.client
            .get_or_init(|| {
                let mut b = reqwest::Client::builder()
                    .connect_timeout(self.timeout.mul_f64(0.9))
                    .pool_idle_timeout(Duration::from_secs(60))
                    .user_agent(concat!("smsgw/", env!("CARGO_PKG_VERSION")));
                if let Some(p) = &self.proxy {
                    // The gateway's proxy replaces the environment's proxy settings.
                    b = b.no_proxy().proxy(
                        reqwest::Proxy::all(p.expose_secret())
                            .map_err(|_| "PROXY is not a usable proxy URL".to_owned())?,
                    );
                }
                b.build()
                    .map_err(|e| format!("cannot set up the HTTP client: {}", e.without_url()))
            })
            .as_ref()
            .map_err(|e| SendError::new(ErrorKind::Config, &self.gateway, e.clone()))
    }

    fn scrub(&self, text: String) -> String {
        let mut out = text;
        let pw = self.password.expose_secret();
        if pw.len() >= 3 {
            out = out.replace(pw, CENSORED);
        }
        if let Some(ppw) = self
            .proxy
            .as_ref()
            .and_then(|p| Url::parse(p.expose_secret()).ok())
            .and_then(|u| u.password().map(str::to_owned))
            .filter(|p| p.len() >= 3)
        {
            out = out.replace(&ppw, CENSORED);
        }
        out
    }

    fn error(&self, kind: ErrorKind, msg: String) -> SendError {
        SendError::new(kind, &self.gateway, self.scrub(msg))
    }

    // The same classification as smsgw-http's, kept as a copy on purpose: a provider crate that
    // used another's code would link that provider's registration into every binary using it.
    fn classify(&self, e: reqwest::Error) -> SendError {
        let e = e.without_url();
        let mut chain = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            let _ = write!(chain, ": {s}");
            src = s.source();
        }
        let url = self.url.as_str();
        if untrusted_certificate(&e) {
            self.error(
                ErrorKind::Config,
                format!("the TLS certificate of {url} was not trusted; nothing was sent: {chain}"),
            )
            .with_code("untrusted_certificate")
        } else if e.is_connect() {
            self.error(
                ErrorKind::NotSent,
                format!("cannot connect to {url}: {chain}"),
            )
            .with_code("connect")
        } else if e.is_timeout() {
            self.error(
                ErrorKind::Unknown,
                format!("no answer from {url} within {:?} (the request may have been received): {chain}", self.timeout),
            )
            .with_code("timeout")
        } else {
            self.error(
                ErrorKind::Unknown,
                format!("the exchange with {url} failed after the request was sent: {chain}"),
            )
        }
    }

    fn status_error(&self, status: reqwest::StatusCode, reply: &str) -> SendError {
        let code = status.as_u16();
        let (kind, what) = match code {
            401 | 403 => (
                ErrorKind::Refused,
                "sipgate refused the credentials (USERNAME/PASSWORD)",
            ),
            408 | 429 | 503 => (ErrorKind::NotSent, "sipgate is busy or asks to retry later"),
            400..=499 => (ErrorKind::Refused, "sipgate refused the request"),
            _ => (
                ErrorKind::Unknown,
                "sipgate answered with an unexpected status",
            ),
        };
        self.error(
            kind,
            format!(
                "HTTP {status}: {what}; reply: {}",
                truncate(reply.trim(), 200)
            ),
        )
        .with_code(code.to_string())
    }

    async fn post(
        &self,
        url: Url,
        content_type: &'static str,
        body: Vec<u8>,
    ) -> Result<(reqwest::StatusCode, String), SendError> {
        let client = self.client()?;
        let resp = client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .basic_auth(&self.username, Some(self.password.expose_secret()))
            .timeout(self.timeout)
            .body(body)
            .send()
            .await
            .map_err(|e| self.classify(e))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| self.classify(e))?;
        let reply = String::from_utf8_lossy(&bytes).into_owned();
        tracing::debug!(status = status.as_u16(), reply = %truncate(&reply, 1000), "sipgate answered");
        Ok((status, reply))
    }

    async fn send_xmlrpc(&self, phone: &str, text: &str) -> Result<Receipt, SendError> {
        let number = phone.trim().replace('+', "");
        if number.is_empty() {
            return Err(self.error(
                ErrorKind::Config,
                "the phone number is empty after removing '+'".into(),
            ));
        }
        for (what, s) in [("phone number", number.as_str()), ("message", text)] {
            if let Some(c) = invalid_xml_char(s) {
                return Err(self.error(
                    ErrorKind::Config,
                    format!("the {what} contains the character U+{:04X}, which XML-RPC (XML 1.0) cannot carry; nothing was sent", c as u32),
                ));
            }
        }
        let body = session_initiate_xml(&number, text);
        tracing::debug!(
            url = %self.url,
            recipient = %format!("sip:{number}@sipgate.de"),
            chars = text.chars().count(),
            "submitting SMS via XML-RPC samurai.SessionInitiate"
        );
        tracing::trace!(text = %text, "message text");
        let (status, reply) = self.post(self.url.clone(), "text/xml", body).await?;
        if status != reqwest::StatusCode::OK {
            return Err(self.status_error(status, &reply));
        }
        let req = xmlrpc::Request::new("samurai.SessionInitiate");
        let value = match req.call(Fetched(reply.clone().into_bytes())) {
            Ok(v) => v,
            Err(e) => {
                if let Some(f) = e.fault() {
                    return Err(self
                        .error(
                            ErrorKind::Refused,
                            format!(
                                "XML-RPC fault {}: {}",
                                f.fault_code,
                                truncate(&f.fault_string, 200)
                            ),
                        )
                        .with_code(f.fault_code.to_string()));
                }
                return Err(self.error(
                    ErrorKind::Unknown,
                    format!(
                        "the reply is not XML-RPC ({e}); the message may have been sent: {}",
                        truncate(reply.trim(), 200)
                    ),
                ));
            }
        };
        let status_code = value.get("StatusCode").and_then(|v| match v {
            xmlrpc::Value::Int(i) => Some(i64::from(*i)),
            xmlrpc::Value::Int64(i) => Some(*i),
            xmlrpc::Value::String(s) => s.trim().parse().ok(),
            _ => None,
        });
        let status_string = value
            .get("StatusString")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        match status_code {
            Some(200) => {
                let mut receipt = Receipt::new(&self.gateway, NAME);
                if let Some(id) = value.get("SessionID").and_then(|v| v.as_str()) {
                    receipt = receipt.with_id(id);
                }
                Ok(receipt)
            }
            Some(code) => Err(self
                .error(
                    ErrorKind::Refused,
                    format!(
                        "sipgate answered StatusCode {code}: {}",
                        truncate(status_string, 200)
                    ),
                )
                .with_code(code.to_string())),
            None => Err(self.error(
                ErrorKind::Unknown,
                format!(
                    "the XML-RPC reply has no StatusCode; the message may have been sent: {}",
                    truncate(reply.trim(), 200)
                ),
            )),
        }
    }

    async fn send_rest(&self, phone: &str, text: &str) -> Result<Receipt, SendError> {
        let recipient = phone.trim();
        let mut url = self.url.clone();
        {
            let Ok(mut segs) = url.path_segments_mut() else {
                return Err(self.error(ErrorKind::Config, "URL cannot be a base URL".into()));
            };
            segs.pop_if_empty().push("sessions").push("sms");
        }
        let body = serde_json::to_vec(&serde_json::json!({
            "smsId": self.sms_id,
            "recipient": recipient,
            "message": text,
        }))
        .map_err(|e| self.error(ErrorKind::Config, format!("cannot encode the request: {e}")))?;
        tracing::debug!(url = %url, recipient = %recipient, chars = text.chars().count(), "submitting SMS via the sipgate REST API");
        tracing::trace!(text = %text, "message text");
        let (status, reply) = self.post(url, "application/json", body).await?;
        if status.is_success() {
            Ok(Receipt::new(&self.gateway, NAME))
        } else {
            Err(self.status_error(status, &reply))
        }
    }
}

#[smsgw_core::async_trait]
impl Provider for SipgateProvider {
    async fn send(&self, message: &Message) -> Result<Receipt, SendError> {
        let backstop = self.timeout + Duration::from_millis(200);
        let work = async {
            match self.api {
                Api::XmlRpc => self.send_xmlrpc(&message.phone, &message.text).await,
                Api::Rest => self.send_rest(&message.phone, &message.text).await,
            }
        };
        match tokio::time::timeout(backstop, work).await {
            Ok(r) => r,
            Err(_) => Err(self
                .error(
                    ErrorKind::Unknown,
                    format!(
                        "no answer from {} within {:?} (the request may have been received)",
                        self.url, self.timeout
                    ),
                )
                .with_code("timeout")),
        }
    }
}

/// True when `e`'s chain says the server's certificate was not trusted. reqwest does not expose
/// the rustls error through its source chain, so this reads rustls' message for
/// `Error::InvalidCertificate` ("invalid peer certificate: …").
fn untrusted_certificate(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.to_string().contains("invalid peer certificate") {
            return true;
        }
        cur = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_characters_xml_cannot_carry() {
        assert_eq!(invalid_xml_char("ok \t\r\n äß 😀 \u{E000}"), None);
        assert_eq!(invalid_xml_char("bell\u{7}"), Some('\u{7}'));
        assert_eq!(invalid_xml_char("\u{FFFE}"), Some('\u{FFFE}'));
        assert_eq!(invalid_xml_char("nul\0"), Some('\0'));
    }

    #[test]
    fn carriage_returns_are_escaped() {
        let xml = String::from_utf8(session_initiate_xml("1", "a\r\nb")).unwrap();
        assert!(xml.contains("a&#13;\nb"), "{xml}");
    }
}
