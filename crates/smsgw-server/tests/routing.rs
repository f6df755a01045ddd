//! The service sends through smsgw-routing: routes and limits from the file and from the API,
//! failover, the circuit breaker and the per-recipient guard, rate limits across the worker's
//! concurrent sends — over real sockets.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

const ROUTES: &str = r#"
[gateways.sms1.limits]
per_recipient = "2/1h"

[gateways.dead.limits]
breaker_failures = 2
breaker_cooldown = 60

[routes.otp]
gateways = ["dead", "sms1"]

[[routes.otp.rules]]
match = "^\\+44"
gateways = ["sms1"]
"#;

async fn send_wait(e: &Env, to: &str, target: Value) -> Value {
    let mut body = json!({"to": to, "text": "code 1"});
    for (k, v) in target.as_object().unwrap() {
        body[k] = v.clone();
    }
    let r = e.post("/v1/messages?wait=20", &e.send, body).await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// The fields a 422 names.
fn problem_fields(problem: &Value) -> Vec<&str> {
    problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["field"].as_str().unwrap())
        .collect()
}

fn kinds(m: &Value) -> Vec<String> {
    m["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            format!(
                "{}:{}",
                a["gateway"].as_str().unwrap(),
                a["kind"].as_str().unwrap()
            )
        })
        .collect()
}

#[tokio::test]
async fn file_routes_fail_over_open_the_breaker_and_guard_recipients() {
    let mut e = env_with_config(ROUTES, |_| {}).await;
    let (s, routes) = e.get_json("/v1/routes", &e.send).await;
    assert_eq!(s, 200);
    let otp = &routes["routes"][0];
    assert_eq!(otp["name"], "otp");
    assert_eq!(otp["origin"], "file");
    assert_eq!(otp["rules"][0]["match"], "^\\+44");
    assert_eq!(
        e.put("/v1/routes/otp", json!({"gateways": ["sms1"]}))
            .await
            .0,
        409
    );

    // The primary refuses connections: the backup delivers, once per message.
    for _ in 0..2 {
        let m = send_wait(&e, "+4915100", json!({"route": "otp"})).await;
        assert_eq!(m["status"], "sent", "{m}");
        assert_eq!(m["gateway"], "sms1");
        assert_eq!(kinds(&m), ["dead:not_sent", "sms1:sent"]);
    }
    assert_eq!(e.sink.requests().len(), 2);

    // Two failures opened the primary's breaker: it is skipped, and the view says so.
    let (_, dead) = e.get_json("/v1/gateways/dead", &e.send).await;
    assert_eq!(dead["breaker"]["state"], "open", "{dead}");
    assert_eq!(dead["breaker"]["recent_failures"], 2, "{dead}");
    assert!(dead["breaker"]["open_until"].is_string(), "{dead}");
    let m = send_wait(&e, "+4915111", json!({"route": "otp"})).await;
    assert_eq!(kinds(&m), ["dead:breaker_open", "sms1:sent"], "{m}");

    // sms1 allows two messages per number and hour: the third to +4915100 fails at once (an
    // OTP is not held for an hour), other numbers go through.
    let m = send_wait(&e, "+4915100", json!({"gateway": "sms1"})).await;
    assert_eq!(m["status"], "failed", "{m}");
    let last = m["attempts"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["kind"], "rate_limited", "{m}");
    assert!(
        last["error"].as_str().unwrap().contains("retry after"),
        "{m}"
    );
    let m = send_wait(&e, "+4915122", json!({"gateway": "sms1"})).await;
    assert_eq!(m["status"], "sent", "{m}");

    // A rule picks the gateways by number.
    let m = send_wait(&e, "+447700900123", json!({"route": "otp"})).await;
    assert_eq!(kinds(&m), ["sms1:sent"], "{m}");

    // A test send through the route shows every attempt.
    let r = e
        .post(
            "/v1/routes/otp/test",
            &e.admin,
            json!({"to": "+4915133", "text": "t"}),
        )
        .await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], "sent", "{v}");
    assert_eq!(v["attempts"][0]["kind"], "breaker_open", "{v}");
    e.stop().await;
}

#[tokio::test]
async fn api_routes_and_limits_are_checked_like_the_file() {
    let mut e = env().await;
    let (s, v) = e
        .put(
            "/v1/gateways/g1",
            json!({"provider": "http", "options": {"URL": format!("{}/g1", e.sink.url()),
                "to": "{phone}", "text": "{otp}"},
                "limits": {"rate": 0, "per_recipient": "5/1x"}}),
        )
        .await;
    assert_eq!(s, 422, "{v}");
    let fields = problem_fields(&v);
    assert!(fields.contains(&"limits.rate"), "{v}");
    assert!(fields.contains(&"limits.per_recipient"), "{v}");

    let (s, v) = e
        .put(
            "/v1/routes/r1",
            json!({"gateways": ["sms1"], "deadline": -1,
                "rules": [{"match": "(", "gateways": ["sms1"]}]}),
        )
        .await;
    assert_eq!(s, 422, "{v}");
    let fields = problem_fields(&v);
    assert!(fields.contains(&"deadline"), "{v}");
    assert!(fields.contains(&"rules[0].match"), "{v}");

    let (s, v) = e
        .put(
            "/v1/routes/r1",
            json!({"gateways": ["dead", "sms1"], "deadline": 20, "retries": 1,
                "rules": [{"match": "^\\+44", "gateways": ["sms1"]}]}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["rules"][0]["gateways"], json!(["sms1"]), "{v}");
    assert_eq!(v["origin"], "database");
    let m = send_wait(&e, "+4915100", json!({"route": "r1"})).await;
    // `retries = 1`: the refused connection is tried twice before the backup.
    assert_eq!(
        kinds(&m),
        ["dead:not_sent", "dead:not_sent", "sms1:sent"],
        "{m}"
    );
    e.stop().await;
}

#[tokio::test]
async fn a_gateway_rate_holds_across_the_workers_concurrent_sends() {
    let mut e = env().await;
    let (s, v) = e
        .put(
            "/v1/gateways/slow",
            json!({"provider": "http", "options": {"URL": format!("{}/slow", e.sink.url()),
                "to": "{phone}", "text": "{otp}"}, "limits": {"rate": 20, "burst": 1}}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["limits"]["rate"], 20);
    let messages: Vec<Value> = (0..40)
        .map(|i| json!({"to": format!("+49151{i:05}"), "text": "hi", "gateway": "slow"}))
        .collect();
    let start = Instant::now();
    let r = e
        .post("/v1/messages:batch", &e.send, json!({"messages": messages}))
        .await;
    assert!(r.status().is_success());
    let answer: Value = r.json().await.unwrap();
    for m in answer["results"].as_array().unwrap() {
        let done = e.final_message(m["id"].as_str().unwrap()).await;
        assert_eq!(done["status"], "sent", "{done}");
    }
    // 40 messages at 20/s with a burst of 1 need at least 1.95 s, whatever the concurrency.
    assert!(
        start.elapsed() >= Duration::from_millis(1900),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(e.sink.requests().len(), 40);
    e.stop().await;
}
