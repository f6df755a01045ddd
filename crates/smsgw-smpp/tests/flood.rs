//! Issue #12 item 3: an SMSC that answers the bind, floods (enquire_link or deliver_sm) and
//! stops reading must not grow smsgw's memory; the send fails at its timeout with a classified
//! error, and shutdown ends in bounded time whatever the peer does.

mod common;

use std::time::{Duration, Instant};

use common::gateway;
use smsgw_core::{ErrorKind, Message};
use smsgw_testkit::smsc::{Flood, Smsc};

/// The flood of the issue.
const FLOOD: usize = 400_000;

/// Resident memory of this process, from /proc/self/statm.
fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("linux /proc");
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("resident pages");
    pages * 4096
}

/// The floods run one at a time: they measure the memory of the whole process.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn flood_case(flood: Flood, extra: &[(&str, &str)]) {
    let _serial = SERIAL.lock().await;
    let smsc = Smsc::start().await.unwrap();
    smsc.flood_after_bind(flood, false);
    let gw = gateway(&smsc, extra);
    let before = rss_bytes();
    let started = Instant::now();
    // The bind succeeds, then the SMSC floods and reads nothing: no submit_sm_resp comes.
    let e = gw
        .send(&Message::new("491511234567", "x"))
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(e.kind(), ErrorKind::Unknown | ErrorKind::NotSent),
        "classified: {e}"
    );
    assert!(
        took >= Duration::from_millis(500),
        "failed at its timeout, not at once: {took:?}"
    );
    assert!(took < Duration::from_secs(30), "bounded: {took:?}");
    // Let the flood go on a while longer.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let grown = rss_bytes().saturating_sub(before);
    let written = smsc.flood_written();
    // 400 000 PDUs kept in memory would be tens of MB at the very least (the report saw 1.3 GB).
    assert!(
        grown < 24 * 1024 * 1024,
        "memory grew by {grown} bytes during a flood of {written} PDUs"
    );
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(15), gw.shutdown())
        .await
        .expect("shutdown is bounded");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    eprintln!("{flood:?}: {written} written, RSS +{grown} bytes, error: {e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enquire_link_flood_keeps_memory_flat_and_shutdown_bounded() {
    flood_case(Flood::EnquireLink(FLOOD), &[("TIMEOUT", "1")]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliver_sm_flood_keeps_memory_flat_and_shutdown_bounded() {
    flood_case(
        Flood::DeliverSm(FLOOD),
        &[
            ("TIMEOUT", "1"),
            ("BIND", "transceiver"),
            ("REGISTERED_DELIVERY", "yes"),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enquire_link_from_the_smsc_is_answered_at_a_bounded_rate() {
    let _serial = SERIAL.lock().await;
    let smsc = Smsc::start().await.unwrap();
    // This SMSC keeps reading: it counts the enquire_link_resp smsgw sends.
    smsc.flood_after_bind(Flood::EnquireLink(5_000), true);
    let gw = gateway(&smsc, &[("TIMEOUT", "5")]);
    let started = Instant::now();
    gw.send(&Message::new("491511234567", "x")).await.ok();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let answered = smsc.count("enquire_link_resp");
    let secs = started.elapsed().as_secs_f64();
    // 50 a second plus a burst of 50, with a wide margin; the flood itself is 5 000.
    assert!(answered > 0, "enquire_link must be answered");
    assert!(
        (answered as f64) < 100.0 + 50.0 * secs * 1.5,
        "{answered} answers in {secs:.1}s"
    );
    gw.shutdown().await;
}
