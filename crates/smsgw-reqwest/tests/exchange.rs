//! HttpGateway against loopback servers: redirects, Referer, statuses, ids, secrets.

use std::time::Duration;

use smsgw_core::ErrorKind;
use smsgw_reqwest::{HttpGateway, Redirects};
use smsgw_sinks::Fault;
use smsgw_sinks::http::HttpSink;
use smsgw_sinks::http::hostile::{HostileReply, HostileServer, dead_url};
use url::Url;

const KEY: &str = "api-key-7f3e9b";
const PASS: &str = "pa55-w0rd-xyz";

fn gateway(url: &str) -> (HttpGateway, Url) {
    let url = Url::parse(url).unwrap();
    let gw = HttpGateway::new("gw", &url, Duration::from_secs(5))
        .secret(KEY)
        .secret(PASS);
    (gw, url)
}

/// A POST with an API key header, basic auth and a secret in the query.
fn request(gw: &HttpGateway, url: &Url) -> smsgw_reqwest::reqwest::RequestBuilder {
    let mut url = url.clone();
    url.set_query(Some(&format!("password={PASS}&otp=123456")));
    gw.post(url)
        .unwrap()
        .header("X-Api-Key", KEY)
        .basic_auth("user", Some(PASS))
        .json(&serde_json::json!({"to": "+4915", "text": "code 123456"}))
}

#[tokio::test]
async fn a_redirect_to_another_origin_is_not_followed_and_leaks_nothing() {
    let target = HttpSink::start().await.unwrap();
    let server = HostileServer::start(vec![HostileReply::redirect(format!(
        "{}/collect",
        target.url()
    ))])
    .await
    .unwrap();
    let (gw, url) = gateway(&format!("{}/send", server.url()));
    let e = gw.exchange(request(&gw, &url)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unknown, "{e}");
    assert_eq!(e.code(), Some("redirect"));
    assert!(e.message().contains(&target.url()), "{e}");
    // The other origin got nothing at all: no Referer, no Authorization, no key, no code.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(target.requests().is_empty(), "{:?}", target.requests());
    for secret in [KEY, PASS, "123456"] {
        assert!(!e.to_string().contains(secret), "{e}");
    }
    // Redirects::None: not even the same origin.
    let gw = HttpGateway::new("gw", &url, Duration::from_secs(5)).redirects(Redirects::None);
    let same = HostileServer::start(vec![HostileReply::redirect("/other")])
        .await
        .unwrap();
    let e = gw
        .exchange(gw.post(Url::parse(&same.url()).unwrap()).unwrap())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("redirect"), "{e}");
    assert_eq!(same.requests().len(), 1);
}

#[tokio::test]
async fn a_same_origin_redirect_is_followed_without_referer() {
    let server = HostileServer::start(vec![
        HostileReply::Redirect {
            status: 307,
            location: "/again?x=1".into(),
        },
        HostileReply::redirect("/final"),
        HostileReply::ok(r#"{"id": 42}"#),
    ])
    .await
    .unwrap();
    let (gw, url) = gateway(&format!("{}/send", server.url()));
    let reply = gw.send(request(&gw, &url)).await.unwrap();
    assert_eq!(gw.json_id(&reply, "/id").unwrap(), "42");
    let reqs = server.requests();
    assert_eq!(reqs.len(), 3);
    assert!(
        reqs[1].request_line.starts_with("POST /again?x=1 "),
        "{reqs:?}"
    );
    // 302 after a POST becomes a GET without a body, as privacyIDEA's requests does.
    assert!(reqs[2].request_line.starts_with("GET /final "), "{reqs:?}");
    assert!(reqs[2].body.is_empty());
    for r in &reqs {
        assert_eq!(r.header("referer"), None, "{r:?}");
        assert!(
            r.header("authorization").is_some(),
            "same origin keeps credentials"
        );
    }
}

#[tokio::test]
async fn after_an_answer_a_dead_host_is_unknown_not_not_sent() {
    let server = HostileServer::start(vec![HostileReply::redirect(dead_url().unwrap())])
        .await
        .unwrap();
    let (gw, url) = gateway(&server.url());
    let e = gw.exchange(request(&gw, &url)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unknown, "{e}");
    assert_eq!(e.code(), Some("redirect"));
}

#[tokio::test]
async fn statuses_follow_the_one_table() {
    let sink = HttpSink::start().await.unwrap();
    let (gw, url) = gateway(&sink.url());
    for (code, kind) in [
        (429, ErrorKind::NotSent),
        (503, ErrorKind::NotSent),
        (501, ErrorKind::Refused),
        (401, ErrorKind::Refused),
        (500, ErrorKind::Unknown),
    ] {
        sink.faults().next(
            1,
            Fault::Reply {
                code,
                text: format!("echo {PASS}"),
            },
        );
        let e = gw.send(request(&gw, &url)).await.unwrap_err();
        assert_eq!(
            (e.kind(), e.code()),
            (kind, Some(code.to_string().as_str())),
            "{e}"
        );
        assert!(!e.to_string().contains(PASS), "{e}");
    }
    // A 2xx without the promised id: the gateway has it, so unknown.
    let reply = gw.send(request(&gw, &url)).await.unwrap();
    let e = gw.json_id(&reply, "/id").unwrap_err();
    assert_eq!(
        (e.kind(), e.code()),
        (ErrorKind::Unknown, Some("bad_reply"))
    );
}

#[tokio::test]
async fn connection_refused_is_not_sent_and_a_silent_server_times_out() {
    let (gw, u) = gateway(&dead_url().unwrap());
    let e = gw.exchange(request(&gw, &u)).await.unwrap_err();
    assert_eq!((e.kind(), e.code()), (ErrorKind::NotSent, Some("connect")));

    let sink = HttpSink::start().await.unwrap();
    sink.faults().always(Fault::NeverAnswer);
    let url = Url::parse(&sink.url()).unwrap();
    let gw = HttpGateway::new("gw", &url, Duration::from_millis(500));
    let started = std::time::Instant::now();
    let e = gw.exchange(gw.post(url).unwrap()).await.unwrap_err();
    assert_eq!((e.kind(), e.code()), (ErrorKind::Unknown, Some("timeout")));
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn debug_shows_no_secret() {
    let url = Url::parse("http://u:urlpass@gw.example/send").unwrap();
    let proxy = "http://p:proxypass@proxy:3128".to_owned().into();
    let gw = HttpGateway::new("gw", &url, Duration::from_secs(1))
        .secret(PASS)
        .proxy(smsgw_reqwest::ProxyScope::All, proxy);
    let shown = format!("{gw:?}");
    for s in ["urlpass", "proxypass", PASS] {
        assert!(!shown.contains(s), "{shown}");
    }
    let e = gw.error(ErrorKind::Unknown, format!("x proxypass {PASS} y"));
    assert_eq!(e.message(), "x __CENSORED__ __CENSORED__ y");
}
