//! The API over real loopback sockets, against a real HTTP sink as the gateway.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

#[tokio::test]
async fn tokens_and_scopes() {
    let e = env().await;
    // No token, a wrong token: 401 with a problem.
    let r = e.http.get(e.url("/v1/gateways")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let r = e
        .http
        .get(e.url("/v1/gateways"))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // A send token may read but not change gateways.
    assert_eq!(e.get_json("/v1/gateways", &e.send).await.0, 200);
    let r = e
        .http
        .put(e.url("/v1/gateways/x"))
        .bearer_auth(&e.send)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let body = r.text().await.unwrap();
    assert!(body.contains("admin"), "{body}");
    assert!(!body.contains(&e.send), "the token is never echoed");
    // Health needs no token.
    for p in ["/healthz", "/readyz", "/metrics", "/v1/openapi.json"] {
        assert_eq!(
            e.http.get(e.url(p)).send().await.unwrap().status(),
            200,
            "{p}"
        );
    }
    // Tokens through the API; a new token works at once; a revoked one stops working.
    let r = e
        .post(
            "/v1/tokens",
            &e.admin,
            json!({"name": "new", "scope": "send"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let t = r.json::<serde_json::Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(e.get_json("/v1/gateways", &t).await.0, 200);
    let (_, list) = e.get_json("/v1/tokens", &e.admin).await;
    assert!(
        !list.to_string().contains(&smsgw_server::hash_token(&t)),
        "no hashes shown"
    );
    let r = e
        .http
        .delete(e.url("/v1/tokens/new"))
        .bearer_auth(&e.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(e.get_json("/v1/gateways", &t).await.0, 401);
}

#[tokio::test]
async fn send_read_wait_and_idempotency() {
    let e = env().await;
    let r = e.post("/v1/messages", &e.send, json!({"to": "+491511234567", "text": TEXT, "gateway": "sms1", "metadata": {"user": "alice"}})).await;
    assert_eq!(r.status(), 202);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["status"], "queued");
    let id = v["id"].as_str().unwrap();
    let m = e.final_message(id).await;
    assert_eq!(m["status"], "sent", "{m}");
    assert_eq!(m["gateway"], "sms1");
    assert_eq!(m["metadata"]["user"], "alice");
    assert_eq!(m["attempts"][0]["kind"], "sent");
    assert!(m.get("text").is_none(), "send tokens do not see texts");
    let reqs = e.sink.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].param("text").unwrap(), TEXT);
    assert_eq!(reqs[0].param("to").unwrap(), "+491511234567");
    // Admins see the text while it is kept.
    let (_, m) = e.get_json(&format!("/v1/messages/{id}"), &e.admin).await;
    assert_eq!(m["text"], TEXT);

    // ?wait answers with the outcome.
    let r = e
        .post(
            "/v1/messages?wait=10",
            &e.send,
            json!({"to": "+491511234568", "text": "hi", "gateway": "sms1"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["status"],
        "sent"
    );
    // ... or 202 while the gateway is still failing (it retries: not_sent).
    let r = e
        .post(
            "/v1/messages?wait=0.5",
            &e.send,
            json!({"to": "+491511234569", "text": "hi", "gateway": "dead"}),
        )
        .await;
    assert_eq!(r.status(), 202);
    let r = e
        .post(
            "/v1/messages?wait=61",
            &e.send,
            json!({"to": "+491511234569", "text": "hi", "gateway": "sms1"}),
        )
        .await;
    assert_eq!(r.status(), 422);

    // Idempotency-Key: the same answer, one send.
    let before = e.sink.requests().len();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let r = e
            .http
            .post(e.url("/v1/messages"))
            .bearer_auth(&e.send)
            .header("Idempotency-Key", "k-1")
            .json(&json!({"to": "+4915100", "text": "once", "gateway": "sms1"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        ids.push(
            r.json::<serde_json::Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert!(ids.iter().all(|i| *i == ids[0]));
    e.final_message(&ids[0]).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(e.sink.requests().len(), before + 1);

    // Paging and filtering.
    let (s, page) = e
        .get_json("/v1/messages?status=sent&limit=1", &e.send)
        .await;
    assert_eq!(s, 200);
    assert_eq!(page["messages"].as_array().unwrap().len(), 1);
    let next = page["next"].as_str().unwrap();
    let (_, page2) = e
        .get_json(
            &format!("/v1/messages?status=sent&limit=10&before={next}"),
            &e.send,
        )
        .await;
    assert_eq!(page2["messages"].as_array().unwrap().len(), 2);
    assert_eq!(
        e.get_json("/v1/messages?status=bogus", &e.send).await.0,
        422
    );
}

#[tokio::test]
async fn batch_accepts_each_and_rejects_each() {
    let e = env().await;
    let mut msgs: Vec<serde_json::Value> = (0..300)
        .map(|i| json!({"to": format!("+49151{i:06}"), "text": format!("m{i}"), "gateway": "sms1"}))
        .collect();
    msgs.push(json!({"to": "not a number", "text": "x", "gateway": "sms1"}));
    msgs.push(json!({"to": "+4915", "text": "x", "gateway": "nope"}));
    let r = e
        .post("/v1/messages:batch", &e.send, json!({"messages": msgs}))
        .await;
    assert_eq!(r.status(), 202);
    let v: serde_json::Value = r.json().await.unwrap();
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 302);
    assert!(results[..300].iter().all(|r| r["status"] == "queued"));
    assert_eq!(results[300]["status"], "rejected");
    assert_eq!(results[300]["errors"][0]["field"], "to");
    assert_eq!(results[301]["errors"][0]["field"], "gateway");
    let got = e.sink.wait_for_requests(300, Duration::from_secs(20)).await;
    assert_eq!(got.len(), 300);
    let mut texts: Vec<String> = got.iter().map(|r| r.param("text").unwrap()).collect();
    texts.sort();
    texts.dedup();
    assert_eq!(texts.len(), 300, "each exactly once");
}

#[tokio::test]
async fn bad_input_is_answered_never_panics() {
    let e = env().await;
    let raw = |body: &'static str| {
        e.http
            .post(e.url("/v1/messages"))
            .bearer_auth(&e.send)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let r = raw("{not json").await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let r = raw("{}").await.unwrap();
    assert_eq!(r.status(), 422);
    let v: serde_json::Value = r.json().await.unwrap();
    let fields: Vec<&str> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        vec!["to", "text", "gateway"],
        "every problem at once"
    );
    let r = e
        .post(
            "/v1/messages",
            &e.send,
            json!({"to": "call me", "text": "x", "gateway": "nosuch"}),
        )
        .await;
    assert_eq!(r.status(), 422);
    let v: serde_json::Value = r.json().await.unwrap();
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("no gateway named 'nosuch'"),
        "{v}"
    );
    assert!(
        v["detail"].as_str().unwrap().contains("not a phone number"),
        "{v}"
    );
    let r = e
        .post(
            "/v1/messages",
            &e.send,
            json!({"to": "+4915", "text": "x", "gateway": "sms1", "extra": 1}),
        )
        .await;
    assert_eq!(r.status(), 400);
    // Over 1 MiB: 413.
    let big = format!(
        "{{\"to\":\"+4915\",\"text\":\"{}\",\"gateway\":\"sms1\"}}",
        "a".repeat(1024 * 1024 + 10)
    );
    let r = e
        .http
        .post(e.url("/v1/messages"))
        .bearer_auth(&e.send)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    // Unknown paths: a problem, not a panic.
    assert_eq!(e.get_json("/v1/nope", &e.send).await.0, 404);
    assert_eq!(e.get_json("/v1/messages/no-such-id", &e.send).await.0, 404);
}

#[tokio::test]
async fn slow_clients_are_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let e = env().await;
    let addr = e.server.as_ref().unwrap().addr();
    // Headers that never finish: the connection is closed after the header timeout (1 s here).
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"POST /v1/messages HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let start = std::time::Instant::now();
    let mut buf = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await;
    assert!(n.is_ok(), "the server closed the connection");
    assert!(start.elapsed() >= Duration::from_millis(500));
    // A body that never finishes: 408 after the body timeout, and the API still answers.
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{",
        e.send
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(20), s.read(&mut buf))
        .await
        .expect("answered")
        .unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert_eq!(
        e.http.get(e.url("/healthz")).send().await.unwrap().status(),
        200
    );
}

#[tokio::test]
async fn a_dead_gateway_delays_only_its_own_messages() {
    let e = env().await;
    for i in 0..100 {
        e.queue(&format!("+4915{i:04}"), "d", "dead").await;
    }
    let start = std::time::Instant::now();
    let r = e
        .post(
            "/v1/messages?wait=10",
            &e.send,
            json!({"to": "+491510", "text": "live", "gateway": "sms1"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    // The dead gateway's messages are retried (not_sent), not failed.
    let (_, page) = e.get_json("/v1/messages?limit=1000", &e.send).await;
    let dead: Vec<_> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["gateway"] == "dead")
        .collect();
    assert_eq!(dead.len(), 100);
    assert!(
        dead.iter()
            .all(|m| m["status"] == "queued" || m["status"] == "sending"),
        "{dead:?}"
    );
}

#[tokio::test]
async fn every_documented_endpoint_exists() {
    let e = env().await;
    for ep in smsgw_server::openapi::ENDPOINTS {
        let path = ep.path.replace("{id}", "sms1").replace("{name}", "nosuch");
        let m = reqwest::Method::from_bytes(ep.method.to_uppercase().as_bytes()).unwrap();
        let r = e
            .http
            .request(m, e.url(&path))
            .bearer_auth("x")
            .send()
            .await
            .unwrap();
        assert_ne!(r.status(), 405, "{} {}", ep.method, ep.path);
        if r.status() == 404 {
            let body = r.text().await.unwrap();
            assert!(
                !body.contains("no such endpoint"),
                "{} {}",
                ep.method,
                ep.path
            );
        }
    }
    let (_, doc) = e.get_json("/v1/openapi.json", &e.send).await;
    assert!(doc["paths"]["/v1/messages"]["post"]["summary"].is_string());
}

/// The worker claims messages ahead of its free send slots. Stopping gives those back: they
/// are `queued` again, not `sending`, so a restart sends them without marking them possible
/// duplicates — only what was really in flight could be.
#[tokio::test]
async fn stopping_gives_claimed_but_unsent_messages_back() {
    let mut e = env_with(|o| {
        o.worker.concurrency = 2;
        o.shutdown_grace = Duration::from_secs(5);
    })
    .await;
    e.sink
        .faults()
        .always(smsgw_testkit::Fault::Delay(Duration::from_millis(400)));
    let mut ids = Vec::new();
    for i in 0..8 {
        ids.push(e.queue(&format!("+49151000{i}"), "ahead", "sms1").await);
    }
    // Two sends in flight (concurrency 2), and more claimed behind them.
    e.sink.wait_for_requests(2, Duration::from_secs(10)).await;
    e.stop().await;
    let db = e.dir.path().join("smsgw.db");
    let q = smsgw_queue::SqliteQueue::open(&db).await.unwrap();
    use smsgw_queue::Queue as _;
    let mut statuses = Vec::new();
    for id in &ids {
        let m = q.get(id).await.unwrap().unwrap();
        assert!(!m.possible_duplicate, "{id}: {m:?}");
        statuses.push(m.status.as_str().to_owned());
    }
    let received = e.sink.requests().len();
    let sent = statuses.iter().filter(|s| *s == "sent").count();
    let queued = statuses.iter().filter(|s| *s == "queued").count();
    assert_eq!(sent, received, "{statuses:?}");
    assert_eq!(
        sent + queued,
        ids.len(),
        "none left `sending`: {statuses:?}"
    );
    assert!(
        queued >= 4,
        "the unsent ones are queued again: {statuses:?}"
    );
    assert_eq!(
        q.recover_in_flight().await.unwrap(),
        0,
        "nothing was in flight"
    );
    q.close().await;
}

/// Claiming ahead is bounded: behind a slow gateway, a lane holds at most `concurrency` sends in
/// flight and twice that many claimed behind them; the rest of a backlog stays `queued`, so that
/// a crash marks only those few as possible duplicates.
#[tokio::test]
async fn a_lane_claims_a_bounded_number_ahead_of_its_sends() {
    let mut e = env_with(|o| o.worker.concurrency = 2).await;
    e.sink
        .faults()
        .always(smsgw_testkit::Fault::Delay(Duration::from_secs(1)));
    for i in 0..20 {
        e.queue(&format!("+49151100{i:02}"), "bounded", "sms1")
            .await;
    }
    e.sink.wait_for_requests(2, Duration::from_secs(10)).await;
    // Every claim the lane wants is made while the first two sends wait for the gateway.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let count = |status: &'static str| {
        let e = &e;
        async move {
            let (code, page) = e
                .get_json(&format!("/v1/messages?status={status}&limit=100"), &e.send)
                .await;
            assert_eq!(code, 200, "{page}");
            page["messages"].as_array().unwrap().len()
        }
    };
    let (sending, queued) = (count("sending").await, count("queued").await);
    assert!(
        e.sink.requests().len() <= 2,
        "at most `concurrency` in flight"
    );
    assert!(
        (2..=6).contains(&sending),
        "two in flight and at most four claimed ahead: {sending} sending"
    );
    assert_eq!(sending + queued, 20, "none sent yet");
    e.stop().await;
}

/// `smsgw token create` and `smsgw token revoke` write the database while the server runs: a new
/// token works, and a revoked one stops working, within a second — also while it is in use.
#[tokio::test]
async fn tokens_made_and_revoked_on_the_command_line_apply_within_a_second() {
    let e = env().await;
    let db = e.dir.path().join("smsgw.db");
    let t = make_token(&db, "cli", "send").await;
    let works = |expect: u16| {
        let (e, t) = (&e, t.clone());
        async move {
            let until = std::time::Instant::now() + Duration::from_secs(3);
            loop {
                let code = e.get_json("/v1/gateways", &t).await.0;
                if code == expect {
                    return;
                }
                assert!(
                    std::time::Instant::now() < until,
                    "still {code}, not {expect}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    works(200).await;
    let mut out = Vec::new();
    smsgw_server::token(
        &smsgw_server::TokenArgs {
            db,
            command: smsgw_server::TokenCommand::Revoke { name: "cli".into() },
        },
        &mut out,
    )
    .await
    .unwrap();
    works(401).await;
}
