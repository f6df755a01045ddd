//! Fault injection against the http provider over loopback: endless and oversized replies,
//! redirects elsewhere and to a dead host. Memory stays flat (the reply is read up to 64 KiB),
//! time stays bounded, every outcome is classified. One test, so that the process's resident
//! memory measures this work alone.

mod common;

use std::time::{Duration, Instant};

use smsgw_core::{ErrorKind, Message};
use smsgw_testkit::http::HttpSink;
use smsgw_testkit::http::hostile::{HostileReply, HostileServer, dead_url, resident_bytes};

const PASS: &str = "b4sic-pa55-1234";
const KEY: &str = "k3y-in-header-987";
const TOKEN: &str = "t0ken-in-query-555";

fn gateway(url: &str, timeout: &str) -> smsgw_core::Gateway {
    common::gateway(
        &[
            ("URL", url),
            ("HTTP_METHOD", "GET"),
            ("USERNAME", "user"),
            ("PASSWORD", PASS),
            ("TIMEOUT", timeout),
            ("token", TOKEN),
            ("to", "{phone}"),
            ("text", "{otp}"),
        ],
        &[("X-Api-Key", KEY)],
    )
    .unwrap()
}

fn assert_no_secret(text: &str) {
    for s in [PASS, KEY, TOKEN, "654321"] {
        assert!(!text.contains(s), "secret {s} in: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_gateways_leave_memory_flat_and_end_classified() {
    let message = Message::new("+4915112345678", "654321");
    // Warm up: the first client loads certificates and starts threads; that is not the reply.
    let sink = HttpSink::start().await.unwrap();
    for _ in 0..3 {
        gateway(&sink.url(), "5").send(&message).await.unwrap();
    }
    for (what, reply) in [
        ("endless chunked", HostileReply::endless_chunked()),
        ("endless unsized", HostileReply::endless_unsized()),
        ("a 4 MiB reply", HostileReply::ok(vec![b'x'; 4 << 20])),
    ] {
        let server = HostileServer::start(vec![reply]).await.unwrap();
        let before = resident_bytes();
        let started = Instant::now();
        // A long timeout: the send must end by the size bound, not by the clock.
        let e = gateway(&server.url(), "60")
            .send(&message)
            .await
            .unwrap_err();
        let took = started.elapsed();
        assert_eq!(e.kind(), ErrorKind::Unknown, "{what}: {e}");
        assert_eq!(e.code(), Some("reply_too_large"), "{what}: {e}");
        assert!(e.message().contains("65536 bytes"), "{what}: {e}");
        assert_no_secret(&e.to_string());
        assert!(took < Duration::from_secs(30), "{what}: took {took:?}");
        let flat = server.check_memory_flat(before);
        assert!(flat.is_ok(), "{what}: {flat:?}");
    }
}

#[tokio::test]
async fn a_redirect_elsewhere_gets_nothing_and_a_dead_target_is_unknown() {
    let message = Message::new("+4915112345678", "654321");
    let target = HttpSink::start().await.unwrap();
    let server = HostileServer::start(vec![HostileReply::redirect(format!(
        "{}/steal",
        target.url()
    ))])
    .await
    .unwrap();
    let e = gateway(&server.url(), "5")
        .send(&message)
        .await
        .unwrap_err();
    assert_eq!(
        (e.kind(), e.code()),
        (ErrorKind::Unknown, Some("redirect")),
        "{e}"
    );
    assert_no_secret(&e.to_string());
    assert_eq!(server.requests().len(), 1, "the gateway got the request");
    tokio::time::sleep(Duration::from_millis(200)).await;
    // No Referer, no Authorization, no API key, no query: the other origin got no request.
    assert!(target.requests().is_empty(), "{:?}", target.requests());

    // The gateway received the request and points at a host that is down: not "not sent".
    let server = HostileServer::start(vec![HostileReply::redirect(dead_url().unwrap())])
        .await
        .unwrap();
    let e = gateway(&server.url(), "5")
        .send(&message)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unknown, "{e}");

    // The same origin is followed, still without a Referer.
    let server = HostileServer::start(vec![
        HostileReply::redirect("/moved"),
        HostileReply::ok("OK"),
    ])
    .await
    .unwrap();
    gateway(&server.url(), "5").send(&message).await.unwrap();
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    assert!(reqs[1].request_line.starts_with("GET /moved "), "{reqs:?}");
    assert!(
        reqs.iter().all(|r| r.header("referer").is_none()),
        "{reqs:?}"
    );
}
