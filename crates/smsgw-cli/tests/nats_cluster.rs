//! Issue 16's scale-out promise over real processes: two API nodes (`smsgw serve --queue
//! nats://…`) and three `smsgw worker --queue nats://…` share one broker and one configuration
//! file; 5 000 messages are posted over HTTP across both API nodes, and one worker is killed
//! with SIGKILL in the middle. Then every accepted message has exactly one final status (the
//! same on either node), and the sink received each `sent` message once — except messages
//! whose record says they may have been sent twice (in flight in the killed worker).

mod common;
// The NATS tests' broker: a real `nats-server -js` on a free loopback port.
#[path = "../../smsgw-nats/tests/support/mod.rs"]
mod nats;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{smsgw, text};
use futures::StreamExt;
use smsgw_sinks::http::HttpSink;

const MESSAGES: usize = 5_000;
/// Seconds a worker may be silent before the broker gives its messages to another: short, so
/// the killed worker's messages come back quickly.
const ACK_WAIT: &str = "2";

/// Every process of the cluster, killed (and reaped) when the test ends, however it ends.
#[derive(Default)]
struct Cluster(Vec<Child>);

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Cluster {
    /// `smsgw serve --queue URL` without a worker (an API node); its base URL.
    fn api_node(&mut self, cfg: &Path, db: &Path, url: &str) -> String {
        let mut child = smsgw()
            .arg("--config")
            .arg(cfg)
            .args(["serve", "--listen", "127.0.0.1:0", "--shutdown-grace", "3"])
            .arg("--db")
            .arg(db)
            .args(["--queue", url, "--ack-wait", ACK_WAIT])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting smsgw serve");
        let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        self.0.push(child);
        let base = loop {
            let line = lines
                .next()
                .expect("smsgw serve ended before listening")
                .expect("stderr line");
            if let Some(url) = line.split("listening on ").nth(1) {
                break url.trim().to_owned();
            }
        };
        // Keep reading, so that log output never blocks the node on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        base
    }

    /// `smsgw worker --queue URL`; its index in the cluster.
    fn worker(&mut self, cfg: &Path, url: &str) -> usize {
        let child = smsgw()
            .arg("--config")
            .arg(cfg)
            .args(["worker", "--queue", url, "--ack-wait", ACK_WAIT])
            .args(["--concurrency", "32"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting smsgw worker");
        self.0.push(child);
        self.0.len() - 1
    }

    /// SIGKILL (`Child::kill` on Unix): no chance to finish or hand anything back.
    fn kill_9(&mut self, i: usize) {
        self.0[i].kill().expect("SIGKILL");
        let _ = self.0[i].wait();
    }

    /// SIGTERM to every process still running; each must stop cleanly.
    fn stop_all(&mut self, except: usize) {
        for (i, c) in self.0.iter_mut().enumerate() {
            if i == except {
                continue;
            }
            let ok = std::process::Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status()
                .expect("kill")
                .success();
            assert!(ok, "kill -TERM failed");
        }
        for (i, c) in self.0.iter_mut().enumerate() {
            if i == except {
                continue;
            }
            let until = Instant::now() + Duration::from_secs(30);
            let status = loop {
                if let Some(s) = c.try_wait().expect("try_wait") {
                    break s;
                }
                assert!(
                    Instant::now() < until,
                    "process {i} did not stop on SIGTERM"
                );
                std::thread::sleep(Duration::from_millis(50));
            };
            assert!(status.success(), "process {i} stopped with {status}");
        }
    }
}

async fn post(http: &reqwest::Client, base: &str, token: &str, text: &str) -> String {
    let r = http
        .post(format!("{base}/v1/messages"))
        .bearer_auth(token)
        .json(&serde_json::json!({"to": "+491511234567", "text": text, "gateway": "sms1"}))
        .send()
        .await
        .expect("POST /v1/messages");
    assert_eq!(r.status(), 202, "POST {text} to {base}");
    let v: serde_json::Value = r.json().await.expect("JSON answer");
    v["id"].as_str().expect("an id").to_owned()
}

async fn record(http: &reqwest::Client, base: &str, token: &str, id: &str) -> serde_json::Value {
    let r = http
        .get(format!("{base}/v1/messages/{id}"))
        .bearer_auth(token)
        .send()
        .await
        .expect("GET /v1/messages/{id}");
    assert_eq!(r.status(), 200, "GET {id} on {base}");
    r.json().await.expect("JSON answer")
}

#[test]
fn two_api_nodes_three_workers_one_killed() {
    let broker = nats::NatsServer::start();
    let url = broker.url();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let sink = rt.block_on(HttpSink::start()).expect("sink");
    // Latency, so that every worker has sends in flight most of the time (the kill must hit
    // some).
    sink.faults()
        .always(smsgw_sinks::Fault::Delay(Duration::from_millis(50)));
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = dir.path().join("smsgw.toml");
    std::fs::write(&cfg, nats::http_gateway("sms1", &sink.url())).expect("config file");

    // The token lives on the broker, where every API node reads it.
    let o = smsgw()
        .args(["token", "create", "--name", "load", "--scope", "send"])
        .args(["--queue", &url])
        .output()
        .expect("smsgw token create");
    assert!(o.status.success(), "{}", text(&o).1);
    let token = text(&o).0.trim().to_owned();

    let mut cluster = Cluster::default();
    let nodes = [
        cluster.api_node(&cfg, &dir.path().join("a.db"), &url),
        cluster.api_node(&cfg, &dir.path().join("b.db"), &url),
    ];
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");

    // Post everything (32 requests in flight, alternating nodes). The first half waits for the
    // workers, so that there is a backlog and every worker is busy; the second half is posted
    // while they send. The first worker is killed once a quarter has reached the sink.
    const CHUNK: usize = 50;
    let until = Instant::now() + Duration::from_secs(300);
    let mut ids: Vec<(String, String)> = Vec::with_capacity(MESSAGES);
    let mut killed = false;
    let mut victim = None;
    for chunk in 0..(MESSAGES / CHUNK) {
        if chunk * CHUNK == MESSAGES / 2 {
            victim = Some(cluster.worker(&cfg, &url));
            for _ in 0..2 {
                cluster.worker(&cfg, &url);
            }
        }
        let posted: Vec<(String, String)> = rt.block_on(
            futures::stream::iter(chunk * CHUNK..(chunk + 1) * CHUNK)
                .map(|i| {
                    let (http, base, token) = (&http, &nodes[i % 2], &token);
                    async move {
                        let t = format!("c{i}");
                        (post(http, base, token, &t).await, t)
                    }
                })
                .buffered(32)
                .collect(),
        );
        ids.extend(posted);
        if let Some(v) = victim.filter(|_| !killed && sink.recorder().len() >= MESSAGES / 4) {
            cluster.kill_9(v);
            killed = true;
        }
    }
    let victim = victim.expect("workers started");
    while !killed {
        if sink.recorder().len() >= MESSAGES / 4 {
            cluster.kill_9(victim);
            killed = true;
        }
        assert!(Instant::now() < until, "the workers did not start sending");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(ids.len(), MESSAGES);

    // Wait until every message is final, asking either node.
    let records: Vec<serde_json::Value> = rt.block_on(async {
        loop {
            let all: Vec<serde_json::Value> = futures::stream::iter(ids.iter().enumerate())
                .map(|(n, (id, _))| record(&http, &nodes[n % 2], &token, id))
                .buffered(32)
                .collect()
                .await;
            let pending = all
                .iter()
                .filter(|r| !matches!(r["status"].as_str(), Some("sent" | "failed" | "unknown")))
                .count();
            if pending == 0 {
                break all;
            }
            assert!(Instant::now() < until, "{pending} messages never finished");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    // The other node answers the same.
    rt.block_on(async {
        for (n, (id, _)) in ids.iter().enumerate().step_by(97) {
            let other = record(&http, &nodes[(n + 1) % 2], &token, id).await;
            assert_eq!(other["status"], records[n]["status"], "{id}");
            assert_eq!(other["attempts"], records[n]["attempts"], "{id}");
        }
    });

    let mut received: HashMap<String, usize> = HashMap::new();
    for r in sink.recorder().all() {
        *received.entry(r.text).or_default() += 1;
    }
    let mut flagged = 0;
    for (r, (id, text)) in records.iter().zip(&ids) {
        // The sink never fails: every message ends sent.
        assert_eq!(r["status"], "sent", "{id}: {r}");
        let n = received.get(text).copied().unwrap_or(0);
        if r["possible_duplicate"] == true {
            flagged += 1;
            assert!((1..=2).contains(&n), "{id}: received {n} times: {r}");
        } else {
            assert_eq!(n, 1, "{id}: received {n} times: {r}");
        }
    }
    // Nothing else reached the sink.
    let posted: std::collections::HashSet<&String> = ids.iter().map(|(_, t)| t).collect();
    assert!(
        received.keys().all(|t| posted.contains(t)),
        "the sink got a message nobody posted"
    );
    // Without this the test would not show what it is for: a kill with sends in flight.
    assert!(
        flagged > 0,
        "the killed worker held no messages: no send was in flight when it died"
    );
    eprintln!(
        "{MESSAGES} messages over 2 API nodes, all sent; {flagged} flagged as possible \
         duplicates (in flight in the killed worker); {} requests at the sink",
        sink.recorder().len()
    );
    cluster.stop_all(victim);
}
