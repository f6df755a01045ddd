//! A real server on loopback with a real HTTP sink as its gateway, and tokens.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use smsgw as _;
use smsgw_server::{Running, ServerOptions, TokenArgs, TokenCommand};
use smsgw_testkit::http::HttpSink;

pub const GW_PASSWORD: &str = "gw-pass-Zq81";
pub const TEXT: &str = "otp-secret-884213";

pub struct Env {
    pub dir: tempfile::TempDir,
    pub sink: HttpSink,
    pub server: Option<Running>,
    pub base: String,
    pub send: String,
    pub admin: String,
    pub http: reqwest::Client,
}

pub fn config(sink: &HttpSink) -> String {
    format!(
        r#"
[gateways.sms1]
provider = "http"
description = "the sink"
[gateways.sms1.options]
URL = "{url}/send"
to = "{{phone}}"
text = "{{otp}}"
USERNAME = "acme"
PASSWORD = "{GW_PASSWORD}"

[gateways.dead]
provider = "http"
[gateways.dead.options]
URL = "http://127.0.0.1:9/nothing-listens"
to = "{{phone}}"
text = "{{otp}}"
TIMEOUT = "2"
"#,
        url = sink.url()
    )
}

pub async fn make_token(db: &Path, name: &str, scope: &str) -> String {
    let mut out = Vec::new();
    smsgw_server::token(
        &TokenArgs {
            db: db.to_path_buf(),
            command: TokenCommand::Create {
                name: name.into(),
                scope: scope.into(),
            },
        },
        &mut out,
    )
    .await
    .unwrap();
    let s = String::from_utf8(out).unwrap();
    assert_eq!(s.lines().count(), 1, "the token alone: {s:?}");
    s.trim().to_owned()
}

pub fn options(dir: &Path, config: &str) -> ServerOptions {
    let cfg: PathBuf = dir.join("smsgw.toml");
    std::fs::write(&cfg, config).unwrap();
    let mut o = ServerOptions::new("127.0.0.1:0".parse().unwrap(), dir.join("smsgw.db"));
    o.config = Some(cfg);
    o.header_timeout = Duration::from_secs(1);
    o.shutdown_grace = Duration::from_secs(2);
    o
}

pub async fn env() -> Env {
    env_with(|_| {}).await
}

pub async fn env_with(tweak: impl FnOnce(&mut ServerOptions)) -> Env {
    env_with_config("", tweak).await
}

/// A server whose configuration is [`config`] followed by `extra` (routes, limits …).
pub async fn env_with_config(extra: &str, tweak: impl FnOnce(&mut ServerOptions)) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let sink = HttpSink::start().await.unwrap();
    let db = dir.path().join("smsgw.db");
    let send = make_token(&db, "app", "send").await;
    let admin = make_token(&db, "ops", "admin").await;
    let mut o = options(dir.path(), &format!("{}{extra}", config(&sink)));
    tweak(&mut o);
    let server = smsgw_server::start(o).await.unwrap();
    let base = format!("http://{}", server.addr());
    Env {
        dir,
        sink,
        server: Some(server),
        base,
        send,
        admin,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(90))
            .no_proxy()
            .build()
            .unwrap(),
    }
}

impl Env {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn post(
        &self,
        path: &str,
        token: &str,
        body: serde_json::Value,
    ) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Posts one message with the send token, asserts the 202, and returns its id.
    pub async fn queue(&self, to: &str, text: &str, gateway: &str) -> String {
        let r = self
            .post(
                "/v1/messages",
                &self.send,
                serde_json::json!({"to": to, "text": text, "gateway": gateway}),
            )
            .await;
        assert_eq!(r.status(), 202);
        let v: serde_json::Value = r.json().await.unwrap();
        v["id"].as_str().unwrap().to_owned()
    }

    pub async fn put(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        let r = self
            .http
            .put(self.url(path))
            .bearer_auth(&self.admin)
            .json(&body)
            .send()
            .await
            .unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or_default())
    }

    pub async fn get_json(&self, path: &str, token: &str) -> (u16, serde_json::Value) {
        let r = self
            .http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// The `/metrics` page (no token needed).
    pub async fn metrics(&self) -> String {
        let r = self.http.get(self.url("/metrics")).send().await.unwrap();
        r.text().await.unwrap()
    }

    /// Polls a message until it is final (at most 20 s).
    pub async fn final_message(&self, id: &str) -> serde_json::Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let (_, m) = self
                .get_json(&format!("/v1/messages/{id}"), &self.send)
                .await;
            let st = m["status"].as_str().unwrap_or("");
            if !matches!(st, "queued" | "sending" | "") {
                return m;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "message {id} not final: {m}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
    }
}
