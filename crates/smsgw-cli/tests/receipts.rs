//! `smsgw send --wait-receipt` against the test SMSC on loopback (transceiver bind).

mod common;

use common::{run, text, write_config};
use smsgw_testkit::smsc::Smsc;

fn smsc() -> (tokio::runtime::Runtime, Smsc) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let smsc = rt.block_on(Smsc::start()).unwrap();
    (rt, smsc)
}

fn config(dir: &tempfile::TempDir, smsc: &Smsc, receipts: &str) -> String {
    let p = write_config(
        dir,
        &format!(
            "[gateways.s]\nprovider = \"smpp\"\noptions = {{ SMSC_HOST = \"127.0.0.1\", SMSC_PORT = \"{}\", SYSTEM_ID = \"pi-peer\", PASSWORD = \"secret12\", S_ADDR = \"privacyIDEA\", BIND = \"transceiver\", REGISTERED_DELIVERY = \"{receipts}\", TIMEOUT = \"2\" }}\n",
            smsc.addr().port()
        ),
    );
    p.to_str().unwrap().to_owned()
}

/// `smsgw -c CONFIG send -g s ARGS… --wait-receipt SECS`, which must exit 0: its standard output.
fn send_waiting(config: &str, args: &[&str], secs: &str) -> String {
    let mut all = vec!["-c", config, "send", "-g", "s"];
    all.extend_from_slice(args);
    all.extend(["--wait-receipt", secs]);
    let o = run(&all);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    out
}

#[test]
fn single_send_shows_the_receipt() {
    let (_rt, smsc) = smsc();
    let dir = tempfile::tempdir().unwrap();
    let c = config(&dir, &smsc, "yes");
    let out = send_waiting(&c, &["-p", "+4915", "-m", "123456", "--json"], "10");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["status"], "sent");
    let r = &v["receipt"];
    assert_eq!(r["state"], "DELIVRD", "{v}");
    assert!(r["error"].is_string(), "{v}");
    assert_eq!(r["message_id"], v["message_ids"][0], "{v}");
    assert!(r.get("done_at").is_some(), "{v}");

    // Plain output says so too.
    let out = send_waiting(&c, &["-p", "+4915", "-m", "1"], "10");
    assert!(out.contains("receipt: DELIVRD"), "{out}");
}

#[test]
fn undelivered_receipt_is_said_but_keeps_exit_0() {
    let (_rt, smsc) = smsc();
    smsc.set_receipt_state("UNDELIV", "001");
    let dir = tempfile::tempdir().unwrap();
    let c = config(&dir, &smsc, "yes");
    let out = send_waiting(&c, &["-p", "+4915", "-m", "1"], "10");
    assert!(out.contains("receipt: UNDELIV, error 001"), "{out}");
    assert!(out.contains("NOT delivered"), "{out}");
}

#[test]
fn no_receipt_in_time_is_null_not_a_failure() {
    let (_rt, smsc) = smsc();
    let dir = tempfile::tempdir().unwrap();
    // No receipt asked for: none will come.
    let c = config(&dir, &smsc, "no");
    let start = std::time::Instant::now();
    let out = send_waiting(&c, &["-p", "+4915", "-m", "1", "--json"], "1");
    assert!(start.elapsed() >= std::time::Duration::from_millis(900));
    assert!(start.elapsed() < std::time::Duration::from_secs(20));
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["status"], "sent");
    assert!(v["receipt"].is_null(), "{v}");
    assert!(v.as_object().unwrap().contains_key("receipt"), "{v}");
}

#[test]
fn bulk_report_lines_carry_their_receipts() {
    let (_rt, smsc) = smsc();
    let dir = tempfile::tempdir().unwrap();
    let c = config(&dir, &smsc, "yes");
    let list = dir.path().join("list.csv");
    std::fs::write(&list, "+4915,a\n+4916,b\n+4917,c\n").unwrap();
    let report = dir.path().join("report.jsonl");
    let (list, report_path) = (list.to_str().unwrap(), report.to_str().unwrap());
    let out = send_waiting(
        &c,
        &["--file", list, "--report", report_path, "--json"],
        "10",
    );
    let summary: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(summary["sent"], 3);
    assert_eq!(summary["without_receipt"], 0, "{summary}");
    let text = std::fs::read_to_string(&report).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{text}");
    for l in &lines {
        assert_eq!(l["status"], "sent");
        assert_eq!(l["gateway"], "s");
        assert_eq!(l["receipt"]["state"], "DELIVRD", "{l}");
        assert_eq!(l["receipt"]["message_id"], l["message_ids"][0], "{l}");
    }
}
