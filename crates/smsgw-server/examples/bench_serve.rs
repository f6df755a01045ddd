//! The `smsgw serve` benchmark: accepted messages/s through `POST /v1/messages` and `:batch`
//! (with p50/p99 of the 202), end-to-end messages/s from POST to an HTTP sink, and the POST-to-
//! arrival latency at 1 000 messages/s offered. Everything on loopback, in one process.
//!
//! `cargo run --release -p smsgw-server --example bench_serve [-- --single N --batch N --e2e N --rate-secs S]`
//!
//! Prints one `key=value` line per result (for `cargo xtask bench serve`) after a readable summary.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use smsgw as _;
use smsgw_testkit::http::HttpSink;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn pct(v: &mut [Duration], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_unstable();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i].as_secs_f64() * 1000.0
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

struct Bench {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Bench {
    /// Posts `n` single messages with `conc` clients; returns the elapsed time and the latencies.
    async fn singles(&self, n: usize, conc: usize, prefix: &str) -> (Duration, Vec<Duration>) {
        let next = Arc::new(AtomicUsize::new(0));
        let lat = Arc::new(Mutex::new(Vec::with_capacity(n)));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..conc {
            let (next, lat, http) = (next.clone(), lat.clone(), self.http.clone());
            let url = format!("{}/v1/messages", self.base);
            let (token, prefix) = (self.token.clone(), prefix.to_owned());
            tasks.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return;
                    }
                    let body =
                        format!(r#"{{"to":"+4915{i:07}","text":"{prefix}{i}","gateway":"sink"}}"#);
                    let t = Instant::now();
                    let r = http
                        .post(&url)
                        .bearer_auth(&token)
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await
                        .expect("post");
                    assert_eq!(r.status(), 202);
                    let _ = r.bytes().await;
                    lat.lock().unwrap().push(t.elapsed());
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let el = start.elapsed();
        let v = std::mem::take(&mut *lat.lock().unwrap());
        (el, v)
    }
}

async fn wait_for(sink: &HttpSink, n: usize, limit: Duration) -> Duration {
    let start = Instant::now();
    while sink.recorder().len() < n && start.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    start.elapsed()
}

fn main() {
    let single = arg("--single", 20_000);
    let batch = arg("--batch", 100_000);
    let e2e = arg("--e2e", 20_000);
    let rate_secs = arg("--rate-secs", 3);
    let threads = arg("--threads", 2);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(single, batch, e2e, rate_secs));
}

async fn run(single: usize, batch: usize, e2e: usize, rate_secs: usize) {
    let dir = tempfile::tempdir().unwrap();
    let sink = HttpSink::start().await.unwrap();
    let db = dir.path().join("bench.db");
    let cfg = dir.path().join("smsgw.toml");
    std::fs::write(
        &cfg,
        format!(
            "[gateways.sink]\nprovider = \"http\"\n[gateways.sink.options]\nURL = \"{}/send\"\nto = \"{{phone}}\"\ntext = \"{{otp}}\"\n",
            sink.url()
        ),
    )
    .unwrap();
    let mut out = Vec::new();
    smsgw_server::token(
        &smsgw_server::TokenArgs {
            db: db.clone(),
            command: smsgw_server::TokenCommand::Create {
                name: "bench".into(),
                scope: "send".into(),
            },
        },
        &mut out,
    )
    .await
    .unwrap();
    let token = String::from_utf8(out).unwrap().trim().to_owned();
    let mut o = smsgw_server::ServerOptions::new("127.0.0.1:0".parse().unwrap(), db.clone());
    o.config = Some(cfg);
    let server = smsgw_server::start(o).await.unwrap();
    let b = Bench {
        base: format!("http://{}", server.addr()),
        token,
        http: reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(256)
            .build()
            .unwrap(),
    };
    let mut results: Vec<(String, String)> = Vec::new();

    // 1. Accepting single POSTs (the worker drains them at the same time).
    let (el, mut lat) = b.singles(single, 64, "s").await;
    let rate = single as f64 / el.as_secs_f64();
    println!(
        "accept, single POST: {single} in {el:.2?} = {rate:.0} msgs/s; 202 p50 {:.2} ms p99 {:.2} ms",
        pct(&mut lat, 0.5),
        pct(&mut lat, 0.99)
    );
    results.push(("accept_single_msgs_per_s".into(), format!("{rate:.0}")));
    results.push((
        "accept_single_p50_ms".into(),
        format!("{:.2}", pct(&mut lat, 0.5)),
    ));
    results.push((
        "accept_single_p99_ms".into(),
        format!("{:.2}", pct(&mut lat, 0.99)),
    ));
    wait_for(&sink, single, Duration::from_secs(60)).await;

    // 2. Accepting batches of 10 000.
    let per = 10_000usize;
    let body = |k: usize| {
        let msgs: Vec<String> = (0..per)
            .map(|i| format!(r#"{{"to":"+4916{k:03}{i:05}","text":"b{k}-{i}","gateway":"sink"}}"#))
            .collect();
        format!(r#"{{"messages":[{}]}}"#, msgs.join(","))
    };
    let bodies: Vec<String> = (0..batch.div_ceil(per)).map(body).collect();
    let start = Instant::now();
    let mut lat = Vec::new();
    for bd in bodies {
        let t = Instant::now();
        let r = b
            .http
            .post(format!("{}/v1/messages:batch", b.base))
            .bearer_auth(&b.token)
            .header("content-type", "application/json")
            .body(bd)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        let _ = r.bytes().await;
        lat.push(t.elapsed());
    }
    let el = start.elapsed();
    let n = batch.div_ceil(per) * per;
    let rate = n as f64 / el.as_secs_f64();
    println!(
        "accept, :batch of {per}: {n} in {el:.2?} = {rate:.0} msgs/s; 202 p50 {:.1} ms p99 {:.1} ms",
        pct(&mut lat, 0.5),
        pct(&mut lat, 0.99)
    );
    results.push(("accept_batch_msgs_per_s".into(), format!("{rate:.0}")));
    let drained = wait_for(&sink, single + n, Duration::from_secs(120)).await;
    println!("  (the worker drained the batch backlog {drained:.2?} after the last 202)");

    // 3. End to end: POST to the sink's receipt.
    sink.clear();
    let start = Instant::now();
    let (_, _) = b.singles(e2e, 64, "e").await;
    wait_for(&sink, e2e, Duration::from_secs(60)).await;
    let el = start.elapsed();
    let rate = sink.recorder().len() as f64 / el.as_secs_f64();
    println!("end to end: {e2e} POST → sink in {el:.2?} = {rate:.0} msgs/s");
    results.push(("e2e_msgs_per_s".into(), format!("{rate:.0}")));

    // 4. Latency POST → arrival at 1 000 msgs/s offered.
    sink.clear();
    let mut rx = sink.recorder().subscribe();
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let arrivals = tokio::spawn(async move {
        let mut v = Vec::new();
        while let Ok(r) = rx.recv().await {
            v.push((r.text, Instant::now()));
        }
        v
    });
    let total = rate_secs * 1000;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut posts = Vec::new();
    for i in 0..total {
        tick.tick().await;
        let text = format!("lat{i}");
        sent.lock().unwrap().insert(text.clone(), Instant::now());
        let (http, url, token) = (
            b.http.clone(),
            format!("{}/v1/messages", b.base),
            b.token.clone(),
        );
        posts.push(tokio::spawn(async move {
            let body = format!(r#"{{"to":"+4917{i:07}","text":"{text}","gateway":"sink"}}"#);
            let r = http
                .post(url)
                .bearer_auth(token)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 202);
        }));
    }
    for p in posts {
        p.await.unwrap();
    }
    wait_for(&sink, total, Duration::from_secs(30)).await;
    server.shutdown().await;
    drop(sink);
    let arrivals = arrivals.await.unwrap();
    let sent = sent.lock().unwrap();
    let mut lat: Vec<Duration> = arrivals
        .iter()
        .filter_map(|(t, at)| sent.get(t).map(|s| at.duration_since(*s)))
        .collect();
    println!(
        "latency at 1000 msgs/s offered: {} arrivals, POST → sink p50 {:.2} ms p99 {:.2} ms",
        lat.len(),
        pct(&mut lat, 0.5),
        pct(&mut lat, 0.99)
    );
    results.push((
        "e2e_at_1000_p50_ms".into(),
        format!("{:.2}", pct(&mut lat, 0.5)),
    ));
    results.push((
        "e2e_at_1000_p99_ms".into(),
        format!("{:.2}", pct(&mut lat, 0.99)),
    ));
    let db_size: u64 = ["", "-wal"]
        .iter()
        .filter_map(|s| std::fs::metadata(format!("{}{s}", db.display())).ok())
        .map(|m| m.len())
        .sum();
    println!(
        "peak RSS {} MiB, database {} MiB",
        rss_kib() / 1024,
        db_size / (1024 * 1024)
    );
    results.push(("peak_rss_kib".into(), rss_kib().to_string()));
    results.push(("db_bytes".into(), db_size.to_string()));
    for (k, v) in results {
        println!("{k}={v}");
    }
}
