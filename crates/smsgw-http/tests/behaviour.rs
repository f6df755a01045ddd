//! The http provider against the loopback HTTP sink: every parameter, both auth forms, headers,
//! return checks, statuses, timeouts, refused connections, proxies, TLS, special characters and
//! connection reuse.

mod common;

use std::time::{Duration, Instant};

use common::{gateway, send};
use smsgw_core::{ErrorKind, Message};
use smsgw_testkit::Fault;
use smsgw_testkit::http::HttpSink;

const SPECIAL_PHONE: &str = "+49 (151) 1234&=#%+567";
const SPECIAL_TEXT: &str = "Code: 12 34 & a=b + c # d % e \"q\" 'q' <x>\nline2 Grüße € 😀 ~*";

fn url(sink: &HttpSink, path: &str) -> String {
    format!("{}{path}", sink.url())
}

#[tokio::test]
async fn get_sends_options_in_the_query_with_tags() {
    let sink = HttpSink::start().await.unwrap();
    let u = url(&sink, "/send?fixed=1");
    send(
        &[
            ("URL", &u),
            ("to", "{phone}"),
            ("text", "OTP {otp} for {phone}"),
            ("api_id", "abc"),
        ],
        "+491",
        "123456",
    )
    .await
    .unwrap();
    let r = &sink.requests()[0];
    assert_eq!(r.method, "GET");
    assert_eq!(
        r.query_raw,
        "fixed=1&to=%2B491&text=OTP+123456+for+%2B491&api_id=abc"
    );
    assert!(r.body.is_empty());
    let got = &sink.recorder().all()[0];
    assert_eq!(
        (got.recipient.as_str(), got.text.as_str()),
        ("+491", "OTP 123456 for +491")
    );
}

#[tokio::test]
async fn post_sends_a_form_and_json_sends_an_object() {
    let sink = HttpSink::start().await.unwrap();
    let u = url(&sink, "/post");
    send(
        &[
            ("URL", &u),
            ("HTTP_METHOD", "POST"),
            ("to", "{phone}"),
            ("text", "{otp}"),
        ],
        "+1 2",
        "a b",
    )
    .await
    .unwrap();
    let r = &sink.requests()[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.query_raw, "");
    assert_eq!(r.body_text(), "to=%2B1+2&text=a+b");
    assert_eq!(
        r.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );

    let params = r#"{"ttl": 300, "flag": true, "nested": {"a": [1, "{phone}"]}, "sender": "Acme"}"#;
    send(
        &[
            ("URL", &u),
            ("HTTP_METHOD", "post"),
            ("SEND_DATA_AS_JSON", "yes"),
            ("to", "{phone}"),
            ("text", "{otp}"),
            ("quoted", "say \"{otp}\""),
            ("dry_run", "false"),
            ("count", "1"),
            ("opts", r#"{"ttl": 300}"#),
            ("plain", "hello"),
            ("PARAMETER", params),
        ],
        "+4915",
        "123456",
    )
    .await
    .unwrap();
    let r = &sink.requests()[1];
    assert_eq!(r.header("content-type"), Some("application/json"));
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({
            "to": "+4915", "text": "123456", "quoted": "say \"123456\"",
            "dry_run": false, "count": 1, "opts": {"ttl": 300}, "plain": "hello",
            "ttl": 300, "flag": true, "nested": {"a": [1, "+4915"]}, "sender": "Acme"
        })
    );
    // Key order as configured: options first, then PARAMETER.
    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys[..3], ["to", "text", "quoted"]);
    assert_eq!(keys[7..], ["ttl", "flag", "nested", "sender"]);
}

#[tokio::test]
async fn send_data_as_json_is_ignored_for_get_and_parameter_values_are_sent_as_written() {
    let sink = HttpSink::start().await.unwrap();
    let u = url(&sink, "/g");
    send(
        &[
            ("URL", &u),
            ("SEND_DATA_AS_JSON", "yes"),
            ("to", "{phone}"),
            (
                "PARAMETER",
                r#"{"a": true, "b": null, "c": [1,2], "d": "x {otp}"}"#,
            ),
        ],
        "1",
        "2",
    )
    .await
    .unwrap();
    let r = &sink.requests()[0];
    assert_eq!(r.method, "GET");
    assert_eq!(r.query_raw, "to=1&a=true&b=null&c=%5B1%2C2%5D&d=x+2");
}

#[tokio::test]
async fn parameter_from_a_toml_table() {
    let sink = HttpSink::start().await.unwrap();
    let toml = format!(
        r#"
        [gateways.t]
        provider = "http"
        [gateways.t.options]
        URL = "{}/t"
        to = "{{phone}}"
        [gateways.t.options.PARAMETER]
        account = "acme"
        "#,
        sink.url()
    );
    assert_eq!(smsgw_http::NAME, "http");
    let cfg = smsgw_core::Config::from_toml_str(&toml).unwrap();
    let gws = smsgw_core::Gateways::build(&cfg, smsgw_core::Registry::global()).unwrap();
    gws.get("t")
        .unwrap()
        .send(&Message::new("5", "x"))
        .await
        .unwrap();
    assert_eq!(sink.requests()[0].query_raw, "to=5&account=acme");
}

#[tokio::test]
async fn basic_auth_from_username_password_and_from_the_url() {
    let sink = HttpSink::start().await.unwrap();
    let u = url(&sink, "/a");
    send(
        &[
            ("URL", &u),
            ("USERNAME", "alice"),
            ("PASSWORD", "s3cr3t:pw"),
            ("to", "{phone}"),
        ],
        "1",
        "x",
    )
    .await
    .unwrap();
    let with_creds = u.replace("http://", "http://bob:p%40ss@");
    send(&[("URL", &with_creds), ("to", "{phone}")], "1", "x")
        .await
        .unwrap();
    // Explicit USERNAME/PASSWORD win over the URL's.
    send(
        &[
            ("URL", &with_creds),
            ("USERNAME", "carol"),
            ("PASSWORD", ""),
            ("to", "{phone}"),
        ],
        "1",
        "x",
    )
    .await
    .unwrap();
    let reqs = sink.requests();
    assert_eq!(reqs[0].basic_auth.as_deref(), Some("alice:s3cr3t:pw"));
    assert_eq!(reqs[1].basic_auth.as_deref(), Some("bob:p@ss"));
    assert_eq!(
        reqs[1].target, "/a?to=1",
        "credentials must not be sent in the URL"
    );
    assert_eq!(reqs[2].basic_auth.as_deref(), Some("carol:"));
}

#[tokio::test]
async fn custom_headers_with_tags_and_basic_auth_replacing_authorization() {
    let sink = HttpSink::start().await.unwrap();
    let u = url(&sink, "/h");
    let gw = gateway(
        &[("URL", &u), ("to", "{phone}")],
        &[
            ("X-Api-Key", "k-1"),
            ("X-Recipient", "{phone}"),
            ("Authorization", "Bearer t"),
            ("User-Agent", "mine/1"),
        ],
    )
    .unwrap();
    gw.send(&Message::new("+49 1", "x")).await.unwrap();
    let r = &sink.requests()[0];
    assert_eq!(r.header("x-api-key"), Some("k-1"));
    assert_eq!(r.header("x-recipient"), Some("+49 1"));
    assert_eq!(r.header("authorization"), Some("Bearer t"));
    assert_eq!(r.header("user-agent"), Some("mine/1"));
    assert_eq!(
        r.headers.iter().filter(|(k, _)| k == "user-agent").count(),
        1
    );

    let gw = gateway(
        &[
            ("URL", &u),
            ("USERNAME", "u"),
            ("PASSWORD", "p"),
            ("to", "{phone}"),
        ],
        &[("Authorization", "Bearer t")],
    )
    .unwrap();
    gw.send(&Message::new("1", "x")).await.unwrap();
    let r = &sink.requests()[1];
    assert_eq!(r.basic_auth.as_deref(), Some("u:p"));
    assert_eq!(
        r.headers
            .iter()
            .filter(|(k, _)| k == "authorization")
            .count(),
        1
    );

    // A header that cannot carry the message is a clear error, nothing is sent.
    let gw = gateway(&[("URL", &u)], &[("X-Text", "{otp}")]).unwrap();
    let e = gw.send(&Message::new("1", "two\nlines")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert_eq!(sink.requests().len(), 2);
}

#[tokio::test]
async fn return_success_and_return_fail() {
    let sink = HttpSink::start().await.unwrap();
    let u = url(&sink, "/r");
    sink.faults().always(Fault::Reply {
        code: 200,
        text: "OK ID:4711".into(),
    });
    send(&[("URL", &u), ("RETURN_SUCCESS", "ID:")], "1", "x")
        .await
        .unwrap();
    let e = send(&[("URL", &u), ("RETURN_SUCCESS", "SENT")], "1", "x")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Refused);
    assert_eq!(e.code(), Some("200"));
    assert!(e.message().contains("RETURN_SUCCESS"), "{e}");

    sink.faults().always(Fault::Reply {
        code: 200,
        text: "ERR: no credit".into(),
    });
    let e = send(&[("URL", &u), ("RETURN_FAIL", "ERR")], "1", "x")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Refused);
    assert!(e.message().contains("no credit"), "{e}");
    sink.faults().always(Fault::Reply {
        code: 200,
        text: "queued".into(),
    });
    send(&[("URL", &u), ("RETURN_FAIL", "ERR")], "1", "x")
        .await
        .unwrap();
}

#[tokio::test]
async fn statuses_are_classified() {
    let sink = HttpSink::start().await.unwrap();
    let u = url(&sink, "/s");
    let cases: &[(u32, Option<ErrorKind>)] = &[
        (200, None),
        (201, None),
        (202, None),
        (204, Some(ErrorKind::Unknown)),
        (400, Some(ErrorKind::Refused)),
        (401, Some(ErrorKind::Refused)),
        (404, Some(ErrorKind::Refused)),
        (408, Some(ErrorKind::NotSent)),
        (429, Some(ErrorKind::NotSent)),
        (500, Some(ErrorKind::Unknown)),
        (502, Some(ErrorKind::Unknown)),
        (503, Some(ErrorKind::NotSent)),
    ];
    let gw = gateway(&[("URL", &u), ("to", "{phone}")], &[]).unwrap();
    for (code, want) in cases {
        sink.faults().always(Fault::Reply {
            code: *code,
            text: "reply".into(),
        });
        let r = gw.send(&Message::new("1", "x")).await;
        match want {
            None => assert!(r.is_ok(), "{code}: {r:?}"),
            Some(kind) => {
                let e = r.unwrap_err();
                assert_eq!(e.kind(), *kind, "{code}: {e}");
                assert_eq!(e.code(), Some(code.to_string().as_str()));
            }
        }
    }
}

#[tokio::test]
async fn a_slow_or_silent_server_fails_within_the_timeout() {
    let sink = HttpSink::start().await.unwrap();
    let u = url(&sink, "/slow");
    for fault in [Fault::Delay(Duration::from_secs(5)), Fault::NeverAnswer] {
        sink.faults().always(fault.clone());
        let start = Instant::now();
        let e = send(
            &[("URL", &u), ("TIMEOUT", "0.5"), ("to", "{phone}")],
            "1",
            "x",
        )
        .await
        .unwrap_err();
        let took = start.elapsed();
        assert_eq!(e.kind(), ErrorKind::Unknown, "{fault:?}: {e}");
        assert!(
            took >= Duration::from_millis(450) && took < Duration::from_millis(1200),
            "{fault:?}: took {took:?}"
        );
    }
}

#[tokio::test]
async fn a_closed_connection_is_an_unknown_outcome() {
    let sink = HttpSink::start().await.unwrap();
    sink.faults().always(Fault::Close);
    let e = send(&[("URL", &url(&sink, "/c")), ("TIMEOUT", "2")], "1", "x")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unknown, "{e}");
}

#[tokio::test]
async fn a_refused_connection_is_not_sent() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let e = send(
        &[
            ("URL", &format!("http://127.0.0.1:{port}/x")),
            ("TIMEOUT", "2"),
        ],
        "1",
        "x",
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotSent, "{e}");
    assert!(e.is_retry_safe());
}

#[tokio::test]
async fn proxies_receive_the_request() {
    let proxy = HttpSink::start().await.unwrap();
    let direct = HttpSink::start().await.unwrap();
    // HTTP_PROXY for an http:// URL: the proxy gets the absolute-form request.
    send(
        &[
            ("URL", "http://gateway.invalid/send"),
            ("HTTP_PROXY", &proxy.url()),
            ("to", "{phone}"),
        ],
        "+1",
        "x",
    )
    .await
    .unwrap();
    // The deprecated PROXY applies to every URL (here without a scheme, as privacyIDEA allows).
    send(
        &[
            ("URL", "http://gateway.invalid/old"),
            ("PROXY", &proxy.addr().to_string()),
            ("to", "{phone}"),
        ],
        "+2",
        "x",
    )
    .await
    .unwrap();
    // HTTPS_PROXY alone does not apply to an http:// URL, and the environment is not consulted.
    send(
        &[
            ("URL", &url(&direct, "/d")),
            ("HTTPS_PROXY", &proxy.url()),
            ("to", "{phone}"),
        ],
        "+3",
        "x",
    )
    .await
    .unwrap();
    let reqs = proxy.requests();
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    assert_eq!(reqs[0].target, "http://gateway.invalid/send?to=%2B1");
    assert_eq!(reqs[0].header("host"), Some("gateway.invalid"));
    assert_eq!(reqs[1].target, "http://gateway.invalid/old?to=%2B2");
    assert_eq!(direct.requests().len(), 1);
    assert_eq!(direct.requests()[0].target, "/d?to=%2B3");
}

#[tokio::test]
async fn check_ssl_against_a_self_signed_server() {
    let sink = HttpSink::builder().tls().start().await.unwrap();
    assert!(sink.url().starts_with("https://"));
    let u = url(&sink, "/tls");
    // An untrusted certificate is a configuration matter (retrying cannot help), as for smtp/smpp.
    let e = send(&[("URL", &u), ("to", "{phone}")], "1", "x")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    assert_eq!(e.code(), Some("untrusted_certificate"), "{e}");
    let e = send(
        &[("URL", &u), ("CHECK_SSL", "yes"), ("to", "{phone}")],
        "1",
        "x",
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    assert!(e.to_string().contains("CHECK_SSL"), "{e}");
    assert!(sink.requests().is_empty());
    send(
        &[("URL", &u), ("CHECK_SSL", "no"), ("to", "{phone}")],
        "1",
        "x",
    )
    .await
    .unwrap();
    let reqs = sink.requests();
    assert_eq!(reqs.len(), 1);
    assert!(reqs[0].tls);
}

#[tokio::test]
async fn special_characters_arrive_intact_in_every_form() {
    let sink = HttpSink::start().await.unwrap();
    let u = url(&sink, "/x");
    for extra in [
        vec![],
        vec![("HTTP_METHOD", "POST")],
        vec![("HTTP_METHOD", "POST"), ("SEND_DATA_AS_JSON", "yes")],
    ] {
        sink.clear();
        let mut opts = vec![("URL", u.as_str()), ("to", "{phone}"), ("text", "{otp}")];
        opts.extend(extra.iter().cloned());
        send(&opts, SPECIAL_PHONE, SPECIAL_TEXT).await.unwrap();
        let got = sink.recorder().wait_for(1, Duration::from_secs(1)).await;
        assert_eq!(got[0].recipient, SPECIAL_PHONE, "{extra:?}");
        assert_eq!(got[0].text, SPECIAL_TEXT, "{extra:?}");
    }
    // A message that looks like JSON is still sent as a string.
    sink.clear();
    send(
        &[
            ("URL", &u),
            ("HTTP_METHOD", "POST"),
            ("SEND_DATA_AS_JSON", "yes"),
            ("text", "{otp}"),
        ],
        "1",
        "{\"a\": 1}",
    )
    .await
    .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&sink.requests()[0].body).unwrap();
    assert_eq!(body["text"], "{\"a\": 1}");
}

#[tokio::test]
async fn connections_are_reused() {
    let sink = HttpSink::start().await.unwrap();
    let gw = gateway(&[("URL", &url(&sink, "/k")), ("to", "{phone}")], &[]).unwrap();
    for i in 0..30 {
        gw.send(&Message::new(i.to_string(), "x")).await.unwrap();
    }
    assert_eq!(sink.requests().len(), 30);
    assert_eq!(
        sink.connections(),
        1,
        "30 sequential sends should share one connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sends_each_arrive_once() {
    let sink = HttpSink::start().await.unwrap();
    let gw = gateway(
        &[
            ("URL", &url(&sink, "/k")),
            ("to", "{phone}"),
            ("TIMEOUT", "5"),
        ],
        &[],
    )
    .unwrap();
    let mut tasks = Vec::new();
    for i in 0..100 {
        let gw = gw.clone();
        tasks.push(tokio::spawn(async move {
            gw.send(&Message::new(format!("n{i}"), "x")).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let mut got: Vec<String> = sink
        .recorder()
        .all()
        .into_iter()
        .map(|r| r.recipient)
        .collect();
    got.sort();
    got.dedup();
    assert_eq!(got.len(), 100);
    assert!(sink.connections() <= 100);
}

#[tokio::test]
async fn regexp_rewrites_the_phone() {
    let sink = HttpSink::start().await.unwrap();
    send(
        &[
            ("URL", &url(&sink, "/re")),
            ("REGEXP", r"/^0/0049/"),
            ("to", "{phone}"),
        ],
        "0151 1",
        "x",
    )
    .await
    .unwrap();
    assert_eq!(sink.recorder().all()[0].recipient, "0049151 1");
}

#[test]
fn configuration_problems_are_all_reported() {
    // Outside a runtime: the factory must not need one.
    let errs = gateway(
        &[
            ("URL", "ftp://h/x"),
            ("USERNAME", "u"),
            ("HTTP_PROXY", "socks5://p:1"),
            ("to", "{phone}"),
            ("account", "x"),
            ("PARAMETER", r#"{"account": "y"}"#),
            ("TIMEOUT", "abc"),
            ("HTTP_METHOD", "PUT"),
        ],
        &[("Bad Header", "1")],
    )
    .unwrap_err();
    let text = errs.to_string();
    // The core's own checks (kinds, including proxies) come first and stop the factory; fix
    // those and look again.
    assert!(
        text.contains("'TIMEOUT'")
            && text.contains("'HTTP_METHOD'")
            && text.contains("'HTTP_PROXY'"),
        "{text}"
    );
    let errs = gateway(
        &[
            ("URL", "ftp://h/x"),
            ("USERNAME", "u"),
            ("to", "{phone}"),
            ("account", "x"),
            ("PARAMETER", r#"{"account": "y"}"#),
        ],
        &[("Bad Header", "1")],
    )
    .unwrap_err();
    let keys: Vec<&str> = errs
        .problems()
        .iter()
        .filter_map(|p| p.key.as_deref())
        .collect();
    for k in ["URL", "PASSWORD", "account", "Bad Header"] {
        assert!(keys.contains(&k), "{k} missing in {errs}");
    }
    let errs = gateway(&[("to", "{phone}")], &[]).unwrap_err();
    assert!(errs.to_string().contains("'URL'"), "{errs}");
    // Builds fine without a runtime.
    gateway(
        &[("URL", "https://sms.example.org/send"), ("to", "{phone}")],
        &[],
    )
    .unwrap();
}

#[test]
fn registered_under_both_names() {
    assert_eq!(smsgw_http::NAME, "http");
    let reg = smsgw_core::Registry::global();
    assert_eq!(reg.get("http").unwrap().name, "http");
    assert_eq!(
        reg.get(smsgw_http::PRIVACYIDEA_MODULE).unwrap().name,
        "http"
    );
}
