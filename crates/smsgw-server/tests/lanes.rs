//! Messages handed straight to a running lane, over real loopback sockets. One test in this
//! file, because it reads a process-wide metric (`smsgw_messages_handed_over_total`).

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

async fn handed_over(e: &Env) -> u64 {
    e.metrics()
        .await
        .lines()
        .find_map(|l| l.strip_prefix("smsgw_messages_handed_over_total "))
        .map_or(0, |v| v.trim().parse::<f64>().unwrap() as u64)
}

#[tokio::test]
async fn an_idle_lane_takes_new_messages_in_memory_but_never_lets_them_overtake_a_backlog() {
    // A lane that has sent everything takes the next message without a claim, and sends it.
    let mut e = env().await;
    let first = e.queue("+4915112345670", "first", "sms1").await;
    assert_eq!(e.final_message(&first).await["status"], "sent");
    let before = handed_over(&e).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(e.queue(&format!("+491511234568{i}"), "next", "sms1").await);
    }
    for id in &ids {
        let m = e.final_message(id).await;
        assert_eq!(m["status"], "sent", "{m}");
        assert_eq!(m["attempts"].as_array().unwrap().len(), 1, "{m}");
        assert!(
            m.get("possible_duplicate").is_none_or(|d| d == false),
            "{m}"
        );
    }
    assert_eq!(
        handed_over(&e).await - before,
        3,
        "handed to the running lane"
    );
    e.stop().await;

    // Behind a backlog (a slow gateway, one send at a time), a new message is queued, not
    // handed over: it reaches the gateway after every older message.
    let mut e = env_with(|o| o.worker.concurrency = 1).await;
    e.sink
        .faults()
        .always(smsgw_testkit::Fault::Delay(Duration::from_millis(150)));
    let backlog: Vec<_> = (0..5)
        .map(|i| json!({"to": format!("+49151222333{i}"), "text": format!("old{i}"), "gateway": "sms1"}))
        .collect();
    let r = e
        .post("/v1/messages:batch", &e.send, json!({"messages": backlog}))
        .await;
    assert_eq!(r.status(), 202);
    e.sink.wait_for_requests(1, Duration::from_secs(10)).await;
    let before = handed_over(&e).await;
    let late = e.queue("+4915122233399", "new", "sms1").await;
    assert_eq!(e.final_message(&late).await["status"], "sent");
    assert_eq!(
        handed_over(&e).await,
        before,
        "a lane with a backlog takes nothing in memory"
    );
    let texts: Vec<String> = e
        .sink
        .requests()
        .iter()
        .map(|r| r.param("text").unwrap())
        .collect();
    assert_eq!(texts.len(), 6, "{texts:?}");
    assert_eq!(texts.last().unwrap(), "new", "oldest first: {texts:?}");
    e.stop().await;
}
