//! Fault injection against the sipgate provider over loopback: endless and deeply nested
//! XML-RPC replies, oversized ones, redirects elsewhere. Memory stays flat, nothing overflows the
//! stack, time stays bounded, every outcome is a classified `unknown` (the request was received).
//! One test for the memory measurement, so that the process's resident memory measures it alone.

use std::time::{Duration, Instant};

use smsgw_core::{ErrorKind, Gateway, GatewayDef, Message, Registry};
use smsgw_testkit::http::HttpSink;
use smsgw_testkit::http::hostile::{HostileReply, HostileServer, dead_url, resident_bytes};
use smsgw_testkit::sipgate::{SipgateSink, endless_nested_reply, nested_arrays_reply};

const PASS: &str = "sippass-hostile-77";

fn gateway(url: &str, api: &str) -> Gateway {
    assert_eq!(smsgw_sipgate::NAME, "sipgate");
    let def = GatewayDef {
        id: "sg".into(),
        provider: "sipgate".into(),
        options: [
            ("USERNAME", "sipuser"),
            ("PASSWORD", PASS),
            ("URL", url),
            ("TIMEOUT", "60"),
            ("API", api),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        ..Default::default()
    };
    Gateway::build(&def, &Default::default(), Registry::global()).unwrap()
}

fn xml(body: Vec<u8>) -> HostileReply {
    HostileReply::Body {
        status: 200,
        content_type: "text/xml".into(),
        body,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_replies_leave_memory_flat_and_end_classified() {
    let message = Message::new("+4915112345678", "654321");
    let sink = SipgateSink::start().await.unwrap();
    for _ in 0..3 {
        gateway(&sink.rpc_url(), "xmlrpc")
            .send(&message)
            .await
            .unwrap();
    }
    for (what, api, reply, code) in [
        (
            "endless chunked",
            "xmlrpc",
            HostileReply::endless_chunked(),
            "reply_too_large",
        ),
        (
            "endless unsized",
            "rest",
            HostileReply::endless_unsized(),
            "reply_too_large",
        ),
        (
            "endless nesting",
            "xmlrpc",
            endless_nested_reply(),
            "reply_too_large",
        ),
        // 840 KiB: cut off by size before any parser sees it.
        (
            "20 000 nested arrays",
            "xmlrpc",
            xml(nested_arrays_reply(20_000)),
            "reply_too_large",
        ),
        // 60 KiB, within the size bound: refused by depth before the recursive parser.
        (
            "1 400 nested arrays",
            "xmlrpc",
            xml(nested_arrays_reply(1_400)),
            "bad_reply",
        ),
    ] {
        let server = HostileServer::start(vec![reply]).await.unwrap();
        let url = format!("{}/RPC2", server.url());
        let before = resident_bytes();
        let started = Instant::now();
        let e = gateway(&url, api).send(&message).await.unwrap_err();
        let took = started.elapsed();
        assert_eq!(
            (e.kind(), e.code()),
            (ErrorKind::Unknown, Some(code)),
            "{what}: {e}"
        );
        assert!(!e.to_string().contains(PASS), "{e}");
        assert!(took < Duration::from_secs(30), "{what}: took {took:?}");
        let flat = server.check_memory_flat(before);
        assert!(flat.is_ok(), "{what}: {flat:?}");
    }
}

#[tokio::test]
async fn a_redirect_elsewhere_is_not_followed() {
    let message = Message::new("+4915112345678", "654321");
    let target = HttpSink::start().await.unwrap();
    let server = HostileServer::start(vec![HostileReply::redirect(target.url())])
        .await
        .unwrap();
    let e = gateway(&server.url(), "xmlrpc")
        .send(&message)
        .await
        .unwrap_err();
    assert_eq!(
        (e.kind(), e.code()),
        (ErrorKind::Unknown, Some("redirect")),
        "{e}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(target.requests().is_empty(), "{:?}", target.requests());
    assert!(server.requests()[0].header("authorization").is_some());

    // sipgate received the request and redirects to a host that is down: not "not sent".
    let server = HostileServer::start(vec![HostileReply::redirect(dead_url().unwrap())])
        .await
        .unwrap();
    let e = gateway(&server.url(), "rest")
        .send(&message)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unknown, "{e}");
}
