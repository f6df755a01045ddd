//! Delivery receipts reach messages of gateways created through the API after the start, and of
//! gateways re-read on reload — over a real SMPP session with the test SMSC.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};
use smsgw_testkit::smsc::Smsc;

async fn status_becomes(e: &Env, id: &str, want: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, m) = e.get_json(&format!("/v1/messages/{id}"), &e.send).await;
        if m["status"] == want {
            return m;
        }
        assert!(Instant::now() < deadline, "never {want}: {m}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_api_created_smpp_gateway_records_receipts() {
    let smsc = Smsc::start().await.unwrap();
    let mut e = env().await;
    let (s, v) = e
        .put(
            "/v1/gateways/smsc",
            json!({"provider": "smpp", "options": {"SMSC_HOST": "127.0.0.1",
                "SMSC_PORT": smsc.addr().port().to_string(), "SYSTEM_ID": "pi-peer",
                "PASSWORD": "secret12", "S_ADDR": "privacyIDEA", "BIND": "transceiver",
                "REGISTERED_DELIVERY": "yes", "TIMEOUT": "2"}}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let r = e
        .post(
            "/v1/messages?wait=20",
            &e.send,
            json!({"to": "+4915100", "text": "code 1", "gateway": "smsc"}),
        )
        .await;
    let m: Value = r.json().await.unwrap();
    assert_eq!(m["status"], "sent", "{m}");
    let id = m["id"].as_str().unwrap();
    let m = status_becomes(&e, id, "delivered").await;
    assert!(!m["message_ids"][0].as_str().unwrap().is_empty(), "{m}");
    e.stop().await;
}

#[tokio::test]
async fn receipts_keep_flowing_after_a_reload() {
    let smsc = Smsc::start().await.unwrap();
    let extra = format!(
        "\n[gateways.file-smsc]\nprovider = \"smpp\"\noptions = {{ SMSC_HOST = \"127.0.0.1\", SMSC_PORT = \"{}\", SYSTEM_ID = \"pi-peer\", PASSWORD = \"secret12\", S_ADDR = \"privacyIDEA\", BIND = \"transceiver\", REGISTERED_DELIVERY = \"yes\", TIMEOUT = \"2\" }}\n",
        smsc.addr().port()
    );
    let mut e = env_with_config(&extra, |_| {}).await;
    // SIGHUP builds every gateway anew: the new ones' receipts must be recorded too.
    e.server.as_ref().unwrap().reload().await.unwrap();
    let r = e
        .post(
            "/v1/messages?wait=20",
            &e.send,
            json!({"to": "+4915100", "text": "code 2", "gateway": "file-smsc"}),
        )
        .await;
    let m: Value = r.json().await.unwrap();
    assert_eq!(m["status"], "sent", "{m}");
    status_becomes(&e, m["id"].as_str().unwrap(), "delivered").await;
    e.stop().await;
}
