//! Two API nodes and three worker processes, 5 000 messages, one worker killed with SIGKILL in
//! the middle: every message ends with one final status, the sink got each `sent` message once,
//! except those whose status says they may have been sent twice.
//!
//! The workers are this test binary re-executed in child mode (`SMSGW_NATS_CHILD=worker`); they
//! stop when their standard input closes, so none outlives the test.

mod support;

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use smsgw_nats::{NatsOptions, NatsQueue};
use smsgw_queue::{NewMessage, Queue, Status, Target};
use smsgw_sinks::http::HttpSink;
use support::{NatsServer, Worker, http_gateway};
use tokio::io::AsyncReadExt;

const MESSAGES: usize = 5_000;

fn opts() -> NatsOptions {
    NatsOptions {
        ack_wait: Duration::from_secs(2),
        request_timeout: Duration::from_secs(5),
        ..NatsOptions::default()
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    if std::env::var("SMSGW_NATS_CHILD").as_deref() == Ok("worker") {
        rt.block_on(child_worker());
    } else {
        rt.block_on(two_nodes_three_workers_one_killed());
        println!("test two_nodes_three_workers_one_killed ... ok");
    }
}

async fn child_worker() {
    let url = std::env::var("SMSGW_NATS_URL").expect("url");
    let sink = std::env::var("SMSGW_NATS_SINK").expect("sink");
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("smsgw.toml");
    std::fs::write(&config, http_gateway("sms1", &sink)).expect("config file");
    let worker = Worker::start(&url, opts(), &config, 32).await;
    let mut buf = [0u8; 64];
    let mut stdin = tokio::io::stdin();
    while matches!(stdin.read(&mut buf).await, Ok(n) if n > 0) {}
    worker.stop().await;
}

fn spawn_worker(url: &str, sink: &str) -> Child {
    Command::new(std::env::current_exe().expect("test binary"))
        .env("SMSGW_NATS_CHILD", "worker")
        .env("SMSGW_NATS_URL", url)
        .env("SMSGW_NATS_SINK", sink)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawning a worker")
}

async fn two_nodes_three_workers_one_killed() {
    let nats = NatsServer::start();
    // A little latency, so that the killed worker has sends in flight.
    let sink = HttpSink::start().await.unwrap();
    sink.faults()
        .always(smsgw_sinks::Fault::Delay(Duration::from_millis(2)));
    let nodes = [
        NatsQueue::connect(&nats.url(), opts()).await.unwrap(),
        NatsQueue::connect(&nats.url(), opts()).await.unwrap(),
    ];
    let mut workers: Vec<Child> = (0..3)
        .map(|_| spawn_worker(&nats.url(), &sink.url()))
        .collect();

    let mut ids: Vec<(String, String)> = Vec::with_capacity(MESSAGES);
    let mut killed = false;
    for chunk in 0..(MESSAGES / 250) {
        let node = &nodes[chunk % 2];
        let batch: Vec<NewMessage> = (0..250)
            .map(|i| NewMessage {
                to: "+491511234567".into(),
                text: format!("m{}", chunk * 250 + i),
                target: Target::Gateway("sms1".into()),
                metadata: None,
                callback_url: None,
                idempotency_key: None,
            })
            .collect();
        for e in node.enqueue_batch(batch).await.expect("accepted") {
            ids.push((e.record.id.clone(), e.record.text.clone().unwrap()));
        }
        if !killed && sink.recorder().len() >= MESSAGES / 4 {
            workers[0].kill().expect("SIGKILL"); // Child::kill is SIGKILL on Unix
            let _ = workers[0].wait();
            killed = true;
        }
    }
    let until = Instant::now() + Duration::from_secs(120);
    while !killed {
        if sink.recorder().len() >= MESSAGES / 4 {
            workers[0].kill().expect("SIGKILL");
            let _ = workers[0].wait();
            killed = true;
        }
        assert!(Instant::now() < until, "the workers did not start sending");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Wait for every message to be final, asking either node.
    let records = loop {
        let mut all = Vec::with_capacity(ids.len());
        let mut pending = 0;
        for (n, (id, _)) in ids.iter().enumerate() {
            let r = nodes[n % 2]
                .get(id)
                .await
                .unwrap()
                .expect("accepted message exists");
            pending += usize::from(!r.status.is_final());
            all.push(r);
        }
        if pending == 0 {
            break all;
        }
        assert!(Instant::now() < until, "{pending} messages never finished");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };

    let mut received: HashMap<String, usize> = HashMap::new();
    for r in sink.recorder().all() {
        *received.entry(r.text).or_default() += 1;
    }
    let mut duplicates_flagged = 0;
    for (r, (_, text)) in records.iter().zip(&ids) {
        assert_eq!(r.status, Status::Sent, "{r:?}");
        let n = received.get(text).copied().unwrap_or(0);
        if r.possible_duplicate {
            duplicates_flagged += 1;
            assert!((1..=2).contains(&n), "{r:?}: received {n} times");
        } else {
            assert_eq!(n, 1, "{r:?}: received {n} times");
        }
    }
    let status = nodes[0].status().await.unwrap();
    assert_eq!(status.depth, 0, "{status}");
    assert_eq!(status.dead_letters, 0, "{status}");
    eprintln!(
        "{MESSAGES} messages, all sent; {duplicates_flagged} flagged as possible duplicates \
         (in flight in the killed worker), {} requests at the sink",
        sink.recorder().len()
    );
    drop(workers); // their stdin closes: they drain and exit
}
