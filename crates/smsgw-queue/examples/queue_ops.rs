//! The SQLite queue's own cost per message, without HTTP or gateways: `N` messages accepted in
//! `:batch`-sized inserts, then claimed and completed in the worker's chunk size, one operation at
//! a time (nothing else runs, so every figure is the store's alone). Used to compare schema and
//! statement changes; `cargo xtask bench serve` measures the service as a whole.
//!
//! `cargo run --release -p smsgw-queue --example queue_ops [-- N CHUNK]` (default 100 000, 64).

use std::time::{Duration, Instant};

use smsgw_queue::{Attempt, Completion, NewMessage, Outcome, Queue, SqliteQueue, Target, now_ms};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let chunk: usize = args.next().and_then(|v| v.parse().ok()).unwrap_or(64);
    let dir = tempfile::tempdir().expect("temp dir");
    let q = SqliteQueue::open(&dir.path().join("ops.db"))
        .await
        .expect("open");
    let target = Target::Gateway("sink".into());

    let t = Instant::now();
    for first in (0..n).step_by(10_000) {
        let msgs = (first..(first + 10_000).min(n))
            .map(|i| NewMessage {
                to: format!("+4916{i:08}"),
                text: format!("Your code is {i:06}"),
                target: target.clone(),
                metadata: None,
                callback_url: None,
                idempotency_key: None,
            })
            .collect();
        q.enqueue_batch(msgs).await.expect("insert");
    }
    report("insert (batches of 10 000)", n, t.elapsed());

    let (mut claim_t, mut done_t, mut claimed) = (Duration::ZERO, Duration::ZERO, 0);
    loop {
        let t = Instant::now();
        let c = q
            .claim(&target, chunk, Duration::from_secs(60))
            .await
            .expect("claim");
        claim_t += t.elapsed();
        if c.is_empty() {
            break;
        }
        claimed += c.len();
        let done = c
            .into_iter()
            .map(|c| Completion {
                id: c.record.id,
                lease: c.lease,
                attempts: vec![Attempt {
                    gateway: "sink".into(),
                    kind: "sent".into(),
                    error: None,
                    ms: 1,
                    at: now_ms(),
                }],
                outcome: Outcome::Sent {
                    message_ids: Vec::new(),
                },
            })
            .collect();
        let t = Instant::now();

        for r in q.complete_many(done).await {
            r.expect("complete");
        }
        done_t += t.elapsed();
    }
    report(&format!("claim (chunks of {chunk})"), claimed, claim_t);
    report(&format!("complete (chunks of {chunk})"), claimed, done_t);
    q.close().await;
}

fn report(what: &str, n: usize, took: Duration) {
    println!(
        "{what}: {n} in {took:.2?} = {:.1} µs per message",
        took.as_secs_f64() * 1e6 / n as f64
    );
}
