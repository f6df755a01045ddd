//! A sipgate-compatible sink on top of the [HTTP sink](crate::http): the XML-RPC interface
//! (`samurai.SessionInitiate` on any path, e.g. `/RPC2`) and the REST endpoint
//! `POST …/sessions/sms` (JSON).
//!
//! XML-RPC calls are parsed with a real XML parser (roxmltree); a body that is not a well-formed
//! `methodCall` is recorded with `xmlrpc_error` set and answered with an XML-RPC fault. Values
//! become JSON (struct → object, array → array, int/double → number, boolean → bool, anything else
//! → string), the form the golden files use: `{"method": …, "params": [ … ]}`.
//!
//! By default it answers a struct with `StatusCode` 200. A [`Fault::Reply`] in the
//! [`FaultPlan`] becomes `StatusCode`/`StatusString` (XML-RPC) or the HTTP status and body (REST);
//! [`SipgateSink::answers`] gives finer control: an XML-RPC `<fault>`, garbage, an HTTP status.
//! With [`SipgateSinkBuilder::credentials`] it answers 401 to wrong basic-auth credentials.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! use smsgw_sinks::sipgate::{SipgateAnswer, SipgateSink};
//! let sink = SipgateSink::builder().credentials("user", "secret").start().await?;
//! sink.answers().next(1, SipgateAnswer::Fault { code: 4, text: "bad".into() });
//! assert!(sink.rpc_url().ends_with("/RPC2"));
//! # Ok(()) }
//! ```

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::http::{Handled, Handler, HttpRequest, HttpResponse, HttpSink};
use crate::{Fault, FaultPlan, Received, Recorder};

/// An answer the sipgate sink gives instead of success.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SipgateAnswer {
    /// A struct with this `StatusCode` and `StatusString` (REST: this HTTP status and body).
    Status {
        /// `StatusCode`.
        code: i64,
        /// `StatusString`.
        text: String,
    },
    /// An XML-RPC `<fault>` with `faultCode` and `faultString` (REST: HTTP 400 with the text).
    Fault {
        /// `faultCode`.
        code: i64,
        /// `faultString`.
        text: String,
    },
    /// HTTP 200 with this body, which is not XML-RPC.
    Garbage(String),
    /// This HTTP status with this body.
    Http {
        /// The HTTP status.
        status: u16,
        /// The body.
        body: String,
    },
}

/// Which requests get a [`SipgateAnswer`], counted like a [`FaultPlan`] (from 0, per request).
/// Faults of the [`FaultPlan`] (delay, never answer, close) apply first.
pub type AnswerPlan = crate::Plan<SipgateAnswer>;

/// An XML-RPC call as parsed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct XmlRpcCall {
    /// `methodName`.
    pub method: String,
    /// The parameters as JSON values.
    pub params: Vec<Value>,
}

/// One request at the sipgate sink.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SipgateRequest {
    /// `xmlrpc` or `rest`.
    pub api: &'static str,
    /// The parsed call (XML-RPC).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub xmlrpc: Option<XmlRpcCall>,
    /// Why the body is not a valid XML-RPC call, when it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub xmlrpc_error: Option<String>,
    /// Whether the basic-auth credentials matched (always true without
    /// [`SipgateSinkBuilder::credentials`]).
    pub authorized: bool,
    /// The HTTP request underneath.
    pub http: HttpRequest,
}

impl SipgateRequest {
    /// The `RemoteUri`, `TOS` and `Content` members of a `samurai.SessionInitiate` struct.
    pub fn session_initiate(&self) -> Option<(String, String, String)> {
        let call = self.xmlrpc.as_ref()?;
        let s = call.params.first()?.as_object()?;
        let get = |k: &str| s.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        Some((get("RemoteUri"), get("TOS"), get("Content")))
    }
}

struct State {
    /// Shared with the HTTP sink underneath; says how many requests to keep.
    recorder: Recorder,
    credentials: Option<String>,
    answers: AnswerPlan,
    requests: Mutex<Vec<SipgateRequest>>,
    session: Mutex<u64>,
}

struct SipgateHandler(Arc<State>);

/// Configures a [`SipgateSink`].
#[derive(Default)]
pub struct SipgateSinkBuilder {
    credentials: Option<String>,
    tls: bool,
    recorder: Option<Recorder>,
}

impl SipgateSinkBuilder {
    /// Accept only these basic-auth credentials; others get HTTP 401.
    pub fn credentials(mut self, user: &str, password: &str) -> Self {
        self.credentials = Some(format!("{user}:{password}"));
        self
    }
    /// Speak HTTPS with a self-signed certificate.
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }
    /// Record into this recorder.
    pub fn recorder(mut self, recorder: Recorder) -> Self {
        self.recorder = Some(recorder);
        self
    }
    /// Starts on `127.0.0.1`, port chosen by the system.
    pub async fn start(self) -> io::Result<SipgateSink> {
        self.start_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }
    /// Starts on `addr`.
    pub async fn start_on(self, addr: SocketAddr) -> io::Result<SipgateSink> {
        let recorder = self.recorder.unwrap_or_default();
        let state = Arc::new(State {
            recorder: recorder.clone(),
            credentials: self.credentials,
            answers: AnswerPlan::default(),
            requests: Mutex::new(Vec::new()),
            session: Mutex::new(0),
        });
        let mut b = HttpSink::builder().handler(Arc::new(SipgateHandler(state.clone())));
        if self.tls {
            b = b.tls();
        }
        b = b.recorder(recorder);
        let http = b.start_on(addr).await?;
        Ok(SipgateSink { http, state })
    }
}

/// A loopback sipgate: XML-RPC (`samurai.SessionInitiate`) and REST (`POST …/sessions/sms`).
/// Stops when dropped.
pub struct SipgateSink {
    http: HttpSink,
    state: Arc<State>,
}

impl std::fmt::Debug for SipgateSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SipgateSink")
            .field("addr", &self.http.addr())
            .finish_non_exhaustive()
    }
}

impl SipgateSink {
    /// A sink accepting any credentials on `127.0.0.1`.
    pub async fn start() -> io::Result<SipgateSink> {
        SipgateSinkBuilder::default().start().await
    }
    /// A sink accepting any credentials on `addr`.
    pub async fn start_on(addr: SocketAddr) -> io::Result<SipgateSink> {
        SipgateSinkBuilder::default().start_on(addr).await
    }
    /// Configure a sink.
    pub fn builder() -> SipgateSinkBuilder {
        SipgateSinkBuilder::default()
    }
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.http.addr()
    }
    /// The XML-RPC endpoint: `http://127.0.0.1:PORT/RPC2` (any path works).
    pub fn rpc_url(&self) -> String {
        format!("{}/RPC2", self.http.url())
    }
    /// The REST base URL: `http://127.0.0.1:PORT/v2` (the provider appends `/sessions/sms`).
    pub fn rest_url(&self) -> String {
        format!("{}/v2", self.http.url())
    }
    /// The HTTP sink underneath (raw requests, connection count).
    pub fn http(&self) -> &HttpSink {
        &self.http
    }
    /// The uniform record: protocol `xmlrpc` or `sipgate-rest`, recipient = the number of the SIP
    /// URI or the REST `recipient`, text = `Content` or `message`.
    pub fn recorder(&self) -> &Recorder {
        self.http.recorder()
    }
    /// Transport faults (delay, never answer, close) and `Reply` → StatusCode/StatusString.
    pub fn faults(&self) -> &FaultPlan {
        self.http.faults()
    }
    /// Protocol answers (XML-RPC fault, garbage, HTTP status).
    pub fn answers(&self) -> &AnswerPlan {
        &self.state.answers
    }
    /// Every request so far.
    pub fn requests(&self) -> Vec<SipgateRequest> {
        self.state.requests.lock().unwrap().clone()
    }
    /// Waits until at least `n` requests arrived or `timeout` passes.
    pub async fn wait_for_requests(&self, n: usize, timeout: Duration) -> Vec<SipgateRequest> {
        self.http.wait_for_requests(n, timeout).await;
        self.requests()
    }
}

impl Handler for SipgateHandler {
    fn handle(&self, request: &HttpRequest, fault: Option<&Fault>) -> Handled {
        let st = &self.0;
        let answer = st.answers.next_request();
        let authorized = st
            .credentials
            .as_ref()
            .is_none_or(|c| request.basic_auth.as_deref() == Some(c.as_str()));
        let rest = request.path.ends_with("/sessions/sms");
        let (xmlrpc, xmlrpc_error) = if rest {
            (None, None)
        } else {
            match parse_call(&request.body) {
                Ok(c) => (Some(c), None),
                Err(e) => (None, Some(e)),
            }
        };
        let record = SipgateRequest {
            api: if rest { "rest" } else { "xmlrpc" },
            xmlrpc,
            xmlrpc_error,
            authorized,
            http: request.clone(),
        };
        {
            let mut list = st.requests.lock().unwrap();
            if st.recorder.keeps(list.len()) {
                list.push(record.clone());
            }
        }

        let received = if rest {
            request.json.as_ref().map(|j| {
                let s = |k: &str| j.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
                Received {
                    protocol: "sipgate-rest".into(),
                    recipient: s("recipient"),
                    text: s("message"),
                    detail: serde_json::to_value(&record).unwrap_or_default(),
                }
            })
        } else {
            record.session_initiate().map(|(uri, _tos, content)| {
                let number = uri
                    .strip_prefix("sip:")
                    .unwrap_or(&uri)
                    .split('@')
                    .next()
                    .unwrap_or("")
                    .to_owned();
                Received {
                    protocol: "xmlrpc".into(),
                    recipient: number,
                    text: content,
                    detail: serde_json::to_value(&record).unwrap_or_default(),
                }
            })
        };
        if !authorized {
            return Handled {
                response: HttpResponse::text(401, "Unauthorized"),
                received: None,
            };
        }
        let answer = answer.or_else(|| match fault {
            Some(Fault::Reply { code, text }) => Some(SipgateAnswer::Status {
                code: i64::from(*code),
                text: text.clone(),
            }),
            _ => None,
        });
        let response = if rest {
            rest_response(answer)
        } else if let Some(err) = &record.xmlrpc_error {
            xml(fault_xml(-32700, &format!("parse error: {err}")))
        } else {
            let session = {
                let mut s = st.session.lock().unwrap();
                *s += 1;
                format!("{:032x}", *s)
            };
            xmlrpc_response(answer, &session)
        };
        Handled { response, received }
    }
}

fn rest_response(answer: Option<SipgateAnswer>) -> HttpResponse {
    match answer {
        None => HttpResponse::text(204, ""),
        Some(SipgateAnswer::Status { code, text }) => {
            HttpResponse::text(u16::try_from(code).unwrap_or(500), text)
        }
        Some(SipgateAnswer::Fault { text, .. }) => HttpResponse::text(400, text),
        Some(SipgateAnswer::Garbage(g)) => HttpResponse::text(200, g),
        Some(SipgateAnswer::Http { status, body }) => HttpResponse::text(status, body),
    }
}

fn xml(body: String) -> HttpResponse {
    HttpResponse::with_type(200, "text/xml", body)
}

fn xmlrpc_response(answer: Option<SipgateAnswer>, session: &str) -> HttpResponse {
    match answer {
        None => xml(status_xml(200, "Method success", Some(session))),
        Some(SipgateAnswer::Status { code, text }) => xml(status_xml(code, &text, None)),
        Some(SipgateAnswer::Fault { code, text }) => xml(fault_xml(code, &text)),
        Some(SipgateAnswer::Garbage(g)) => HttpResponse::text(200, g),
        Some(SipgateAnswer::Http { status, body }) => HttpResponse::text(status, body),
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn member(name: &str, value: &str) -> String {
    format!("<member><name>{name}</name><value>{value}</value></member>")
}

fn status_xml(code: i64, text: &str, session: Option<&str>) -> String {
    let mut members = member("StatusCode", &format!("<i4>{code}</i4>"));
    members += &member(
        "StatusString",
        &format!("<string>{}</string>", escape(text)),
    );
    if let Some(s) = session {
        members += &member("SessionID", &format!("<string>{s}</string>"));
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<methodResponse><params><param><value><struct>{members}</struct></value></param></params></methodResponse>\n"
    )
}

fn fault_xml(code: i64, text: &str) -> String {
    let members = member("faultCode", &format!("<int>{code}</int>"))
        + &member("faultString", &format!("<string>{}</string>", escape(text)));
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<methodResponse><fault><value><struct>{members}</struct></value></fault></methodResponse>\n"
    )
}

/// A hostile XML-RPC reply: `depth` arrays nested in one another (20 000 of them are 840 KiB),
/// closed properly. For the reply of a [`HostileServer`](crate::http::hostile::HostileServer).
pub fn nested_arrays_reply(depth: usize) -> Vec<u8> {
    let mut xml = String::from("<?xml version=\"1.0\"?>\n<methodResponse><params><param>");
    xml += &"<value><array><data>".repeat(depth);
    xml += &"</data></array></value>".repeat(depth);
    xml += "</param></params></methodResponse>\n";
    xml.into_bytes()
}

/// A hostile XML-RPC reply that never ends: arrays opened in one another, chunked, until the
/// client hangs up.
pub fn endless_nested_reply() -> crate::http::hostile::HostileReply {
    crate::http::hostile::HostileReply::Endless {
        chunked: true,
        content_type: "text/xml".into(),
        prefix: b"<?xml version=\"1.0\"?>\n<methodResponse><params><param>".to_vec(),
        filler: "<value><array><data>".repeat(800).into_bytes(),
    }
}

/// Parses an XML-RPC `methodCall` (UTF-8) into its method name and parameters.
pub fn parse_call(body: &[u8]) -> Result<XmlRpcCall, String> {
    let text = std::str::from_utf8(body).map_err(|e| format!("not UTF-8: {e}"))?;
    let doc = roxmltree::Document::parse(text).map_err(|e| e.to_string())?;
    let root = doc.root_element();
    if root.tag_name().name() != "methodCall" {
        return Err(format!("root element is <{}>", root.tag_name().name()));
    }
    let method = child(root, "methodName")
        .map(|n| n.text().unwrap_or("").trim().to_owned())
        .ok_or("no <methodName>")?;
    let mut params = Vec::new();
    if let Some(ps) = child(root, "params") {
        for p in elements(ps).filter(|n| n.has_tag_name("param")) {
            let v = child(p, "value").ok_or("<param> without <value>")?;
            params.push(parse_value(v)?);
        }
    }
    Ok(XmlRpcCall { method, params })
}

fn elements<'a, 'i>(n: roxmltree::Node<'a, 'i>) -> impl Iterator<Item = roxmltree::Node<'a, 'i>> {
    n.children().filter(|c| c.is_element())
}

fn child<'a, 'i>(n: roxmltree::Node<'a, 'i>, name: &str) -> Option<roxmltree::Node<'a, 'i>> {
    elements(n).find(|c| c.has_tag_name(name))
}

fn all_text(n: roxmltree::Node) -> String {
    n.descendants()
        .filter(|d| d.is_text())
        .filter_map(|d| d.text())
        .collect()
}

fn parse_value(v: roxmltree::Node) -> Result<Value, String> {
    let Some(typed) = elements(v).next() else {
        return Ok(Value::String(all_text(v)));
    };
    let text = all_text(typed);
    Ok(match typed.tag_name().name() {
        "string" | "dateTime.iso8601" | "base64" => Value::String(text),
        "int" | "i4" | "i8" => Value::from(
            text.trim()
                .parse::<i64>()
                .map_err(|e| format!("bad int '{text}': {e}"))?,
        ),
        "double" => Value::from(
            text.trim()
                .parse::<f64>()
                .map_err(|e| format!("bad double '{text}': {e}"))?,
        ),
        "boolean" => Value::Bool(match text.trim() {
            "1" => true,
            "0" => false,
            other => return Err(format!("bad boolean '{other}'")),
        }),
        "nil" => Value::Null,
        "array" => {
            let data = child(typed, "data").ok_or("<array> without <data>")?;
            Value::Array(
                elements(data)
                    .filter(|n| n.has_tag_name("value"))
                    .map(parse_value)
                    .collect::<Result<_, _>>()?,
            )
        }
        "struct" => {
            let mut m = Map::new();
            for mem in elements(typed).filter(|n| n.has_tag_name("member")) {
                let name = child(mem, "name").ok_or("<member> without <name>")?;
                let val = child(mem, "value").ok_or("<member> without <value>")?;
                m.insert(all_text(name), parse_value(val)?);
            }
            Value::Object(m)
        }
        other => return Err(format!("unknown value type <{other}>")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_golden_call() {
        let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<methodCall>\n<methodName>samurai.SessionInitiate</methodName>\n<params>\n<param>\n<value>\n<struct>\n<member>\n<name>RemoteUri</name>\n<value><string>sip:491511234567@sipgate.de</string></value>\n</member>\n<member>\n<name>TOS</name>\n<value><string>text</string></value>\n</member>\n<member>\n<name>Content</name>\n<value><string>Grüße &lt;&amp;&gt; ]]&gt;</string></value>\n</member>\n</struct>\n</value>\n</param>\n</params>\n</methodCall>";
        let c = parse_call(body.as_bytes()).unwrap();
        assert_eq!(c.method, "samurai.SessionInitiate");
        assert_eq!(
            c.params[0],
            serde_json::json!({"RemoteUri": "sip:491511234567@sipgate.de", "TOS": "text", "Content": "Grüße <&> ]]>"})
        );
        assert!(parse_call(b"<methodCall><methodName>x</methodName><params><param><value><int>z</int></value></param></params></methodCall>").is_err());
        assert!(parse_call(b"not xml").is_err());
        let c = parse_call(b"<methodCall><methodName>m</methodName><params><param><value>bare</value></param><param><value><array><data><value><boolean>1</boolean></value><value><i4>-3</i4></value></data></array></value></param></params></methodCall>").unwrap();
        assert_eq!(
            c.params,
            vec![serde_json::json!("bare"), serde_json::json!([true, -3])]
        );
    }
}
