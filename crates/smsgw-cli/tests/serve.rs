//! `smsgw token` and `smsgw serve` over the real binary: a token made by the command is
//! accepted by the server, a message reaches the loopback sink, SIGTERM stops cleanly, and a
//! `kill -9` in the middle of a run loses nothing that was accepted.

mod common;
// The NATS tests' broker: a real `nats-server -js` on a free loopback port.
#[path = "../../smsgw-nats/tests/support/mod.rs"]
mod nats;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{http_sink, smsgw, text};

fn make_token(db: &Path) -> String {
    let o = smsgw()
        .args(["token", "create", "--name", "ci", "--scope", "send", "--db"])
        .arg(db)
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert!(o.status.success(), "token create failed: {err}");
    // The token alone: one line, nothing else.
    assert_eq!(out.lines().count(), 1, "{out:?}");
    let token = out.trim().to_owned();
    assert!(token.len() >= 32, "{token:?}");
    let listed = text(
        &smsgw()
            .args(["token", "list", "--db"])
            .arg(db)
            .output()
            .unwrap(),
    )
    .0;
    assert!(listed.starts_with("ci\tsend\t"), "{listed}");
    assert!(
        !listed.contains(&token),
        "token list must not show the token"
    );
    token
}

/// Starts `smsgw serve` on a free loopback port; gives the process and its base URL.
fn serve(cfg: &Path, db: &Path) -> (Child, String) {
    serve_with(cfg, db, &[])
}

fn serve_with(cfg: &Path, db: &Path, more: &[&str]) -> (Child, String) {
    let mut child = smsgw()
        .arg("--config")
        .arg(cfg)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--shutdown-grace",
            "3",
            "--db",
        ])
        .arg(db)
        .args(more)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let base = loop {
        let line = lines
            .next()
            .expect("smsgw serve ended before listening")
            .unwrap();
        if let Some(url) = line.split("listening on ").nth(1) {
            break url.trim().to_owned();
        }
    };
    // Keep reading so that log output never blocks the server on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, base)
}

fn wait_exit(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let t = Instant::now();
    while t.elapsed() < limit {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

fn signal(child: &Child, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} failed");
}

async fn post(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    text: &str,
) -> Result<String, reqwest::Error> {
    let r = http
        .post(format!("{base}/v1/messages"))
        .bearer_auth(token)
        .header("Idempotency-Key", text)
        .json(&serde_json::json!({"to": "+4915112345", "text": text, "gateway": "h"}))
        .send()
        .await?;
    assert_eq!(r.status(), 202, "POST answered {}", r.status());
    let v: serde_json::Value = r.json().await?;
    Ok(v["id"].as_str().unwrap().to_owned())
}

/// Polls until the message is final; gives its JSON.
async fn final_message(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    id: &str,
) -> serde_json::Value {
    let t = Instant::now();
    loop {
        let v: serde_json::Value = http
            .get(format!("{base}/v1/messages/{id}"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let s = v["status"].as_str().unwrap_or_default();
        if !matches!(s, "queued" | "sending") {
            return v;
        }
        assert!(t.elapsed() < Duration::from_secs(60), "{id} still {s}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn token_serve_send_and_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (rt, sink, cfg) = http_sink(&dir);
    let db = dir.path().join("smsgw.db");
    let token = make_token(&db);
    let (mut child, base) = serve(&cfg, &db);
    rt.block_on(async {
        let http = reqwest::Client::new();
        // The admin page is mounted beside the API, with its policy.
        let page = http.get(format!("{base}/")).send().await.unwrap();
        assert_eq!(page.status(), 200);
        assert!(page.headers().contains_key("content-security-policy"));
        let r = http
            .post(format!("{base}/v1/messages"))
            .bearer_auth("wrong")
            .json(&serde_json::json!({"to": "+4915112345", "text": "x", "gateway": "h"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        let id = post(&http, &base, &token, "hello-serve").await.unwrap();
        let m = final_message(&http, &base, &token, &id).await;
        assert_eq!(m["status"], "sent", "{m}");
    });
    let got = sink.requests();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].param("text").as_deref(), Some("hello-serve"));
    signal(&child, "-TERM");
    let status = wait_exit(&mut child, Duration::from_secs(20)).expect("no exit after SIGTERM");
    assert!(status.success(), "{status}");
}

/// Issue 14, "accepted means durable", on the real process: SIGKILL while messages are being
/// posted and sent, restart on the same file, and every accepted message ends final; every
/// `sent` one reached the sink, and one that reached it twice says it may have.
#[test]
fn kill_9_mid_run_then_restart_loses_nothing() {
    const N: usize = 300;
    let dir = tempfile::tempdir().unwrap();
    let (rt, sink, cfg) = http_sink(&dir);
    let db = dir.path().join("smsgw.db");
    let token = make_token(&db);
    let (mut child, base) = serve(&cfg, &db);
    let http = reqwest::Client::new();
    let mut accepted = HashMap::new();
    rt.block_on(async {
        for n in 0..N {
            if n == N / 2 {
                signal(&child, "-KILL");
            }
            // After the kill the answers stop: what got a 202 before it is what must survive.
            match post(&http, &base, &token, &format!("crash-{n}")).await {
                Ok(id) => {
                    accepted.insert(id, format!("crash-{n}"));
                }
                Err(_) => break,
            }
        }
    });
    wait_exit(&mut child, Duration::from_secs(10)).expect("SIGKILL did not end it");
    assert!(accepted.len() >= N / 4, "only {} accepted", accepted.len());
    let (mut child, base) = serve(&cfg, &db);
    rt.block_on(async {
        for (id, text) in &accepted {
            let m = final_message(&http, &base, &token, id).await;
            assert_eq!(m["status"], "sent", "{m}");
            let n = sink
                .requests()
                .iter()
                .filter(|r| r.param("text").as_deref() == Some(text.as_str()))
                .count();
            assert!(n >= 1, "{text} is sent but never reached the sink");
            if n > 1 {
                assert_eq!(
                    m["possible_duplicate"], true,
                    "{text} arrived {n} times: {m}"
                );
            }
        }
    });
    signal(&child, "-TERM");
    assert!(wait_exit(&mut child, Duration::from_secs(20)).is_some_and(|s| s.success()));
}

/// Issue 16 over the real binary: an API-only `smsgw serve --queue nats://…`, a separate
/// `smsgw worker`, `?wait=` answered by the API node although the worker finished the message,
/// and `smsgw queue status`.
#[test]
fn nats_api_node_and_worker() {
    let broker = nats::NatsServer::start();
    let url = broker.url();
    let dir = tempfile::tempdir().unwrap();
    let (rt, sink, cfg) = http_sink(&dir);
    let db = dir.path().join("smsgw.db");
    // On NATS the tokens live on the broker, where every API node reads them.
    let o = smsgw()
        .args([
            "token", "create", "--name", "n", "--scope", "send", "--queue", &url,
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o).1);
    let token = text(&o).0.trim().to_owned();
    let (mut api, base) = serve_with(&cfg, &db, &["--queue", &url]);
    let mut worker = smsgw()
        .arg("--config")
        .arg(&cfg)
        .args(["worker", "--queue", &url])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    rt.block_on(async {
        let http = reqwest::Client::new();
        let t = Instant::now();
        let r = http
            .post(format!("{base}/v1/messages?wait=20"))
            .bearer_auth(&token)
            .json(&serde_json::json!({"to": "+4915112345", "text": "via-nats", "gateway": "h"}))
            .send()
            .await
            .unwrap();
        let status = r.status();
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["status"], "sent", "{v}");
        // Finished by the other process, noticed well before the wait ran out.
        assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());
    });
    assert_eq!(sink.requests().len(), 1);
    let o = smsgw()
        .args(["queue", "status", "--queue", &url])
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(out.contains("stream depth"), "{out}");
    for p in [&mut api, &mut worker] {
        signal(p, "-TERM");
        assert!(wait_exit(p, Duration::from_secs(20)).is_some_and(|s| s.success()));
    }
}
