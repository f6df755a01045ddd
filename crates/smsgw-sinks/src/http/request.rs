//! One HTTP request as a sink received it, decoded: target, query, headers in order, the body
//! raw and parsed as a form or JSON, basic auth.

use base64::Engine as _;
use serde::Serialize;

/// One HTTP request as the sink received it, decoded. Serializes to the JSON form of the golden
/// files (`kind: "http"`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HttpRequest {
    /// Always `http`.
    pub kind: &'static str,
    /// The request's number at this sink, from 0 in arrival order.
    pub n: usize,
    /// The number of the TCP connection it came on, from 0 in accept order.
    pub connection: usize,
    /// Whether it came over TLS.
    pub tls: bool,
    /// `GET`, `POST`, …
    pub method: String,
    /// `HTTP/1.1` or `HTTP/1.0`.
    pub http_version: String,
    /// The request target as sent: `/path?query`, or `http://host/path?query` through a proxy.
    pub target: String,
    /// The path of the target.
    pub path: String,
    /// The query as sent (still encoded), empty when there is none.
    pub query_raw: String,
    /// The query pairs, decoded (`+` as space), in order.
    pub query: Vec<(String, String)>,
    /// The headers in the order received (names in lower case, as HTTP/1.1 parsers give them).
    pub headers: Vec<(String, String)>,
    /// The raw body (serialized as text, invalid UTF-8 replaced).
    #[serde(serialize_with = "lossy_text")]
    pub body: Vec<u8>,
    /// The body parsed as `application/x-www-form-urlencoded`, when the request says it is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub form: Option<Vec<(String, String)>>,
    /// The body parsed as JSON, when it is JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub json: Option<serde_json::Value>,
    /// `user:password` of an `Authorization: Basic` header, decoded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<String>,
}

fn lossy_text<S: serde::Serializer>(body: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&String::from_utf8_lossy(body))
}

impl HttpRequest {
    /// The body as text (invalid UTF-8 replaced).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The first value of parameter `name`, looked up in the query, then the form, then the top
    /// level of a JSON object body (strings as they are, other JSON values as JSON text).
    pub fn param(&self, name: &str) -> Option<String> {
        let find = |pairs: &[(String, String)]| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        find(&self.query)
            .or_else(|| self.form.as_deref().and_then(find))
            .or_else(|| {
                let v = self.json.as_ref()?.as_object()?.get(name)?;
                Some(match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
            })
    }

    /// The parameters of the request in order: query pairs, then form pairs (the JSON body is not
    /// included; see [`HttpRequest::json`]).
    pub fn params(&self) -> Vec<(String, String)> {
        let mut v = self.query.clone();
        if let Some(f) = &self.form {
            v.extend(f.iter().cloned());
        }
        v
    }
}

pub(super) fn decode(
    parts: &hyper::http::request::Parts,
    body: Vec<u8>,
    n: usize,
    connection: usize,
    tls: bool,
) -> HttpRequest {
    let uri = &parts.uri;
    let target = uri.to_string();
    let query_raw = uri.query().unwrap_or("").to_owned();
    let query = url::form_urlencoded::parse(query_raw.as_bytes())
        .into_owned()
        .collect();
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let content_type = parts
        .headers
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let form = content_type
        .contains("application/x-www-form-urlencoded")
        .then(|| url::form_urlencoded::parse(&body).into_owned().collect());
    let json = if content_type.contains("json")
        || (form.is_none()
            && body
                .iter()
                .find(|b| !b.is_ascii_whitespace())
                .is_some_and(|b| *b == b'{' || *b == b'['))
    {
        serde_json::from_slice(&body).ok()
    } else {
        None
    };
    let basic_auth = parts
        .headers
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("basic").then_some(rest)
        })
        .and_then(|b64| {
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()
        })
        .map(|raw| String::from_utf8_lossy(&raw).into_owned());
    HttpRequest {
        kind: "http",
        n,
        connection,
        tls,
        method: parts.method.as_str().to_owned(),
        http_version: format!("{:?}", parts.version),
        target,
        path: uri.path().to_owned(),
        query_raw,
        query,
        headers,
        body,
        form,
        json,
        basic_auth,
    }
}
