//! A server nobody scrapes stays flat in memory: the Prometheus recorder keeps every histogram
//! sample until it is folded into its summary, which happens when `/metrics` is read or at the
//! recorder's upkeep — so the server must run the upkeep itself. One test in this file, because
//! it counts the whole process's heap.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use common::*;

/// The system allocator, counting the bytes currently allocated.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call goes to `System` unchanged; only the count is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            LIVE.fetch_add(l.size() as isize, Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(l) };
        if !p.is_null() {
            LIVE.fetch_add(l.size() as isize, Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        LIVE.fetch_sub(l.size() as isize, Relaxed);
    }

    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            LIVE.fetch_add(new as isize - l.size() as isize, Relaxed);
        }
        q
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const MIB: isize = 1024 * 1024;

#[tokio::test]
async fn histogram_samples_are_folded_although_nobody_reads_the_metrics() {
    // Starting a server installs the process's recorder (and must start its upkeep).
    let mut e = env().await;
    // As every send records its duration: two million samples, 16 MiB while they are kept.
    let h = metrics::histogram!("smsgw_test_unscraped_seconds");
    let before = LIVE.load(Relaxed);
    for _ in 0..2_000_000 {
        h.record(0.001);
    }
    let kept = LIVE.load(Relaxed) - before;
    assert!(
        kept > 8 * MIB,
        "recording kept only {kept} bytes: this test could not tell folded samples from kept ones"
    );
    // Folded within the upkeep's period; the freed blocks are reclaimed once other threads move
    // on (the recording below does, as sends do).
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        for _ in 0..1000 {
            h.record(0.001);
        }
        let held = LIVE.load(Relaxed) - before;
        if held < 2 * MIB {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{held} bytes still held 15 s after recording, and nobody read /metrics"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // And the samples were folded, not lost.
    let page = e.metrics().await;
    let count = page
        .lines()
        .find_map(|l| l.strip_prefix("smsgw_test_unscraped_seconds_count "))
        .map(|v| v.trim().parse::<f64>().unwrap())
        .expect("the histogram on /metrics");
    assert!(count >= 2_000_000.0, "{count} samples counted");
    e.stop().await;
}
