//! Secrets never leak: Debug output, errors and logs captured at TRACE level.
//!
//! Alone in its own test binary so that the log capture is the global subscriber and no other
//! test's threads race with `tracing`'s callsite interest cache.

mod common;

use common::{PASSWORD, SIMPLE, starttls_login};
use smsgw_core::{Gateway, Message};
use smsgw_smtp as _;
use smsgw_testkit::Fault;
use smsgw_testkit::smtp::SmtpSink;

fn gateway(server_toml: &str) -> Gateway {
    common::gateway(server_toml, SIMPLE).unwrap()
}

#[tokio::test]
async fn the_password_never_appears_in_debug_errors_or_logs() {
    use base64::Engine as _;
    let logs = smsgw_testkit::logs::LogCapture::new();
    logs.set_global().unwrap();

    let sink = SmtpSink::builder()
        .starttls()
        .credentials("u", PASSWORD)
        .start()
        .await
        .unwrap();
    let server = starttls_login(&sink, "u", PASSWORD);
    let gw = gateway(&server);
    gw.send(&Message::new("+4917", "ok")).await.unwrap();
    sink.faults().nth(
        1,
        Fault::Reply {
            code: 550,
            text: "no".into(),
        },
    );
    let e = gw
        .send(&Message::new("+4917", "refused"))
        .await
        .unwrap_err();

    let bad = gateway(&starttls_login(&sink, "u", &format!("{PASSWORD}-wrong")));
    let e2 = bad.send(&Message::new("+4917", "x")).await.unwrap_err();
    assert_eq!(e2.code(), Some("535"));

    let logs = logs.text();
    assert!(logs.contains("sms_send"), "logs were captured: {logs}");
    let plain_b64 = base64::engine::general_purpose::STANDARD.encode(format!("\0u\0{PASSWORD}"));
    for text in [
        format!("{gw:?}"),
        format!("{bad:?}"),
        format!("{e} {e:?}"),
        format!("{e2} {e2:?}"),
        logs,
    ] {
        assert!(!text.contains(PASSWORD), "password leaked: {text}");
        assert!(
            !text.contains(&plain_b64),
            "encoded password leaked: {text}"
        );
    }
    assert!(format!("{gw:?}").contains("__CENSORED__"));
}
