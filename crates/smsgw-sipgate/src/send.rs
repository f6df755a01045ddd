//! One send, over XML-RPC or REST, through [`smsgw_reqwest::HttpGateway`]: its timeout, bounded
//! reply, redirect policy and classification; the XML-RPC reply read by [`crate::read_reply`].

use smsgw_core::secrecy::{ExposeSecret, SecretString};
use smsgw_core::{ErrorKind, Message, Provider, Receipt, SendError};
use smsgw_reqwest::{HttpGateway, ProxyScope, Reply, truncate};
use url::Url;

use crate::xml::{MAX_REPLY_BYTES, ReplyError, invalid_xml_char, read_reply, session_initiate_xml};
use crate::{Api, NAME, SipgateProvider};

impl SipgateProvider {
    /// The gateway's HTTP client and exchange rules, made on first use.
    fn http(&self) -> &HttpGateway {
        self.client.get_or_init(|| {
            let mut g = HttpGateway::new(&self.gateway, &self.url, self.timeout)
                .secret(self.password.expose_secret());
            if self.api == Api::XmlRpc {
                g = g.body_limit(MAX_REPLY_BYTES);
            }
            if let Some(p) = &self.proxy {
                g = g.proxy(
                    ProxyScope::All,
                    SecretString::from(p.expose_secret().to_owned()),
                );
            }
            g
        })
    }

    async fn post(
        &self,
        url: Url,
        content_type: &'static str,
        body: Vec<u8>,
    ) -> Result<Reply, SendError> {
        let request = self
            .http()
            .post(url)?
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .basic_auth(&self.username, Some(self.password.expose_secret()))
            .body(body);
        let reply = self.http().exchange(request).await?;
        tracing::debug!(status = reply.status().as_u16(), reply = %self.http().scrub(reply.log_excerpt()), "sipgate answered");
        Ok(reply)
    }

    async fn send_xmlrpc(&self, phone: &str, text: &str) -> Result<Receipt, SendError> {
        let http = self.http();
        let number = phone.trim().replace('+', "");
        if number.is_empty() {
            return Err(http.error(
                ErrorKind::Config,
                "the phone number is empty after removing '+'",
            ));
        }
        for (what, s) in [("phone number", number.as_str()), ("message", text)] {
            if let Some(c) = invalid_xml_char(s) {
                return Err(http.error(
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
        let reply = self.post(self.url.clone(), "text/xml", body).await?;
        if reply.status() != reqwest::StatusCode::OK {
            return Err(http.status_error(&reply));
        }
        let value = match read_reply(reply.body()) {
            Ok(v) => v,
            Err(ReplyError::Fault { code, text }) => {
                let msg = format!("XML-RPC fault {code}: {}", truncate(&text, 200));
                return Err(http
                    .error(ErrorKind::Refused, msg)
                    .with_code(code.to_string()));
            }
            Err(e) => {
                let msg = format!(
                    "the reply is {e}; the message may have been sent: {}",
                    reply.excerpt()
                );
                return Err(http.error(ErrorKind::Unknown, msg).with_code("bad_reply"));
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
            Some(code) => {
                let msg = format!(
                    "sipgate answered StatusCode {code}: {}",
                    truncate(status_string, 200)
                );
                Err(http
                    .error(ErrorKind::Refused, msg)
                    .with_code(code.to_string()))
            }
            None => Err(http.error(
                ErrorKind::Unknown,
                format!(
                    "the XML-RPC reply has no StatusCode; the message may have been sent: {}",
                    reply.excerpt()
                ),
            )),
        }
    }

    async fn send_rest(&self, phone: &str, text: &str) -> Result<Receipt, SendError> {
        let http = self.http();
        let recipient = phone.trim();
        let mut url = self.url.clone();
        {
            let Ok(mut segs) = url.path_segments_mut() else {
                return Err(http.error(ErrorKind::Config, "URL cannot be a base URL"));
            };
            segs.pop_if_empty().push("sessions").push("sms");
        }
        let body = serde_json::to_vec(&serde_json::json!({
            "smsId": self.sms_id,
            "recipient": recipient,
            "message": text,
        }))
        .map_err(|e| http.error(ErrorKind::Config, format!("cannot encode the request: {e}")))?;
        tracing::debug!(url = %url, recipient = %recipient, chars = text.chars().count(), "submitting SMS via the sipgate REST API");
        tracing::trace!(text = %text, "message text");
        let reply = self.post(url, "application/json", body).await?;
        if reply.status().is_success() {
            Ok(Receipt::new(&self.gateway, NAME))
        } else {
            Err(http.status_error(&reply))
        }
    }
}

#[smsgw_core::async_trait]
impl Provider for SipgateProvider {
    async fn send(&self, message: &Message) -> Result<Receipt, SendError> {
        // The gateway's exchange bounds the network part in time; the rest is local work.
        match self.api {
            Api::XmlRpc => self.send_xmlrpc(&message.phone, &message.text).await,
            Api::Rest => self.send_rest(&message.phone, &message.text).await,
        }
    }
}
