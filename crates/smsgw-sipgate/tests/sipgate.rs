//! The sipgate provider against the loopback XML-RPC/REST sink, which parses calls with a real
//! XML parser.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use smsgw_core::{ConfigErrors, ErrorKind, Gateway, GatewayDef, Message, Registry};
use smsgw_testkit::Fault;
use smsgw_testkit::sipgate::{SipgateAnswer, SipgateSink};

const USER: &str = "sipuser";
const PASS: &str = "sippass-4e5f";

fn gateway(options: &[(&str, &str)]) -> Result<Gateway, ConfigErrors> {
    assert_eq!(smsgw_sipgate::NAME, "sipgate");
    let def = GatewayDef {
        id: "sg".into(),
        provider: "sipgate".into(),
        options: options
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    };
    Gateway::build(&def, &Default::default(), Registry::global())
}

async fn sink() -> SipgateSink {
    SipgateSink::builder()
        .credentials(USER, PASS)
        .start()
        .await
        .unwrap()
}

fn gw_for(sink: &SipgateSink, extra: &[(&str, &str)]) -> Gateway {
    let url = sink.rpc_url();
    let mut opts = vec![
        ("USERNAME", USER),
        ("PASSWORD", PASS),
        ("URL", url.as_str()),
        ("TIMEOUT", "2"),
    ];
    opts.extend_from_slice(extra);
    gateway(&opts).unwrap()
}

#[tokio::test]
async fn golden_call_is_reproduced() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let case: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("sipgate_umlauts.case.json")).unwrap(),
    )
    .unwrap();
    let jsonl = std::fs::read_to_string(dir.join("sipgate_umlauts.jsonl")).unwrap();
    smsgw_testkit::golden::assert_copies_current(Path::new(env!("CARGO_MANIFEST_DIR")));
    let lines: Vec<Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let expected = &lines[1];

    let sink = SipgateSink::start().await.unwrap();
    let url = case["sipgate_url"]
        .as_str()
        .unwrap()
        .replace("{SINK}", &sink.addr().to_string());
    let def = GatewayDef {
        id: "golden".into(),
        provider: case["providermodule"].as_str().unwrap().into(),
        options: case["options"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
            .chain([("URL".to_owned(), url)])
            .collect(),
        ..Default::default()
    };
    assert_eq!(smsgw_sipgate::NAME, "sipgate");
    let gw = Gateway::build(&def, &Default::default(), Registry::global()).unwrap();
    let msg = Message::new(
        case["sample"]["phone"].as_str().unwrap(),
        case["sample"]["message"].as_str().unwrap(),
    );
    gw.send(&msg).await.unwrap();
    let reqs = sink.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.http.method, expected["method"]);
    assert_eq!(r.http.path, expected["path"]);
    assert_eq!(
        r.http.basic_auth.as_deref(),
        expected["basic_auth"].as_str()
    );
    assert_eq!(r.http.header("content-type"), Some("text/xml"));
    // The call, parsed: same method and the same struct (member order is not significant).
    assert_eq!(
        serde_json::to_value(r.xmlrpc.as_ref().unwrap()).unwrap(),
        expected["xmlrpc"]
    );
}

#[tokio::test]
async fn plain_message_is_sent_and_the_session_id_returned() {
    let sink = sink().await;
    let receipt = gw_for(&sink, &[])
        .send(&Message::new(" +491511234567 ", "Your code 123456"))
        .await
        .unwrap();
    assert_eq!(receipt.message_ids.len(), 1);
    let (uri, tos, content) = sink.requests()[0].session_initiate().unwrap();
    assert_eq!(uri, "sip:491511234567@sipgate.de");
    assert_eq!(tos, "text");
    assert_eq!(content, "Your code 123456");
    let got = &sink.recorder().all()[0];
    assert_eq!(
        (got.protocol.as_str(), got.recipient.as_str()),
        ("xmlrpc", "491511234567")
    );
}

#[tokio::test]
async fn any_text_arrives_exactly() {
    let sink = sink().await;
    let gw = gw_for(&sink, &[]);
    let texts = [
        "a < b && c > d",
        "]]> <![CDATA[ x ]]>",
        "</string></value><value><string>injected",
        "\"double\" 'single' &amp; &#65;",
        "Grüße, Ærø, ñ, 日本語",
        "emoji 😀👍🏽 and € ™",
        "lines\nwith\r\nCR LF\rand\ttab",
        "  leading and trailing spaces  ",
    ];
    for t in texts {
        gw.send(&Message::new("+49151", t)).await.unwrap();
    }
    let got: Vec<String> = sink.recorder().all().into_iter().map(|r| r.text).collect();
    assert_eq!(got, texts);
    for r in sink.requests() {
        assert!(r.xmlrpc_error.is_none(), "{r:?}");
        assert_eq!(r.xmlrpc.as_ref().unwrap().params.len(), 1);
    }
}

#[tokio::test]
async fn characters_xml_cannot_carry_are_refused_before_sending() {
    let sink = sink().await;
    let gw = gw_for(&sink, &[]);
    for t in ["bell \u{7}", "nul \0", "esc \u{1b}[0m", "\u{FFFF}"] {
        let e = gw.send(&Message::new("+49151", t)).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config, "{e}");
        assert!(e.message().contains("XML"), "{e}");
    }
    assert!(sink.requests().is_empty());
}

#[tokio::test]
async fn faults_and_status_codes() {
    let sink = sink().await;
    let gw = gw_for(&sink, &[]);
    let m = Message::new("+49151", "x");

    sink.answers().next(
        1,
        SipgateAnswer::Fault {
            code: 4,
            text: "Too many parameters".into(),
        },
    );
    let e = gw.send(&m).await.unwrap_err();
    assert_eq!((e.kind(), e.code()), (ErrorKind::Refused, Some("4")), "{e}");
    assert!(e.message().contains("Too many parameters"));

    sink.faults().next(
        1,
        Fault::Reply {
            code: 407,
            text: "Invalid parameter value".into(),
        },
    );
    let e = gw.send(&m).await.unwrap_err();
    assert_eq!(
        (e.kind(), e.code()),
        (ErrorKind::Refused, Some("407")),
        "{e}"
    );
    assert!(e.message().contains("Invalid parameter value"));

    sink.answers()
        .next(1, SipgateAnswer::Garbage("<html>proxy error</html>".into()));
    let e = gw.send(&m).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unknown, "{e}");

    sink.answers()
        .next(1, SipgateAnswer::Garbage("not xml at all".into()));
    assert_eq!(gw.send(&m).await.unwrap_err().kind(), ErrorKind::Unknown);

    for (status, kind) in [
        (500, ErrorKind::Unknown),
        (503, ErrorKind::NotSent),
        (404, ErrorKind::Refused),
    ] {
        sink.answers().next(
            1,
            SipgateAnswer::Http {
                status,
                body: "x".into(),
            },
        );
        let e = gw.send(&m).await.unwrap_err();
        assert_eq!(
            (e.kind(), e.code()),
            (kind, Some(status.to_string().as_str())),
            "{e}"
        );
    }
    gw.send(&m).await.unwrap();
}

#[tokio::test]
async fn wrong_credentials_are_refused() {
    let sink = sink().await;
    let url = sink.rpc_url();
    let gw = gateway(&[("USERNAME", USER), ("PASSWORD", "wrong-pw"), ("URL", &url)]).unwrap();
    let e = gw.send(&Message::new("+49151", "x")).await.unwrap_err();
    assert_eq!(
        (e.kind(), e.code()),
        (ErrorKind::Refused, Some("401")),
        "{e}"
    );
    assert!(e.message().contains("credentials"), "{e}");
    assert!(sink.recorder().is_empty());
}

#[tokio::test]
async fn timeout_and_refused_connection() {
    let sink = sink().await;
    sink.faults().always(Fault::NeverAnswer);
    let gw = gw_for(&sink, &[("TIMEOUT", "0.5")]);
    let start = Instant::now();
    let e = gw.send(&Message::new("+49151", "x")).await.unwrap_err();
    let took = start.elapsed();
    assert_eq!(e.kind(), ErrorKind::Unknown, "{e}");
    assert!(took < Duration::from_millis(1200), "took {took:?}");

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/RPC2");
    let gw = gateway(&[("USERNAME", USER), ("PASSWORD", PASS), ("URL", &url)]).unwrap();
    let e = gw.send(&Message::new("+49151", "x")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotSent, "{e}");
}

#[tokio::test]
async fn an_untrusted_certificate_is_a_configuration_error() {
    let sink = SipgateSink::builder()
        .credentials(USER, PASS)
        .tls()
        .start()
        .await
        .unwrap();
    assert!(sink.rpc_url().starts_with("https://"));
    let e = gw_for(&sink, &[])
        .send(&Message::new("+491511234567", "x"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    assert_eq!(e.code(), Some("untrusted_certificate"), "{e}");
    assert!(!e.to_string().contains(PASS));
    assert!(sink.requests().is_empty(), "nothing reached the gateway");
}

#[tokio::test]
async fn regexp_rewrites_the_number() {
    let sink = sink().await;
    gw_for(&sink, &[("REGEXP", "/^0/49/")])
        .send(&Message::new("01511234567", "x"))
        .await
        .unwrap();
    assert_eq!(
        sink.requests()[0].session_initiate().unwrap().0,
        "sip:491511234567@sipgate.de"
    );
}

#[tokio::test]
async fn the_proxy_receives_the_call() {
    let proxy = sink().await;
    let gw = gateway(&[
        ("USERNAME", USER),
        ("PASSWORD", PASS),
        ("URL", "http://samurai.sipgate.invalid/RPC2"),
        ("PROXY", &proxy.http().url()),
    ])
    .unwrap();
    gw.send(&Message::new("+49151", "via proxy")).await.unwrap();
    let r = &proxy.requests()[0];
    assert_eq!(r.http.target, "http://samurai.sipgate.invalid/RPC2");
    assert_eq!(r.session_initiate().unwrap().2, "via proxy");
}

#[tokio::test]
async fn rest_api() {
    let sink = sink().await;
    let url = sink.rest_url();
    let gw = gateway(&[
        ("API", "rest"),
        ("USERNAME", USER),
        ("PASSWORD", PASS),
        ("URL", &url),
        ("SMS_ID", "s3"),
    ])
    .unwrap();
    gw.send(&Message::new("+491511234567", "Grüße & <b>"))
        .await
        .unwrap();
    let r = &sink.requests()[0];
    assert_eq!(r.api, "rest");
    assert_eq!(r.http.method, "POST");
    assert_eq!(r.http.path, "/v2/sessions/sms");
    assert_eq!(
        r.http.basic_auth.as_deref(),
        Some(format!("{USER}:{PASS}").as_str())
    );
    assert_eq!(
        r.http.json.as_ref().unwrap(),
        &serde_json::json!({"smsId": "s3", "recipient": "+491511234567", "message": "Grüße & <b>"})
    );
    let got = &sink.recorder().all()[0];
    assert_eq!(
        (got.protocol.as_str(), got.text.as_str()),
        ("sipgate-rest", "Grüße & <b>")
    );

    sink.answers().next(
        1,
        SipgateAnswer::Http {
            status: 402,
            body: "insufficient funds".into(),
        },
    );
    let e = gw.send(&Message::new("+49151", "x")).await.unwrap_err();
    assert_eq!(
        (e.kind(), e.code()),
        (ErrorKind::Refused, Some("402")),
        "{e}"
    );
    let bad = gateway(&[
        ("API", "rest"),
        ("USERNAME", USER),
        ("PASSWORD", "nope"),
        ("URL", &url),
    ])
    .unwrap();
    let e = bad.send(&Message::new("+49151", "x")).await.unwrap_err();
    assert_eq!(
        (e.kind(), e.code()),
        (ErrorKind::Refused, Some("401")),
        "{e}"
    );
}

#[test]
fn configuration_problems() {
    let errs = gateway(&[("URL", "https://x/RPC2")])
        .unwrap_err()
        .to_string();
    assert!(
        errs.contains("'USERNAME'") && errs.contains("'PASSWORD'"),
        "{errs}"
    );
    let errs = gateway(&[("USERNAME", "u"), ("PASSWORD", "p"), ("to", "{phone}")])
        .unwrap_err()
        .to_string();
    assert!(
        errs.contains("'to'") && errs.contains("no free options"),
        "{errs}"
    );
    let errs = gateway(&[
        ("USERNAME", "u"),
        ("PASSWORD", "p"),
        ("SMS_ID", "s1"),
        ("URL", "http://a:b@h/"),
    ])
    .unwrap_err();
    let keys: Vec<&str> = errs
        .problems()
        .iter()
        .filter_map(|p| p.key.as_deref())
        .collect();
    assert_eq!(keys, ["URL", "SMS_ID"], "{errs}");
    // The proxy is checked (and parsed) by the core, before the factory runs.
    let errs = gateway(&[("USERNAME", "u"), ("PASSWORD", "p"), ("PROXY", "ftp://p")])
        .unwrap_err()
        .to_string();
    assert!(
        errs.contains("option 'PROXY': proxy scheme 'ftp'"),
        "{errs}"
    );
    // Defaults build outside a runtime and without the network.
    gateway(&[("USERNAME", "u"), ("PASSWORD", "p")]).unwrap();
    gateway(&[("USERNAME", "u"), ("PASSWORD", "p"), ("API", "rest")]).unwrap();
    let reg = Registry::global();
    assert_eq!(
        reg.get(smsgw_sipgate::PRIVACYIDEA_MODULE).unwrap().name,
        "sipgate"
    );
}
