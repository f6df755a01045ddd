//! Helpers shared by the tests of the `smsgw` binary.
#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

pub fn smsgw() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_smsgw"));
    c.env_remove("SMSGW_CONFIG").env_remove("RUST_LOG");
    c
}

pub fn run(args: &[&str]) -> Output {
    smsgw().args(args).output().expect("run smsgw")
}

pub fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

pub fn write_config(dir: &tempfile::TempDir, body: &str) -> PathBuf {
    let p = dir.path().join("smsgw.toml");
    std::fs::write(&p, body).unwrap();
    p
}

pub fn send_stdin(args: &[&str], input: &str) -> Output {
    let mut child = smsgw()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// A loopback HTTP gateway for the command to send to, and a config pointing at it.
pub fn http_sink(
    dir: &tempfile::TempDir,
) -> (
    tokio::runtime::Runtime,
    smsgw_testkit::http::HttpSink,
    PathBuf,
) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let sink = rt.block_on(smsgw_testkit::http::HttpSink::start()).unwrap();
    let cfg = write_config(
        dir,
        &format!(
            "[gateways.h]\nprovider = \"http\"\noptions = {{ URL = \"http://{}/send\", HTTP_METHOD = \"POST\", to = \"{{phone}}\", text = \"{{otp}}\", REGEXP = '/^00/+/' }}\n",
            sink.addr()
        ),
    );
    (rt, sink, cfg)
}
