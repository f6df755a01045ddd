//! Sinks that remember when each request came and whether it was accepted, and routers built
//! from TOML pointed at them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use smsgw_core::{Gateways, Registry};
use smsgw_routing::Router;
use smsgw_testkit::Fault;
use smsgw_testkit::http::{FormHandler, Handled, Handler, HttpRequest, HttpSink};
use tokio::time::Instant;

/// One request as the sink saw it: when (the sink's clock), the text, and whether it answered
/// 200 (the message was accepted, i.e. sent).
#[derive(Debug, Clone)]
pub struct Seen {
    pub at: Instant,
    pub text: String,
    pub accepted: bool,
}

/// Wraps the default handler: records every request with its arrival time, and records a
/// received message only when the sink accepted it (a 503 is not a delivery).
#[derive(Default)]
struct Tracking {
    inner: FormHandler,
    log: Arc<Mutex<Vec<Seen>>>,
}

impl Handler for Tracking {
    fn handle(&self, request: &HttpRequest, fault: Option<&Fault>) -> Handled {
        let mut handled = self.inner.handle(request, fault);
        let accepted = matches!(fault, None | Some(Fault::Delay(_)));
        let text = handled
            .received
            .as_ref()
            .map(|r| r.text.clone())
            .unwrap_or_default();
        self.log.lock().unwrap().push(Seen {
            at: Instant::now(),
            text,
            accepted,
        });
        if !accepted {
            handled.received = None;
        }
        handled
    }
}

pub struct Sink {
    pub http: HttpSink,
    log: Arc<Mutex<Vec<Seen>>>,
}

impl Sink {
    /// A sink that answers every request `503 busy` (a gateway that is down for now).
    pub async fn busy() -> Sink {
        let s = Sink::start().await;
        s.http.faults().always(smsgw_testkit::Fault::Reply {
            code: 503,
            text: "busy".into(),
        });
        s
    }

    pub async fn start() -> Sink {
        let log = Arc::new(Mutex::new(Vec::new()));
        let handler = Tracking {
            inner: FormHandler::default(),
            log: log.clone(),
        };
        let http = HttpSink::builder()
            .handler(Arc::new(handler))
            .start()
            .await
            .unwrap();
        Sink { http, log }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.log.lock().unwrap().clone()
    }

    /// Texts of the messages the sink accepted.
    pub fn accepted(&self) -> Vec<String> {
        self.seen()
            .into_iter()
            .filter(|s| s.accepted)
            .map(|s| s.text)
            .collect()
    }

    pub fn url(&self) -> String {
        format!("{}/send", self.http.url())
    }
}

/// A URL on loopback where nothing listens (connection refused).
pub fn refused_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("http://127.0.0.1:{port}/send")
}

/// A gateway definition for the http provider posting `to` and `text` to `url`.
pub fn gateway(id: &str, url: &str, timeout: f64) -> String {
    format!(
        r#"
[gateways.{id}]
provider = "http"
options = {{ URL = "{url}", HTTP_METHOD = "POST", to = "{{phone}}", text = "{{otp}}", TIMEOUT = "{timeout}" }}
"#
    )
}

pub fn router(toml: &str) -> Router {
    let (config, routing) = smsgw_routing::load_toml_str(toml).unwrap_or_else(|e| panic!("{e}"));
    let gateways = Gateways::build(&config, Registry::global()).unwrap_or_else(|e| panic!("{e}"));
    Router::build(&routing, &gateways).unwrap_or_else(|e| panic!("{e}"))
}

/// Lets requests that may still be on their way arrive before counting.
pub async fn settle() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

pub fn kinds(attempts: &[smsgw_routing::Attempt]) -> Vec<&'static str> {
    attempts.iter().map(|a| a.kind.as_str()).collect()
}
