//! The `smsgw` binary against hostile input and hostile process handling (issue #12): signals,
//! SIGKILL, malformed recipient files, a closed standard output, absurd options.

mod common;

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn report_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("half a line {l:?}: {e}")))
        .collect()
}

fn bulk(cfg: &Path, csv: &Path, report: &Path, concurrency: &str) -> Child {
    smsgw()
        .args(["-c", cfg.to_str().unwrap(), "send", "-g", "h", "--json"])
        .args(["--concurrency", concurrency])
        .arg("--file")
        .arg(csv)
        .arg("--report")
        .arg(report)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn signal(child: &Child, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

#[test]
fn sigterm_stops_a_bulk_send_like_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let (_rt, sink, cfg) = http_sink(&dir);
    sink.faults()
        .always(smsgw_testkit::Fault::Delay(Duration::from_millis(200)));
    let csv = dir.path().join("r.csv");
    let body: String = (0..50).map(|i| format!("+4915100{i:03},m{i}\n")).collect();
    std::fs::write(&csv, body).unwrap();
    let report = dir.path().join("report.jsonl");
    let child = bulk(&cfg, &csv, &report, "2");
    std::thread::sleep(Duration::from_millis(700));
    let at = Instant::now();
    signal(&child, "-TERM");
    let o = child.wait_with_output().unwrap();
    assert!(at.elapsed() < Duration::from_secs(3), "stops promptly");
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{err}");
    assert!(err.contains("interrupted (SIGTERM)"), "{err}");
    let lines = report_lines(&report);
    assert_eq!(lines.len(), 50, "one line per recipient, sent or not");
    let sent = lines.iter().filter(|l| l["status"] == "sent").count();
    let not_started = lines
        .iter()
        .filter(|l| l["status"] == "not_started")
        .count();
    assert!(sent >= 2 && not_started >= 30, "{sent} {not_started}");
    assert_eq!(sent + not_started, 50);
    let summary: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(summary["sent"], sent);
    assert_eq!(summary["not_started"], not_started);
}

#[test]
fn after_sigkill_the_report_holds_all_but_the_last_100_ms() {
    let dir = tempfile::tempdir().unwrap();
    let (_rt, sink, cfg) = http_sink(&dir);
    sink.faults()
        .always(smsgw_testkit::Fault::Delay(Duration::from_millis(50)));
    let csv = dir.path().join("r.csv");
    let body: String = (0..5000).map(|i| format!("+49151{i:05},m{i}\n")).collect();
    std::fs::write(&csv, body).unwrap();
    let report = dir.path().join("report.jsonl");
    let mut child = bulk(&cfg, &csv, &report, "2");
    // Wait until some messages are through, then let more than 100 ms pass without new
    // answers: hold the sink's answers back, so that every outcome is older than that.
    let deadline = Instant::now() + Duration::from_secs(20);
    while sink.recorder().len() < 10 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    sink.faults().always(smsgw_testkit::Fault::NeverAnswer);
    std::thread::sleep(Duration::from_millis(600));
    let arrived = sink.recorder().len();
    child.kill().unwrap();
    let _ = child.wait();
    let lines = report_lines(&report);
    let sent = lines.iter().filter(|l| l["status"] == "sent").count();
    // Messages that arrived: all answered long before the kill, except the (at most 2) in
    // flight that the sink never answered.
    assert!(arrived >= 10, "{arrived}");
    assert!(
        sent + 2 >= arrived,
        "the report lost outcomes older than 100 ms: {sent} sent lines, {arrived} arrived"
    );
}

#[test]
fn crlf_blank_and_comment_lines_keep_physical_line_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let (_rt, _sink, cfg) = http_sink(&dir);
    let csv = dir.path().join("r.csv");
    std::fs::write(
        &csv,
        "phone,message\r\n\r\n# c\r\n+491,a\r\n\r\nnot-a-number,x\r\n+492,b\r\n",
    )
    .unwrap();
    let report = dir.path().join("report.jsonl");
    let o = bulk(&cfg, &csv, &report, "1").wait_with_output().unwrap();
    let (_, err) = text(&o);
    assert!(err.contains("r.csv:6: skipped"), "{err}");
    let mut lines: Vec<(u64, String)> = report_lines(&report)
        .iter()
        .map(|l| {
            (
                l["line"].as_u64().unwrap(),
                l["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            (4, "sent".to_owned()),
            (6, "skipped".to_owned()),
            (7, "sent".to_owned())
        ]
    );
}

#[test]
fn an_unbalanced_quote_is_one_malformed_line_and_the_next_lines_are_sent() {
    let dir = tempfile::tempdir().unwrap();
    let (_rt, sink, cfg) = http_sink(&dir);
    let csv = dir.path().join("r.csv");
    std::fs::write(&csv, "+491,\"unclosed\n+492,b\n+493,c\n").unwrap();
    let report = dir.path().join("report.jsonl");
    let o = bulk(&cfg, &csv, &report, "1").wait_with_output().unwrap();
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{err}");
    assert!(err.contains("r.csv:1: skipped: unbalanced quote"), "{err}");
    let summary: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(summary["sent"], 2);
    assert_eq!(summary["skipped_lines"], 1);
    let got = sink.recorder().all();
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|r| !r.recipient.contains('\n')));
}

#[test]
fn an_overlong_line_stops_reading_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let (_rt, sink, cfg) = http_sink(&dir);
    let csv = dir.path().join("r.csv");
    let long = "x".repeat(70_000);
    std::fs::write(&csv, format!("+491,a\n+492,{long}\n+493,c\n")).unwrap();
    let report = dir.path().join("report.jsonl");
    let o = bulk(&cfg, &csv, &report, "1").wait_with_output().unwrap();
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{err}");
    assert!(err.contains("line 2 is longer than 65536 bytes"), "{err}");
    assert_eq!(sink.recorder().len(), 1);
}

#[test]
fn a_report_naming_the_recipients_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_rt, sink, cfg) = http_sink(&dir);
    let csv = dir.path().join("r.csv");
    std::fs::write(&csv, "+491,a\n").unwrap();
    let same = dir.path().join(".").join("r.csv");
    let o = bulk(&cfg, &csv, &same, "1").wait_with_output().unwrap();
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("names the recipients file"), "{err}");
    assert_eq!(std::fs::read_to_string(&csv).unwrap(), "+491,a\n");
    assert_eq!(sink.recorder().len(), 0);
}

/// Runs smsgw with its standard output already closed by the reader.
fn with_closed_stdout(args: &[&str]) -> std::process::Output {
    let mut child = smsgw()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    child.wait_with_output().unwrap()
}

#[test]
fn a_closed_standard_output_is_not_a_crash() {
    let o = with_closed_stdout(&["providers", "--json"]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let (_rt, sink, cfg) = http_sink(&dir);
    let c = cfg.to_str().unwrap();
    let o = with_closed_stdout(&[
        "-c", c, "send", "-g", "h", "-p", "+491", "-m", "x", "--json",
    ]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "the status of the send: {err}");
    assert_eq!(sink.recorder().len(), 1, "sent once");
}

#[test]
fn threads_above_the_bound_is_a_usage_error() {
    let o = run(&["--threads", "100000", "providers"]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        err.contains("--threads") && err.contains("0..=512"),
        "{err}"
    );
}
