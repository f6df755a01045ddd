//! The `smsgw` binary: commands, output and exit codes.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/examples")
}

#[test]
fn providers_lists_every_compiled_in_provider() {
    let o = run(&["providers", "--json"]);
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["http", "sipgate", "smpp", "smtp"]);
    let (out, _) = text(&run(&["providers"]));
    assert!(out.contains("privacyidea.lib.smsprovider.HttpSMSProvider.HttpSMSProvider"));
    assert!(out.contains("URL"));
}

#[test]
fn every_shipped_example_passes_check() {
    let mut n = 0;
    for entry in std::fs::read_dir(examples()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let o = run(&["--config", path.to_str().unwrap(), "check"]);
            let (out, err) = text(&o);
            assert_eq!(o.status.code(), Some(0), "{}: {out}{err}", path.display());
            n += 1;
        }
    }
    assert!(
        n >= 6,
        "expected the spec's three HTTP examples and one per other provider"
    );
}

#[test]
fn check_reports_every_problem_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        &dir,
        r#"
[gateways.a]
provider = "http"
options = { HTTP_METHOD = "PUT", TIMEOUT = "x" }

[gateways.b]
provider = "sipgate"
options = { USERNAME = "u", PASSWORD = "p", extra = "1" }

[gateways.c]
provider = "smtp"
options = { SMTPIDENTIFIER = "nope", MAILTO = "x@example.org" }

[gateways.d]
provider = "smpp"
options = { SMSC_HOST = "127.0.0.1", SMSC_PORT = "99999" }

[gateways.e]
provider = "pigeon"
"#,
    );
    let o = run(&["-c", cfg.to_str().unwrap(), "check"]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    for needle in [
        "gateway 'a', option 'URL': required",
        "gateway 'a', option 'HTTP_METHOD'",
        "gateway 'a', option 'TIMEOUT'",
        "gateway 'b', option 'extra'",
        "gateway 'c', option 'SMTPIDENTIFIER'",
        "gateway 'd', option 'SMSC_PORT'",
        "gateway 'e', provider: unknown provider 'pigeon'",
    ] {
        assert!(err.contains(needle), "missing «{needle}» in {err}");
    }
}

#[test]
fn missing_or_broken_file_exits_2() {
    let o = smsgw()
        .args(["check"])
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("smsgw.toml"));
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(&dir, "[gateways.x\n");
    let o = smsgw()
        .args(["check"])
        .env("SMSGW_CONFIG", &cfg)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("line 1"), "{}", text(&o).1);
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(run(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(run(&["send", "--phone", "1"]).status.code(), Some(2));
    assert_eq!(run(&["--help"]).status.code(), Some(0));
}

#[test]
fn gateways_never_shows_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        &dir,
        r#"
[smtp_servers.m]
server = "mail.example.org"
sender = "a@example.org"
username = "u"
password = "smtp-secret-1"
[gateways.h]
provider = "http"
options = { URL = "https://bob:url-secret-2@sms.example.org/", PASSWORD = "pw-secret-3", password = "pw-secret-4", USERNAME = "bob", to = "{phone}" }
headers = { Authorization = "Bearer tok-secret-5" }
[gateways.s]
provider = "smpp"
options = { SMSC_HOST = "127.0.0.1", SMSC_PORT = "2775", PASSWORD = "pw6" }
"#,
    );
    for args in [&["gateways"][..], &["gateways", "--json"][..]] {
        let mut full = vec!["-c", cfg.to_str().unwrap()];
        full.extend_from_slice(args);
        let o = run(&full);
        let (out, err) = text(&o);
        assert_eq!(o.status.code(), Some(0), "{err}");
        for s in [
            "smtp-secret-1",
            "url-secret-2",
            "pw-secret-3",
            "pw-secret-4",
            "tok-secret-5",
            "pw6",
        ] {
            assert!(
                !out.contains(s) && !err.contains(s),
                "{s} shown by {args:?}:\n{out}"
            );
        }
        assert!(out.contains("__CENSORED__"));
        assert!(out.contains("bob"), "non-secret values stay visible");
    }
}

#[test]
fn send_to_unknown_gateway_exits_2_and_refused_connection_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cfg = write_config(
        &dir,
        &format!(
            "[gateways.h]\nprovider = \"http\"\noptions = {{ URL = \"http://127.0.0.1:{port}/send\", to = \"{{phone}}\", text = \"{{otp}}\" }}\n"
        ),
    );
    let c = cfg.to_str().unwrap();
    let o = run(&["-c", c, "send", "-g", "nope", "-p", "+4915", "-m", "x"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("no gateway 'nope'"));
    let o = run(&[
        "-c", c, "send", "-g", "h", "-p", "+4915", "-m", "x", "--json",
    ]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{err}");
    assert!(err.contains("safe to retry"), "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["kind"], "not_sent");
    assert_eq!(v["retry_safe"], true);
}

#[test]
fn import_privacyidea_yaml_and_placeholders() {
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export.yaml");
    std::fs::write(
        &export,
        r#"
policy:
  pol1: {scope: authentication}
smtpserver:
  relay:
    server: 127.0.0.1
    port: 2525
    sender: pi@example.org
    username: pi
    password: __CENSORED__
    tls: false
    timeout: 10
    enqueue_job: false
smsgateway:
  clickatell:
    providermodule: privacyidea.lib.smsprovider.HttpSMSProvider.HttpSMSProvider
    description: Clickatell
    options:
      URL: http://api.clickatell.com/http/sendmsg
      HTTP_METHOD: GET
      RETURN_SUCCESS: ID
      password: __CENSORED__
      to: '{phone}'
      text: Your OTP value is {otp}
    headers:
      X-Version: '1'
  mail:
    providermodule: privacyidea.lib.smsprovider.SmtpSMSProvider.SmtpSMSProvider
    options:
      SMTPIDENTIFIER: relay
      MAILTO: '{phone}@sms.example.net'
"#,
    )
    .unwrap();
    let o = run(&["import-privacyidea", export.to_str().unwrap()]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(err.contains("section 'policy' ignored"), "{err}");
    assert!(err.contains("enqueue_job"), "{err}");
    assert!(err.contains("allow_insecure_auth = true"), "{err}");
    assert!(out.contains("provider = \"http\""), "{out}");
    assert!(out.contains("text = \"Your OTP value is {otp}\""), "{out}");
    assert!(out.contains("X-Version = \"1\""), "{out}");
    assert!(
        out.contains("__FILL_IN__") && out.contains("#   gateways.clickatell.options.password"),
        "{out}"
    );
    let cfg = write_config(&dir, &out);
    let o = run(&["-c", cfg.to_str().unwrap(), "check"]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        err.contains("gateway 'clickatell', option 'password': still holds the placeholder"),
        "{err}"
    );
    assert!(
        err.contains("smtp server 'relay', field 'password'"),
        "{err}"
    );
    // Filled in, it passes.
    let filled = out.replace("__FILL_IN__", "real-value");
    let cfg = write_config(&dir, &filled);
    let o = run(&["-c", cfg.to_str().unwrap(), "check"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o).1);

    // A bare smsgateway section in JSON.
    let bare = dir.path().join("bare.json");
    std::fs::write(
        &bare,
        r#"{"s": {"providermodule": "privacyidea.lib.smsprovider.SipgateSMSProvider.SipgateSMSProvider", "options": {"USERNAME": "u", "PASSWORD": "p"}}}"#,
    )
    .unwrap();
    let o = run(&["import-privacyidea", bare.to_str().unwrap()]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(out.contains("provider = \"sipgate\""), "{out}");
    let o = run(&["import-privacyidea", "/nonexistent/export.yaml"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn send_prints_a_receipt_and_reads_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let (_rt, sink, cfg) = http_sink(&dir);
    let c = cfg.to_str().unwrap();
    let o = run(&[
        "-c",
        c,
        "send",
        "-g",
        "h",
        "-p",
        "00491511234567",
        "-m",
        "Grüße & 123456",
    ]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    assert!(out.starts_with("sent via h (http)"), "{out}");
    let o = send_stdin(
        &[
            "-c", c, "send", "-g", "h", "-p", "+4915", "-m", "-", "--json",
        ],
        "from stdin\nline 2\n",
    );
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["status"], "sent");
    let got = sink.recorder().all();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].recipient, "+491511234567", "REGEXP applied");
    assert_eq!(got[0].text, "Grüße & 123456");
    assert_eq!(
        got[1].text, "from stdin\nline 2",
        "the final newline of stdin is not part of the message"
    );
}

#[test]
fn bulk_send_reports_every_line() {
    let dir = tempfile::tempdir().unwrap();
    let (_rt, sink, cfg) = http_sink(&dir);
    let csv = dir.path().join("r.csv");
    let mut body = String::from("phone,message\n# a comment\n");
    for i in 0..30 {
        body.push_str(&format!("+4915100{i:03},\"hello, {i}\"\n"));
    }
    body.push_str("+4915199\n"); // no message: takes --message
    body.push_str("not-a-number,x\n");
    body.push_str("+4915,a,b\n");
    std::fs::write(&csv, body).unwrap();
    let report = dir.path().join("report.jsonl");
    let o = run(&[
        "-c",
        cfg.to_str().unwrap(),
        "send",
        "-g",
        "h",
        "--file",
        csv.to_str().unwrap(),
        "-m",
        "default text",
        "--concurrency",
        "4",
        "--report",
        report.to_str().unwrap(),
        "--json",
    ]);
    let (out, err) = text(&o);
    assert_eq!(
        o.status.code(),
        Some(1),
        "malformed lines make the run not fully sent: {out}{err}"
    );
    assert!(
        err.contains("r.csv:34: skipped") && err.contains("r.csv:35: skipped"),
        "{err}"
    );
    let summary: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(summary["sent"], 31);
    assert_eq!(summary["skipped_lines"], 2);
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&report)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines.len(),
        33,
        "one line per message and per malformed line"
    );
    assert_eq!(lines.iter().filter(|l| l["status"] == "sent").count(), 31);
    let got = sink.recorder().all();
    assert_eq!(got.len(), 31);
    assert!(got.iter().any(|r| r.text == "hello, 7"));
    assert!(
        got.iter()
            .any(|r| r.recipient == "+4915199" && r.text == "default text")
    );
}

#[test]
fn parameter_reference_is_fresh() {
    let o = run(&["providers", "--markdown"]);
    assert_eq!(o.status.code(), Some(0));
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/providers/reference.md");
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        current == String::from_utf8_lossy(&o.stdout),
        "docs/providers/reference.md is stale: run `cargo xtask docs` and commit it"
    );
}

#[test]
fn ctrl_c_stops_a_bulk_send_and_reports_every_message() {
    let dir = tempfile::tempdir().unwrap();
    let (_rt, sink, cfg) = http_sink(&dir);
    sink.faults().always(smsgw_testkit::Fault::Delay(
        std::time::Duration::from_millis(200),
    ));
    let csv = dir.path().join("r.csv");
    let body: String = (0..50).map(|i| format!("+4915100{i:03},m{i}\n")).collect();
    std::fs::write(&csv, body).unwrap();
    let report = dir.path().join("report.jsonl");
    let child = smsgw()
        .args([
            "-c",
            cfg.to_str().unwrap(),
            "send",
            "-g",
            "h",
            "--concurrency",
            "2",
            "--json",
        ])
        .arg("--file")
        .arg(&csv)
        .arg("--report")
        .arg(&report)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    let started = std::time::Instant::now();
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let o = child.wait_with_output().unwrap();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "stops promptly"
    );
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{err}");
    assert!(err.contains("interrupted"), "{err}");
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&report)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 50, "one line per message, sent or not");
    let sent = lines.iter().filter(|l| l["status"] == "sent").count();
    let not_started = lines
        .iter()
        .filter(|l| l["status"] == "not_started")
        .count();
    assert!(
        sent >= 2 && not_started >= 30,
        "sent {sent}, not started {not_started}"
    );
    assert_eq!(sent + not_started, 50, "in-flight sends were waited for");
    let summary: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(summary["sent"], sent);
}

#[test]
fn demo_delivers_through_every_provider() {
    let o = run(&["demo", "--json"]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let providers: Vec<&str> = rows
        .iter()
        .map(|r| r["provider"].as_str().unwrap())
        .collect();
    assert_eq!(providers, ["http", "sipgate", "smpp", "smtp"]);
    assert!(rows.iter().all(|r| r["intact"] == true), "{out}");
}

#[test]
fn sink_prints_what_arrives_and_writes_a_config_that_reaches_it() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("sinks.toml");
    let mut sink = smsgw()
        .args([
            "sink",
            "--json",
            "--http-port",
            "0",
            "--sipgate-port",
            "0",
            "--smtp-port",
            "0",
            "--smpp-port",
            "0",
        ])
        .arg("--write-config")
        .arg(&cfg)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..100 {
        if cfg.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let c = cfg.to_str().unwrap();
    let o = run(&["-c", c, "check"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o).1);
    let mut lines = BufReader::new(sink.stdout.take().unwrap()).lines();
    for gw in ["http-sink", "sipgate-sink", "smtp-sink", "smpp-sink"] {
        let o = run(&[
            "-c",
            c,
            "send",
            "-g",
            gw,
            "-p",
            "+491511234567",
            "-m",
            "Grüße 🔐",
        ]);
        assert_eq!(o.status.code(), Some(0), "{gw}: {}", text(&o).1);
        let line = lines.next().expect("a line per message").unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["text"], "Grüße 🔐", "{gw}: {line}");
        assert!(
            v["recipient"].as_str().unwrap().contains("491511234567"),
            "{gw}: {line}"
        );
    }
    let _ = sink.kill();
    let _ = sink.wait();
}
