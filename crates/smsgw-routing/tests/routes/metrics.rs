//! Attempts, failovers, breaker state and rate-limit waits are counted per gateway.

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use smsgw_core::Message;

use crate::common::{Sink, gateway, router};

// The only test of this binary that installs a recorder; its labels are unique to it.
#[tokio::test]
async fn attempts_failovers_breaker_and_waits_are_counted() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();
    let p = Sink::busy().await;
    let backup = Sink::start().await;
    let toml = format!(
        "{}[gateways.mx-primary.limits]\nbreaker_failures = 2\nbreaker_cooldown = 60\n{}[gateways.mx-backup.limits]\nrate = 5\n\n[routes.metered]\ngateways = [\"mx-primary\", \"mx-backup\"]\n",
        gateway("mx-primary", &p.url(), 5.0),
        gateway("mx-backup", &backup.url(), 5.0)
    );
    let r = router(&toml);
    for i in 0..3 {
        r.send("metered", &Message::new("+1", format!("m{i}")))
            .await
            .unwrap();
    }
    let mut got = Vec::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        let mut labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        labels.sort();
        let v = match value {
            DebugValue::Counter(n) => n as f64,
            DebugValue::Gauge(g) => g.into_inner(),
            DebugValue::Histogram(h) => h.len() as f64,
        };
        got.push(format!("{}{{{}}} {v}", key.name(), labels.join(",")));
    }
    for want in [
        "sms_route_attempts_total{gateway=mx-primary,result=not_sent,route=metered} 2",
        "sms_route_attempts_total{gateway=mx-primary,result=breaker_open,route=metered} 1",
        "sms_route_attempts_total{gateway=mx-backup,result=sent,route=metered} 3",
        "sms_route_failovers_total{gateway=mx-backup,route=metered} 3",
        "sms_route_deliveries_total{result=sent,route=metered} 3",
        "sms_gateway_breaker_state{gateway=mx-primary} 1",
        "sms_gateway_breaker_state{gateway=mx-backup} 0",
        "sms_gateway_breaker_opened_total{gateway=mx-primary} 1",
        "sms_send_total{gateway=mx-primary,result=not_sent} 2",
    ] {
        assert!(
            got.iter().any(|g| g == want),
            "{want} missing in\n{}",
            got.join("\n")
        );
    }
    let waits = got
        .iter()
        .find(|g| g.starts_with("sms_gateway_rate_limit_waits_total{gateway=mx-backup}"))
        .unwrap_or_else(|| panic!("no rate-limit wait counted in\n{}", got.join("\n")));
    assert!(!waits.ends_with(" 0"), "{waits}");
}
