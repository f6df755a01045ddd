//! `cargo xtask bench nats` (or `cargo run --release -p smsgw-nats --example bench_nats`):
//! throughput against a sink that answers after 20 ms — one worker with concurrency 64 versus
//! three such workers — and the accepted rate per API node. Needs `nats-server` installed; it
//! starts its own on a free loopback port with a temporary store.
//!
//! Options: `--messages N` (default 6000), `--latency-ms MS` (default 20), `--json`,
//! `--compare-latency-ms MS` (default 100; 0 skips it): the same two drains once more against a
//! sink that slow, where three workers stay within the machine's cores — so the ratio there
//! shows the scaling itself, and the first run's shows where the cores end it.
//!
//! Next to each rate it prints the CPU seconds the broker and this process spent per 1000
//! messages in that phase (draining: workers and sink, the API nodes idle; accepting: API nodes
//! and their HTTP client), and the load average: where the machine's cores, not the gateway's
//! latency, are the limit, more workers cannot help. CPU per message is the number to compare
//! between runs on a shared machine; rates depend on what else runs.

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use smsgw_nats::{NatsOptions, NatsQueue};
use smsgw_queue::{Queue, Scope, TokenRecord, now_ms};
use smsgw_sinks::http::HttpSink;
use support::{NatsServer, Worker, http_gateway};

struct Args {
    messages: usize,
    latency: Duration,
    compare: Duration,
    json: bool,
}

fn args() -> Args {
    let mut a = Args {
        messages: 6000,
        latency: Duration::from_millis(20),
        compare: Duration::from_millis(100),
        json: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--messages" => {
                a.messages = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--messages N")
            }
            "--latency-ms" => {
                a.latency = Duration::from_millis(
                    it.next()
                        .and_then(|v| v.parse().ok())
                        .expect("--latency-ms MS"),
                )
            }
            "--compare-latency-ms" => {
                a.compare = Duration::from_millis(
                    it.next()
                        .and_then(|v| v.parse().ok())
                        .expect("--compare-latency-ms MS"),
                )
            }
            "--json" => a.json = true,
            other => panic!("unknown option {other}"),
        }
    }
    a
}

/// Two API nodes (`smsgw serve --queue` without a worker: the server over its own
/// connection) and a token valid on both.
async fn api_nodes(url: &str, config: &Path) -> (Vec<smsgw_server::Running>, String) {
    let token = smsgw_server::generate_token();
    let setup = NatsQueue::connect(url, NatsOptions::default())
        .await
        .expect("connect");
    setup
        .create_token(&TokenRecord {
            name: "bench".into(),
            scope: Scope::Send,
            hash: smsgw_server::hash_token(&token),
            created_at: now_ms(),
        })
        .await
        .expect("token");
    setup.close().await;
    let mut nodes = Vec::new();
    for _ in 0..2 {
        let mut o =
            smsgw_server::ServerOptions::new(([127, 0, 0, 1], 0).into(), "unused.db".into());
        o.config = Some(config.to_owned());
        o.run_worker = false;
        let q = NatsQueue::connect(url, NatsOptions::default())
            .await
            .expect("connect");
        let node = smsgw_server::start_with_queue(o, Arc::new(q))
            .await
            .expect("API node");
        nodes.push(node);
    }
    (nodes, token)
}

/// Both API nodes accept `n` messages between them over HTTP (`POST /v1/messages:batch`,
/// batches of 500, one request at a time per node); returns messages/s per node.
async fn accept(nodes: &[smsgw_server::Running], token: &str, n: usize, offset: usize) -> f64 {
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client");
    let mine = n / nodes.len();
    let mut tasks = Vec::new();
    for (k, node) in nodes.iter().enumerate() {
        let (http, token) = (http.clone(), token.to_owned());
        let base = format!("http://{}/v1/messages:batch", node.addr());
        tasks.push(tokio::spawn(async move {
            let started = Instant::now();
            let mut done = 0;
            while done < mine {
                let count = 500.min(mine - done);
                let from = offset + k * mine + done;
                let messages: Vec<serde_json::Value> = (from..from + count)
                    .map(|i| serde_json::json!({"to": "+491511234567", "text": format!("b{i}"), "gateway": "sink"}))
                    .collect();
                let r = http
                    .post(&base)
                    .bearer_auth(&token)
                    .json(&serde_json::json!({ "messages": messages }))
                    .send()
                    .await
                    .expect("POST /v1/messages:batch");
                assert_eq!(r.status(), 202, "the batch was not accepted");
                done += count;
            }
            mine as f64 / started.elapsed().as_secs_f64()
        }));
    }
    let mut rates = Vec::new();
    for t in tasks {
        rates.push(t.await.expect("node"));
    }
    rates.iter().sum::<f64>() / rates.len() as f64
}

/// CPU seconds process `pid` ("self" for this one) has used so far (user + system, from
/// `/proc`; 0 where there is no `/proc`).
fn cpu_s(pid: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name: state is the first, utime the 12th, stime the 13th.
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Clock ticks are 1/100 s on Linux (USER_HZ).
    (ticks(11) + ticks(12)) / 100.0
}

/// CPU seconds of the broker and of this process.
fn cpu(nats: &NatsServer) -> (f64, f64) {
    let broker = nats.pid().map(|p| cpu_s(&p.to_string())).unwrap_or(0.0);
    (broker, cpu_s("self"))
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Each worker's sends in flight (the figure).
const CONCURRENCY: usize = 64;

/// Runs `workers` of the server's delivery workers (what `smsgw worker` runs; each its own
/// connection, concurrency 64) until the sink has `n` more messages; returns messages/s.
async fn drain(url: &str, sink: &HttpSink, config: &Path, workers: usize, n: usize) -> f64 {
    let before = sink.recorder().len();
    // Connected first, so that the clock counts sending, not connecting.
    let mut queues = Vec::new();
    for _ in 0..workers {
        let q = NatsQueue::connect(url, NatsOptions::default()).await;
        queues.push(q.expect("connect"));
    }
    let started = Instant::now();
    let running: Vec<Worker> = queues
        .into_iter()
        .map(|q| Worker::spawn(q, config, CONCURRENCY))
        .collect();
    let until = Instant::now() + Duration::from_secs(60);
    while sink.recorder().len() < before + n {
        assert!(
            Instant::now() < until,
            "the workers did not finish within a minute"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    for w in running {
        w.stop().await;
    }
    rate
}

/// One measurement: both drains (and the accepts that fill the queue for them) against a sink
/// answering after `latency`.
struct Run {
    latency: Duration,
    one: f64,
    three: f64,
    accepted: f64,
    /// CPU s per 1000 messages, (broker, this process): one worker, three, accepting.
    cpu: [(f64, f64); 3],
}

impl Run {
    fn ratio(&self) -> f64 {
        self.three / self.one
    }

    /// What three workers could reach if the gateway's latency were the only limit.
    fn latency_bound(&self) -> f64 {
        3.0 * CONCURRENCY as f64 / self.latency.as_secs_f64()
    }

    /// What this machine's cores carry at the three workers' CPU per message.
    fn cpu_bound(&self) -> f64 {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let per_msg = (self.cpu[1].0 + self.cpu[1].1) / 1000.0;
        if per_msg > 0.0 {
            cores / per_msg
        } else {
            f64::INFINITY
        }
    }
}

/// What every measurement shares: the broker, the sink, the configuration, the API nodes and
/// their token, and the messages per drain.
struct Env<'a> {
    nats: &'a NatsServer,
    sink: &'a HttpSink,
    config: &'a Path,
    nodes: &'a [smsgw_server::Running],
    token: &'a str,
    n: usize,
}

async fn measure(env: &Env<'_>, offset: usize, latency: Duration) -> Run {
    let Env {
        nats,
        sink,
        config,
        nodes,
        token,
        n,
    } = *env;
    sink.faults().always(smsgw_sinks::Fault::Delay(latency));
    let c_start = cpu(nats);
    let accepted_1 = accept(nodes, token, n, offset).await;
    let c0 = cpu(nats);
    let one = drain(&nats.url(), sink, config, 1, n).await;
    let c1 = cpu(nats);
    let accepted_2 = accept(nodes, token, n, offset + n).await;
    let c2 = cpu(nats);
    let three = drain(&nats.url(), sink, config, 3, n).await;
    let c3 = cpu(nats);
    let per_1000 = |from: (f64, f64), to: (f64, f64)| {
        let k = n as f64 / 1000.0;
        ((to.0 - from.0) / k, (to.1 - from.1) / k)
    };
    let (a1, a2) = (per_1000(c_start, c0), per_1000(c1, c2));
    Run {
        latency,
        one,
        three,
        accepted: (accepted_1 + accepted_2) / 2.0,
        cpu: [
            per_1000(c0, c1),
            per_1000(c2, c3),
            ((a1.0 + a2.0) / 2.0, (a1.1 + a2.1) / 2.0),
        ],
    }
}

fn json(r: &Run) -> serde_json::Value {
    serde_json::json!({
        "latency_ms": r.latency.as_millis() as u64,
        "one_worker_per_s": r.one.round(), "three_workers_per_s": r.three.round(),
        "ratio": (r.ratio() * 100.0).round() / 100.0,
        "three_workers_latency_bound_per_s": r.latency_bound().round(),
        "three_workers_cpu_bound_per_s": r.cpu_bound().round(),
        "accepted_per_s_per_api_node": r.accepted.round(),
        "cpu_s_per_1000": {
            "one_worker": {"broker": r.cpu[0].0, "bench_process": r.cpu[0].1},
            "three_workers": {"broker": r.cpu[1].0, "bench_process": r.cpu[1].1},
            "accept": {"broker": r.cpu[2].0, "bench_process": r.cpu[2].1},
        },
    })
}

fn print(r: &Run, n: usize) {
    println!("nats: sink latency {:?}, {n} messages per run", r.latency);
    println!(
        "  one worker (concurrency {CONCURRENCY}):    {:>8.0} msg/s   CPU s per 1000: broker {:.2}, workers+sink {:.2}",
        r.one, r.cpu[0].0, r.cpu[0].1
    );
    println!(
        "  three workers (concurrency {CONCURRENCY}): {:>8.0} msg/s   CPU s per 1000: broker {:.2}, workers+sink {:.2}",
        r.three, r.cpu[1].0, r.cpu[1].1
    );
    println!("  ratio {:.2} (goal >= 2.7)", r.ratio());
    println!(
        "  three workers' limits: the gateway's latency {:.0} msg/s, this machine's cores at this CPU per message {:.0} msg/s",
        r.latency_bound(),
        r.cpu_bound()
    );
    println!(
        "  accepted per API node (2 nodes, HTTP batches of 500): {:>8.0} msg/s   CPU s per 1000: broker {:.2}, API nodes+client {:.2}",
        r.accepted, r.cpu[2].0, r.cpu[2].1
    );
}

#[tokio::main]
async fn main() {
    let a = args();
    let nats = NatsServer::start();
    let sink = HttpSink::start().await.expect("sink");
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("smsgw.toml");
    std::fs::write(&config, http_gateway("sink", &sink.url())).expect("config file");

    let load_before = load_average();
    let (nodes, token) = api_nodes(&nats.url(), &config).await;
    let n = a.messages;
    let env = Env {
        nats: &nats,
        sink: &sink,
        config: &config,
        nodes: &nodes,
        token: &token,
        n,
    };
    let mut runs = vec![measure(&env, 0, a.latency).await];
    if !a.compare.is_zero() && a.compare != a.latency {
        runs.push(measure(&env, 2 * n, a.compare).await);
    }
    let load_after = load_average();
    for node in nodes {
        node.shutdown().await;
    }
    if a.json {
        let first = &runs[0];
        let mut out = json(first);
        out["bench"] = "nats".into();
        out["messages"] = n.into();
        out["goal_ratio"] = 2.7.into();
        out["load_average"] = serde_json::json!({"before": load_before, "after": load_after});
        if let Some(c) = runs.get(1) {
            out["compare"] = json(c);
        }
        println!("{out}");
    } else {
        for r in &runs {
            print(r, n);
        }
        println!("  load average before: {load_before}; after: {load_after}");
    }
}
