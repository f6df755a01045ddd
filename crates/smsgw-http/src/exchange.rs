//! One send: the request parameters encoded as privacyIDEA encodes them, the exchange through
//! [`smsgw_reqwest::HttpGateway`] (timeout, bounded reply, redirect policy, classification), and
//! the reply checked against `RETURN_SUCCESS`/`RETURN_FAIL`.

use std::fmt::Write as _;

use reqwest::header::{HeaderMap, HeaderValue};
use smsgw_core::secrecy::{ExposeSecret, SecretString};
use smsgw_core::{
    CENSORED, ErrorKind, Message, Provider, Receipt, SendError, is_secret_key, render,
};
use smsgw_reqwest::{HttpGateway, ProxyScope, reqwest};

use crate::{Body, HttpProvider, Method, NAME, Value};

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

impl HttpProvider {
    /// The gateway's HTTP client and exchange rules, made on first use.
    fn http(&self) -> &HttpGateway {
        self.client.get_or_init(|| {
            let mut g =
                HttpGateway::new(&self.gateway, &self.url, self.timeout).check_ssl(self.check_ssl);
            if let Some((_, p)) = &self.auth {
                g = g.secret(p.expose_secret());
            }
            let proxies = [
                (ProxyScope::Http, &self.proxies.http),
                (ProxyScope::Https, &self.proxies.https),
                (ProxyScope::All, &self.proxies.all),
            ];
            for (scope, p) in proxies {
                if let Some(p) = p {
                    g = g.proxy(scope, SecretString::from(p.expose_secret().to_owned()));
                }
            }
            g
        })
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
                    self.http().error(
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
                self.http().error(
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

        let mut rb = self.http().request(method, url)?.headers(headers);
        if let Some((user, pass)) = &self.auth {
            rb = rb.basic_auth(user, Some(pass.expose_secret()));
        }
        if let Some((bytes, _)) = req_body {
            rb = rb.body(bytes);
        }
        let reply = self.http().exchange(rb).await?;
        let status = reply.status();
        tracing::debug!(status = status.as_u16(), reply = %self.http().scrub(reply.log_excerpt()), "gateway answered");

        let code = status.as_u16();
        if !matches!(code, 200..=202) {
            return Err(self.http().status_error(&reply));
        }
        let text = reply.text();
        let refused = |msg: String| {
            self.http()
                .error(ErrorKind::Refused, msg)
                .with_code(code.to_string())
        };
        if let Some(fail) = &self.return_fail
            && text.contains(fail.as_str())
        {
            let msg = format!(
                "the reply contains RETURN_FAIL '{fail}': {}",
                reply.excerpt()
            );
            return Err(refused(msg));
        }
        if let Some(success) = &self.return_success
            && !text.contains(success.as_str())
        {
            let msg = format!(
                "the reply does not contain RETURN_SUCCESS '{success}': {}",
                reply.excerpt()
            );
            return Err(refused(msg));
        }
        Ok(Receipt::new(&self.gateway, NAME))
    }
}

#[smsgw_core::async_trait]
impl Provider for HttpProvider {
    async fn send(&self, message: &Message) -> Result<Receipt, SendError> {
        // The gateway's exchange bounds the network part in time; the rest is local work.
        self.exchange(message).await
    }
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
        assert_eq!(crate::percent_decode("p%40ss+w"), "p@ss+w");
    }
}
