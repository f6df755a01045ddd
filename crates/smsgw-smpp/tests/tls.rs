//! SMPP over TLS against the test SMSC's TLS mode (self-signed certificate) on loopback:
//! `TLS`, `CHECK_SSL`, and what goes wrong when they do not match the SMSC.
#![cfg(feature = "tls")]

mod common;

use std::time::{Duration, Instant};

use common::{PASSWORD, eventually, gateway, try_gateway};
use smsgw_core::{ErrorKind, Message};
use smsgw_testkit::smsc::Smsc;

fn msg(text: &str) -> Message {
    Message::new("491511234567", text)
}

#[tokio::test]
async fn tls_with_check_ssl_no_binds_and_sends_over_tls() {
    let smsc = Smsc::start_tls().await.unwrap();
    assert!(smsc.is_tls());
    let gw = gateway(&smsc, &[("TLS", "yes"), ("CHECK_SSL", "no")]);
    assert_eq!(smsc.connections(), 0, "the factory must not connect");
    let r1 = gw.send(&msg("code 123456")).await.unwrap();
    let r2 = gw.send(&msg("code 654321")).await.unwrap();
    assert_ne!(r1.message_ids, r2.message_ids);
    // One TLS connection, one bind, both submits on it, decoded by the SMSC behind TLS.
    assert_eq!(smsc.connections(), 1);
    assert_eq!(smsc.failed_handshakes(), 0);
    assert_eq!(smsc.bind_count(), 1);
    let b = &smsc.binds()[0];
    assert_eq!(b.command, "bind_transmitter");
    assert_eq!(b.system_id, "pi-peer");
    assert_eq!(b.password, PASSWORD);
    assert_eq!(b.interface_version, "0x34");
    let texts: Vec<String> = smsc.submits().iter().map(|s| s.text.clone()).collect();
    assert_eq!(texts, ["code 123456", "code 654321"]);
    assert!(
        smsc.submits()
            .iter()
            .all(|s| s.destination_addr == "491511234567" && s.status == Some(0))
    );
    assert_eq!(smsc.recorder().len(), 2);
    // The unbind goes over TLS too.
    gw.shutdown().await;
    assert!(eventually(&smsc, |s| s.count("unbind") == 1).await);
    assert!(eventually(&smsc, |s| s.active_sessions() == 0).await);
}

#[tokio::test]
async fn tls_with_certificate_check_refuses_a_self_signed_smsc() {
    let smsc = Smsc::start_tls().await.unwrap();
    // CHECK_SSL defaults to yes; TIMEOUT is far above the time the failure takes.
    let gw = gateway(&smsc, &[("TLS", "yes"), ("TIMEOUT", "3")]);
    let started = Instant::now();
    let e = gw.send(&msg("code 123456")).await.unwrap_err();
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "did not fail at once: {took:?}"
    );
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    assert!(!e.may_have_been_sent());
    assert_eq!(e.code(), Some("untrusted_certificate"));
    let text = e.to_string();
    assert!(
        text.contains("smsc")
            && text.contains("certificate")
            && text.contains("not trusted")
            && text.contains("CHECK_SSL"),
        "{text}"
    );
    assert!(!text.contains(PASSWORD), "{text}");
    // Nothing reached SMPP: the handshake failed before the bind.
    assert!(eventually(&smsc, |s| s.failed_handshakes() == 1).await);
    assert!(smsc.binds().is_empty());
    assert!(smsc.submits().is_empty());
    assert!(smsc.recorder().is_empty());
}

#[tokio::test]
async fn plain_smpp_against_a_tls_smsc_fails_within_timeout() {
    let smsc = Smsc::start_tls().await.unwrap();
    let gw = gateway(&smsc, &[("TIMEOUT", "0.5")]);
    let started = Instant::now();
    let e = gw.send(&msg("code 123456")).await.unwrap_err();
    let took = started.elapsed();
    assert!(took < Duration::from_millis(1500), "{took:?}");
    // The bind went out, the SMSC answered with a TLS alert: no submit_sm was written, and a
    // retry would meet the same answer.
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    assert_eq!(e.code(), Some("tls_expected"));
    let text = e.to_string();
    assert!(
        text.contains("bind_transmitter") && text.contains("TLS = \"yes\""),
        "{text}"
    );
    assert!(eventually(&smsc, |s| s.failed_handshakes() == 1).await);
    assert!(smsc.binds().is_empty());
    assert!(smsc.submits().is_empty());
}

#[tokio::test]
async fn tls_against_a_plain_smsc_is_not_sent() {
    let smsc = Smsc::start().await.unwrap();
    assert!(!smsc.is_tls() && smsc.certificate_pem().is_none());
    let gw = gateway(
        &smsc,
        &[("TLS", "yes"), ("CHECK_SSL", "no"), ("TIMEOUT", "0.5")],
    );
    let started = Instant::now();
    let e = gw.send(&msg("code 123456")).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_millis(1500));
    assert_eq!(e.kind(), ErrorKind::NotSent, "{e}");
    assert!(e.to_string().contains("TLS handshake"), "{e}");
    assert!(smsc.binds().is_empty());
}

#[test]
fn check_ssl_no_without_tls_is_a_configuration_error() {
    // No runtime: the factory needs none, and opens nothing.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let smsc = rt.block_on(Smsc::start()).unwrap();
    let errs = try_gateway(&smsc, &[("CHECK_SSL", "no")]).unwrap_err();
    let text = errs.to_string();
    assert!(text.contains("CHECK_SSL") && text.contains("TLS"), "{text}");
    let errs = try_gateway(&smsc, &[("TLS", "no"), ("CHECK_SSL", "no")]).unwrap_err();
    assert_eq!(errs.problems().len(), 1, "{errs}");
    assert_eq!(errs.problems()[0].key.as_deref(), Some("CHECK_SSL"));
    // The default (yes) means nothing without TLS and is accepted, as is every value with TLS.
    try_gateway(&smsc, &[("CHECK_SSL", "yes")]).unwrap();
    try_gateway(&smsc, &[("TLS", "yes"), ("CHECK_SSL", "no")]).unwrap();
    try_gateway(&smsc, &[("TLS", "yes"), ("CHECK_SSL", "yes")]).unwrap();
    // Not a yes/no value: the core's check.
    assert!(
        try_gateway(&smsc, &[("TLS", "yes"), ("CHECK_SSL", "maybe")])
            .unwrap_err()
            .to_string()
            .contains("CHECK_SSL")
    );
    assert_eq!(smsc.connections(), 0);
}
