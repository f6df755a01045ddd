//! Per-gateway `rate` limits held across workers through the broker: each "worker" is its own
//! connection with its own `shared_rate()` (and so its own cache of taken tokens), against a
//! real `nats-server -js` on loopback.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use smsgw_nats::{CACHE_TTL, NatsOptions, NatsQueue};
use smsgw_routing::SharedRate;
use support::NatsServer;

async fn worker_rate(url: &str) -> Arc<dyn SharedRate> {
    NatsQueue::connect(url, NatsOptions::default())
        .await
        .expect("connect")
        .shared_rate()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_together_hold_the_rate() {
    let nats = NatsServer::start();
    let rate = 50.0;
    let run_for = Duration::from_secs(2);
    let workers = [
        worker_rate(&nats.url()).await,
        worker_rate(&nats.url()).await,
    ];
    let granted: [Arc<AtomicU32>; 2] = Default::default();
    let started = Instant::now();
    let mut tasks = Vec::new();
    // Each worker has many sends waiting at once, as a worker with concurrency does.
    for (w, count) in workers.iter().zip(&granted) {
        for _ in 0..8 {
            let (w, count) = (w.clone(), count.clone());
            tasks.push(tokio::spawn(async move {
                while started.elapsed() < run_for {
                    if w.acquire("sms one", rate, 1, Duration::from_millis(500))
                        .await
                        .is_ok()
                    {
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    let took = started.elapsed().as_secs_f64();
    let (a, b) = (
        granted[0].load(Ordering::Relaxed),
        granted[1].load(Ordering::Relaxed),
    );
    let total = f64::from(a + b);
    eprintln!("{a} + {b} tokens in {took:.2}s at {rate}/s");
    // At most the bucket (one batch: 3 tokens at 50/s) plus the rate over the run and the
    // cache's lifetime; a margin of a fifth for clocks and rounding.
    let bound = 3.0 + rate * (took + CACHE_TTL.as_secs_f64());
    assert!(
        total <= bound * 1.2,
        "{a} + {b} tokens in {took:.2}s at {rate}/s (bound {bound:.0})"
    );
    // And it does grant: both workers got tokens, together a fair part of the rate.
    assert!(a > 0 && b > 0, "{a} + {b}");
    assert!(total >= rate * 0.5, "{a} + {b} tokens in {took:.2}s");
}

#[tokio::test]
async fn the_rate_holds_across_three_connections_whoever_asks() {
    let nats = NatsServer::start();
    let rate = 40.0;
    let mut tasks = Vec::new();
    let started = Instant::now();
    for _ in 0..3 {
        let w = worker_rate(&nats.url()).await;
        tasks.push(tokio::spawn(async move {
            for _ in 0..40 {
                w.acquire("slow gw", rate, 1, Duration::from_secs(30))
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // 120 tokens at 40/s from a bucket of 2: at least (120 - 2) / 40 - CACHE_TTL ≈ 2.85 s.
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(2500), "{took:?}");
    assert!(took < Duration::from_secs(30), "{took:?}");
}

#[tokio::test]
async fn no_slot_in_time_and_a_bad_rate_are_errors_naming_the_gateway() {
    let nats = NatsServer::start();
    let w = worker_rate(&nats.url()).await;
    // 1/s: the first token is there, the next is a second away — more than 100 ms.
    w.acquire("gw-a", 1.0, 1, Duration::from_secs(5))
        .await
        .unwrap();
    let t = Instant::now();
    let e = w
        .acquire("gw-a", 1.0, 1, Duration::from_millis(100))
        .await
        .unwrap_err();
    assert!(e.contains("gw-a"), "{e}");
    assert!(
        t.elapsed() < Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );
    let e = w
        .acquire("gw-b", f64::NAN, 1, Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(e.contains("gw-b") && e.contains("rate"), "{e}");
}
