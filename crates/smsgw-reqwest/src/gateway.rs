//! [`HttpGateway`]: one gateway's client, and the exchange every HTTP-based provider makes —
//! send, follow same-origin redirects, read a bounded reply, classify what went wrong.

use std::sync::OnceLock;
use std::time::Duration;

use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderName, HeaderValue, LOCATION};
use reqwest::{Method, RequestBuilder, StatusCode};
use smsgw_core::secrecy::{ExposeSecret, SecretString};
use smsgw_core::{CENSORED, ErrorKind, SendError};
use tokio::time::Instant;
use url::Url;

use crate::classify::{chain, is_untrusted_certificate, status_kind, status_words, truncate};
use crate::client::{ClientSettings, ProxyScope, censor_userinfo};

/// The most bytes of a reply read by default: 64 KiB. An SMS gateway's answer is a status and an
/// id; anything longer is cut off there and the send fails as `unknown` (code
/// `reply_too_large`), since the gateway did receive the request.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

/// How many same-origin redirects one send follows at the most.
pub const MAX_REDIRECTS: usize = 5;

/// Characters of a reply quoted in an error message.
const ERROR_EXCERPT: usize = 200;
/// Characters of a reply quoted in a debug log line.
const LOG_EXCERPT: usize = 1000;

/// Which redirects a gateway follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Redirects {
    /// Only to the same origin (scheme, host and port), at most [`MAX_REDIRECTS`]; a redirect
    /// elsewhere is not followed and the send is `unknown` (code `redirect`). The default:
    /// credentials and the message never travel to a host the configuration did not name.
    #[default]
    SameOrigin,
    /// None: every redirect is `unknown` (code `redirect`).
    None,
}

/// A gateway's final answer: its status and its body, read up to the gateway's limit.
#[derive(Debug, Clone)]
pub struct Reply {
    status: StatusCode,
    body: Vec<u8>,
}

impl Reply {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The body's bytes (at most the gateway's body limit).
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The body as text, invalid UTF-8 replaced.
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }

    /// The body, trimmed and cut to 200 characters, for an error message.
    pub fn excerpt(&self) -> String {
        truncate(self.text().trim(), ERROR_EXCERPT)
    }

    /// The body cut to 1000 characters, for a debug log line.
    pub fn log_excerpt(&self) -> String {
        truncate(&self.text(), LOG_EXCERPT)
    }
}

/// One gateway's HTTP client and the rules of its exchanges. Build it in the provider's factory
/// (no network, no runtime needed; the reqwest client is made on the first send), keep it in the
/// provider, and send through [`HttpGateway::send`] or [`HttpGateway::exchange`].
///
/// Every error it makes names the gateway, is classified, and has every secret it was told about
/// ([`HttpGateway::secret`], proxy passwords) replaced by `***`.
pub struct HttpGateway {
    gateway: String,
    url: Url,
    shown_url: String,
    headers: Vec<(HeaderName, Option<HeaderValue>)>,
    settings: ClientSettings,
    body_limit: usize,
    redirects: Redirects,
    secrets: Vec<SecretString>,
    client: OnceLock<Result<reqwest::Client, String>>,
}

impl std::fmt::Debug for HttpGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let proxies: Vec<(ProxyScope, String)> = self
            .settings
            .proxies
            .iter()
            .map(|(s, u)| (*s, censor_userinfo(u.expose_secret())))
            .collect();
        f.debug_struct("HttpGateway")
            .field("gateway", &self.gateway)
            .field("url", &self.shown_url)
            .field("timeout", &self.settings.timeout)
            .field("check_ssl", &self.settings.check_ssl.unwrap_or(true))
            .field("proxies", &proxies)
            .field("body_limit", &self.body_limit)
            .field("redirects", &self.redirects)
            .finish_non_exhaustive()
    }
}

impl HttpGateway {
    /// A gateway named `gateway` (for error messages) whose endpoint is `url` (shown in error
    /// messages without user-info; put no secret in its query). `timeout` bounds a whole send:
    /// connecting, redirects and reading the reply.
    pub fn new(gateway: &str, url: &Url, timeout: Duration) -> Self {
        let mut shown = url.clone();
        let _ = shown.set_username("");
        let _ = shown.set_password(None);
        HttpGateway {
            gateway: gateway.to_owned(),
            url: url.clone(),
            shown_url: shown.to_string(),
            headers: Vec::new(),
            settings: ClientSettings {
                timeout,
                ..Default::default()
            },
            body_limit: DEFAULT_BODY_LIMIT,
            redirects: Redirects::default(),
            secrets: Vec::new(),
            client: OnceLock::new(),
        }
    }

    /// Whether to verify the server's certificate and host name (default: yes). Calling it also
    /// makes certificate errors suggest `CHECK_SSL = "no"`.
    pub fn check_ssl(mut self, verify: bool) -> Self {
        self.settings.check_ssl = Some(verify);
        self
    }

    /// Sends through this proxy (declare the option with `smsgw_core::Param::proxy`). Any proxy switches off the
    /// environment's proxy variables for this gateway.
    pub fn proxy(mut self, scope: ProxyScope, url: SecretString) -> Self {
        if let Some(pw) = Url::parse(url.expose_secret())
            .ok()
            .and_then(|u| u.password().map(str::to_owned))
        {
            self = self.secret(&pw);
        }
        self.settings.proxies.push((scope, url));
        self
    }

    /// Reads at most `bytes` of a reply (default [`DEFAULT_BODY_LIMIT`]).
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// Which redirects to follow (default [`Redirects::SameOrigin`]).
    pub fn redirects(mut self, redirects: Redirects) -> Self {
        self.redirects = redirects;
        self
    }

    /// A secret to censor in every error message (a password, a token). Secrets shorter than
    /// three characters are not searched for (they would censor ordinary words).
    pub fn secret(mut self, secret: &str) -> Self {
        if secret.len() >= 3 {
            self.secrets.push(SecretString::from(secret.to_owned()));
        }
        self
    }

    /// A header sent with every request, whose value is a secret (an API key, a bearer
    /// token): marked sensitive for reqwest and censored in error messages. A value that a
    /// header cannot carry (line breaks, control characters) fails every send as `config`.
    pub fn secret_header(mut self, name: &'static str, value: &str) -> Self {
        let header = HeaderValue::from_str(value).ok().map(|mut v| {
            v.set_sensitive(true);
            v
        });
        self.headers.push((HeaderName::from_static(name), header));
        self.secret(value)
    }

    /// The gateway's name.
    pub fn gateway(&self) -> &str {
        &self.gateway
    }

    /// The timeout of a whole send.
    pub fn timeout(&self) -> Duration {
        self.settings.timeout
    }

    /// The reqwest client (made on first use; a proxy that reqwest refuses is a `config` error).
    pub fn client(&self) -> Result<&reqwest::Client, SendError> {
        self.client
            .get_or_init(|| self.settings.build())
            .as_ref()
            .map_err(|e| self.error(ErrorKind::Config, e.clone()))
    }

    /// The endpoint given to [`HttpGateway::new`].
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// A request builder for `method` and `url` on this gateway's client, with the gateway's
    /// [secret headers](HttpGateway::secret_header).
    pub fn request(&self, method: Method, url: Url) -> Result<RequestBuilder, SendError> {
        let mut rb = self.client()?.request(method, url);
        for (name, value) in &self.headers {
            let value = value.clone().ok_or_else(|| {
                let msg = format!("the value of header '{name}' contains characters a header cannot carry (line breaks, control characters)");
                self.error(ErrorKind::Config, msg)
            })?;
            rb = rb.header(name.clone(), value);
        }
        Ok(rb)
    }

    /// A `POST` of `body` as JSON to the gateway's [URL](HttpGateway::url).
    pub fn post_json(&self, body: &serde_json::Value) -> Result<RequestBuilder, SendError> {
        Ok(self.post(self.url.clone())?.json(body))
    }

    /// A `POST` to `url`.
    pub fn post(&self, url: Url) -> Result<RequestBuilder, SendError> {
        self.request(Method::POST, url)
    }

    /// `text` with every known secret replaced by `***`.
    pub fn scrub(&self, text: String) -> String {
        self.secrets
            .iter()
            .fold(text, |t, s| t.replace(s.expose_secret(), CENSORED))
    }

    /// An error of this gateway, secrets censored.
    pub fn error(&self, kind: ErrorKind, message: impl Into<String>) -> SendError {
        SendError::new(kind, &self.gateway, self.scrub(message.into()))
    }

    /// The classified error for a reply whose status the provider does not accept (see
    /// [`crate::status_kind`]), code = the status, the reply quoted.
    pub fn status_error(&self, reply: &Reply) -> SendError {
        let code = reply.status.as_u16();
        let what = status_words(code);
        let msg = format!("HTTP {}: {what}; reply: {}", reply.status, reply.excerpt());
        self.error(status_kind(code), msg)
            .with_code(code.to_string())
    }

    /// The message id at `pointer` (a JSON pointer, e.g. `/id` or `/messages/0/id`) of a JSON
    /// reply, a string or a number. A reply without one is `unknown` (code `bad_reply`): the
    /// gateway accepted the request, so the message may have been sent.
    pub fn json_id(&self, reply: &Reply, pointer: &str) -> Result<String, SendError> {
        let json: Option<serde_json::Value> = serde_json::from_slice(reply.body()).ok();
        match json.as_ref().and_then(|j| j.pointer(pointer)) {
            Some(serde_json::Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            Some(serde_json::Value::Number(n)) => Ok(n.to_string()),
            _ => {
                let msg = format!(
                    "the reply has no message id at '{pointer}'; the message may have been sent: {}",
                    reply.excerpt()
                );
                Err(self.error(ErrorKind::Unknown, msg).with_code("bad_reply"))
            }
        }
    }

    /// [`HttpGateway::exchange`], and a status other than 2xx is a classified error
    /// ([`HttpGateway::status_error`]).
    pub async fn send(&self, request: RequestBuilder) -> Result<Reply, SendError> {
        let reply = self.exchange(request).await?;
        if reply.status.is_success() {
            Ok(reply)
        } else {
            Err(self.status_error(&reply))
        }
    }

    /// Sends `request` and returns the final reply, whatever its status. Within the gateway's
    /// timeout as a whole: follows redirects as [`HttpGateway::redirects`] says, reads at most
    /// the body limit, and classifies every failure. Once any answer came back, the outcome of a
    /// failure is at best `unknown`: the gateway has the request.
    pub async fn exchange(&self, request: RequestBuilder) -> Result<Reply, SendError> {
        let timeout = self.settings.timeout;
        // reqwest's timeouts bound each step; this is the backstop for anything they miss.
        let backstop = timeout + Duration::from_millis(200);
        match tokio::time::timeout(backstop, self.follow(request, Instant::now() + timeout)).await {
            Ok(r) => r,
            Err(_) => Err(self.timeout_error(String::new())),
        }
    }

    async fn follow(&self, request: RequestBuilder, deadline: Instant) -> Result<Reply, SendError> {
        let client = self.client()?;
        let mut req = request.build().map_err(|e| self.classify(e, false))?;
        let mut answered = false;
        let mut hop = 0;
        loop {
            *req.timeout_mut() = Some(deadline.saturating_duration_since(Instant::now()));
            let again = req.try_clone();
            let from = req.url().clone();
            let resp = client
                .execute(req)
                .await
                .map_err(|e| self.classify(e, answered))?;
            let status = resp.status();
            let location = resp.headers().get(LOCATION).cloned();
            let (Some(location), true) = (location, status.is_redirection()) else {
                return self.read(resp).await;
            };
            answered = true;
            let target = location.to_str().ok().and_then(|l| from.join(l).ok());
            let next = match (self.redirects, target, again) {
                (Redirects::SameOrigin, Some(t), Some(next))
                    if t.origin() == from.origin() && hop < MAX_REDIRECTS =>
                {
                    (t, next)
                }
                (_, target, _) => return Err(self.redirect_error(status, target, hop)),
            };
            req = redirected(next.1, status, next.0);
            hop += 1;
        }
    }

    /// Reads the body up to the limit while it streams: never more than the limit plus one
    /// chunk is held.
    async fn read(&self, mut resp: reqwest::Response) -> Result<Reply, SendError> {
        let status = resp.status();
        let limit = self.body_limit;
        if resp.content_length().is_some_and(|n| n > limit as u64) {
            return Err(self.too_large(status));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.classify(e, true))? {
            if body.len() + chunk.len() > limit {
                return Err(self.too_large(status));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Reply { status, body })
    }

    fn too_large(&self, status: StatusCode) -> SendError {
        let msg = format!(
            "the reply to the request (HTTP {status}) from {} is longer than {} bytes; stopped reading it (the request was received, the message may have been sent)",
            self.shown_url, self.body_limit
        );
        self.error(ErrorKind::Unknown, msg)
            .with_code("reply_too_large")
    }

    fn redirect_error(&self, status: StatusCode, target: Option<Url>, hop: usize) -> SendError {
        let to = target.map_or_else(
            || "an unreadable location".to_owned(),
            |t| truncate(&t.origin().ascii_serialization(), 200),
        );
        let why = if hop >= MAX_REDIRECTS {
            format!("after {MAX_REDIRECTS} redirects")
        } else if self.redirects == Redirects::None {
            "redirects are not followed".to_owned()
        } else {
            "only redirects to the same origin are followed".to_owned()
        };
        let msg = format!(
            "{} answered HTTP {status}, a redirect to {to}; not followed ({why}). The request was received: the message may have been sent",
            self.shown_url
        );
        self.error(ErrorKind::Unknown, msg).with_code("redirect")
    }

    fn timeout_error(&self, detail: String) -> SendError {
        let msg = format!(
            "no answer from {} within {:?} (the request may have been received){detail}",
            self.shown_url, self.settings.timeout
        );
        self.error(ErrorKind::Unknown, msg).with_code("timeout")
    }

    /// Classifies a reqwest error. `answered`: a response (a redirect) came back already, so
    /// the gateway has the request and nothing after that is "not sent".
    fn classify(&self, e: reqwest::Error, answered: bool) -> SendError {
        let e = e.without_url();
        let chain = chain(&e);
        let url = &self.shown_url;
        if is_untrusted_certificate(&e) && !answered {
            let hint = if self.settings.check_ssl.is_some() {
                " (set CHECK_SSL = \"no\" to accept it on purpose)"
            } else {
                ""
            };
            let msg = format!(
                "the TLS certificate of {url} was not trusted; nothing was sent{hint}: {chain}"
            );
            self.error(ErrorKind::Config, msg)
                .with_code("untrusted_certificate")
        } else if e.is_connect() && !answered {
            self.error(
                ErrorKind::NotSent,
                format!("cannot connect to {url}: {chain}"),
            )
            .with_code("connect")
        } else if e.is_timeout() {
            self.timeout_error(format!(": {chain}"))
        } else if e.is_builder() {
            self.error(
                ErrorKind::Config,
                format!("cannot build the request: {chain}"),
            )
        } else {
            let msg = format!(
                "the exchange with {url} failed after the request was sent (the message may have been sent): {chain}"
            );
            self.error(ErrorKind::Unknown, msg)
        }
    }
}

/// The request to send after a redirect: as browsers and privacyIDEA's `requests` do, 303 (and
/// 301/302 after a POST) turn into a GET without a body; 307/308 repeat the request.
fn redirected(mut req: reqwest::Request, status: StatusCode, to: Url) -> reqwest::Request {
    *req.url_mut() = to;
    let to_get = status == StatusCode::SEE_OTHER
        || (matches!(status.as_u16(), 301 | 302) && req.method() == Method::POST);
    if to_get && req.method() != Method::HEAD {
        *req.method_mut() = Method::GET;
        *req.body_mut() = None;
        req.headers_mut().remove(CONTENT_TYPE);
        req.headers_mut().remove(CONTENT_LENGTH);
    }
    req
}
