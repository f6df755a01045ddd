//! The example provider against a loopback JSON gateway: the id comes back, the key travels in
//! its header, busy answers are retry-safe, and the key shows up in no error.

use std::sync::Arc;

use smsgw_core::{ErrorKind, Gateway, GatewayDef, Message, Registry};
use smsgw_testkit::http::{Handled, Handler, HttpRequest, HttpResponse, HttpSink};
use smsgw_testkit::{Fault, Received};

const KEY: &str = "key-5e1f-secret";

/// A JSON SMS API: answers `{"id": "msg-N"}`, or the fault's status and text.
struct JsonApi;

impl Handler for JsonApi {
    fn handle(&self, request: &HttpRequest, fault: Option<&Fault>) -> Handled {
        let response = match fault {
            Some(Fault::Reply { code, text }) => HttpResponse::text(*code as u16, text.clone()),
            _ => HttpResponse::with_type(
                200,
                "application/json",
                format!(r#"{{"id": "msg-{}"}}"#, request.n),
            ),
        };
        let json = request.json.clone().unwrap_or_default();
        let field = |k: &str| json[k].as_str().unwrap_or_default().to_owned();
        let received = Received {
            protocol: "http".into(),
            recipient: field("to"),
            text: field("text"),
            detail: serde_json::Value::Null,
        };
        Handled {
            response,
            received: Some(received),
        }
    }
}

fn gateway(url: &str) -> Gateway {
    use smsgw_json_provider as _;
    let def = GatewayDef {
        id: "acme".into(),
        provider: "jsonsms".into(),
        options: [("URL", url), ("API_KEY", KEY), ("TIMEOUT", "5")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    };
    Gateway::build(&def, &Default::default(), Registry::global()).unwrap()
}

#[tokio::test]
async fn sends_json_and_returns_the_id() {
    let sink = HttpSink::builder()
        .handler(Arc::new(JsonApi))
        .start()
        .await
        .unwrap();
    let gw = gateway(&format!("{}/v1/sms", sink.url()));
    let receipt = gw
        .send(&Message::new("+4915112345678", "Your code: 123456"))
        .await
        .unwrap();
    assert_eq!(receipt.message_ids, ["msg-0"]);
    let req = &sink.requests()[0];
    assert_eq!(
        (req.method.as_str(), req.path.as_str()),
        ("POST", "/v1/sms")
    );
    assert_eq!(req.header("x-api-key"), Some(KEY));
    assert_eq!(
        req.json,
        Some(serde_json::json!({"to": "+4915112345678", "text": "Your code: 123456"}))
    );
}

#[tokio::test]
async fn busy_is_retry_safe_and_errors_are_classified() {
    let sink = HttpSink::builder()
        .handler(Arc::new(JsonApi))
        .start()
        .await
        .unwrap();
    let gw = gateway(&sink.url());
    let msg = Message::new("+4915112345678", "123456");
    for (code, kind) in [
        (429, ErrorKind::NotSent),
        (503, ErrorKind::NotSent),
        (400, ErrorKind::Refused),
        (500, ErrorKind::Unknown),
    ] {
        let text = format!("status {code}, your key was {KEY}");
        sink.faults().next(1, Fault::Reply { code, text });
        let e = gw.send(&msg).await.unwrap_err();
        assert_eq!(e.kind(), kind, "{code}: {e}");
        assert!(!e.to_string().contains(KEY), "{e}");
    }
    // A 2xx without an id: the gateway has the message, so unknown.
    sink.faults().next(
        1,
        Fault::Reply {
            code: 200,
            text: "accepted".into(),
        },
    );
    let e = gw.send(&msg).await.unwrap_err();
    assert_eq!(
        (e.kind(), e.code()),
        (ErrorKind::Unknown, Some("bad_reply"))
    );
    assert!(gw.send(&msg).await.is_ok());
}

/// The promise of smsgw-reqwest: a typical JSON provider in at most 40 lines of code (not
/// counting blank lines, comments and crate attributes).
#[test]
fn the_provider_is_at_most_40_lines_of_code() {
    let code = include_str!("../src/lib.rs")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("//") && !l.starts_with("#!["))
        .count();
    assert!(code <= 40, "{code} lines of code");
}
