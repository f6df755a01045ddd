//! `smsgw serve` itself on the JetStream queue: two API nodes (each with its worker) over one
//! broker, driven through their HTTP API.

mod support;

use std::sync::Arc;
use std::time::Duration;

use smsgw_nats::{NatsOptions, NatsQueue};
use smsgw_queue::{Queue, Scope, TokenRecord, now_ms};
use smsgw_server::{Running, ServerOptions};
use smsgw_sinks::http::HttpSink;
use support::{NatsServer, http_gateway};

async fn api_node(url: &str, dir: &std::path::Path) -> Running {
    let cfg = dir.join("smsgw.toml");
    let mut o = ServerOptions::new("127.0.0.1:0".parse().unwrap(), dir.join("unused.db"));
    o.config = Some(cfg);
    o.shutdown_grace = Duration::from_secs(2);
    let q = NatsQueue::connect(url, NatsOptions::default())
        .await
        .unwrap();
    smsgw_server::start_with_queue(o, Arc::new(q))
        .await
        .unwrap()
}

async fn status_of(http: &reqwest::Client, base: &str, token: &str, id: &str) -> serde_json::Value {
    let r = http
        .get(format!("{base}/v1/messages/{id}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_api_nodes_share_messages_idempotency_and_tokens() {
    let nats = NatsServer::start();
    let sink = HttpSink::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("smsgw.toml"),
        http_gateway("sms1", &sink.url()),
    )
    .unwrap();

    // A token created once on the broker is valid on every node.
    let token = smsgw_server::generate_token();
    let setup = NatsQueue::connect(&nats.url(), NatsOptions::default())
        .await
        .unwrap();
    setup
        .create_token(&TokenRecord {
            name: "app".into(),
            scope: Scope::Send,
            hash: smsgw_server::hash_token(&token),
            created_at: now_ms(),
        })
        .await
        .unwrap();
    let a = api_node(&nats.url(), dir.path()).await;
    let b = api_node(&nats.url(), dir.path()).await;
    let bases = [
        format!("http://{}", a.addr()),
        format!("http://{}", b.addr()),
    ];
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .no_proxy()
        .build()
        .unwrap();

    // The same Idempotency-Key posted to both nodes at once: one message.
    let post = |base: String, key: &'static str| {
        let http = http.clone();
        let token = token.clone();
        async move {
            let r = http
                .post(format!("{base}/v1/messages"))
                .bearer_auth(&token)
                .header("Idempotency-Key", key)
                .json(&serde_json::json!({"to": "+491511234567", "text": "once-only", "gateway": "sms1"}))
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "{}", r.status());
            r.json::<serde_json::Value>().await.unwrap()
        }
    };
    let (x, y) = tokio::join!(post(bases[0].clone(), "k-1"), post(bases[1].clone(), "k-1"));
    assert_eq!(x["id"], y["id"], "{x} {y}");
    let id = x["id"].as_str().unwrap().to_owned();

    // More messages across both nodes, without keys.
    let mut ids = vec![id.clone()];
    for i in 0..100 {
        let r = http
            .post(format!("{}/v1/messages", bases[i % 2]))
            .bearer_auth(&token)
            .json(&serde_json::json!({"to": "+491511234567", "text": format!("n{i}"), "gateway": "sms1"}))
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

    // Every message is sent once, and both nodes answer the same for each.
    let until = tokio::time::Instant::now() + Duration::from_secs(60);
    for id in &ids {
        loop {
            let sa = status_of(&http, &bases[0], &token, id).await;
            let sb = status_of(&http, &bases[1], &token, id).await;
            if sa["status"] == "sent" && sb["status"] == "sent" {
                assert_eq!(sa["attempts"], sb["attempts"]);
                break;
            }
            assert!(tokio::time::Instant::now() < until, "{sa} / {sb}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let texts: Vec<String> = sink.recorder().all().into_iter().map(|r| r.text).collect();
    assert_eq!(texts.iter().filter(|t| *t == "once-only").count(), 1);
    assert_eq!(texts.len(), 101);
    a.shutdown().await;
    b.shutdown().await;
}
