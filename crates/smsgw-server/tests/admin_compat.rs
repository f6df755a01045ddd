//! Gateways and routes through the API, secrets, the privacyIDEA and Kannel endpoints, and
//! signed callbacks — over real sockets.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;
use smsgw_queue::Queue as _;
use smsgw_testkit::Fault;
use smsgw_testkit::http::HttpSink;

#[tokio::test]
async fn gateways_through_the_api_keep_secrets_write_only() {
    let e = env().await;
    let sink2 = HttpSink::start().await.unwrap();
    // Every problem at once, named by field.
    let (s, v) = e.put("/v1/gateways/g2", json!({"provider": "http", "options": {"URL": "not a url", "TIMEOUT": "x", "bogus_flag": true}})).await;
    assert_eq!(s, 422, "{v}");
    let fields: Vec<&str> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert!(fields.contains(&"options.bogus_flag"), "{v}");
    let (s, v) = e
        .put(
            "/v1/gateways/g2",
            json!({"provider": "http", "options": {"URL": "not a url", "TIMEOUT": "x"}}),
        )
        .await;
    assert_eq!(s, 422);
    let fields: Vec<&str> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert!(
        fields.contains(&"options.URL") && fields.contains(&"options.TIMEOUT"),
        "{v}"
    );
    // Created, with a secret that is never shown back.
    let body = json!({"provider": "http", "description": "second", "options": {"URL": format!("{}/g2", sink2.url()), "to": "{phone}", "text": "{otp}", "USERNAME": "u", "PASSWORD": "s3cret-PW"}});
    let (s, v) = e.put("/v1/gateways/g2", body).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["options"]["PASSWORD"], "__CENSORED__");
    assert_eq!(v["origin"], "database");
    let (_, all) = e.get_json("/v1/gateways", &e.send).await;
    assert!(
        !all.to_string().contains("s3cret-PW") && !all.to_string().contains(GW_PASSWORD),
        "{all}"
    );
    // A PUT that sends __CENSORED__ back keeps the stored secret.
    let (s, _) = e.put("/v1/gateways/g2", json!({"provider": "http", "description": "changed", "options": {"URL": format!("{}/g2", sink2.url()), "to": "{phone}", "text": "{otp}", "USERNAME": "u", "PASSWORD": "__CENSORED__"}})).await;
    assert_eq!(s, 200);
    let r = e
        .post(
            "/v1/gateways/g2/test",
            &e.admin,
            json!({"to": "+4915100", "text": "test"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["status"], "sent", "{v}");
    assert_eq!(
        sink2.requests()[0].basic_auth.as_deref(),
        Some("u:s3cret-PW")
    );
    // Messages go through it at once.
    let r = e
        .post(
            "/v1/messages?wait=10",
            &e.send,
            json!({"to": "+4915101", "text": "via g2", "gateway": "g2"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    // Routes: failover from the dead gateway to g2.
    let (s, v) = e
        .put("/v1/routes/r1", json!({"gateways": ["dead", "nosuch"]}))
        .await;
    assert_eq!(s, 422);
    assert_eq!(v["errors"][0]["field"], "gateways");
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("unknown gateway 'nosuch'"),
        "{v}"
    );
    let (s, _) = e
        .put("/v1/routes/r1", json!({"gateways": ["dead", "g2"]}))
        .await;
    assert_eq!(s, 201);
    let r = e
        .post(
            "/v1/messages?wait=15",
            &e.send,
            json!({"to": "+4915102", "text": "routed", "gateway": null, "route": "r1"}),
        )
        .await;
    let m: serde_json::Value = r.json().await.unwrap();
    assert_eq!(m["status"], "sent", "{m}");
    assert_eq!(m["route"], "r1");
    assert_eq!(m["gateway"], "g2");
    assert_eq!(m["attempts"][0]["kind"], "not_sent");
    // File-defined gateways are read-only.
    let (s, _) = e
        .put("/v1/gateways/sms1", json!({"provider": "http"}))
        .await;
    assert_eq!(s, 409);
    let r = e
        .http
        .delete(e.url("/v1/gateways/sms1"))
        .bearer_auth(&e.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    // A gateway a route uses cannot go before the route.
    let delete = |path: &'static str| e.http.delete(e.url(path)).bearer_auth(&e.admin).send();
    let r = delete("/v1/gateways/g2").await.unwrap();
    assert_eq!(r.status(), 409);
    assert!(r.text().await.unwrap().contains("r1"));
    assert_eq!(delete("/v1/routes/r1").await.unwrap().status(), 204);
    assert_eq!(delete("/v1/gateways/g2").await.unwrap().status(), 204);
    assert_eq!(e.get_json("/v1/gateways/g2", &e.send).await.0, 404);
    // Providers with their schemas.
    let (_, p) = e.get_json("/v1/providers", &e.send).await;
    let http = p["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "http")
        .unwrap();
    assert!(
        http["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["name"] == "URL" && x["required"] == true)
    );
}

#[tokio::test]
async fn privacyidea_and_kannel_clients_move_over_unchanged() {
    let e = env().await;
    // privacyIDEA's HTTP provider: a form POST with the token in the Authorization header.
    let r = e
        .http
        .post(e.url("/compat/privacyidea"))
        .header("Authorization", format!("Bearer {}", e.send))
        .form(&[
            ("phone", "+491511111"),
            ("message", "123456"),
            ("gateway", "sms1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let t = r.text().await.unwrap();
    assert!(t.starts_with("OK "), "{t}");
    // JSON works too; a refusal is a 502 with the reason.
    e.sink.faults().next(
        1,
        Fault::Reply {
            code: 400,
            text: "number blocked".into(),
        },
    );
    let r = e
        .http
        .post(e.url("/compat/privacyidea"))
        .header("Authorization", e.send.as_str())
        .json(&json!({"phone": "+491511112", "message": "123456", "gateway": "sms1"}))
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    let t = r.text().await.unwrap();
    assert_eq!(s, 502, "{t}");
    assert!(t.starts_with("ERROR") && t.contains("not sent"), "{t}");
    let r = e
        .http
        .post(e.url("/compat/privacyidea"))
        .form(&[("phone", "+49"), ("message", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // A gateway that does not answer in time: the timeout parameter bounds the wait.
    let start = std::time::Instant::now();
    let r = e
        .http
        .post(e.url("/compat/privacyidea"))
        .bearer_auth(&e.send)
        .form(&[
            ("phone", "+491511113"),
            ("message", "1"),
            ("gateway", "dead"),
            ("timeout", "1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 504);
    assert!(start.elapsed() < Duration::from_secs(5));

    // Kannel.
    let before = e.sink.requests().len();
    let r = e
        .http
        .get(e.url("/cgi-bin/sendsms"))
        .query(&[
            ("username", "app"),
            ("password", e.send.as_str()),
            ("to", "+491512222"),
            ("text", "kannel hi"),
            ("smsc", "sms1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(r.text().await.unwrap().trim(), "0: Accepted for delivery");
    let got = e
        .sink
        .wait_for_requests(before + 1, Duration::from_secs(10))
        .await;
    assert_eq!(got.last().unwrap().param("text").unwrap(), "kannel hi");
    let r = e
        .http
        .post(e.url("/cgi-bin/sendsms"))
        .form(&[
            ("username", "app"),
            ("password", "wrong"),
            ("to", "+4915"),
            ("text", "x"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.text().await.unwrap().trim(),
        "Authorization failed for sendsms"
    );
    let r = e
        .http
        .get(e.url("/cgi-bin/sendsms"))
        .query(&[
            ("password", e.send.as_str()),
            ("text", "x"),
            ("smsc", "sms1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.text().await.unwrap().trim(),
        "Missing receiver number, rejected"
    );
}

#[tokio::test]
async fn callbacks_are_signed_and_retried() {
    let e = env().await;
    let hooks = HttpSink::start().await.unwrap();
    hooks.faults().next(
        1,
        Fault::Reply {
            code: 500,
            text: "down".into(),
        },
    );
    let r = e.post("/v1/messages", &e.send, json!({"to": "+491513333", "text": TEXT, "gateway": "sms1", "callback_url": format!("{}/hook", hooks.url()), "metadata": {"n": 7}})).await;
    let id = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The first try fails (500); the retry comes after the backoff (5 s).
    let got = hooks.wait_for_requests(2, Duration::from_secs(20)).await;
    assert_eq!(got.len(), 2, "retried after a failure");
    let req = &got[1];
    let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(body["id"], id.as_str());
    assert_eq!(body["status"], "sent");
    assert_eq!(body["metadata"]["n"], 7);
    assert!(!req.body_text().contains(TEXT), "no text in callbacks");
    let q = smsgw_queue::SqliteQueue::open(&e.dir.path().join("smsgw.db"))
        .await
        .unwrap();
    let secret = q.server_secret().await.unwrap();
    assert_eq!(
        req.header("x-smsgw-signature").unwrap(),
        smsgw_server::sign(&secret, &req.body)
    );
    assert_ne!(
        req.header("x-smsgw-signature").unwrap(),
        smsgw_server::sign(b"other", &req.body)
    );
}

#[tokio::test(flavor = "current_thread")]
async fn secrets_stay_out_of_logs_metrics_and_problems() {
    let logs = smsgw_testkit::logs::LogCapture::at(tracing::Level::INFO);
    let _g = logs.set_default();
    let e = env().await;
    let r = e
        .post(
            "/v1/messages?wait=10",
            &e.send,
            json!({"to": "+491514444", "text": TEXT, "gateway": "sms1"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = e
        .post(
            "/v1/messages?wait=1",
            &e.send,
            json!({"to": "+491514445", "text": TEXT, "gateway": "dead"}),
        )
        .await;
    assert_eq!(r.status(), 202);
    let mut answers = String::new();
    for bad in [
        json!({"to": "x", "text": TEXT, "gateway": "nope"}),
        json!({"to": "+4915", "text": TEXT.repeat(200), "gateway": "sms1"}),
    ] {
        answers += &e
            .post("/v1/messages", &e.send, bad)
            .await
            .text()
            .await
            .unwrap();
    }
    answers += &e
        .http
        .get(e.url("/v1/gateways"))
        .bearer_auth(format!("{}x", e.send))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (_, gws) = e.get_json("/v1/gateways/sms1", &e.admin).await;
    answers += &gws.to_string();
    let metrics = e.metrics().await;
    assert!(metrics.contains("http_requests_total"), "{metrics}");
    assert!(metrics.contains("smsgw_queue_messages"), "{metrics}");
    assert!(
        metrics.contains("smsgw_queue_oldest_queued_age_seconds"),
        "{metrics}"
    );
    let logged = logs.text();
    assert!(
        logged.contains("listening"),
        "the capture sees the server: {logged}"
    );
    for (what, text) in [
        ("logs", &logged),
        ("metrics", &metrics),
        ("answers", &answers),
    ] {
        for secret in [TEXT, GW_PASSWORD, e.send.as_str(), e.admin.as_str()] {
            assert!(!text.contains(secret), "{secret} in {what}: {text}");
        }
    }
}

#[tokio::test]
async fn reload_reads_the_file_again_and_shutdown_is_bounded() {
    let mut e = env().await;
    assert_eq!(e.get_json("/v1/gateways/extra", &e.send).await.0, 404);
    let cfg = e.dir.path().join("smsgw.toml");
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text += &format!(
        "\n[gateways.extra]\nprovider = \"http\"\n[gateways.extra.options]\nURL = \"{}/x\"\nto = \"{{phone}}\"\n",
        e.sink.url()
    );
    std::fs::write(&cfg, &text).unwrap();
    e.server.as_ref().unwrap().reload().await.unwrap();
    let (s, v) = e.get_json("/v1/gateways/extra", &e.send).await;
    assert_eq!((s, v["origin"].as_str()), (200, Some("file")));
    // A broken file is refused; the old configuration stays.
    std::fs::write(&cfg, "[gateways.broken]\nprovider = \"nope\"\n").unwrap();
    let err = e.server.as_ref().unwrap().reload().await.unwrap_err();
    assert!(err.to_string().contains("gateway 'broken'"), "{err}");
    assert_eq!(e.get_json("/v1/gateways/extra", &e.send).await.0, 200);
    // Shutdown with a send in flight to a gateway that never answers ends within the grace time.
    e.sink.faults().always(Fault::NeverAnswer);
    let r = e
        .post(
            "/v1/messages",
            &e.send,
            json!({"to": "+4915", "text": "hang", "gateway": "sms1"}),
        )
        .await;
    assert_eq!(r.status(), 202);
    e.sink.wait_for_requests(1, Duration::from_secs(10)).await;
    let start = std::time::Instant::now();
    e.stop().await;
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "{:?}",
        start.elapsed()
    );
    assert!(
        e.http.get(e.url("/healthz")).send().await.is_err(),
        "no longer listening"
    );
}
