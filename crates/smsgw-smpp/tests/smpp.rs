//! The smpp provider against the test SMSC on loopback.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{PASSWORD, eventually, gateway, try_gateway};
use smsgw_core::{ErrorKind, Message, Registry};
use smsgw_testkit::Fault;
use smsgw_testkit::smsc::Smsc;

fn msg(text: &str) -> Message {
    Message::new("491511234567", text)
}

#[test]
fn registered_by_name_and_alias() {
    let r = Registry::global();
    assert_eq!(r.get("smpp").unwrap().name, "smpp");
    assert_eq!(
        r.get("privacyidea.lib.smsprovider.SmppSMSProvider.SmppSMSProvider")
            .unwrap()
            .name,
        "smpp"
    );
}

#[test]
fn factory_reports_every_problem_and_opens_nothing() {
    // No runtime here: the factory must not need one.
    let opts: Vec<(String, String)> = [
        ("SMSC_HOST", "smsc example"),
        ("SMSC_PORT", "2775"),
        ("SYSTEM_ID", "a-system-id-that-is-too-long"),
        ("PASSWORD", "much-too-long-password"),
        ("S_ADDR", "a sender that is longer than twenty"),
        ("SYSTEM_TYPE", "sys-type-too-long"),
    ]
    .iter()
    .map(|(k, v)| ((*k).into(), (*v).into()))
    .collect();
    let errs = common::build("smpp", &opts).unwrap_err();
    let keys: Vec<_> = errs
        .problems()
        .iter()
        .filter_map(|p| p.key.clone())
        .collect();
    for k in [
        "SMSC_HOST",
        "SYSTEM_ID",
        "PASSWORD",
        "S_ADDR",
        "SYSTEM_TYPE",
    ] {
        assert!(keys.contains(&k.to_owned()), "{k} missing in {errs}");
    }
    assert!(!errs.to_string().contains("much-too-long-password"));
    let opts: Vec<(String, String)> = [
        ("SMSC_HOST", "h"),
        ("SMSC_PORT", "2775"),
        ("BIND", "receiver"),
    ]
    .iter()
    .map(|(k, v)| ((*k).into(), (*v).into()))
    .collect();
    assert!(
        common::build("smpp", &opts)
            .unwrap_err()
            .to_string()
            .contains("BIND")
    );
}

#[tokio::test]
async fn binds_once_with_the_right_fields_and_shares_the_session() {
    let smsc = Smsc::start().await.unwrap();
    let gw = gateway(&smsc, &[("SYSTEM_TYPE", "OTP")]);
    assert_eq!(smsc.connections(), 0, "the factory must not connect");
    for i in 0..3 {
        gw.send(&msg(&format!("code {i}"))).await.unwrap();
    }
    assert_eq!(smsc.connections(), 1);
    assert_eq!(smsc.bind_count(), 1);
    let b = &smsc.binds()[0];
    assert_eq!(b.command, "bind_transmitter");
    assert_eq!(b.system_id, "pi-peer");
    assert_eq!(b.password, PASSWORD);
    assert_eq!(b.system_type, "OTP");
    assert_eq!(b.interface_version, "0x34");
    assert_eq!(
        (b.addr_ton, b.addr_npi, b.address_range.as_str()),
        (0, 0, "")
    );
    // Sequence numbers are distinct and increasing on the session.
    let seqs: Vec<u32> = smsc.submits().iter().map(|s| s.sequence).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert!(!seqs.contains(&b.sequence) || seqs[0] >= b.sequence);
    gw.shutdown().await;
    assert!(eventually(&smsc, |s| s.count("unbind") == 1).await);
    assert!(eventually(&smsc, |s| s.active_sessions() == 0).await);
}

#[tokio::test]
async fn single_gsm_message_bytes() {
    let smsc = Smsc::start().await.unwrap();
    let gw = gateway(&smsc, &[]);
    let r = gw.send(&msg("Your code: 123456")).await.unwrap();
    assert_eq!(r.parts, 1);
    assert_eq!(r.provider, "smpp");
    let s = &smsc.submits()[0];
    assert_eq!(r.message_ids, vec![s.message_id.clone().unwrap()]);
    assert_eq!(
        (s.source_addr_ton, s.source_addr_npi, s.source_addr.as_str()),
        (5, 0, "privacyIDEA")
    );
    assert_eq!(
        (
            s.dest_addr_ton,
            s.dest_addr_npi,
            s.destination_addr.as_str()
        ),
        (1, 1, "491511234567")
    );
    assert_eq!(s.esm_class, 0, "EsmClass::default() would put 0x08 here");
    assert_eq!(
        (s.data_coding, s.registered_delivery, s.protocol_id),
        (0, 0, 0)
    );
    assert_eq!(s.short_message_hex, "596f757220636f64653a20313233343536");
    let got = smsc.recorder().all();
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].recipient.as_str(), got[0].text.as_str()),
        ("491511234567", "Your code: 123456")
    );
}

#[tokio::test]
async fn long_gsm_is_split_in_153_character_parts() {
    let smsc = Smsc::start().await.unwrap();
    let gw = gateway(&smsc, &[]);
    let text: String = (0..400)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let r = gw.send(&msg(&text)).await.unwrap();
    assert_eq!(r.parts, 3);
    assert_eq!(r.message_ids.len(), 3);
    let subs = smsc.submits();
    assert_eq!(subs.len(), 3);
    let refs: Vec<_> = subs
        .iter()
        .map(|s| s.udh.as_ref().unwrap().concat().unwrap())
        .collect();
    for (i, s) in subs.iter().enumerate() {
        assert_eq!(s.esm_class, 0x40);
        assert_eq!(s.data_coding, 0);
        assert_eq!(refs[i].0, refs[0].0, "one reference per message");
        assert_eq!((refs[i].1, refs[i].2), (3, i as u8 + 1));
    }
    assert_eq!(subs[0].sm_length, 6 + 153);
    assert_eq!(subs[1].sm_length, 6 + 153);
    assert_eq!(subs[2].sm_length as usize, 6 + 400 - 306);
    let got = smsc.recorder().wait_for(1, Duration::from_secs(1)).await;
    assert_eq!(got[0].text, text);
    // The next long message gets another reference.
    gw.send(&msg(&text)).await.unwrap();
    let next = smsc.submits()[3].udh.as_ref().unwrap().concat().unwrap();
    assert_ne!(next.0, refs[0].0);
}

#[tokio::test]
async fn gsm_extension_characters_and_escape_pairs_are_not_split() {
    let smsc = Smsc::start().await.unwrap();
    let gw = gateway(&smsc, &[]);
    let text = "€ [ ] { } ~ ^ \\ | @£$¥ äöüß";
    gw.send(&msg(text)).await.unwrap();
    let s = &smsc.submits()[0];
    assert_eq!(s.data_coding, 0);
    assert_eq!(s.text, text);
    assert!(
        s.short_message_hex.starts_with("1b6520"),
        "{}",
        s.short_message_hex
    );
    // 152 characters, then '€': the escape pair goes to part two whole.
    let long = format!("{}€{}", "x".repeat(152), "y".repeat(20));
    gw.send(&msg(&long)).await.unwrap();
    let subs = smsc.submits();
    assert_eq!(subs[1].sm_length, 6 + 152);
    assert!(subs[2].short_message_hex[12..].starts_with("1b65"));
    let got = smsc.recorder().wait_for(2, Duration::from_secs(1)).await;
    assert_eq!(got[1].text, long);
}

#[tokio::test]
async fn ucs2_and_emoji() {
    let smsc = Smsc::start().await.unwrap();
    let gw = gateway(&smsc, &[]);
    gw.send(&msg("Код 🔐 ok")).await.unwrap();
    let s = &smsc.submits()[0];
    assert_eq!((s.data_coding, s.esm_class), (8, 0));
    assert_eq!(s.text, "Код 🔐 ok");
    assert!(s.short_message_hex.contains("d83ddd10"));
    // 66 units then an emoji: the surrogate pair is never split.
    let long = format!("{}🔐{}", "ж".repeat(66), "🔑".repeat(40));
    let r = gw.send(&msg(&long)).await.unwrap();
    assert_eq!(r.parts, 3);
    let subs = smsc.submits();
    assert_eq!(subs[1].sm_length, 6 + 132);
    assert!(subs[2].short_message_hex[12..].starts_with("d83ddd10"));
    for s in &subs[1..] {
        assert!(
            !s.text.contains('\u{fffd}'),
            "a part has a split surrogate: {}",
            s.text
        );
    }
    let got = smsc.recorder().wait_for(2, Duration::from_secs(1)).await;
    assert_eq!(got[1].text, long);
}

#[tokio::test]
async fn refused_bind_names_status_and_gateway() {
    let smsc = Smsc::start().await.unwrap();
    smsc.refuse_binds(Some(0x0E));
    let gw = gateway(&smsc, &[]);
    let e = gw.send(&msg("x")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    assert_eq!(e.code(), Some("ESME_RINVPASWD"));
    let text = e.to_string();
    assert!(
        text.contains("smsc")
            && text.contains("ESME_RINVPASWD")
            && text.contains("bind_transmitter"),
        "{text}"
    );
    assert!(!text.contains(PASSWORD));

    let smsc = Smsc::start().await.unwrap();
    smsc.refuse_binds(Some(0x0D));
    let gw = gateway(&smsc, &[]);
    let e = gw.send(&msg("x")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotSent);
    assert_eq!(e.code(), Some("ESME_RBINDFAIL"));
    assert!(smsc.submits().is_empty());
    // After the back-off, a bind is tried again and succeeds.
    smsc.refuse_binds(None);
    tokio::time::sleep(Duration::from_millis(300)).await;
    gw.send(&msg("x")).await.unwrap();
    assert_eq!(smsc.bind_count(), 1);
}

#[tokio::test]
async fn refused_submit_is_refused_with_the_status_name() {
    let smsc = Smsc::start().await.unwrap();
    let gw = gateway(&smsc, &[]);
    smsc.faults().next(
        1,
        Fault::Reply {
            code: 0x0B,
            text: String::new(),
        },
    );
    let e = gw.send(&msg("x")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Refused);
    assert_eq!(e.code(), Some("ESME_RINVDSTADR"));
    assert!(e.to_string().contains("ESME_RINVDSTADR"));
    // The session survives a refused submit.
    gw.send(&msg("y")).await.unwrap();
    assert_eq!(smsc.connections(), 1);
    assert_eq!(smsc.recorder().len(), 1);
}

#[tokio::test]
async fn throttling_is_retried_then_not_sent() {
    let smsc = Smsc::start().await.unwrap();
    let gw = gateway(&smsc, &[("TIMEOUT", "0.5")]);
    smsc.faults().next(
        2,
        Fault::Reply {
            code: 0x58,
            text: String::new(),
        },
    );
    let r = gw.send(&msg("throttled twice")).await.unwrap();
    assert_eq!(r.parts, 1);
    let subs = smsc.submits();
    assert_eq!(subs.len(), 3);
    assert_eq!(
        subs.iter().map(|s| s.status).collect::<Vec<_>>(),
        vec![Some(0x58), Some(0x58), Some(0)]
    );
    assert_eq!(
        subs[0].short_message_hex, subs[2].short_message_hex,
        "the same part again"
    );
    assert_eq!(smsc.recorder().len(), 1);

    smsc.faults().always(Fault::Reply {
        code: 0x14,
        text: String::new(),
    });
    let e = gw.send(&msg("queue full")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotSent, "{e}");
    assert!(e.is_retry_safe());
    assert_eq!(e.code(), Some("ESME_RMSGQFUL"));
    assert_eq!(
        smsc.submits().len(),
        3 + 1 + smsgw_smpp::MAX_THROTTLE_RETRIES as usize
    );
}

#[tokio::test]
async fn smsc_drops_the_session_between_sends() {
    let smsc = Smsc::start().await.unwrap();
    let gw = gateway(&smsc, &[]);
    gw.send(&msg("one")).await.unwrap();
    smsc.drop_sessions();
    assert!(eventually(&smsc, |s| s.active_sessions() == 0).await);
    tokio::time::sleep(Duration::from_millis(50)).await;
    gw.send(&msg("two")).await.unwrap();
    assert_eq!(smsc.connections(), 2);
    assert_eq!(smsc.bind_count(), 2);
    let texts: Vec<_> = smsc.recorder().all().into_iter().map(|r| r.text).collect();
    assert_eq!(texts, vec!["one", "two"]);
}

#[tokio::test]
async fn smsc_drops_the_session_during_a_send() {
    let smsc = Smsc::start().await.unwrap();
    let gw = gateway(&smsc, &[]);
    smsc.faults().next(1, Fault::Close);
    let started = Instant::now();
    let e = gw.send(&msg("in flight")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unknown, "{e}");
    assert!(e.may_have_been_sent());
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "noticed at once, not by timeout"
    );
    // The next send opens a new session.
    gw.send(&msg("after")).await.unwrap();
    assert_eq!(smsc.connections(), 2);
}

#[tokio::test]
async fn smsc_that_never_answers() {
    let smsc = Smsc::start().await.unwrap();
    let gw = gateway(&smsc, &[("TIMEOUT", "0.5")]);
    smsc.faults().always(Fault::NeverAnswer);
    let started = Instant::now();
    let e = gw.send(&msg("hello?")).await.unwrap_err();
    let took = started.elapsed();
    assert_eq!(e.kind(), ErrorKind::Unknown, "{e}");
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_millis(1500),
        "{took:?}"
    );
    assert!(e.to_string().contains("submit_sm_resp"));
}

#[tokio::test]
async fn unreachable_smsc_is_not_sent() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let opts: Vec<(String, String)> = [
        ("SMSC_HOST", "127.0.0.1".to_owned()),
        ("SMSC_PORT", port.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.into(), v))
    .collect();
    let gw = common::build("smpp", &opts).unwrap();
    let e = gw.send(&msg("x")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotSent, "{e}");
    // While backing off, a send fails fast instead of hammering the SMSC.
    let e = gw.send(&msg("x")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotSent, "{e}");
}

#[tokio::test]
async fn concurrent_sends_share_one_session_within_the_window() {
    let smsc = Smsc::start().await.unwrap();
    smsc.faults()
        .always(Fault::Delay(Duration::from_millis(20)));
    let gw = Arc::new(gateway(&smsc, &[("WINDOW", "4")]));
    let mut tasks = Vec::new();
    for i in 0..60 {
        let gw = gw.clone();
        tasks.push(tokio::spawn(async move {
            gw.send(&Message::new(format!("49151{i:07}"), format!("code {i}")))
                .await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(smsc.connections(), 1);
    assert_eq!(smsc.bind_count(), 1);
    assert_eq!(smsc.max_in_flight(), 4, "WINDOW = 4 is used and respected");
    let mut got: Vec<String> = smsc
        .recorder()
        .wait_for(60, Duration::from_secs(2))
        .await
        .into_iter()
        .map(|r| r.recipient)
        .collect();
    got.sort();
    got.dedup();
    assert_eq!(got.len(), 60, "each received exactly once");
}

#[tokio::test]
async fn throughput_is_honoured() {
    let smsc = Smsc::start().await.unwrap();
    let gw = Arc::new(gateway(&smsc, &[("THROUGHPUT", "20")]));
    let started = Instant::now();
    let tasks: Vec<_> = (0..6)
        .map(|i| {
            let gw = gw.clone();
            tokio::spawn(async move { gw.send(&msg(&format!("t{i}"))).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    // 6 submits at 20 a second: the last one no earlier than 5 × 50 ms after the first.
    assert!(
        started.elapsed() >= Duration::from_millis(240),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn enquire_link_keeps_the_session_alive() {
    let smsc = Smsc::start().await.unwrap();
    let gw = gateway(&smsc, &[("ENQUIRE_LINK", "0.1")]);
    gw.send(&msg("x")).await.unwrap();
    assert!(eventually(&smsc, |s| s.count("enquire_link") >= 3).await);
    gw.send(&msg("y")).await.unwrap();
    assert_eq!(smsc.connections(), 1);
}

#[tokio::test]
async fn delivery_receipts_on_transceiver_binds() {
    let smsc = Smsc::start().await.unwrap();
    let gw = gateway(
        &smsc,
        &[("BIND", "transceiver"), ("REGISTERED_DELIVERY", "yes")],
    );
    let mut reports = gw.delivery_reports().expect("transceiver gives reports");
    let text: String = "a".repeat(200);
    let r = gw.send(&msg(&text)).await.unwrap();
    assert_eq!(smsc.binds()[0].command, "bind_transceiver");
    assert!(smsc.submits().iter().all(|s| s.registered_delivery == 1));
    let mut seen = Vec::new();
    for _ in 0..r.parts {
        let rep = tokio::time::timeout(Duration::from_secs(2), reports.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(rep.gateway, "smsc");
        assert_eq!(rep.state, "DELIVRD");
        assert_eq!(rep.error.as_deref(), Some("000"));
        assert_eq!(rep.done_date.as_ref().map(String::len), Some(10));
        assert_eq!(rep.recipient.as_deref(), Some("491511234567"));
        seen.push(rep.message_id);
    }
    seen.sort();
    let mut ids = r.message_ids.clone();
    ids.sort();
    assert_eq!(seen, ids, "one receipt per part, by message id");
    assert!(eventually(&smsc, |s| s.count("deliver_sm_resp") == 2).await);

    smsc.set_receipt_state("UNDELIV", "034");
    let r = gw.send(&msg("x")).await.unwrap();
    let rep = tokio::time::timeout(Duration::from_secs(2), reports.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            rep.message_id.as_str(),
            rep.state.as_str(),
            rep.error.as_deref()
        ),
        (r.message_ids[0].as_str(), "UNDELIV", Some("034"))
    );
    // A transmitter gateway has none.
    assert!(gateway(&smsc, &[]).delivery_reports().is_none());
}

#[tokio::test]
async fn secrets_stay_out_of_debug_errors_and_logs() {
    let logs = smsgw_testkit::logs::LogCapture::new();
    let _guard = logs.set_default();

    let smsc = Smsc::start().await.unwrap();
    let gw = gateway(
        &smsc,
        &[("BIND", "transceiver"), ("REGISTERED_DELIVERY", "yes")],
    );
    gw.send(&msg("hello")).await.unwrap();
    smsc.faults().next(
        1,
        Fault::Reply {
            code: 0x45,
            text: String::new(),
        },
    );
    let e1 = gw.send(&msg("x")).await.unwrap_err();
    gw.shutdown().await;
    let bad = Smsc::start().await.unwrap();
    bad.refuse_binds(Some(0x0E));
    let gw2 = gateway(&bad, &[]);
    let e2 = gw2.send(&msg("x")).await.unwrap_err();

    assert_eq!(
        smsc.binds()[0].password,
        PASSWORD,
        "the password did go to the SMSC"
    );
    let logs = logs.text();
    assert!(logs.contains("SMPP session bound"), "logs were captured");
    for shown in [
        format!("{gw:?}"),
        format!("{gw2:?}"),
        format!("{e1:?} {e1}"),
        format!("{e2:?} {e2}"),
        logs,
    ] {
        assert!(!shown.contains(PASSWORD), "password leaked: {shown}");
    }
}

#[tokio::test]
async fn phone_too_long_for_smpp_is_a_config_error() {
    let smsc = Smsc::start().await.unwrap();
    let gw = gateway(&smsc, &[]);
    let e = gw
        .send(&Message::new("+49 151 1234567 8901234", "x"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert_eq!(smsc.connections(), 0);
    assert!(try_gateway(&smsc, &[("WINDOW", "0")]).is_err());
}
