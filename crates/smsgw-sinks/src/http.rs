//! An HTTP/1.1 gateway sink: records every request it receives, decoded, and answers `200 OK`
//! unless its [`FaultPlan`] says otherwise.
//!
//! It keeps connections alive and counts the TCP connections it accepted (to prove that a client
//! reuses them), can speak TLS with a fresh self-signed certificate ([`HttpSinkBuilder::tls`]), and
//! records requests in absolute form (`GET http://host/path HTTP/1.1`) like any other, so that a
//! test can point a client's HTTP proxy at it.
//!
//! Every request becomes an [`HttpRequest`] (method, target, path, query pairs, headers in order,
//! raw body, form or JSON body parsed, basic auth decoded) and, through the sink's [`Handler`], a
//! [`Received`] in the sink's [`Recorder`]. The default handler ([`FormHandler`]) takes the recipient
//! and the text from configurable field names ([`FieldNames`]) of the query, the form or the JSON
//! body. Other protocols built on HTTP (the sipgate sink) bring their own handler.
//!
//! Every request is recorded when it arrives, before the fault plan's delay, silence or close is
//! applied: a client whose send timed out can still check what the sink received.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! use smsgw_sinks::http::HttpSink;
//! use smsgw_sinks::Fault;
//!
//! let sink = HttpSink::start().await?;
//! sink.faults().nth(1, Fault::Reply { code: 503, text: "busy".into() });
//! // point a gateway's URL at `sink.url()` and send …
//! assert!(sink.url().starts_with("http://127.0.0.1:"));
//! assert!(sink.requests().is_empty());
//! # Ok(()) }
//! ```

pub mod hostile;
mod request;

pub use request::HttpRequest;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};

use crate::{Fault, FaultPlan, Received, Recorder};

/// What a sink answers to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// The HTTP status.
    pub status: u16,
    /// Extra headers (`Content-Length` is added by the server).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// A `text/plain; charset=utf-8` answer.
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        HttpResponse {
            status,
            headers: vec![("content-type".into(), "text/plain; charset=utf-8".into())],
            body: body.into().into_bytes(),
        }
    }

    /// An answer with the given content type.
    pub fn with_type(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        HttpResponse {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            body: body.into(),
        }
    }
}

/// What a [`Handler`] makes of one request: the answer, and the message to record (if the
/// request carried one).
#[derive(Debug, Clone)]
pub struct Handled {
    /// The answer to send (after any delay the fault plan asks for).
    pub response: HttpResponse,
    /// The message to record in the sink's [`Recorder`].
    pub received: Option<Received>,
}

/// Decides how a sink answers a request and what message it records. The sink has already
/// consulted its [`FaultPlan`]: `fault` is what it found for this request. Delays, never answering
/// and closing the connection are done by the sink; a handler only has to turn
/// [`Fault::Reply`] into its protocol's answer.
pub trait Handler: Send + Sync + 'static {
    /// Handles one request.
    fn handle(&self, request: &HttpRequest, fault: Option<&Fault>) -> Handled;
}

/// Which request fields hold the recipient and the text. The first name in each list that the
/// request has (query, then form, then JSON body) wins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldNames {
    /// Names of the recipient field, in order of preference.
    pub recipient: Vec<String>,
    /// Names of the text field, in order of preference.
    pub text: Vec<String>,
}

impl Default for FieldNames {
    /// Recipient: `to`, `phone`, `recipient`, `number`; text: `text`, `message`, `body`, `msg`
    /// (each also tried capitalised, as Twilio's `To`/`Body`).
    fn default() -> Self {
        let both = |names: &[&str]| {
            let mut v: Vec<String> = names.iter().map(|s| s.to_string()).collect();
            v.extend(names.iter().map(|s| {
                let mut c = s.chars();
                c.next()
                    .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                    .unwrap_or_default()
            }));
            v
        };
        FieldNames {
            recipient: both(&["to", "phone", "recipient", "number"]),
            text: both(&["text", "message", "body", "msg"]),
        }
    }
}

impl FieldNames {
    /// Exactly these field names.
    pub fn new<R, T>(recipient: R, text: T) -> Self
    where
        R: IntoIterator,
        R::Item: Into<String>,
        T: IntoIterator,
        T::Item: Into<String>,
    {
        FieldNames {
            recipient: recipient.into_iter().map(Into::into).collect(),
            text: text.into_iter().map(Into::into).collect(),
        }
    }

    /// The recipient and the text of `request` (empty when absent).
    pub fn extract(&self, request: &HttpRequest) -> (String, String) {
        let first = |names: &[String]| {
            names
                .iter()
                .find_map(|n| request.param(n))
                .unwrap_or_default()
        };
        (first(&self.recipient), first(&self.text))
    }
}

/// The default [`Handler`]: a generic SMS gateway. Answers `200 OK` (or the [`Fault::Reply`] status
/// and text) and records a [`Received`] with protocol `http` for every request but `CONNECT`.
#[derive(Debug, Clone, Default)]
pub struct FormHandler {
    /// Where the recipient and the text are.
    pub fields: FieldNames,
}

impl Handler for FormHandler {
    fn handle(&self, request: &HttpRequest, fault: Option<&Fault>) -> Handled {
        let response = match fault {
            Some(Fault::Reply { code, text }) => {
                HttpResponse::text(u16::try_from(*code).unwrap_or(500), text.clone())
            }
            _ => HttpResponse::text(200, "OK"),
        };
        let received = (request.method != "CONNECT").then(|| {
            let (recipient, text) = self.fields.extract(request);
            Received {
                protocol: "http".into(),
                recipient,
                text,
                detail: serde_json::to_value(request).unwrap_or_default(),
            }
        });
        Handled { response, received }
    }
}

/// Configures an [`HttpSink`] before it starts.
pub struct HttpSinkBuilder {
    tls: bool,
    handler: Arc<dyn Handler>,
    recorder: Recorder,
    faults: FaultPlan,
}

impl Default for HttpSinkBuilder {
    fn default() -> Self {
        HttpSinkBuilder {
            tls: false,
            handler: Arc::new(FormHandler::default()),
            recorder: Recorder::new(),
            faults: FaultPlan::default(),
        }
    }
}

impl HttpSinkBuilder {
    /// Speak HTTPS with a fresh self-signed certificate for `localhost` and `127.0.0.1`
    /// (see [`HttpSink::certificate_pem`]).
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// Where the default handler finds the recipient and the text.
    pub fn fields(mut self, fields: FieldNames) -> Self {
        self.handler = Arc::new(FormHandler { fields });
        self
    }

    /// A handler of your own (replaces the default [`FormHandler`]).
    pub fn handler(mut self, handler: Arc<dyn Handler>) -> Self {
        self.handler = handler;
        self
    }

    /// Records into this recorder (e.g. one shared by several sinks).
    pub fn recorder(mut self, recorder: Recorder) -> Self {
        self.recorder = recorder;
        self
    }

    /// Uses this fault plan (e.g. one shared with a protocol sink built on this one).
    pub fn faults(mut self, faults: FaultPlan) -> Self {
        self.faults = faults;
        self
    }

    /// Starts on `127.0.0.1` on a free port.
    pub async fn start(self) -> io::Result<HttpSink> {
        self.start_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Starts on `addr`.
    pub async fn start_on(self, addr: SocketAddr) -> io::Result<HttpSink> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (acceptor, cert_pem) = if self.tls {
            let crate::tls::SelfSigned {
                acceptor: a,
                cert_pem: pem,
                ..
            } = crate::tls::self_signed(&[b"http/1.1"])?;
            (Some(a), Some(pem))
        } else {
            (None, None)
        };
        let shared = Arc::new(Shared {
            recorder: self.recorder,
            faults: self.faults,
            handler: self.handler,
            requests: Mutex::new(Vec::new()),
            seen: AtomicUsize::new(0),
            notify: Notify::new(),
            connections: AtomicUsize::new(0),
            tls: acceptor.is_some(),
        });
        let task = tokio::spawn(accept_loop(listener, acceptor, shared.clone()));
        Ok(HttpSink {
            addr,
            shared,
            task,
            cert_pem,
        })
    }
}

struct Shared {
    recorder: Recorder,
    faults: FaultPlan,
    handler: Arc<dyn Handler>,
    requests: Mutex<Vec<HttpRequest>>,
    /// Requests received, kept or not (numbers them).
    seen: AtomicUsize,
    notify: Notify,
    connections: AtomicUsize,
    tls: bool,
}

/// A loopback HTTP/1.1 server that records requests. Stops when dropped.
pub struct HttpSink {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
    cert_pem: Option<String>,
}

impl std::fmt::Debug for HttpSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSink")
            .field("addr", &self.addr)
            .field("tls", &self.shared.tls)
            .finish_non_exhaustive()
    }
}

impl HttpSink {
    /// A sink with the defaults (plain HTTP, [`FormHandler`]) on `127.0.0.1`, port chosen by the
    /// system.
    pub async fn start() -> io::Result<HttpSink> {
        HttpSinkBuilder::default().start().await
    }

    /// A sink with the defaults on `addr`.
    pub async fn start_on(addr: SocketAddr) -> io::Result<HttpSink> {
        HttpSinkBuilder::default().start_on(addr).await
    }

    /// Configure a sink (TLS, field names, handler, shared recorder).
    pub fn builder() -> HttpSinkBuilder {
        HttpSinkBuilder::default()
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (or `https://…` with TLS), without a trailing slash.
    pub fn url(&self) -> String {
        let scheme = if self.shared.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Whether it speaks TLS.
    pub fn is_tls(&self) -> bool {
        self.shared.tls
    }

    /// The self-signed certificate in PEM, when it speaks TLS (to trust it in a client).
    pub fn certificate_pem(&self) -> Option<&str> {
        self.cert_pem.as_deref()
    }

    /// The uniform record of messages received.
    pub fn recorder(&self) -> &Recorder {
        &self.shared.recorder
    }

    /// How it misbehaves; consulted once per request.
    pub fn faults(&self) -> &FaultPlan {
        &self.shared.faults
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<HttpRequest> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// Forgets the requests (and the recorder's messages) received so far.
    pub fn clear(&self) {
        self.shared.requests.lock().unwrap().clear();
        self.shared.seen.store(0, Ordering::Relaxed);
        self.shared.recorder.clear();
    }

    /// Waits until at least `n` requests arrived or `timeout` passes; returns what is there.
    pub async fn wait_for_requests(&self, n: usize, timeout: Duration) -> Vec<HttpRequest> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.notify.notified();
            if self.shared.requests.lock().unwrap().len() >= n {
                break;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                break;
            }
        }
        self.requests()
    }

    /// How many TCP connections it accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }
}

impl Drop for HttpSink {
    fn drop(&mut self) {
        // Aborting the accept task drops its JoinSet, which aborts every connection task.
        self.task.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shared: Arc<Shared>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _peer)) = accepted else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let connection = shared.connections.fetch_add(1, Ordering::SeqCst);
                let shared = shared.clone();
                let tls = tls.clone();
                conns.spawn(async move {
                    match tls {
                        Some(acceptor) => {
                            if let Ok(Ok(s)) = tokio::time::timeout(
                                Duration::from_secs(10),
                                acceptor.accept(stream),
                            )
                            .await
                            {
                                serve(s, connection, shared).await;
                            }
                        }
                        None => serve(stream, connection, shared).await,
                    }
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

/// The sink closes a connection on [`Fault::Close`] by failing the service.
#[derive(Debug)]
struct CloseConnection;

impl std::fmt::Display for CloseConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("fault: close the connection")
    }
}

impl std::error::Error for CloseConnection {}

async fn serve<S>(stream: S, connection: usize, shared: Arc<Shared>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req: Request<Incoming>| {
        let shared = shared.clone();
        async move { handle(req, connection, shared).await }
    });
    let _ = http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

async fn handle(
    req: Request<Incoming>,
    connection: usize,
    shared: Arc<Shared>,
) -> Result<Response<Full<Bytes>>, CloseConnection> {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes().to_vec(),
        Err(_) => return Err(CloseConnection),
    };
    let fault = shared.faults.next_request();
    let request = {
        let index = shared.seen.fetch_add(1, Ordering::Relaxed);
        let r = request::decode(&parts, body, index, connection, shared.tls);
        let mut list = shared.requests.lock().unwrap();
        if shared.recorder.keeps(list.len()) {
            list.push(r.clone());
        }
        r
    };
    shared.notify.notify_waiters();
    let handled = shared.handler.handle(&request, fault.as_ref());
    if let Some(received) = handled.received {
        shared.recorder.record(received);
    }
    match fault {
        Some(Fault::Delay(d)) => tokio::time::sleep(d).await,
        Some(Fault::NeverAnswer) => std::future::pending::<()>().await,
        Some(Fault::Close) => return Err(CloseConnection),
        _ => {}
    }
    let mut resp = Response::builder().status(
        StatusCode::from_u16(handled.response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
    );
    for (k, v) in &handled.response.headers {
        resp = resp.header(k.as_str(), v.as_str());
    }
    Ok(resp
        .body(Full::new(Bytes::from(handled.response.body)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    async fn raw(addr: SocketAddr, req: &str) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(req.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[tokio::test]
    async fn records_get_query_and_answers_ok() {
        let sink = HttpSink::start().await.unwrap();
        let resp = raw(
            sink.addr(),
            "GET /sms/send?to=%2B49+151&text=Your+code%3A+1&x=%7E HTTP/1.1\r\nHost: h\r\nX-B: 1\r\nX-A: 2\r\nAuthorization: Basic Ym9iOnBhNTV3b3Jk\r\n\r\n",
        )
        .await;
        assert!(resp.starts_with("HTTP/1.1 200 OK"), "{resp}");
        assert!(resp.ends_with("OK"));
        let r = &sink.requests()[0];
        assert_eq!(r.path, "/sms/send");
        assert_eq!(r.query_raw, "to=%2B49+151&text=Your+code%3A+1&x=%7E");
        assert_eq!(r.query[0], ("to".into(), "+49 151".into()));
        assert_eq!(r.query[1].1, "Your code: 1");
        let names: Vec<_> = r.headers.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["host", "x-b", "x-a", "authorization"]);
        assert_eq!(r.basic_auth.as_deref(), Some("bob:pa55word"));
        let got = sink.recorder().all();
        assert_eq!(got[0].recipient, "+49 151");
        assert_eq!(got[0].text, "Your code: 1");
        assert_eq!(got[0].detail["query_raw"], r.query_raw);
    }

    #[tokio::test]
    async fn records_form_json_and_absolute_targets() {
        let sink = HttpSink::start().await.unwrap();
        let body = "phone=%2B1&message=a+%26+b";
        raw(
            sink.addr(),
            &format!(
                "POST http://gw.example/x HTTP/1.1\r\nHost: gw.example\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ),
        )
        .await;
        let json = r#"{"recipient":"+2","msg":"hi","n":1}"#;
        raw(
            sink.addr(),
            &format!(
                "POST /j HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{json}",
                json.len()
            ),
        )
        .await;
        let reqs = sink.requests();
        assert_eq!(reqs[0].target, "http://gw.example/x");
        assert_eq!(reqs[0].path, "/x");
        assert_eq!(reqs[0].form.as_ref().unwrap()[1].1, "a & b");
        assert_eq!(reqs[1].json.as_ref().unwrap()["n"], 1);
        assert_eq!(reqs[1].param("n").as_deref(), Some("1"));
        let got = sink.recorder().all();
        assert_eq!(
            (got[0].recipient.as_str(), got[0].text.as_str()),
            ("+1", "a & b")
        );
        assert_eq!(
            (got[1].recipient.as_str(), got[1].text.as_str()),
            ("+2", "hi")
        );
    }

    #[tokio::test]
    async fn obeys_faults_and_counts_connections() {
        let sink = HttpSink::start().await.unwrap();
        sink.faults().nth(
            0,
            Fault::Reply {
                code: 503,
                text: "busy".into(),
            },
        );
        sink.faults().nth(1, Fault::Close);
        let r = raw(sink.addr(), "GET / HTTP/1.1\r\nHost: h\r\n\r\n").await;
        assert!(r.starts_with("HTTP/1.1 503"), "{r}");
        assert!(r.ends_with("busy"));
        let r = raw(sink.addr(), "GET / HTTP/1.1\r\nHost: h\r\n\r\n").await;
        assert_eq!(r, "");
        assert_eq!(sink.connections(), 2);
        assert_eq!(sink.requests().len(), 2);
    }

    #[tokio::test]
    async fn a_sink_keeping_nothing_still_counts_and_numbers_requests() {
        let sink = HttpSink::start().await.unwrap();
        sink.recorder().keep_at_most(1);
        let form = "POST /send HTTP/1.1\r\nHost: h\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 17\r\n\r\nto=%2B491&text=hi";
        for _ in 0..3 {
            let r = raw(sink.addr(), form).await;
            assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        }
        assert_eq!(sink.recorder().len(), 3, "every message is counted");
        assert_eq!(sink.recorder().all().len(), 1, "only one is kept");
        let kept = sink.requests();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].n, 0);
        sink.recorder().keep_at_most(usize::MAX);
        raw(sink.addr(), form).await;
        assert_eq!(sink.requests()[1].n, 3, "numbers go on across what was not kept");
    }
}
