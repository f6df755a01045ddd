//! Retries with doubling backoff, seen on the sink's clock, and the deadline over a whole chain.

use std::time::Duration;

use smsgw_core::{ErrorKind, Message};
use smsgw_routing::Reason;
use smsgw_testkit::Fault;
use tokio::time::Instant;

use crate::common::{Sink, gateway, kinds, router, settle};

#[tokio::test]
async fn retries_back_off_doubling_then_deliver_on_the_same_gateway() {
    let p = Sink::start().await;
    let backup = Sink::start().await;
    p.http.faults().next(
        2,
        Fault::Reply {
            code: 503,
            text: "busy".into(),
        },
    );
    let toml = format!(
        "{}{}\n[routes.otp]\ngateways = [\"primary\", \"backup\"]\nretries = 2\nbackoff = 0.2\n",
        gateway("primary", &p.url(), 5.0),
        gateway("backup", &backup.url(), 5.0)
    );
    let d = router(&toml)
        .send("otp", &Message::new("+491510003", "code 3"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(d.gateway, "primary");
    assert_eq!(kinds(&d.attempts), ["not_sent", "not_sent", "sent"]);
    let seen = p.seen();
    assert_eq!(seen.len(), 3);
    let gap1 = seen[1].at - seen[0].at;
    let gap2 = seen[2].at - seen[1].at;
    // backoff 0.2 s, then 0.4 s, each plus at most 25 % jitter; the upper bounds are loose.
    assert!(
        gap1 >= Duration::from_millis(200),
        "first retry after {gap1:?}"
    );
    assert!(
        gap2 >= Duration::from_millis(400),
        "second retry after {gap2:?}"
    );
    assert!(
        gap1 < Duration::from_secs(2) && gap2 < Duration::from_secs(3),
        "{gap1:?} {gap2:?}"
    );
    settle().await;
    assert_eq!(p.accepted(), ["code 3"]);
    assert!(backup.seen().is_empty());
}

#[tokio::test]
async fn the_deadline_cuts_a_slow_gateway_and_says_what_was_tried() {
    let slow = Sink::start().await;
    slow.http
        .faults()
        .always(Fault::Delay(Duration::from_secs(5)));
    let backup = Sink::start().await;
    let toml = format!(
        "{}{}\n[routes.otp]\ngateways = [\"slow\", \"backup\"]\ndeadline = 1\non_unknown = \"failover\"\n",
        gateway("slow", &slow.url(), 30.0),
        gateway("backup", &backup.url(), 5.0)
    );
    let start = Instant::now();
    let e = router(&toml)
        .send("otp", &Message::new("+491510004", "code 4"))
        .await
        .unwrap_err();
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert_eq!(e.reason(), Reason::Deadline);
    assert_eq!(
        e.kind(),
        ErrorKind::Unknown,
        "a send cut in flight may have been sent"
    );
    assert_eq!(kinds(e.attempts()), ["unknown"]);
    assert!(
        e.message().contains("deadline of 1 s") && e.message().contains("slow unknown"),
        "{e}"
    );
    settle().await;
    assert!(backup.seen().is_empty(), "nothing after the deadline");
}

#[tokio::test]
async fn the_deadline_ends_a_chain_of_retries() {
    let p = Sink::busy().await;
    let toml = format!(
        "{}\n[routes.otp]\ngateways = [\"primary\"]\ndeadline = 1.5\nretries = 10\nbackoff = 0.3\n",
        gateway("primary", &p.url(), 5.0)
    );
    let start = Instant::now();
    let e = router(&toml)
        .send("otp", &Message::new("+491510005", "code 5"))
        .await
        .unwrap_err();
    let took = start.elapsed();
    assert!(took < Duration::from_millis(2500), "{took:?}");
    assert_eq!(
        (e.kind(), e.reason()),
        (ErrorKind::NotSent, Reason::Deadline)
    );
    assert!(e.is_retry_safe());
    let n = e.attempts().len();
    assert!(
        (2..=4).contains(&n),
        "{n} attempts: {:?}",
        kinds(e.attempts())
    );
    assert_eq!(p.seen().len(), n);
}
