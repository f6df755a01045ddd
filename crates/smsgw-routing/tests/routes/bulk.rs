//! Bulk through a route while the primary fails for a stretch in the middle: one outcome per
//! message, and every message accepted exactly once across the gateways.

use std::collections::HashMap;
use std::time::Duration;

use smsgw_core::Message;
use smsgw_testkit::Fault;

use crate::common::{Sink, gateway, router, settle};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_failing_for_a_stretch_loses_and_doubles_nothing() {
    let p = Sink::start().await;
    let backup = Sink::start().await;
    // The stretch is counted in the primary's requests, not in time, so that it falls in the
    // middle of the run however fast the machine is: requests 100 to 199 answer 503, the rest
    // are accepted. The breaker is off so that the primary keeps being asked during the stretch.
    let toml = format!(
        "{}[gateways.primary.limits]\nrate = 200\nburst = 20\nbreaker_failures = 0\n{}\n[routes.otp]\ngateways = [\"primary\", \"backup\"]\nretries = 1\nbackoff = 0.01\n",
        gateway("primary", &p.url(), 5.0),
        gateway("backup", &backup.url(), 5.0)
    );
    let r = router(&toml);
    let faults = p.http.faults().clone();
    faults.from(
        100,
        Fault::Reply {
            code: 503,
            text: "busy".into(),
        },
    );
    faults.from(200, Fault::Delay(Duration::ZERO));
    let n = 600;
    let msgs: Vec<Message> = (0..n)
        .map(|i| Message::new(format!("+4915{i:06}"), format!("m{i}")))
        .collect();
    let start = tokio::time::Instant::now();
    let out = r.route("otp").unwrap().send_all(msgs, 16).await;
    eprintln!("bulk took {:?}", start.elapsed());
    assert_eq!(out.len(), n);
    for (i, o) in out.iter().enumerate() {
        assert_eq!(o.index, i);
        let d = o
            .result
            .as_ref()
            .unwrap_or_else(|e| panic!("message {i}: {e}"));
        assert!(!d.may_arrive_twice);
    }
    settle().await;
    let mut count: HashMap<String, usize> = HashMap::new();
    for t in p.accepted().into_iter().chain(backup.accepted()) {
        *count.entry(t).or_default() += 1;
    }
    assert_eq!(count.len(), n, "every message arrived");
    assert!(count.values().all(|c| *c == 1), "a message arrived twice");
    assert!(
        !backup.accepted().is_empty(),
        "the backup took over during the stretch"
    );
    let (from_p, from_b) = (p.accepted().len(), backup.accepted().len());
    let after = p
        .seen()
        .into_iter()
        .skip(200)
        .filter(|s| s.accepted)
        .count();
    assert!(
        after > 50,
        "the primary came back after the stretch: {from_p} by the primary, {from_b} by the backup, {after} after"
    );
    assert!(p.seen().len() > from_p, "the primary failed some");
}
