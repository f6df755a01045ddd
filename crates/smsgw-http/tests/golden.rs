//! Reproduces what privacyIDEA 3.14 put on the wire (the golden files) against the loopback sink:
//! same method, path, query and body bytes, basic auth and gateway headers.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use smsgw_core::{GatewayDef, Message, Registry};
use smsgw_testkit::Fault;
use smsgw_testkit::http::{HttpRequest, HttpSink};

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// The copies in tests/golden must equal the shared originals when those are present.
#[test]
fn golden_copies_match_the_shared_originals() {
    smsgw_testkit::golden::assert_copies_current(Path::new(env!("CARGO_MANIFEST_DIR")));
}

fn cases() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(golden_dir())
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".case.json").map(str::to_owned)
        })
        .filter(|n| n.starts_with("http_"))
        .collect();
    v.sort();
    v
}

fn subst(s: &str, sink: &HttpSink) -> String {
    s.replace("{SINK}", &sink.addr().to_string())
        .replace("{SINK_HOST}", &sink.addr().ip().to_string())
        .replace("{SINK_PORT}", &sink.addr().port().to_string())
}

fn strmap(v: &Value, sink: &HttpSink) -> indexmap::IndexMap<String, String> {
    v.as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), subst(v.as_str().unwrap(), sink)))
                .collect()
        })
        .unwrap_or_default()
}

fn header<'a>(headers: &'a [Value], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|h| h[0].as_str().unwrap().eq_ignore_ascii_case(name))
        .map(|h| h[1].as_str().unwrap())
}

async fn run_case(name: &str) {
    let case: Value = serde_json::from_str(
        &std::fs::read_to_string(golden_dir().join(format!("{name}.case.json"))).unwrap(),
    )
    .unwrap();
    let lines: Vec<Value> = std::fs::read_to_string(golden_dir().join(format!("{name}.jsonl")))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let peer = &lines[0];
    let expected: Vec<&Value> = lines.iter().filter(|l| l["kind"] == "http").collect();

    let sink = HttpSink::start().await.unwrap();
    if let Some(args) = case["sink"]["args"].as_array() {
        let args: Vec<&str> = args.iter().map(|a| a.as_str().unwrap()).collect();
        let mut status = 200;
        let mut body = "OK".to_owned();
        for w in args.windows(2) {
            match w[0] {
                "--body" => body = w[1].to_owned(),
                "--status" => status = w[1].parse().unwrap(),
                _ => {}
            }
        }
        sink.faults().always(Fault::Reply {
            code: status,
            text: body,
        });
    }

    assert_eq!(smsgw_http::NAME, "http"); // links the provider
    let def = GatewayDef {
        id: name.into(),
        provider: case["providermodule"].as_str().unwrap().into(),
        options: strmap(&case["options"], &sink),
        headers: strmap(&case["headers"], &sink),
        ..Default::default()
    };
    let gw = smsgw_core::Gateway::build(&def, &Default::default(), Registry::global())
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let msg = Message::new(
        case["sample"]["phone"].as_str().unwrap(),
        case["sample"]["message"].as_str().unwrap(),
    );
    let result = gw.send(&msg).await;
    assert_eq!(
        result.is_ok(),
        peer["result"]["ok"].as_bool().unwrap(),
        "{name}: privacyIDEA's result was {}, ours {result:?}",
        peer["result"]
    );

    let got: Vec<HttpRequest> = sink
        .wait_for_requests(expected.len(), Duration::from_secs(2))
        .await;
    assert_eq!(got.len(), expected.len(), "{name}: number of requests");
    for (g, e) in got.iter().zip(expected) {
        let g_json = serde_json::to_value(g).unwrap();
        assert_eq!(g.method, e["method"].as_str().unwrap(), "{name}: method");
        assert_eq!(g.target, e["target"].as_str().unwrap(), "{name}: target");
        assert_eq!(g.path, e["path"].as_str().unwrap(), "{name}: path");
        assert_eq!(
            g.query_raw,
            e["query_raw"].as_str().unwrap(),
            "{name}: query bytes"
        );
        assert_eq!(g_json["query"], e["query"], "{name}: query pairs");
        assert_eq!(
            g.body_text(),
            e["body"].as_str().unwrap(),
            "{name}: body bytes"
        );
        for key in ["form", "json", "basic_auth"] {
            assert_eq!(
                g_json.get(key),
                e.get(key),
                "{name}: {key} (ours {:?}, privacyIDEA {:?})",
                g_json.get(key),
                e.get(key)
            );
        }
        // Content headers as privacyIDEA sent them.
        let eh = e["headers"].as_array().unwrap();
        for h in ["Content-Type", "Content-Length", "Authorization"] {
            assert_eq!(g.header(h), header(eh, h), "{name}: header {h}");
        }
        // The gateway's own headers: present, with the value given, in the order given.
        let gateway_headers = case["headers"].as_object().unwrap();
        let mut last_pos = 0;
        for (k, v) in gateway_headers {
            let v = subst(v.as_str().unwrap(), &sink);
            assert_eq!(
                header(eh, k),
                Some(v.as_str()),
                "{name}: golden has header {k}"
            );
            let pos = g
                .headers
                .iter()
                .position(|(n, val)| n.eq_ignore_ascii_case(k) && *val == v)
                .unwrap_or_else(|| panic!("{name}: header {k}: {v} missing in {:?}", g.headers));
            assert!(pos >= last_pos, "{name}: header {k} out of order");
            last_pos = pos;
            assert_eq!(
                g.headers
                    .iter()
                    .filter(|(n, _)| n.eq_ignore_ascii_case(k))
                    .count(),
                1,
                "{name}: header {k} sent more than once"
            );
        }
    }
}

#[tokio::test]
async fn golden_cases_are_reproduced() {
    let cases = cases();
    assert!(cases.len() >= 5, "golden cases missing: {cases:?}");
    for name in cases {
        run_case(&name).await;
    }
}
