//! No secret of a sipgate gateway appears in Debug output, errors or logs (captured at TRACE).
//! In its own test binary: tracing's per-thread subscribers are unreliable while other tests of
//! the same process log concurrently.

use smsgw_core::{Gateway, GatewayDef, Message, Registry};
use smsgw_testkit::Fault;
use smsgw_testkit::sipgate::SipgateSink;

const USER: &str = "sipuser";
const PASS: &str = "sippass-4e5f";

fn gw_for(sink: &SipgateSink, extra: &[(&str, &str)]) -> Gateway {
    assert_eq!(smsgw_sipgate::NAME, "sipgate");
    let url = sink.rpc_url();
    let mut opts = vec![
        ("USERNAME", USER),
        ("PASSWORD", PASS),
        ("URL", url.as_str()),
    ];
    opts.extend_from_slice(extra);
    let def = GatewayDef {
        id: "sg".into(),
        provider: "sipgate".into(),
        options: opts
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    };
    Gateway::build(&def, &Default::default(), Registry::global()).unwrap()
}

async fn sink() -> SipgateSink {
    SipgateSink::builder()
        .credentials(USER, PASS)
        .start()
        .await
        .unwrap()
}

#[tokio::test]
async fn secrets_stay_out_of_debug_errors_and_logs() {
    let logs = smsgw_testkit::logs::LogCapture::new();
    let _guard = logs.set_default();
    let sink = sink().await;
    let proxy_pw = "proxypw-8899";
    let gw = gw_for(&sink, &[("TIMEOUT", "0.3")]);
    let gw_proxy = gw_for(
        &sink,
        &[
            ("TIMEOUT", "0.3"),
            ("PROXY", &format!("http://p:{proxy_pw}@{}", sink.addr())),
        ],
    );
    let mut text = format!("{gw:?} {gw_proxy:?}");
    for g in [&gw, &gw_proxy] {
        g.send(&Message::new("+49151", "secret-otp-1"))
            .await
            .unwrap();
        for fault in [
            Fault::Close,
            Fault::NeverAnswer,
            Fault::Reply {
                code: 401,
                text: "no".into(),
            },
        ] {
            sink.faults().next(1, fault);
            let e = g.send(&Message::new("+49151", "x")).await.unwrap_err();
            text += &format!("{e} {e:?}");
        }
    }
    let logs = logs.text();
    text += &logs;
    assert!(!text.contains(PASS), "password leaked:\n{text}");
    assert!(!text.contains(proxy_pw), "proxy password leaked:\n{text}");
    assert!(
        logs.contains("submitting SMS") && logs.contains("sipgate answered"),
        "{logs}"
    );
}
