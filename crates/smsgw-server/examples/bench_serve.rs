//! The `smsgw serve` benchmark: accepted messages/s through `POST /v1/messages` (by a server
//! that only accepts, and by one that sends at the same time) and `:batch` (with p50/p99 of the
//! 202), end-to-end messages/s from POST to an HTTP gateway, and the POST-to-arrival latency at
//! 1 000 messages/s offered. With `--soak N`, instead: N messages
//! accepted and sent in waves, with short retentions so that pruning runs, printing the resident
//! memory and the database size as it goes. Everything on loopback, in one process.
//!
//! `cargo run --release -p smsgw-server --example bench_serve [-- --single N --batch N --e2e N
//! --rate-secs S --threads T --clients C --concurrency W]` (W: the worker's sends in flight),
//! or `[-- --soak 1000000 --threads T]`
//!
//! The gateway is an HTTP gateway (the `http` provider) pointed at a counting sink: it answers
//! `200 OK` and keeps a count, plus the arrival time of each text only while the latency is
//! measured, so that a million messages cost it no memory.
//!
//! Prints one `key=value` line per result (for `cargo xtask bench serve`) after a readable summary.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{RawQuery, State};

use smsgw as _;

/// The allocator of the `smsgw` binary (its default feature `mimalloc`), so that the figures
/// are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use smsgw_queue::Queue as _;

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

/// A field of /proc/self/status in KiB: `VmRSS` (now) or `VmHWM` (the peak so far).
fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

/// CPU seconds this process has used (user + system), from `/proc/self/stat` in clock ticks of
/// 1/100 s. Per message, it tells whether a rate was limited by the cores or by waiting.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // After the command name: utime and stime are the 12th and 13th fields.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let mut f = rest.split_whitespace().skip(11);
    let (u, s) = (f.next(), f.next());
    [u, s]
        .iter()
        .filter_map(|v| v.and_then(|v| v.parse::<f64>().ok()))
        .sum::<f64>()
        / 100.0
}

/// Prints and records the CPU milliseconds per message since `from` (CPU seconds).
fn report_cpu(results: &mut Vec<(String, String)>, key: &str, from: f64, n: usize) {
    let ms = (cpu_seconds() - from) * 1000.0 / n.max(1) as f64;
    println!(
        "  ({ms:.3} CPU-ms per message, this whole process: clients, server, worker, gateway)"
    );
    results.push((format!("{key}_cpu_ms_per_msg"), format!("{ms:.3}")));
}

/// Prints and records the share of `n` messages that went straight to a running lane.
fn report_handed_over(results: &mut Vec<(String, String)>, key: &str, handed: u64, n: usize) {
    let share = handed as f64 * 100.0 / n.max(1) as f64;
    println!("  ({share:.1} % handed straight to the lane, the rest claimed from the store)");
    results.push((format!("{key}_handed_over_pct"), format!("{share:.1}")));
}

fn db_bytes(db: &Path) -> u64 {
    ["", "-wal"]
        .iter()
        .filter_map(|s| std::fs::metadata(format!("{}{s}", db.display())).ok())
        .map(|m| m.len())
        .sum()
}

/// The gateway: counts requests, and while `timing` is on notes when each text arrived.
#[derive(Default)]
struct Sink {
    count: AtomicUsize,
    timing: AtomicBool,
    arrivals: Mutex<HashMap<String, Instant>>,
}

impl Sink {
    async fn start() -> (Arc<Sink>, String) {
        let sink = Arc::new(Sink::default());
        let app = axum::Router::new()
            .route("/send", axum::routing::get(receive).post(receive))
            .with_state(sink.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/send", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (sink, url)
    }

    fn count(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    async fn wait_for(&self, n: usize, limit: Duration) -> Duration {
        let start = Instant::now();
        while self.count() < n && start.elapsed() < limit {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        start.elapsed()
    }
}

async fn receive(State(sink): State<Arc<Sink>>, RawQuery(q): RawQuery) -> &'static str {
    if sink.timing.load(Ordering::Relaxed) {
        let at = Instant::now();
        let text = url::form_urlencoded::parse(q.unwrap_or_default().as_bytes())
            .find(|(k, _)| k == "text")
            .map(|(_, v)| v.into_owned());
        if let Some(t) = text {
            sink.arrivals.lock().unwrap().insert(t, at);
        }
    }
    sink.count.fetch_add(1, Ordering::Relaxed);
    "OK"
}

#[derive(Clone)]
struct Bench {
    addr: std::net::SocketAddr,
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Bench {
    /// Posts `n` single messages with `conc` clients, each on one kept-alive connection;
    /// returns the elapsed time and the latencies. The clients use hyper's HTTP/1 connection
    /// API with the request's fixed parts prepared once, not reqwest: they share the two cores
    /// with the server, and with reqwest the client tasks took ~21 % of all samples, about half
    /// of it reqwest's own pool, URL parsing and redirect and retry layers.
    async fn singles(&self, n: usize, conc: usize, prefix: &str) -> (Duration, Vec<Duration>) {
        use http_body_util::{BodyExt as _, Full};
        use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};

        let next = Arc::new(AtomicUsize::new(0));
        let lat = Arc::new(Mutex::new(Vec::with_capacity(n)));
        let auth = hyper::header::HeaderValue::from_str(&format!("Bearer {}", self.token))
            .expect("token is a header value");
        let host = hyper::header::HeaderValue::from_str(&self.addr.to_string()).expect("host");
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..conc {
            let (next, lat, addr) = (next.clone(), lat.clone(), self.addr);
            let (auth, host, prefix) = (auth.clone(), host.clone(), prefix.to_owned());
            tasks.push(tokio::spawn(async move {
                let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
                stream.set_nodelay(true).expect("nodelay");
                let (mut tx, conn) =
                    hyper::client::conn::http1::handshake::<_, Full<bytes::Bytes>>(
                        hyper_util::rt::TokioIo::new(stream),
                    )
                    .await
                    .expect("handshake");
                tokio::spawn(conn);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return;
                    }
                    let body =
                        format!(r#"{{"to":"+4915{i:07}","text":"{prefix}{i}","gateway":"sink"}}"#);
                    let req = hyper::Request::post("/v1/messages")
                        .header(HOST, host.clone())
                        .header(AUTHORIZATION, auth.clone())
                        .header(CONTENT_TYPE, "application/json")
                        .body(Full::new(bytes::Bytes::from(body)))
                        .expect("request");
                    let t = Instant::now();
                    tx.ready().await.expect("connection ready");
                    let r = tx.send_request(req).await.expect("post");
                    assert_eq!(r.status(), 202);
                    let _ = r.into_body().collect().await;
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

    /// Posts `bodies` as `:batch` requests, `in_flight` at a time; returns the elapsed time and
    /// each 202's latency.
    async fn batches(&self, bodies: Vec<String>, in_flight: usize) -> (Duration, Vec<Duration>) {
        let queue = Arc::new(Mutex::new(bodies));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..in_flight {
            let (queue, me) = (queue.clone(), self.clone());
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                loop {
                    let Some(body) = queue.lock().unwrap().pop() else {
                        return lat;
                    };
                    lat.push(me.batch(body).await);
                }
            }));
        }
        let mut lat = Vec::new();
        for t in tasks {
            lat.extend(t.await.unwrap());
        }
        (start.elapsed(), lat)
    }

    /// How many messages went straight to a running lane (`/metrics`,
    /// `smsgw_messages_handed_over_total`): the rest were claimed from the store.
    async fn handed_over(&self) -> u64 {
        let text = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("smsgw_messages_handed_over_total "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0) as u64
    }

    /// Posts one `:batch` body; returns how long the 202 took.
    async fn batch(&self, body: String) -> Duration {
        let t = Instant::now();
        let r = self
            .http
            .post(format!("{}/v1/messages:batch", self.base))
            .bearer_auth(&self.token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        let _ = r.bytes().await;
        t.elapsed()
    }
}

/// Prints the rate and 202 latencies of `n` single POSTs, and adds them to `results` as
/// `{key}_msgs_per_s`, `{key}_p50_ms` and `{key}_p99_ms`.
fn report_singles(
    results: &mut Vec<(String, String)>,
    label: &str,
    key: &str,
    n: usize,
    el: Duration,
    mut lat: Vec<Duration>,
) {
    let rate = n as f64 / el.as_secs_f64();
    let (p50, p99) = (pct(&mut lat, 0.5), pct(&mut lat, 0.99));
    println!("{label}: {n} in {el:.2?} = {rate:.0} msgs/s; 202 p50 {p50:.2} ms p99 {p99:.2} ms");
    results.push((format!("{key}_msgs_per_s"), format!("{rate:.0}")));
    results.push((format!("{key}_p50_ms"), format!("{p50:.2}")));
    results.push((format!("{key}_p99_ms"), format!("{p99:.2}")));
}

/// A `:batch` body of `per` messages, numbered from `first`.
fn batch_body(first: usize, per: usize) -> String {
    let msgs: Vec<String> = (first..first + per)
        .map(|i| format!(r#"{{"to":"+4916{i:08}","text":"Your code is {i:06}","gateway":"sink"}}"#))
        .collect();
    format!(r#"{{"messages":[{}]}}"#, msgs.join(","))
}

fn main() {
    let threads = arg("--threads", 2);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let soak = arg("--soak", 0);
        if soak > 0 {
            run_soak(soak).await
        } else {
            run(
                arg("--single", 20_000),
                arg("--batch", 100_000),
                arg("--e2e", 20_000),
                arg("--rate-secs", 3),
                arg("--clients", 64),
            )
            .await
        }
    });
}

/// A server with an HTTP gateway `sink`, a send token, and a client for it.
struct Setup {
    _dir: tempfile::TempDir,
    db: std::path::PathBuf,
    sink: Arc<Sink>,
    queue: smsgw_queue::SqliteQueue,
    server: smsgw_server::Running,
    bench: Bench,
}

async fn setup(adjust: impl FnOnce(&mut smsgw_server::ServerOptions)) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let (sink, url) = Sink::start().await;
    let db = dir.path().join("bench.db");
    let cfg = dir.path().join("smsgw.toml");
    std::fs::write(
        &cfg,
        format!(
            "[gateways.sink]\nprovider = \"http\"\n[gateways.sink.options]\nURL = \"{url}\"\nto = \"{{phone}}\"\ntext = \"{{otp}}\"\n"
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
    adjust(&mut o);
    // The bench keeps a handle on the queue, to prune it as the server's retention does.
    let queue = smsgw_queue::SqliteQueue::open(&db).await.unwrap();
    let server = smsgw_server::start_with_queue(o, Arc::new(queue.clone()))
        .await
        .unwrap();
    let bench = Bench {
        addr: server.addr(),
        base: format!("http://{}", server.addr()),
        token,
        http: reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(1024)
            .build()
            .unwrap(),
    };
    Setup {
        _dir: dir,
        db,
        sink,
        queue,
        server,
        bench,
    }
}

async fn run(single: usize, batch: usize, e2e: usize, rate_secs: usize, clients: usize) {
    let Setup {
        _dir,
        db,
        sink,
        queue: _,
        server,
        bench: b,
    } = setup(|o| {
        o.worker.concurrency = arg("--concurrency", o.worker.concurrency);
    })
    .await;
    let mut results: Vec<(String, String)> = Vec::new();

    // 0. Accepting single POSTs alone: a server that only accepts (as an API node does), so
    // that the figure is the accept path's, not shared with sending on the same two cores.
    {
        let alone = setup(|o| o.run_worker = false).await;
        let cpu = cpu_seconds();
        let (el, lat) = alone.bench.singles(single, clients, "a").await;
        let label =
            format!("accept alone, single POST ({clients} clients, nothing sent meanwhile)");
        report_singles(&mut results, &label, "accept_alone", single, el, lat);
        report_cpu(&mut results, "accept_alone", cpu, single);
        alone.server.shutdown().await;
    }

    // 1. Accepting single POSTs (the worker drains them at the same time).
    let (el, lat) = b.singles(single, clients, "s").await;
    let label = format!("accept, single POST ({clients} clients)");
    report_singles(&mut results, &label, "accept_single", single, el, lat);
    sink.wait_for(single, Duration::from_secs(60)).await;

    // 2. Accepting batches of 10 000: one request at a time, then two in flight (a bulk sender
    // with two connections: one batch is parsed while the other is written).
    let per = 10_000usize;
    let n = batch.div_ceil(per) * per;
    let mut sent = 0;
    for (in_flight, key) in [(1, "accept_batch"), (2, "accept_batch_2")] {
        let bodies: Vec<String> = (0..batch.div_ceil(per))
            .map(|k| batch_body(sent + k * per, per))
            .collect();
        let (el, mut lat) = b.batches(bodies, in_flight).await;
        sent += n;
        let rate = n as f64 / el.as_secs_f64();
        println!(
            "accept, :batch of {per}, {in_flight} in flight: {n} in {el:.2?} = {rate:.0} msgs/s; 202 p50 {:.1} ms p99 {:.1} ms",
            pct(&mut lat, 0.5),
            pct(&mut lat, 0.99)
        );
        results.push((format!("{key}_msgs_per_s"), format!("{rate:.0}")));
        // Drained before the next phase, so that it does not share the cores with this backlog.
        let drained = sink.wait_for(single + sent, Duration::from_secs(120)).await;
        println!("  (the worker drained the batch backlog {drained:.2?} after the last 202)");
    }

    // 3. End to end: POST to the gateway's receipt.
    let before = sink.count();
    let handed = b.handed_over().await;
    let (start, cpu) = (Instant::now(), cpu_seconds());
    let (_, _) = b.singles(e2e, clients, "e").await;
    sink.wait_for(before + e2e, Duration::from_secs(60)).await;
    let el = start.elapsed();
    let rate = (sink.count() - before) as f64 / el.as_secs_f64();
    println!("end to end: {e2e} POST → gateway in {el:.2?} = {rate:.0} msgs/s");
    results.push(("e2e_msgs_per_s".into(), format!("{rate:.0}")));
    report_cpu(&mut results, "e2e", cpu, e2e);
    report_handed_over(&mut results, "e2e", b.handed_over().await - handed, e2e);

    // 4. Latency POST → arrival at 1 000 msgs/s offered.
    sink.timing.store(true, Ordering::Relaxed);
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let total = rate_secs * 1000;
    let before = sink.count();
    let handed = b.handed_over().await;
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
    sink.wait_for(before + total, Duration::from_secs(30)).await;
    let handed = b.handed_over().await - handed;
    server.shutdown().await;
    let arrivals = std::mem::take(&mut *sink.arrivals.lock().unwrap());
    let sent = sent.lock().unwrap();
    let mut lat: Vec<Duration> = arrivals
        .iter()
        .filter_map(|(t, at)| sent.get(t).map(|s| at.duration_since(*s)))
        .collect();
    println!(
        "latency at 1000 msgs/s offered: {} arrivals, POST → gateway p50 {:.2} ms p99 {:.2} ms",
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
    report_handed_over(&mut results, "e2e_at_1000", handed, total);
    let db_size = db_bytes(&db);
    let peak = status_kib("VmHWM:");
    println!(
        "peak RSS {} MiB, database {} MiB",
        peak / 1024,
        db_size / (1024 * 1024)
    );
    results.push(("peak_rss_kib".into(), peak.to_string()));
    results.push(("db_bytes".into(), db_size.to_string()));
    for (k, v) in results {
        println!("{k}={v}");
    }
}

/// Texts are erased this long after a message is final, rows deleted after `ROW_RETENTION`.
const TEXT_RETENTION: Duration = Duration::from_secs(5);
const ROW_RETENTION: Duration = Duration::from_secs(30);
/// How often the soak prunes (the server itself prunes at start and every hour).
const PRUNE_EVERY: Duration = Duration::from_secs(5);
/// Messages per wave (`:batch` requests of 10 000), and how many may be unsent when the next
/// wave starts.
const WAVE: usize = 50_000;

async fn run_soak(total: usize) {
    let Setup {
        _dir,
        db,
        sink,
        queue,
        server,
        bench: b,
    } = setup(|o| {
        o.text_retention = TEXT_RETENTION;
        o.row_retention = ROW_RETENTION;
    })
    .await;
    println!(
        "soak: {total} messages in waves of {WAVE} (`:batch` of 10 000), texts kept {TEXT_RETENTION:?}, rows {ROW_RETENTION:?}, pruned every {PRUNE_EVERY:?}"
    );
    // Retention as the server runs it (`Queue::prune`), only more often.
    let pruned = Arc::new(Mutex::new((0u64, 0u64)));
    let pruner = {
        let (queue, pruned) = (queue.clone(), pruned.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(PRUNE_EVERY).await;
                let now = smsgw_queue::now_ms();
                let p = queue
                    .prune(
                        now - TEXT_RETENTION.as_millis() as i64,
                        now - ROW_RETENTION.as_millis() as i64,
                    )
                    .await
                    .unwrap();
                let mut t = pruned.lock().unwrap();
                t.0 += p.texts;
                t.1 += p.rows;
            }
        })
    };
    let start = Instant::now();
    let mut posted = 0;
    let mut samples = Vec::new();
    println!("      sent   accepted    secs  RSS MiB  DB+WAL MiB  texts erased  rows deleted");
    while posted < total {
        let n = WAVE.min(total - posted);
        for k in (0..n).step_by(10_000) {
            b.batch(batch_body(posted + k, 10_000.min(n - k))).await;
        }
        posted += n;
        // The next wave waits until at most one wave is unsent: the backlog stays bounded.
        sink.wait_for(posted.saturating_sub(WAVE), Duration::from_secs(300))
            .await;
        let rss = status_kib("VmRSS:");
        samples.push(rss);
        let (texts, rows) = *pruned.lock().unwrap();
        println!(
            "{:>10} {posted:>10} {:>7.1} {:>8} {:>11} {texts:>13} {rows:>13}",
            sink.count(),
            start.elapsed().as_secs_f64(),
            rss / 1024,
            db_bytes(&db) / (1024 * 1024),
        );
    }
    sink.wait_for(total, Duration::from_secs(600)).await;
    let el = start.elapsed();
    pruner.abort();
    let db_size = db_bytes(&db);
    let (texts, rows) = *pruned.lock().unwrap();
    let counts = queue.stats().await.unwrap();
    server.shutdown().await;
    let rate = sink.count() as f64 / el.as_secs_f64();
    let first = samples.first().copied().unwrap_or(0);
    let max = samples.iter().copied().max().unwrap_or(0);
    let last = samples.last().copied().unwrap_or(0);
    println!(
        "soak: {} sent in {el:.1?} = {rate:.0} msgs/s; RSS after the first wave {} MiB, highest {} MiB, last {} MiB, peak (VmHWM) {} MiB; database + WAL {} MiB; {texts} texts erased, {rows} rows deleted; left in the database: {:?}",
        sink.count(),
        first / 1024,
        max / 1024,
        last / 1024,
        status_kib("VmHWM:") / 1024,
        db_size / (1024 * 1024),
        counts.by_status,
    );
    for (k, v) in [
        ("soak_messages", sink.count().to_string()),
        ("soak_msgs_per_s", format!("{rate:.0}")),
        ("soak_rss_first_kib", first.to_string()),
        ("soak_rss_max_kib", max.to_string()),
        ("soak_rss_last_kib", last.to_string()),
        ("peak_rss_kib", status_kib("VmHWM:").to_string()),
        ("db_bytes", db_size.to_string()),
        ("pruned_texts", texts.to_string()),
        ("pruned_rows", rows.to_string()),
    ] {
        println!("{k}={v}");
    }
}
