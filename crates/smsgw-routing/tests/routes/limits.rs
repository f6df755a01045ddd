//! Gateway limits: `rate` over bulk sends, `per_recipient` against SMS pumping.

use std::time::{Duration, SystemTime};

use smsgw_core::{ErrorKind, Message};
use smsgw_routing::{Reason, delivery_json};
use tokio::time::Instant;

use crate::common::{Sink, gateway, kinds, router, settle};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_100_paces_1000_bulk_messages() {
    let sink = Sink::start().await;
    let toml = format!(
        "{}[gateways.gw.limits]\nrate = 100\n\n[routes.bulk]\ngateways = [\"gw\"]\n",
        gateway("gw", &sink.url(), 5.0)
    );
    let r = router(&toml);
    let msgs: Vec<Message> = (0..1000)
        .map(|i| Message::new(format!("+4915{i:06}"), format!("m{i}")))
        .collect();
    let start = Instant::now();
    let out = r.route("bulk").unwrap().send_all(msgs, 64).await;
    let took = start.elapsed();
    assert_eq!(out.len(), 1000);
    assert!(out.iter().all(|o| o.result.is_ok()));
    // 1 token at once, then one every 10 ms: 9.99 s at least; no exact upper bound on a loaded box.
    assert!(
        took >= Duration::from_millis(9500),
        "1000 messages at rate 100 took {took:?}"
    );
    assert!(took < Duration::from_secs(60), "{took:?}");
    let seen = sink.seen();
    assert_eq!(seen.len(), 1000);
    // No second of the run saw more than rate + burst requests.
    let first = seen.iter().map(|s| s.at).min().unwrap();
    let mut per_second = [0usize; 64];
    for s in &seen {
        per_second[(s.at - first).as_secs() as usize] += 1;
    }
    assert!(per_second.iter().all(|n| *n <= 101), "{per_second:?}");
}

#[tokio::test]
async fn per_recipient_stops_the_sixth_message_and_lets_others_through() {
    let sink = Sink::start().await;
    let toml = format!(
        "{}[gateways.gw.limits]\nper_recipient = \"5/1h\"\n\n[routes.otp]\ngateways = [\"gw\"]\n",
        gateway("gw", &sink.url(), 5.0)
    );
    let r = router(&toml);
    for i in 0..5 {
        r.send("otp", &Message::new("+491511111", format!("a{i}")))
            .await
            .unwrap_or_else(|e| panic!("message {i}: {e}"));
    }
    let e = r
        .send("otp", &Message::new("+491511111", "a5"))
        .await
        .unwrap_err();
    assert_eq!(
        (e.kind(), e.reason()),
        (ErrorKind::NotSent, Reason::RateLimited)
    );
    assert_eq!(kinds(e.attempts()), ["rate_limited"]);
    let retry = e.retry_after().expect("says when to retry");
    let in_an_hour = SystemTime::now() + Duration::from_secs(3600);
    assert!(
        retry > in_an_hour - Duration::from_secs(60) && retry <= in_an_hour,
        "{retry:?}"
    );
    let json = delivery_json(&Err(e));
    assert_eq!(json["result"], "not_sent");
    assert_eq!(json["reason"], "rate_limited");
    assert!(json["retry_after"].as_str().unwrap().ends_with('Z'));
    // Another number goes through; so does the limited gateway sent to directly for it.
    r.send("otp", &Message::new("+491512222", "b0"))
        .await
        .unwrap();
    let e = r
        .send("gw", &Message::new("+491511111", "a6"))
        .await
        .unwrap_err();
    assert_eq!(
        e.reason(),
        Reason::RateLimited,
        "--gateway honours the gateway's limits"
    );
    settle().await;
    assert_eq!(sink.accepted(), ["a0", "a1", "a2", "a3", "a4", "b0"]);
    let listing = serde_json::to_value(r.listing()).unwrap();
    assert_eq!(
        listing["gateways"][0],
        serde_json::json!({
            "gateway": "gw",
            "limits": { "rate": null, "burst": 1, "per_recipient": "5/1h", "breaker_failures": 5, "breaker_cooldown": 30.0 },
            "breaker": "closed",
            "recent_attempts": 6,
            "recent_failures": 0
        })
    );
    assert_eq!(listing["routes"][0]["name"], "otp");
    assert_eq!(listing["routes"][0]["deadline"], 30.0);
    assert_eq!(listing["routes"][0]["on_unknown"], "stop");
}

#[tokio::test]
async fn no_token_before_the_deadline_fails_at_once_without_sending() {
    let sink = Sink::start().await;
    let toml = format!(
        "{}[gateways.gw.limits]\nrate = 0.2\n\n[routes.otp]\ngateways = [\"gw\"]\ndeadline = 1\n",
        gateway("gw", &sink.url(), 5.0)
    );
    let r = router(&toml);
    r.send("otp", &Message::new("+1", "first")).await.unwrap();
    let start = Instant::now();
    let e = r
        .send("otp", &Message::new("+1", "second"))
        .await
        .unwrap_err();
    assert!(
        start.elapsed() < Duration::from_millis(500),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(
        (e.kind(), e.reason()),
        (ErrorKind::NotSent, Reason::Deadline)
    );
    assert!(e.message().contains("no send token"), "{e}");
    settle().await;
    assert_eq!(sink.accepted(), ["first"]);
}
