//! The server's delivery worker (what `smsgw worker --queue` runs) sending through loopback
//! sinks while a gateway is down, and while the broker restarts.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use smsgw_nats::{NatsOptions, NatsQueue};
use smsgw_queue::{NewMessage, Queue, Status, Target};
use smsgw_sinks::http::HttpSink;
use support::{NatsServer, Worker, http_gateway};

fn msg(gw: &str, text: String) -> NewMessage {
    NewMessage {
        to: "+491511234567".into(),
        text,
        target: Target::Gateway(gw.into()),
        metadata: None,
        callback_url: None,
        idempotency_key: None,
    }
}

fn opts() -> NatsOptions {
    NatsOptions {
        ack_wait: Duration::from_secs(2),
        request_timeout: Duration::from_secs(3),
        ..NatsOptions::default()
    }
}

/// Writes `toml` as the configuration file of the workers.
fn config_file(dir: &tempfile::TempDir, toml: &str) -> std::path::PathBuf {
    let path = dir.path().join("smsgw.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

async fn statuses(q: &NatsQueue, ids: &[String]) -> HashMap<Status, usize> {
    let mut out = HashMap::new();
    for id in ids {
        let s = q
            .get(id)
            .await
            .unwrap()
            .expect("accepted message exists")
            .status;
        *out.entry(s).or_default() += 1;
    }
    out
}

async fn wait_all(q: &NatsQueue, ids: &[String], status: Status, within: Duration) {
    let until = tokio::time::Instant::now() + within;
    loop {
        let s = statuses(q, ids).await;
        if s.get(&status) == Some(&ids.len()) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "not all {status} in time: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn texts_received(sink: &HttpSink) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for r in sink.recorder().all() {
        *seen.entry(r.text).or_default() += 1;
    }
    seen
}

#[tokio::test]
async fn a_dead_gateway_holds_up_only_its_own_messages() {
    let nats = NatsServer::start();
    let up = HttpSink::start().await.unwrap();
    // The down gateway's address: nothing listens there until it "returns".
    let down_addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    // A short breaker cool-down: the test is about lanes, not about the breaker's timing.
    let config = http_gateway("up", &up.url())
        + &http_gateway("down", &format!("http://{down_addr}"))
        + "[gateways.down.limits]\nbreaker_cooldown = 1\n";
    let q = Arc::new(NatsQueue::connect(&nats.url(), opts()).await.unwrap());
    let mut down_ids = Vec::new();
    let mut up_ids = Vec::new();
    for i in 0..40 {
        down_ids.push(
            q.enqueue(msg("down", format!("d{i}")))
                .await
                .unwrap()
                .record
                .id,
        );
        up_ids.push(
            q.enqueue(msg("up", format!("u{i}")))
                .await
                .unwrap()
                .record
                .id,
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let worker = Worker::start(&nats.url(), opts(), &config_file(&dir, &config), 16).await;
    wait_all(&q, &up_ids, Status::Sent, Duration::from_secs(20)).await;
    // Meanwhile the down gateway's messages wait for their retry, none lost, none failed.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let waiting = statuses(&q, &down_ids).await;
    assert_eq!(waiting.get(&Status::Sent), None, "{waiting:?}");
    assert_eq!(waiting.get(&Status::Failed), None, "{waiting:?}");
    let some = q.get(&down_ids[0]).await.unwrap().unwrap();
    assert!(
        // Refused connections, then skipped by the gateway's open circuit breaker.
        some.attempts
            .iter()
            .all(|a| a.kind == "not_sent" || a.kind == "breaker_open"),
        "{:?}",
        some.attempts
    );
    assert!(!some.attempts.is_empty());

    // The gateway returns: its messages flow once the breaker lets a probe through (after 1 s)
    // and the worker retries them (1 s, 2 s, 4 s, …).
    let back = HttpSink::start_on(down_addr).await.unwrap();
    wait_all(&q, &down_ids, Status::Sent, Duration::from_secs(45)).await;
    let got = texts_received(&back);
    for i in 0..40 {
        assert_eq!(got.get(&format!("d{i}")), Some(&1), "d{i}");
    }
    assert_eq!(texts_received(&up).len(), 40);
    worker.stop().await;
}

#[tokio::test]
async fn a_broker_restart_loses_nothing_accepted() {
    let mut nats = NatsServer::start();
    let sink = HttpSink::start().await.unwrap();
    let config = http_gateway("sms1", &sink.url());
    let api = Arc::new(NatsQueue::connect(&nats.url(), opts()).await.unwrap());
    let dir = tempfile::tempdir().unwrap();
    let worker = Worker::start(&nats.url(), opts(), &config_file(&dir, &config), 16).await;
    // A client posting steadily; only what got an answer counts as accepted.
    let client = {
        let api = api.clone();
        tokio::spawn(async move {
            let mut accepted = Vec::new();
            let mut refused = 0;
            for i in 0..600 {
                match api.enqueue(msg("sms1", format!("r{i}"))).await {
                    Ok(e) => accepted.push((e.record.id, format!("r{i}"))),
                    Err(_) => refused += 1,
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (accepted, refused)
        })
    };
    tokio::time::sleep(Duration::from_millis(1200)).await;
    nats.stop();
    tokio::time::sleep(Duration::from_millis(800)).await;
    nats.restart();
    let (accepted, refused) = client.await.unwrap();
    assert!(
        accepted.len() > 300,
        "accepted {} refused {refused}",
        accepted.len()
    );
    let ids: Vec<String> = accepted.iter().map(|(id, _)| id.clone()).collect();
    let until = tokio::time::Instant::now() + Duration::from_secs(60);
    let records = loop {
        let mut recs = Vec::new();
        for id in &ids {
            // Reads may fail while the client reconnects: try again.
            match api.get(id).await {
                Ok(Some(r)) => recs.push(r),
                Ok(None) => panic!("accepted message {id} lost"),
                Err(_) => break,
            }
        }
        if recs.len() == ids.len() && recs.iter().all(|r| r.status.is_final()) {
            break recs;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "not all final after the restart"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let got = texts_received(&sink);
    for r in &records {
        assert_eq!(r.status, Status::Sent, "{r:?}");
        let n = got.get(r.text.as_deref().unwrap()).copied().unwrap_or(0);
        assert!(
            n == 1 || (r.possible_duplicate && n == 2),
            "{r:?} received {n} times"
        );
    }
    eprintln!(
        "accepted {}, refused during the outage {refused}",
        accepted.len()
    );
    worker.stop().await;
}

#[tokio::test]
async fn a_gateway_rate_holds_across_workers_together() {
    let nats = NatsServer::start();
    let sink = HttpSink::start().await.unwrap();
    let config = http_gateway("limited", &sink.url()) + "[gateways.limited.limits]\nrate = 20\n";
    let q = Arc::new(NatsQueue::connect(&nats.url(), opts()).await.unwrap());
    let mut ids = Vec::new();
    for i in 0..60 {
        ids.push(
            q.enqueue(msg("limited", format!("r{i}")))
                .await
                .unwrap()
                .record
                .id,
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let path = config_file(&dir, &config);
    let start = std::time::Instant::now();
    let a = Worker::start(&nats.url(), opts(), &path, 16).await;
    let b = Worker::start(&nats.url(), opts(), &path, 16).await;
    wait_all(&q, &ids, Status::Sent, Duration::from_secs(30)).await;
    // 60 messages at 20/s: about 3 s for both workers together (each alone would allow 20/s,
    // 1.5 s for the two). The first tokens may come at once (a burst of up to 50 ms of rate).
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(2400), "{took:?}");
    assert_eq!(texts_received(&sink).len(), 60);
    a.stop().await;
    b.stop().await;
}
