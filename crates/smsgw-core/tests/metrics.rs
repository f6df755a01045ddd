//! Every send is counted in `sms_send_total{gateway,result}` and timed in
//! `sms_send_duration_seconds{gateway}` (privacyIDEA's metric names).

use std::sync::Arc;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use smsgw_core::*;

#[derive(Debug)]
struct Flaky;

#[async_trait]
impl Provider for Flaky {
    async fn send(&self, m: &Message) -> Result<Receipt, SendError> {
        match m.text.as_str() {
            "ok" => Ok(Receipt::new("m", "flaky")),
            _ => Err(SendError::new(ErrorKind::NotSent, "m", "busy")),
        }
    }
}

fn build(_: &BuildContext<'_>) -> Result<Arc<dyn Provider>, ConfigErrors> {
    Ok(Arc::new(Flaky))
}

register_provider!(ProviderDescriptor::new(
    "flaky",
    "Sends 'ok', refuses the rest.",
    build
));

#[tokio::test]
async fn sends_are_counted_and_timed() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();
    let def = GatewayDef {
        id: "m".into(),
        provider: "flaky".into(),
        ..Default::default()
    };
    let gw = Gateway::build(&def, &Default::default(), Registry::global()).unwrap();
    gw.send(&Message::new("+49", "ok")).await.unwrap();
    gw.send(&Message::new("+49", "ok")).await.unwrap();
    gw.send(&Message::new("+49", "no")).await.unwrap_err();
    let mut sent = 0;
    let mut not_sent = 0;
    let mut timings = 0;
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        let label = |n: &str| {
            key.labels()
                .find(|l| l.key() == n)
                .map(|l| l.value().to_owned())
        };
        assert_eq!(label("gateway").as_deref(), Some("m"));
        match (key.name(), value) {
            ("sms_send_total", DebugValue::Counter(n)) => match label("result").as_deref() {
                Some("sent") => sent = n,
                Some("not_sent") => not_sent = n,
                other => panic!("unexpected result label {other:?}"),
            },
            ("sms_send_duration_seconds", DebugValue::Histogram(v)) => timings = v.len(),
            (name, v) => panic!("unexpected metric {name}: {v:?}"),
        }
    }
    assert_eq!((sent, not_sent, timings), (2, 1, 3));
}
