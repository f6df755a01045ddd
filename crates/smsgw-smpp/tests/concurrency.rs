//! Many sends at once through one gateway (one session), on both runtime flavours, and the
//! uniqueness of sequence numbers on a session.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::gateway;
use smsgw_core::Message;
use smsgw_testkit::smsc::Smsc;

const N: usize = 200;

/// Sends N messages concurrently (WINDOW 10, TIMEOUT 10) and checks each arrived exactly once.
async fn each_once() {
    let smsc = Smsc::start().await.unwrap();
    let gw = gateway(&smsc, &[("TIMEOUT", "10"), ("WINDOW", "10")]);
    let sends = (0..N).map(|i| {
        let gw = gw.clone();
        async move {
            gw.send(&Message::new("491511234567", format!("concurrent {i}")))
                .await
        }
    });
    let started = std::time::Instant::now();
    let results = tokio::time::timeout(Duration::from_secs(30), futures::future::join_all(sends))
        .await
        .expect("200 sends finish");
    let failed: Vec<String> = results
        .iter()
        .filter_map(|r| r.as_ref().err().map(|e| e.to_string()))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {N} sends failed, first: {}",
        failed.len(),
        failed[0]
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "200 sends took {:?}",
        started.elapsed()
    );
    let got = smsc.recorder().wait_for(N, Duration::from_secs(5)).await;
    let mut counts: HashMap<String, usize> = HashMap::new();
    for r in &got {
        *counts.entry(r.text.clone()).or_default() += 1;
    }
    for i in 0..N {
        let text = format!("concurrent {i}");
        assert_eq!(
            counts.get(&text),
            Some(&1),
            "{text} arrived {:?} times",
            counts.get(&text)
        );
    }
    assert_eq!(got.len(), N);
    assert_eq!(smsc.bind_count(), 1, "all sends share one session");
    assert!(smsc.max_in_flight() <= 10, "the window of 10 was exceeded");
}

#[tokio::test]
async fn concurrent_sends_each_once_current_thread() {
    each_once().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sends_each_once_multi_thread() {
    each_once().await;
}

/// The sequence_number (octets 12..16) and whether the command is a request, read from the raw
/// bytes of a PDU as the SMSC received it.
fn wire_sequence(raw_hex: &str) -> (u32, bool) {
    let b: Vec<u8> = (0..raw_hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&raw_hex[i..i + 2], 16).expect("hex"))
        .collect();
    assert!(b.len() >= 16, "a PDU has a 16-octet header");
    let id = u32::from_be_bytes(b[4..8].try_into().unwrap());
    let seq = u32::from_be_bytes(b[12..16].try_into().unwrap());
    (seq, id & 0x8000_0000 == 0)
}

#[tokio::test]
async fn sequence_numbers_on_a_session_are_distinct() {
    let smsc = Smsc::start().await.unwrap();
    let gw = gateway(
        &smsc,
        &[
            ("BIND", "transceiver"),
            ("REGISTERED_DELIVERY", "yes"),
            ("ENQUIRE_LINK", "0.05"),
        ],
    );
    for i in 0..5 {
        gw.send(&Message::new("491511234567", format!("one {i}")))
            .await
            .unwrap();
        // Let a few enquire_links in between.
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    let long = "a long text that takes more than one part ".repeat(8);
    gw.send(&Message::new("491511234567", long)).await.unwrap();
    let sends = (0..20).map(|i| {
        let gw = gw.clone();
        async move {
            gw.send(&Message::new("491511234567", format!("many {i}")))
                .await
        }
    });
    for r in futures::future::join_all(sends).await {
        r.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(120)).await;
    gw.shutdown().await;

    let pdus = smsc.pdus();
    assert_eq!(smsc.connections(), 1, "one session");
    let mut seen: HashMap<u32, String> = HashMap::new();
    let mut requests = 0;
    for p in &pdus {
        let (seq, request) = wire_sequence(&p.raw_hex);
        assert_eq!(seq, p.sequence, "{p:?}");
        assert!(
            (1..=0x7FFF_FFFF).contains(&seq),
            "sequence_number {seq:#x} of {} is outside 1..=0x7FFFFFFF",
            p.command
        );
        if !request {
            // Responses (deliver_sm_resp, enquire_link_resp) repeat the SMSC's numbers.
            continue;
        }
        requests += 1;
        if let Some(first) = seen.insert(seq, p.command.clone()) {
            panic!(
                "sequence_number {seq} used twice on one session: {first} and {}",
                p.command
            );
        }
    }
    for command in ["bind_transceiver", "submit_sm", "enquire_link", "unbind"] {
        assert!(
            pdus.iter().any(|p| p.command == command),
            "no {command} was seen: {pdus:?}"
        );
    }
    assert!(requests >= 30, "only {requests} requests");
}
