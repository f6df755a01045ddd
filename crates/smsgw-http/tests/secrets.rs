//! No secret of an http gateway appears in Debug output, errors or logs (captured at TRACE), and
//! the text is logged at TRACE only. A single test in this binary: tracing's per-thread
//! subscribers are unreliable while other tests of the same process log concurrently.

mod common;

use common::gateway;
use smsgw_core::Message;
use smsgw_testkit::Fault;
use smsgw_testkit::http::HttpSink;

const PASSWORD: &str = "pw-7f3a9c";
const URL_PASSWORD: &str = "urlpw-91b2";
const PROXY_PASSWORD: &str = "proxypw-c4d5";
const KEY: &str = "apikey-e6f7";
const FREE_SECRET: &str = "freepass-a1b2";
const MESSAGE: &str = "msgtext-31337";

fn assert_clean(what: &str, text: &str) {
    for s in [PASSWORD, URL_PASSWORD, PROXY_PASSWORD, KEY, FREE_SECRET] {
        assert!(!text.contains(s), "{what} contains the secret {s}:\n{text}");
    }
}

#[tokio::test]
async fn secrets_stay_out_of_debug_errors_and_logs() {
    let logs = smsgw_testkit::logs::LogCapture::new();
    let _guard = logs.set_default();

    let sink = HttpSink::start().await.unwrap();
    let proxy = format!("http://puser:{PROXY_PASSWORD}@{}", sink.addr());
    let gw1 = gateway(
        &[
            ("URL", &format!("{}/a", sink.url())),
            ("USERNAME", "user"),
            ("PASSWORD", PASSWORD),
            ("password", FREE_SECRET),
            ("to", "{phone}"),
            ("text", "{otp}"),
            ("PARAMETER", &format!(r#"{{"api_key": "{KEY}"}}"#)),
            ("TIMEOUT", "0.3"),
        ],
        &[
            ("X-Api-Key", KEY),
            ("Authorization", &format!("Bearer {KEY}")),
        ],
    )
    .unwrap();
    let url_creds = sink
        .url()
        .replace("http://", &format!("http://bob:{URL_PASSWORD}@"));
    let gw2 = gateway(
        &[
            ("URL", &format!("{url_creds}/b")),
            ("HTTP_PROXY", &proxy),
            ("TIMEOUT", "0.3"),
        ],
        &[],
    )
    .unwrap();

    assert_clean("Debug of a gateway", &format!("{gw1:?} {gw2:?}"));

    let msg = Message::new("+491", MESSAGE);
    gw1.send(&msg).await.unwrap();
    let mut errors = String::new();
    for fault in [
        Fault::Reply {
            code: 401,
            text: "denied".into(),
        },
        Fault::Reply {
            code: 503,
            text: "busy".into(),
        },
        Fault::Close,
        Fault::NeverAnswer,
    ] {
        sink.faults().always(fault);
        for gw in [&gw1, &gw2] {
            let e = gw.send(&msg).await.unwrap_err();
            errors += &format!("{e} {e:?}\n");
        }
    }
    // Refused connection through a proxy with credentials.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let gw3 = gateway(
        &[
            ("URL", &format!("http://bob:{URL_PASSWORD}@{dead}/c")),
            ("PROXY", &format!("http://p:{PROXY_PASSWORD}@{dead}")),
        ],
        &[],
    )
    .unwrap();
    let e = gw3.send(&msg).await.unwrap_err();
    errors += &format!("{e} {e:?}\n");
    assert_clean("errors", &errors);

    let logs = logs.text();
    assert_clean("logs", &logs);
    // The message text is logged at TRACE only: it appears here (TRACE), with the request details.
    assert!(logs.contains("issuing request"), "{logs}");
    assert!(logs.contains(MESSAGE), "the text is traced at TRACE level");
    drop(_guard);

    // At DEBUG the request is described, but the text is not logged.
    let logs = smsgw_testkit::logs::LogCapture::at(tracing::Level::DEBUG);
    let _guard = logs.set_default();
    sink.faults().clear();
    let gw = gateway(
        &[("URL", &format!("{}/a", sink.url())), ("text", "{otp}")],
        &[],
    )
    .unwrap();
    gw.send(&Message::new("+491", MESSAGE)).await.unwrap();
    let logs = logs.text();
    assert!(
        logs.contains("issuing request") && logs.contains("status=200"),
        "{logs}"
    );
    assert!(!logs.contains(MESSAGE), "{logs}");
}
