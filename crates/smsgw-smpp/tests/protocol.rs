//! The corners of SMPP 3.4 real SMSCs use (issue #17): data_sm, unknown PDUs, query_sm, receipts
//! in TLVs and message_payload, a long bind_resp system_id, a refused middle part, and receipts
//! waited for through a [`ReceiptBook`] (also across a reconnect).

mod common;

use std::time::Duration;

use common::{eventually, gateway};
use smsgw_core::{ErrorKind, Message};
use smsgw_smpp::ReceiptBook;
use smsgw_testkit::Fault;
use smsgw_testkit::smsc::{ReceiptStyle, Smsc};

fn msg(text: &str) -> Message {
    Message::new("491511234567", text)
}

const TRX: &[(&str, &str)] = &[("BIND", "transceiver"), ("REGISTERED_DELIVERY", "yes")];

/// Sends one message with receipts in `style` and returns what the book says about it.
async fn receipt_in_style(style: ReceiptStyle) -> (Smsc, smsgw_smpp::MessageReceipt, String) {
    let smsc = Smsc::start().await.unwrap();
    smsc.set_receipt_style(style);
    smsc.set_receipt_state("UNDELIV", "034");
    let gw = gateway(&smsc, TRX);
    let book = ReceiptBook::from_reports(gw.delivery_reports().unwrap(), Duration::from_secs(60));
    let sent = gw.send(&msg("hello")).await.unwrap();
    let r = book
        .wait(&sent, Duration::from_secs(3))
        .await
        .unwrap_or_else(|| panic!("no receipt in style {style:?}"));
    (smsc, r, sent.message_ids[0].clone())
}

#[tokio::test]
async fn data_sm_is_answered_and_its_receipt_read() {
    let (smsc, r, id) = receipt_in_style(ReceiptStyle::DataSm).await;
    assert_eq!(
        (r.state.as_str(), r.error.as_deref()),
        ("UNDELIV", Some("034"))
    );
    assert_eq!(r.message_id, id);
    assert!(eventually(&smsc, |s| s.count("data_sm_resp") == 1).await);
    let resp = smsc
        .pdus()
        .into_iter()
        .find(|p| p.command == "data_sm_resp")
        .unwrap();
    assert_eq!(resp.status, 0);
    assert_eq!(smsc.count("generic_nack"), 0);
}

#[tokio::test]
async fn receipt_tlvs_win_over_the_text() {
    // The text says `id:not-this stat:ENROUTE err:999`; the TLVs say the truth.
    let (smsc, r, id) = receipt_in_style(ReceiptStyle::Tlvs).await;
    assert_eq!(
        (r.message_id.as_str(), r.state.as_str(), r.error.as_deref()),
        (id.as_str(), "UNDELIV", Some("034"))
    );
    assert!(eventually(&smsc, |s| s.count("deliver_sm_resp") == 1).await);
}

#[tokio::test]
async fn receipt_in_message_payload_is_read() {
    let (_smsc, r, id) = receipt_in_style(ReceiptStyle::MessagePayload).await;
    assert_eq!(
        (r.message_id.as_str(), r.state.as_str(), r.error.as_deref()),
        (id.as_str(), "UNDELIV", Some("034"))
    );
    assert_eq!(r.done_at.as_ref().map(String::len), Some(10));
}

#[tokio::test]
async fn unknown_pdus_and_query_sm_get_generic_nack_and_the_session_stays() {
    let smsc = Smsc::start().await.unwrap();
    let gw = gateway(&smsc, TRX);
    gw.send(&msg("first")).await.unwrap();
    assert_eq!(smsc.push_unknown(0x0000_0099), 1);
    assert_eq!(smsc.push_query_sm("00000001"), 1);
    // replace_sm: a known request an ESME does not serve.
    assert_eq!(smsc.push_unknown(0x0000_0007), 1);
    assert!(eventually(&smsc, |s| s.count("generic_nack") == 3).await);
    for p in smsc.pdus().iter().filter(|p| p.command == "generic_nack") {
        assert_eq!(p.status, 0x03, "ESME_RINVCMDID: {p:?}");
    }
    let seqs: Vec<u32> = smsc
        .pdus()
        .iter()
        .filter(|p| p.command == "generic_nack")
        .map(|p| p.sequence)
        .collect();
    assert_eq!(seqs.len(), 3);
    // The session stays: the next send uses it.
    gw.send(&msg("second")).await.unwrap();
    assert_eq!(smsc.connections(), 1);
    assert_eq!(smsc.bind_count(), 1);
}

#[tokio::test]
async fn over_long_bind_resp_system_id_is_accepted() {
    let smsc = Smsc::start().await.unwrap();
    smsc.set_bind_system_id(Some("SMSC-Operator-Gateway-01"));
    let gw = gateway(&smsc, &[]);
    let r = gw.send(&msg("hi")).await.unwrap();
    assert_eq!(r.message_ids.len(), 1);
    assert_eq!(smsc.bind_count(), 1);
}

#[tokio::test]
async fn refused_middle_part_is_unknown_naming_the_accepted_part() {
    let smsc = Smsc::start().await.unwrap();
    let gw = gateway(&smsc, &[]);
    // Three GSM parts; the second is refused with ESME_RSUBMITFAIL.
    smsc.faults().nth(
        1,
        Fault::Reply {
            code: 0x45,
            text: String::new(),
        },
    );
    let e = gw.send(&msg(&"a".repeat(400))).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unknown, "{e}");
    assert!(e.may_have_been_sent(), "{e}");
    let first = smsc.submits()[0].message_id.clone().unwrap();
    assert!(e.message().contains(&first), "{e}");
    assert!(e.message().contains("ESME_RSUBMITFAIL"), "{e}");
    assert!(e.message().contains("1 of 3 parts"), "{e}");
    // Only two parts reached the SMSC: nothing is sent after the refusal.
    assert_eq!(smsc.submits().len(), 2);

    // A refused first part is still `refused`: nothing reached the phone.
    smsc.faults().nth(
        2,
        Fault::Reply {
            code: 0x45,
            text: String::new(),
        },
    );
    let e = gw.send(&msg(&"b".repeat(400))).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Refused, "{e}");
}

#[tokio::test]
async fn receipt_arriving_on_a_new_session_is_matched() {
    let smsc = Smsc::start().await.unwrap();
    smsc.hold_receipts();
    let gw = gateway(&smsc, TRX);
    let book = ReceiptBook::from_reports(gw.delivery_reports().unwrap(), Duration::from_secs(60));
    let sent = gw.send(&msg(&"long ".repeat(50))).await.unwrap();
    assert_eq!(sent.message_ids.len(), 2);
    // The SMSC drops the session; the receipts come on the next one.
    smsc.drop_sessions();
    assert!(eventually(&smsc, |s| s.active_sessions() == 0).await);
    assert_eq!(book.wait(&sent, Duration::from_millis(200)).await, None);
    gw.send(&msg("reconnect")).await.unwrap();
    assert_eq!(smsc.bind_count(), 2);
    assert!(smsc.release_receipts() >= 2);
    let r = book.wait(&sent, Duration::from_secs(3)).await.unwrap();
    assert!(r.delivered(), "{r:?}");
    assert_eq!(&r.message_id, sent.message_ids.last().unwrap());
}

#[tokio::test]
async fn bulk_waits_once_for_all_outstanding_receipts() {
    let smsc = Smsc::start().await.unwrap();
    smsc.hold_receipts();
    let gw = gateway(&smsc, TRX);
    let book = ReceiptBook::from_reports(gw.delivery_reports().unwrap(), Duration::from_secs(60));
    let mut sent = Vec::new();
    for i in 0..5 {
        sent.push(gw.send(&msg(&format!("m{i}"))).await.unwrap());
    }
    // One message the SMSC never sends a receipt for: not a failure, just none.
    let mut lost = sent[0].clone();
    lost.message_ids = vec!["never-receipted".into()];
    sent.push(lost);
    let releaser = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        smsc.release_receipts()
    };
    let started = std::time::Instant::now();
    let (answers, released) = tokio::join!(book.wait_all(&sent, Duration::from_secs(1)), releaser);
    assert_eq!(released, 5);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "waited for the outstanding one"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        answers[..5]
            .iter()
            .all(|a| a.as_ref().is_some_and(|r| r.delivered()))
    );
    assert_eq!(answers[5], None);
}

#[tokio::test]
async fn undecodable_request_gets_generic_nack_syserr_and_the_session_stays() {
    let smsc = Smsc::start().await.unwrap();
    let gw = gateway(&smsc, TRX);
    gw.send(&msg("first")).await.unwrap();
    // A deliver_sm whose body ends inside service_type: its header is read, its body is not.
    assert_eq!(smsc.push_request(0x0000_0005, b"CMT"), 1);
    assert!(eventually(&smsc, |s| s.count("generic_nack") == 1).await);
    let nack = smsc
        .pdus()
        .into_iter()
        .find(|p| p.command == "generic_nack")
        .unwrap();
    assert_eq!(nack.status, 0x08, "ESME_RSYSERR");
    gw.send(&msg("second")).await.unwrap();
    assert_eq!(smsc.connections(), 1);
}

#[tokio::test]
async fn phone_number_is_used_as_given() {
    let smsc = Smsc::start().await.unwrap();
    let gw = gateway(&smsc, &[]);
    gw.send(&Message::new(" 4915 1123 ", "hi")).await.unwrap();
    assert_eq!(smsc.submits()[0].destination_addr, " 4915 1123 ");
}
