//! Secrets in URLs that fail validation, and configuration files that never end (issue #12,
//! items 6 and 13), through the `smsgw` binary.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_smsgw"))
        .env_remove("SMSGW_CONFIG")
        .env_remove("RUST_LOG")
        .args(args)
        .output()
        .expect("run smsgw")
}

const SECRETS: [&str; 4] = ["url-pw-1", "tok-2", "proxy-pw-3", "smtp-pw-4"];

const CONFIG: &str = r#"
[smtp_servers.m]
server = "smtp://otp:smtp-pw-4@mail.example.org:99999"
sender = "otp@example.org"

[gateways.g]
provider = "http"
[gateways.g.options]
URL = "https://bob:url-pw-1@sms.example.org:99999/send?token=tok-2&to={phone}"
PROXY = "carol:proxy-pw-3@proxy.example.org:99999"
text = "{otp}"
"#;

#[test]
fn invalid_urls_never_show_their_password() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("smsgw.toml");
    std::fs::write(&path, CONFIG).unwrap();
    let path = path.to_str().unwrap();
    for args in [
        vec!["--config", path, "check"],
        vec!["--config", path, "gateways"],
        vec!["--config", path, "gateways", "--json"],
        vec!["--config", path, "send", "-g", "g", "+4915100", "x"],
    ] {
        let o = run(&args);
        let shown = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        for s in SECRETS {
            assert!(!shown.contains(s), "{args:?} shows {s}:\n{shown}");
        }
        if args.contains(&"check") {
            assert_eq!(o.status.code(), Some(2), "{shown}");
            assert!(shown.contains("invalid port number"), "{shown}");
            assert!(shown.contains("__CENSORED__"), "{shown}");
        }
    }
}

#[test]
fn an_endless_configuration_fails_fast() {
    if !std::path::Path::new("/dev/zero").exists() {
        return;
    }
    let start = Instant::now();
    let o = run(&["--config", "/dev/zero", "check"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("larger than 1024 KiB"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(30));
}
