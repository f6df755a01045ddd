//! smsgw provider `http`: any SMS gateway reached by an HTTP GET or POST, wire-compatible with
//! privacyIDEA's `HttpSMSProvider`.
//!
//! Every option that is not one of the provider's parameters is sent as a request parameter — in
//! the query for `GET`, as a form body for `POST`, as a JSON object for `POST` with
//! `SEND_DATA_AS_JSON = "yes"` — with the tags `{phone}` and `{otp}` replaced. Queries and forms
//! are encoded exactly as privacyIDEA (Python's `urlencode`) encodes them: `+` for a space, `%2B`
//! for `+`. One HTTP client per gateway keeps connections alive; `TIMEOUT` bounds the whole
//! exchange. Failures are classified (see [`smsgw_core::ErrorKind`]): connection refused and
//! 408/429/503 are "not sent"; 4xx and a `RETURN_FAIL`/missing `RETURN_SUCCESS` are "refused";
//! timeouts after the request went out and other 5xx are "outcome unknown".
//!
//! The crate registers itself in the global registry; link it (name it, e.g. `use smsgw_http as _;`)
//! and build gateways through the core:
//!
//! ```
//! use smsgw_http as _;
//! use smsgw_core::{Config, Gateways, Registry};
//!
//! let cfg = Config::from_toml_str(r#"
//!     [gateways.clickatell]
//!     provider = "http"
//!     [gateways.clickatell.options]
//!     URL = "http://api.clickatell.com/http/sendmsg"
//!     HTTP_METHOD = "GET"
//!     RETURN_SUCCESS = "ID"
//!     user = "YOU"
//!     password = "secret"
//!     text = "Your OTP value is {otp}"
//!     to = "{phone}"
//! "#).unwrap();
//! let gateways = Gateways::build(&cfg, Registry::global()).unwrap();
//! assert_eq!(gateways.get("clickatell").unwrap().descriptor().name, smsgw_http::NAME);
//! // gateways.get("clickatell").unwrap().send(&smsgw_core::Message::new("+4915…", "123456")).await
//! ```
#![deny(missing_docs)]

mod exchange;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use reqwest::header::{HeaderName, HeaderValue};
use smsgw_core::secrecy::{ExposeSecret, SecretString};
use smsgw_core::{
    BuildContext, CENSORED, Capabilities, ConfigErrors, Given, JsonObject, Param, ParamSpec,
    Provider, ProviderDescriptor, censor_url, is_secret_key,
};
use url::Url;

/// The provider name, `http`.
pub const NAME: &str = "http";

/// privacyIDEA's module path for this provider, accepted as an alias.
pub const PRIVACYIDEA_MODULE: &str = "privacyidea.lib.smsprovider.HttpSMSProvider.HttpSMSProvider";

const URL: Param<Url, Given> = Param::url("URL", "The gateway's URL; user:password@ in it is used for basic authentication when USERNAME and PASSWORD are not set.")
    .required();
const HTTP_METHOD: Param<&str, Given> = Param::choice(
    "HTTP_METHOD",
    "GET (parameters in the query) or POST (parameters in the body).",
    &["GET", "POST"],
)
.default_value("GET");
const USERNAME: Param<String> = Param::text("USERNAME", "User name for HTTP basic authentication.");
const PASSWORD: Param<SecretString> =
    Param::secret("PASSWORD", "Password for HTTP basic authentication.");
const RETURN_SUCCESS: Param<String> = Param::text(
    "RETURN_SUCCESS",
    "Text that the gateway's reply must contain for the SMS to count as sent.",
);
const RETURN_FAIL: Param<String> = Param::text(
    "RETURN_FAIL",
    "Text that marks the gateway's reply as a failure.",
);
const PROXY: Param<Url> = Param::proxy(
    "PROXY",
    "Deprecated: one proxy URL for all requests (used when neither HTTP_PROXY nor HTTPS_PROXY is set).",
);
const HTTP_PROXY: Param<Url> = Param::proxy("HTTP_PROXY", "Proxy URL for http:// gateway URLs.");
const HTTPS_PROXY: Param<Url> = Param::proxy("HTTPS_PROXY", "Proxy URL for https:// gateway URLs.");
const PARAMETER: Param<JsonObject> = Param::json_object(
    "PARAMETER",
    "Fixed additional request parameters: a JSON object (or a TOML table).",
);
const CHECK_SSL: Param<bool, Given> = Param::yes_no(
    "CHECK_SSL",
    "Verify the gateway's TLS certificate and host name.",
)
.default_value("yes");
const TIMEOUT: Param<Duration, Given> = Param::seconds(
    "TIMEOUT",
    "Seconds the whole exchange (connect, send, read the reply) may take.",
)
.default_value("3");
const SEND_DATA_AS_JSON: Param<bool, Given> = Param::yes_no(
    "SEND_DATA_AS_JSON",
    "With POST: send the parameters as a JSON object instead of a form.",
)
.default_value("no");

/// The parameters, with privacyIDEA's names.
pub const PARAMS: &[ParamSpec] = &[
    URL.spec(),
    HTTP_METHOD.spec(),
    USERNAME.spec(),
    PASSWORD.spec(),
    RETURN_SUCCESS.spec(),
    RETURN_FAIL.spec(),
    PROXY.spec(),
    HTTP_PROXY.spec(),
    HTTPS_PROXY.spec(),
    PARAMETER.spec(),
    CHECK_SSL.spec(),
    TIMEOUT.spec(),
    SEND_DATA_AS_JSON.spec(),
];

smsgw_core::register_provider!(
    ProviderDescriptor::new(
        NAME,
        "Any SMS gateway reached by an HTTP GET or POST request (privacyIDEA's HttpSMSProvider).",
        build,
    )
    .aliases(&[PRIVACYIDEA_MODULE])
    .params(PARAMS)
    .free_options()
    .capabilities(
        Capabilities::none()
            .long_messages()
            .headers()
            .verbatim_phone()
    )
);

/// How a request parameter's value is produced.
#[derive(Clone)]
enum Value {
    /// An option as written; tags are replaced at send time.
    Template(String),
    /// A value from `PARAMETER` (JSON); tags are replaced in its strings.
    Fixed(serde_json::Value),
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Method {
    Get,
    Post,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Body {
    /// GET: parameters in the query.
    Query,
    /// POST form.
    Form,
    /// POST JSON.
    Json,
}

/// The `http` provider for one gateway. Built by the registry's factory from a gateway
/// definition; see the crate documentation.
pub struct HttpProvider {
    gateway: String,
    url: Url,
    method: Method,
    body: Body,
    auth: Option<(String, SecretString)>,
    return_success: Option<String>,
    return_fail: Option<String>,
    proxies: Proxies,
    check_ssl: bool,
    timeout: Duration,
    params: Vec<(String, Value)>,
    headers: Vec<(HeaderName, String)>,
    client: OnceLock<smsgw_reqwest::HttpGateway>,
}

#[derive(Default, Clone)]
struct Proxies {
    http: Option<SecretString>,
    https: Option<SecretString>,
    all: Option<SecretString>,
}

impl std::fmt::Debug for HttpProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show_proxy =
            |p: &Option<SecretString>| p.as_ref().map(|s| censor_url(s.expose_secret()));
        let params: Vec<(String, String)> = self
            .params
            .iter()
            .map(|(k, v)| {
                let shown = if is_secret_key(k) {
                    CENSORED.to_owned()
                } else {
                    match v {
                        Value::Template(t) => t.clone(),
                        Value::Fixed(j) => j.to_string(),
                    }
                };
                (k.clone(), shown)
            })
            .collect();
        let headers: Vec<(String, String)> = self
            .headers
            .iter()
            .map(|(k, v)| {
                let shown = if is_secret_key(k.as_str()) {
                    CENSORED.to_owned()
                } else {
                    v.clone()
                };
                (k.to_string(), shown)
            })
            .collect();
        f.debug_struct("HttpProvider")
            .field("gateway", &self.gateway)
            .field("url", &self.url.as_str())
            .field("method", &self.method)
            .field("body", &self.body)
            .field("username", &self.auth.as_ref().map(|(u, _)| u))
            .field("password", &self.auth.as_ref().map(|_| CENSORED))
            .field("return_success", &self.return_success)
            .field("return_fail", &self.return_fail)
            .field("http_proxy", &show_proxy(&self.proxies.http))
            .field("https_proxy", &show_proxy(&self.proxies.https))
            .field("proxy", &show_proxy(&self.proxies.all))
            .field("check_ssl", &self.check_ssl)
            .field("timeout", &self.timeout)
            .field("params", &params)
            .field("headers", &headers)
            .finish()
    }
}

/// A proxy URL as reqwest takes it (the core parsed and checked it).
fn proxy(ctx: &BuildContext<'_>, param: &Param<Url>) -> Option<SecretString> {
    ctx.opt(param).map(|u| SecretString::from(String::from(u)))
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// The factory: validates what the core's generic checks don't and builds the provider. No
/// network, no runtime needed.
fn build(ctx: &BuildContext<'_>) -> Result<Arc<dyn Provider>, ConfigErrors> {
    let mut errs = ConfigErrors::new();

    let mut url = ctx.get(&URL);
    if !matches!(url.scheme(), "http" | "https") {
        errs.push(ctx.problem(
            "URL",
            format!("scheme '{}' is not http:// or https://", url.scheme()),
        ));
    }
    let url_user = percent_decode(url.username());
    let url_pass = url.password().map(percent_decode);
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.set_fragment(None);

    let method = match ctx.get(&HTTP_METHOD) {
        "POST" => Method::Post,
        _ => Method::Get,
    };
    let body = match method {
        Method::Get => Body::Query,
        Method::Post if ctx.get(&SEND_DATA_AS_JSON) => Body::Json,
        Method::Post => Body::Form,
    };

    // Basic authentication: USERNAME/PASSWORD, else user:password@ in the URL.
    let username = ctx.opt(&USERNAME);
    let password = ctx.opt(&PASSWORD);
    let auth = match (username, password) {
        (Some(u), Some(p)) if !u.is_empty() => Some((u, p)),
        (Some(u), None) if !u.is_empty() => {
            errs.push(ctx.problem("PASSWORD", "USERNAME is set but PASSWORD is not: set PASSWORD (it may be empty) or remove USERNAME"));
            None
        }
        (None, Some(p)) | (Some(_), Some(p)) if !p.expose_secret().is_empty() => {
            errs.push(ctx.problem("USERNAME", "PASSWORD is set but USERNAME is not"));
            None
        }
        (None, None) if !url_user.is_empty() => {
            url_pass.map(|p| (url_user.clone(), SecretString::from(p)))
        }
        _ => None,
    };

    let proxies = Proxies {
        http: proxy(ctx, &HTTP_PROXY),
        https: proxy(ctx, &HTTPS_PROXY),
        all: proxy(ctx, &PROXY),
    };

    // Request parameters: the free options in order, then PARAMETER's entries.
    let mut params: Vec<(String, Value)> = ctx
        .free_options()
        .map(|(k, v)| (k.to_owned(), Value::Template(v.to_owned())))
        .collect();
    for (k, v) in ctx.opt(&PARAMETER).unwrap_or_default() {
        if params.iter().any(|(name, _)| *name == k) {
            errs.push(ctx.problem(
                &k,
                format!(
                    "the option '{k}' has the same name as a key of PARAMETER; remove one of them"
                ),
            ));
        } else {
            params.push((k, Value::Fixed(v)));
        }
    }

    let mut headers = Vec::new();
    for (k, v) in ctx.headers() {
        match HeaderName::from_bytes(k.trim().as_bytes()) {
            Ok(name) => {
                if HeaderValue::from_bytes(v.as_bytes()).is_err() {
                    errs.push(ctx.problem(k, "the header value contains characters a header cannot carry (line breaks, control characters)"));
                }
                headers.push((name, v.clone()));
            }
            Err(_) => errs.push(ctx.problem(k, format!("'{k}' is not a valid HTTP header name"))),
        }
    }

    let non_empty = |v: Option<String>| v.filter(|v| !v.is_empty());
    let provider = HttpProvider {
        gateway: ctx.gateway().to_owned(),
        url,
        method,
        body,
        auth,
        return_success: non_empty(ctx.opt(&RETURN_SUCCESS)),
        return_fail: non_empty(ctx.opt(&RETURN_FAIL)),
        proxies,
        check_ssl: ctx.get(&CHECK_SSL),
        timeout: ctx.get(&TIMEOUT),
        params,
        headers,
        client: OnceLock::new(),
    };
    errs.into_result(Arc::new(provider) as Arc<dyn Provider>)
}
