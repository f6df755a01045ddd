//! The custom binary includes `linegw` in every subcommand.

use std::process::{Command, Output};

fn smsgw(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_smsgw-custom"))
        .env_remove("SMSGW_CONFIG")
        .env_remove("RUST_LOG")
        .args(args)
        .output()
        .expect("run the custom smsgw")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn providers_lists_the_extra_provider_with_the_built_in_ones() {
    let o = smsgw(&["providers", "--json"]);
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["http", "linegw", "sipgate", "smpp", "smtp"]);
}

#[test]
fn demo_sends_through_the_extra_provider() {
    let o = smsgw(&["demo", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let line = v
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["provider"] == "linegw")
        .expect("linegw in the demo");
    assert_eq!(line["intact"], true, "{line}");
}

#[test]
fn conformance_runs_the_extra_providers_harness() {
    let o = smsgw(&["conformance", "--provider", "linegw"]);
    let out = stdout(&o);
    assert!(out.contains("ok   linegw   sends_arrive_intact"), "{out}");
    assert!(
        out.contains("ok   linegw   receipts_carry_message_ids"),
        "{out}"
    );
    assert!(out.lines().last().unwrap().ends_with(" 0 failed"), "{out}");
    assert_eq!(o.status.code(), Some(0), "{out}");
}

#[test]
fn check_and_send_use_the_extra_provider() {
    let dir = std::env::temp_dir().join(format!("smsgw-custom-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("smsgw.toml");
    // A closed port on loopback: the send fails as not sent, proving the gateway was built.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        &cfg,
        format!(
            "[gateways.line]\nprovider = \"linegw\"\n[gateways.line.options]\nHOST = \"127.0.0.1\"\nPORT = \"{port}\"\nTOKEN = \"t\"\nTIMEOUT = \"2\"\n"
        ),
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap();
    let o = smsgw(&["-c", cfg, "check"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let o = smsgw(&[
        "-c", cfg, "send", "-g", "line", "-p", "+4915", "-m", "x", "--json",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["kind"], "not_sent", "{v}");
    let _ = std::fs::remove_dir_all(&dir);
}
