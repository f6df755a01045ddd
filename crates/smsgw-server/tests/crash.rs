//! Accepted means durable: a real server process is killed with SIGKILL again and again while
//! clients post; after a final restart every message that got a 202 reaches a final status, the
//! sink received every `sent` message, and a message sent twice says so.
//!
//! The server process is this test binary itself, re-run with `SMSGW_CRASH_CHILD` set: then the
//! `child_server` test runs a server instead of returning at once.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use common::*;

const TOTAL: usize = 2000;
const CHILD: &str = "SMSGW_CRASH_CHILD";

#[test]
fn child_server() {
    let Ok(dir) = std::env::var(CHILD) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let cfg = std::fs::read_to_string(dir.join("smsgw.toml")).unwrap();
        let o = options(&dir, &cfg);
        let server = smsgw_server::start(o).await.unwrap();
        let tmp = dir.join("addr.tmp");
        std::fs::write(&tmp, server.addr().to_string()).unwrap();
        std::fs::rename(&tmp, dir.join("addr")).unwrap();
        std::future::pending::<()>().await;
    });
}

struct Child {
    proc: std::process::Child,
}

fn spawn_child(dir: &std::path::Path) -> (Child, String) {
    let _ = std::fs::remove_file(dir.join("addr"));
    let child = Child {
        proc: std::process::Command::new(std::env::current_exe().unwrap())
            .args(["child_server", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD, dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(a) = std::fs::read_to_string(dir.join("addr")) {
            return (child, format!("http://{a}"));
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the child server did not start"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.proc.kill(); // SIGKILL
        let _ = self.proc.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_run_loses_nothing() {
    if std::env::var(CHILD).is_ok() {
        return;
    }
    let sink = smsgw_testkit::http::HttpSink::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("smsgw.toml"), config(&sink)).unwrap();
    let token = make_token(&dir.path().join("smsgw.db"), "app", "send").await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .no_proxy()
        .build()
        .unwrap();

    let (child, base) = spawn_child(dir.path());
    let base = Arc::new(RwLock::new(base));
    let next = Arc::new(AtomicUsize::new(0));
    let accepted: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let mut posters = Vec::new();
    for _ in 0..16 {
        let (base, next, accepted, http, token) = (
            base.clone(),
            next.clone(),
            accepted.clone(),
            http.clone(),
            token.clone(),
        );
        posters.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= TOTAL {
                    return;
                }
                let text = format!("crash-{n}");
                // Without an answer the message may or may not exist: the client retries with
                // the same Idempotency-Key, as a real client should, until it gets its 202.
                loop {
                    let url = format!("{}/v1/messages", base.read().unwrap());
                    let r = http.post(url).bearer_auth(&token).header("Idempotency-Key", &text)
                        .json(&serde_json::json!({"to": format!("+4915{n:06}"), "text": text, "gateway": "sms1"}))
                        .send().await;
                    if let Ok(r) = r && r.status() == 202 {
                        let v: serde_json::Value = r.json().await.unwrap();
                        accepted.lock().unwrap().insert(v["id"].as_str().unwrap().to_owned(), text.clone());
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }));
    }
    // Kill the server at random moments while the clients post.
    let mut child = Some(child);
    let mut kills = 0;
    while next.load(Ordering::Relaxed) < TOTAL && kills < 5 {
        tokio::time::sleep(Duration::from_millis(300 + rand::random::<u64>() % 700)).await;
        drop(child.take()); // kill -9
        kills += 1;
        let (c, b) = spawn_child(dir.path());
        *base.write().unwrap() = b;
        child = Some(c);
    }
    for p in posters {
        p.await.unwrap();
    }
    drop(child.take());
    kills += 1;
    // The final run: everything accepted finishes.
    let (_final_child, b) = spawn_child(dir.path());
    let accepted = accepted.lock().unwrap().clone();
    assert!(kills >= 2, "the server was killed during the run");
    assert_eq!(accepted.len(), TOTAL, "one message per idempotency key");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut finals = HashMap::new();
    for id in accepted.keys() {
        loop {
            let v: serde_json::Value = http
                .get(format!("{b}/v1/messages/{id}"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let st = v["status"]
                .as_str()
                .expect("every accepted message exists")
                .to_owned();
            if st != "queued" && st != "sending" {
                finals.insert(id.clone(), v);
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{id} not final: {v}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let mut received: HashMap<String, usize> = HashMap::new();
    for r in sink.requests() {
        *received.entry(r.param("text").unwrap()).or_default() += 1;
    }
    let mut dups = 0;
    for (id, text) in &accepted {
        let m = &finals[id];
        assert_eq!(m["status"], "sent", "{m}");
        let n = received.get(text).copied().unwrap_or(0);
        assert!(n >= 1, "{text} was never received though {id} is sent");
        if n > 1 {
            dups += 1;
            assert_eq!(
                m["possible_duplicate"], true,
                "{text} arrived {n} times but {id} does not say so"
            );
        }
    }
    eprintln!(
        "accepted {} of {TOTAL}, {kills} kills, {dups} sent twice (each marked)",
        accepted.len()
    );
}
