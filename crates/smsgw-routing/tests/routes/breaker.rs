//! The circuit breaker: opens after five failures, skips, probes after the cool-down, closes.

use std::time::Duration;

use smsgw_core::{ErrorKind, Message};
use smsgw_routing::{BreakerState, Reason};
use tokio::time::Instant;

use crate::common::{Sink, gateway, kinds, router, settle};

#[tokio::test]
async fn opens_after_five_failures_skips_probes_and_closes() {
    let p = Sink::busy().await;
    let backup = Sink::start().await;
    let toml = format!(
        "{}[gateways.primary.limits]\nbreaker_cooldown = 1\n{}\n[routes.otp]\ngateways = [\"primary\", \"backup\"]\n",
        gateway("primary", &p.url(), 5.0),
        gateway("backup", &backup.url(), 5.0)
    );
    let r = router(&toml);
    for i in 0..5 {
        let d = r
            .send("otp", &Message::new("+1", format!("m{i}")))
            .await
            .unwrap();
        assert_eq!(kinds(&d.attempts), ["not_sent", "sent"], "message {i}");
        let want = if i < 4 {
            BreakerState::Closed
        } else {
            BreakerState::Open
        };
        assert_eq!(r.breaker("primary").unwrap().0, want, "after message {i}");
    }
    assert_eq!(p.seen().len(), 5);
    let d = r.send("otp", &Message::new("+1", "m5")).await.unwrap();
    assert_eq!(kinds(&d.attempts), ["breaker_open", "sent"]);
    assert_eq!(
        p.seen().len(),
        5,
        "an open breaker sends nothing to its gateway"
    );
    let listing = serde_json::to_value(r.listing()).unwrap();
    assert_eq!(listing["gateways"][0]["breaker"], "open");
    assert!(listing["gateways"][0]["open_until"].is_string());

    p.http.faults().clear();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let d = r.send("otp", &Message::new("+1", "m6")).await.unwrap();
    assert_eq!(d.gateway, "primary", "the probe goes to the primary");
    assert_eq!(r.breaker("primary").unwrap().0, BreakerState::Closed);
    let d = r.send("otp", &Message::new("+1", "m7")).await.unwrap();
    assert_eq!(d.gateway, "primary");
    settle().await;
    assert_eq!(p.accepted(), ["m6", "m7"]);
    assert_eq!(backup.accepted(), ["m0", "m1", "m2", "m3", "m4", "m5"]);
}

#[tokio::test]
async fn a_failed_probe_reopens_and_a_route_all_open_fails_fast() {
    let p = Sink::busy().await;
    let toml = format!(
        "{}[gateways.primary.limits]\nbreaker_failures = 2\nbreaker_cooldown = 0.5\n\n[routes.otp]\ngateways = [\"primary\"]\n",
        gateway("primary", &p.url(), 5.0),
    );
    let r = router(&toml);
    for _ in 0..2 {
        let e = r.send("otp", &Message::new("+1", "x")).await.unwrap_err();
        assert_eq!(e.reason(), Reason::GatewaysFailed);
    }
    let start = Instant::now();
    let e = r.send("otp", &Message::new("+1", "x")).await.unwrap_err();
    assert!(
        start.elapsed() < Duration::from_millis(200),
        "not fast: {:?}",
        start.elapsed()
    );
    assert_eq!(
        (e.kind(), e.reason()),
        (ErrorKind::NotSent, Reason::AllOpen)
    );
    assert!(e.message().contains("circuit breaker is open"), "{e}");
    assert!(e.retry_after().is_some());
    assert_eq!(p.seen().len(), 2);

    tokio::time::sleep(Duration::from_millis(600)).await;
    let e = r
        .send("otp", &Message::new("+1", "probe"))
        .await
        .unwrap_err();
    assert_eq!(kinds(e.attempts()), ["not_sent"], "the probe was sent");
    assert_eq!(
        r.breaker("primary").unwrap().0,
        BreakerState::Open,
        "a failed probe reopens"
    );
    let e = r.send("otp", &Message::new("+1", "x")).await.unwrap_err();
    assert_eq!(e.reason(), Reason::AllOpen);
    assert_eq!(p.seen().len(), 3);
}
