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

use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use smsgw_core::secrecy::{ExposeSecret, SecretString};
use smsgw_core::{
    BuildContext, CENSORED, Capabilities, ConfigErrors, ErrorKind, Given, JsonObject, Message,
    Param, ParamSpec, Provider, ProviderDescriptor, Receipt, SendError, censor_url, is_secret_key,
    render,
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
    client: OnceLock<Result<reqwest::Client, String>>,
}

#[derive(Default, Clone)]
struct Proxies {
    http: Option<SecretString>,
    https: Option<SecretString>,
    all: Option<SecretString>,
}

impl Proxies {
    fn any(&self) -> bool {
        self.http.is_some() || self.https.is_some() || self.all.is_some()
    }
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

/// Appends `s` encoded as Python's `quote_plus` does (what privacyIDEA's `requests` puts on the
/// wire): letters, digits and `_.-~` as they are, space as `+`, every other byte as `%XX`.
fn quote_plus(s: &str, out: &mut String) {
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
}

/// `k=v&k=v` with [`quote_plus`] encoding (Python's `urlencode`).
fn urlencode(pairs: &[(String, String)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        quote_plus(k, &mut out);
        out.push('=');
        quote_plus(v, &mut out);
    }
    out
}

fn render_json(v: &serde_json::Value, phone: &str, otp: &str) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        J::String(s) => J::String(render(s, phone, otp).into_owned()),
        J::Array(a) => J::Array(a.iter().map(|x| render_json(x, phone, otp)).collect()),
        J::Object(o) => J::Object(
            o.iter()
                .map(|(k, x)| (k.clone(), render_json(x, phone, otp)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max).collect();
        t.push('…');
        t
    }
}

impl HttpProvider {
    fn client(&self) -> Result<&reqwest::Client, SendError> {
        self.client
            .get_or_init(|| self.build_client())
            .as_ref()
            .map_err(|e| SendError::new(ErrorKind::Config, &self.gateway, e.clone()))
    }

    fn build_client(&self) -> Result<reqwest::Client, String> {
        let connect = self.timeout.mul_f64(0.9);
        let mut b = reqwest::Client::builder()
            .connect_timeout(connect)
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("smsgw/", env!("CARGO_PKG_VERSION")))
            .tls_danger_accept_invalid_certs(!self.check_ssl)
            .tls_danger_accept_invalid_hostnames(!self.check_ssl);
        if self.proxies.any() {
            // The gateway's own proxy settings replace the environment's (HTTP_PROXY, HTTPS_PROXY,
            // NO_PROXY): a gateway behaves the same wherever it runs.
            b = b.no_proxy();
            let bad = |name: &str| format!("{name} is not a usable proxy URL");
            if self.proxies.http.is_some() || self.proxies.https.is_some() {
                if let Some(p) = &self.proxies.http {
                    b = b.proxy(
                        reqwest::Proxy::http(p.expose_secret()).map_err(|_| bad("HTTP_PROXY"))?,
                    );
                }
                if let Some(p) = &self.proxies.https {
                    b = b.proxy(
                        reqwest::Proxy::https(p.expose_secret()).map_err(|_| bad("HTTPS_PROXY"))?,
                    );
                }
            } else if let Some(p) = &self.proxies.all {
                b = b.proxy(reqwest::Proxy::all(p.expose_secret()).map_err(|_| bad("PROXY"))?);
            }
        }
        b.build()
            .map_err(|e| format!("cannot set up the HTTP client: {}", e.without_url()))
    }

    /// Removes every secret this gateway knows from `text` (defence in depth for error chains).
    fn scrub(&self, text: String) -> String {
        let mut secrets: Vec<String> = Vec::new();
        if let Some((_, p)) = &self.auth {
            secrets.push(p.expose_secret().to_owned());
        }
        for p in [&self.proxies.http, &self.proxies.https, &self.proxies.all]
            .into_iter()
            .flatten()
        {
            if let Some(pw) = Url::parse(p.expose_secret())
                .ok()
                .and_then(|u| u.password().map(str::to_owned))
            {
                secrets.push(pw);
            }
        }
        secrets.retain(|s| s.len() >= 3);
        secrets.iter().fold(text, |t, s| t.replace(s, CENSORED))
    }

    fn error(&self, kind: ErrorKind, msg: String) -> SendError {
        SendError::new(kind, &self.gateway, self.scrub(msg))
    }

    fn classify(&self, e: reqwest::Error) -> SendError {
        let e = e.without_url();
        let mut chain = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            let _ = write!(chain, ": {s}");
            src = s.source();
        }
        let shown_url = self.url.as_str();
        if untrusted_certificate(&e) {
            self.error(
                ErrorKind::Config,
                format!("the TLS certificate of {shown_url} was not trusted; nothing was sent (set CHECK_SSL = \"no\" to accept it on purpose): {chain}"),
            )
            .with_code("untrusted_certificate")
        } else if e.is_connect() {
            self.error(
                ErrorKind::NotSent,
                format!("cannot connect to {shown_url}: {chain}"),
            )
            .with_code("connect")
        } else if e.is_timeout() {
            self.error(
                ErrorKind::Unknown,
                format!("no answer from {shown_url} within {:?} (the request may have been received): {chain}", self.timeout),
            )
            .with_code("timeout")
        } else if e.is_builder() {
            self.error(
                ErrorKind::Config,
                format!("cannot build the request: {chain}"),
            )
        } else {
            self.error(
                ErrorKind::Unknown,
                format!("the exchange with {shown_url} failed after the request was sent: {chain}"),
            )
        }
    }

    fn rendered_params(&self, phone: &str, otp: &str) -> Vec<(String, Value)> {
        self.params
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Value::Template(t) => Value::Template(render(t, phone, otp).into_owned()),
                    Value::Fixed(j) => Value::Fixed(render_json(j, phone, otp)),
                };
                (k.clone(), v)
            })
            .collect()
    }

    async fn exchange(&self, message: &Message) -> Result<Receipt, SendError> {
        let phone = message.phone.as_str();
        let otp = message.text.as_str();
        let client = self.client()?;

        // Parameters, tags replaced.
        let rendered = self.rendered_params(phone, otp);
        let as_text = |v: &Value, template_had_tag: bool| -> serde_json::Value {
            match v {
                Value::Template(s) if template_had_tag => serde_json::Value::String(s.clone()),
                Value::Template(s) => {
                    serde_json::from_str(s).unwrap_or_else(|_| serde_json::Value::String(s.clone()))
                }
                Value::Fixed(j) => j.clone(),
            }
        };
        let pairs: Vec<(String, String)> = rendered
            .iter()
            .map(|(k, v)| {
                let s = match v {
                    Value::Template(s) => s.clone(),
                    Value::Fixed(serde_json::Value::String(s)) => s.clone(),
                    Value::Fixed(j) => j.to_string(),
                };
                (k.clone(), s)
            })
            .collect();

        let mut url = self.url.clone();
        let mut req_body: Option<(Vec<u8>, &'static str)> = None;
        match self.body {
            Body::Query => {
                if !pairs.is_empty() {
                    let encoded = urlencode(&pairs);
                    let q = match url.query() {
                        Some(existing) if !existing.is_empty() => format!("{existing}&{encoded}"),
                        _ => encoded,
                    };
                    url.set_query(Some(&q));
                }
            }
            Body::Form => {
                req_body = Some((
                    urlencode(&pairs).into_bytes(),
                    "application/x-www-form-urlencoded",
                ));
            }
            Body::Json => {
                let mut obj = serde_json::Map::new();
                for ((k, v), (_, orig)) in rendered.iter().zip(&self.params) {
                    let had_tag = matches!(orig, Value::Template(t) if smsgw_core::has_tag(t));
                    obj.insert(k.clone(), as_text(v, had_tag));
                }
                let bytes = serde_json::to_vec(&serde_json::Value::Object(obj)).map_err(|e| {
                    self.error(
                        ErrorKind::Config,
                        format!("cannot encode the JSON body: {e}"),
                    )
                })?;
                req_body = Some((bytes, "application/json"));
            }
        }

        // Headers of the gateway, tags replaced; basic auth replaces an Authorization header.
        let mut headers = HeaderMap::new();
        for (name, template) in &self.headers {
            if self.auth.is_some() && *name == reqwest::header::AUTHORIZATION {
                continue;
            }
            let value = render(template, phone, otp);
            let hv = HeaderValue::from_bytes(value.as_bytes()).map_err(|_| {
                self.error(
                    ErrorKind::Config,
                    format!("header '{name}' cannot carry this phone number or message (line breaks or control characters)"),
                )
            })?;
            headers.append(name.clone(), hv);
        }
        if let Some((_, ct)) = &req_body
            && !headers.contains_key(reqwest::header::CONTENT_TYPE)
        {
            headers.insert(reqwest::header::CONTENT_TYPE, HeaderValue::from_static(ct));
        }

        let method = match self.method {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
        };
        let names: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
        let header_names: Vec<&str> = self.headers.iter().map(|(k, _)| k.as_str()).collect();
        tracing::debug!(
            method = %method,
            url = %self.url,
            body = ?self.body,
            params = ?names,
            headers = ?header_names,
            basic_auth = self.auth.is_some(),
            "issuing request"
        );
        if tracing::enabled!(tracing::Level::TRACE) {
            let shown: Vec<(&str, String)> = pairs
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str(),
                        if is_secret_key(k) {
                            CENSORED.to_owned()
                        } else {
                            v.clone()
                        },
                    )
                })
                .collect();
            tracing::trace!(params = ?shown, text = %message.text, "request parameters");
        }

        let mut rb = client
            .request(method, url)
            .headers(headers)
            .timeout(self.timeout);
        if let Some((user, pass)) = &self.auth {
            rb = rb.basic_auth(user, Some(pass.expose_secret()));
        }
        if let Some((bytes, _)) = req_body {
            rb = rb.body(bytes);
        }
        let resp = rb.send().await.map_err(|e| self.classify(e))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| self.classify(e))?;
        let reply = String::from_utf8_lossy(&bytes);
        tracing::debug!(status = status.as_u16(), reply = %truncate(&reply, 1000), "gateway answered");

        let code = status.as_u16();
        let short = truncate(reply.trim(), 200);
        if !matches!(code, 200..=202) {
            let kind = match code {
                408 | 429 | 503 => ErrorKind::NotSent,
                400..=499 | 501 | 505 => ErrorKind::Refused,
                _ => ErrorKind::Unknown,
            };
            let what = match kind {
                ErrorKind::NotSent => "the gateway is busy or asks to retry later",
                ErrorKind::Refused => "the gateway refused the request",
                _ => "the gateway answered with an unexpected status",
            };
            return Err(self
                .error(kind, format!("HTTP {status}: {what}; reply: {short}"))
                .with_code(code.to_string()));
        }
        if let Some(fail) = &self.return_fail
            && reply.contains(fail.as_str())
        {
            let msg = format!("the reply contains RETURN_FAIL '{fail}': {short}");
            return Err(self
                .error(ErrorKind::Refused, msg)
                .with_code(code.to_string()));
        }
        if let Some(success) = &self.return_success
            && !reply.contains(success.as_str())
        {
            let msg = format!("the reply does not contain RETURN_SUCCESS '{success}': {short}");
            return Err(self
                .error(ErrorKind::Refused, msg)
                .with_code(code.to_string()));
        }
        Ok(Receipt::new(&self.gateway, NAME))
    }
}

#[smsgw_core::async_trait]
impl Provider for HttpProvider {
    async fn send(&self, message: &Message) -> Result<Receipt, SendError> {
        // reqwest's own timeout bounds the exchange; this is the backstop for anything it misses.
        let backstop = self.timeout + Duration::from_millis(200);
        match tokio::time::timeout(backstop, self.exchange(message)).await {
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
    fn encodes_like_python_urlencode() {
        let pairs = vec![
            ("to".to_owned(), "+49 151 1234567".to_owned()),
            ("text".to_owned(), "Your code: 123456".to_owned()),
            ("x".to_owned(), "a&b=c#d%e~f*g/h?ü\n\"'".to_owned()),
        ];
        assert_eq!(
            urlencode(&pairs),
            "to=%2B49+151+1234567&text=Your+code%3A+123456&x=a%26b%3Dc%23d%25e~f%2Ag%2Fh%3F%C3%BC%0A%22%27"
        );
    }

    #[test]
    fn percent_decodes_url_credentials() {
        assert_eq!(percent_decode("p%40ss+w"), "p@ss+w");
    }
}
