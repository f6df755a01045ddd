//! The delivery receipts the test SMSC sends, in the shapes real SMSCs use: the text in
//! `short_message` (SMPP 3.4 appendix B), the text in a `message_payload` TLV with an empty
//! `short_message`, the receipt TLVs (`receipted_message_id`, `message_state`,
//! `network_error_code`) next to a misleading text, or a `data_sm` with TLVs only.

use std::str::FromStr;

use rusmpp::pdus::DeliverSm;
use rusmpp::tlvs::MessageDeliveryRequestTlvValue as Tv;
use rusmpp::types::{AnyOctetString, COctetString, EmptyOrFullCOctetString, OctetString};
use rusmpp::values::{
    DataCoding, ErrorCodeNetworkType, EsmClass, MessagePayload, MessageState, NetworkErrorCode,
    Npi, PriorityFlag, RegisteredDelivery, ReplaceIfPresentFlag, ServiceType, Ton,
};

use super::decode::{Out, SubmitRecord};
use super::session::cmd;

/// How the test SMSC sends delivery receipts ([`super::Smsc::set_receipt_style`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReceiptStyle {
    /// deliver_sm, esm_class 0x04, the receipt text in `short_message` (the default).
    #[default]
    ShortMessage,
    /// deliver_sm, esm_class 0x04, empty `short_message`, the text in `message_payload`.
    MessagePayload,
    /// deliver_sm with the receipt TLVs, and a `short_message` text that contradicts them
    /// (`id:not-this stat:ENROUTE`): a client that reads the text instead of the TLVs is wrong.
    Tlvs,
    /// data_sm (SMPP 3.4 §4.7), esm_class 0x04, with the receipt TLVs and the text in
    /// `message_payload`.
    DataSm,
}

/// TLV tags (SMPP 3.4 §5.3.2).
const TAG_RECEIPTED_MESSAGE_ID: u16 = 0x001E;
const TAG_MESSAGE_STATE: u16 = 0x0427;
const TAG_NETWORK_ERROR_CODE: u16 = 0x0423;
const TAG_MESSAGE_PAYLOAD: u16 = 0x0424;

/// `YYMMDDhhmm` in UTC.
fn smpp_date() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{:02}{:02}{:02}{:02}{:02}",
        y % 100,
        m,
        d,
        rem / 3600,
        (rem % 3600) / 60
    )
}

fn state_of(stat: &str) -> MessageState {
    match stat {
        "DELIVRD" => MessageState::Delivered,
        "EXPIRED" => MessageState::Expired,
        "DELETED" => MessageState::Deleted,
        "UNDELIV" => MessageState::Undeliverable,
        "ACCEPTD" => MessageState::Accepted,
        "REJECTD" => MessageState::Rejected,
        "ENROUTE" => MessageState::Enroute,
        _ => MessageState::Unknown,
    }
}

/// The receipt text of SMPP 3.4 appendix B.
pub(super) fn receipt_text(id: &str, stat: &str, err: &str, text: &str) -> String {
    let date = smpp_date();
    let text: String = text.chars().take(20).collect();
    format!(
        "id:{id} sub:001 dlvrd:{} submit date:{date} done date:{date} stat:{stat} err:{err} text:{text}",
        if stat == "DELIVRD" { "001" } else { "000" },
    )
}

/// The receipt PDU for an accepted submit, as request `seq`.
pub(super) fn receipt(
    style: ReceiptStyle,
    rec: &SubmitRecord,
    id: &str,
    state: &(String, String),
    seq: u32,
) -> Option<Out> {
    let body = receipt_text(id, &state.0, &state.1, &rec.text);
    if style == ReceiptStyle::DataSm {
        return Some(data_sm_receipt(rec, id, state, &body, seq));
    }
    let mut body = body.into_bytes();
    body.truncate(254);
    let mut b = DeliverSm::builder()
        .service_type(ServiceType::default())
        .source_addr_ton(Ton::from(rec.dest_addr_ton))
        .source_addr_npi(Npi::from(rec.dest_addr_npi))
        .source_addr(COctetString::from_str(&rec.destination_addr).ok()?)
        .dest_addr_ton(Ton::from(rec.source_addr_ton))
        .dest_addr_npi(Npi::from(rec.source_addr_npi))
        .destination_addr(COctetString::from_str(&rec.source_addr).ok()?)
        .esm_class(EsmClass::from(0x04u8))
        .protocol_id(0)
        .priority_flag(PriorityFlag::from(0u8))
        .schedule_delivery_time(EmptyOrFullCOctetString::empty())
        .validity_period(EmptyOrFullCOctetString::empty())
        .registered_delivery(RegisteredDelivery::from(0u8))
        .replace_if_present_flag(ReplaceIfPresentFlag::from(0u8))
        .data_coding(DataCoding::from(0u8))
        .sm_default_msg_id(0);
    b = match style {
        ReceiptStyle::ShortMessage | ReceiptStyle::DataSm => {
            b.short_message(OctetString::from_vec(body).ok()?)
        }
        ReceiptStyle::MessagePayload => {
            b.short_message(OctetString::empty())
                .push_tlv(Tv::MessagePayload(MessagePayload::new(
                    AnyOctetString::from_slice(&body),
                )))
        }
        ReceiptStyle::Tlvs => b
            .short_message(OctetString::from_str("id:not-this sub:001 stat:ENROUTE err:999").ok()?)
            .push_tlv(Tv::ReceiptedMessageId(COctetString::from_str(id).ok()?))
            .push_tlv(Tv::MessageState(state_of(&state.0)))
            .push_tlv(Tv::NetworkErrorCode(NetworkErrorCode::new(
                ErrorCodeNetworkType::Gsm,
                state.1.parse().unwrap_or(0),
            ))),
    };
    Some(cmd(0, seq, b.build()))
}

fn tlv(out: &mut Vec<u8>, tag: u16, value: &[u8]) {
    out.extend_from_slice(&tag.to_be_bytes());
    out.extend_from_slice(&(value.len() as u16).to_be_bytes());
    out.extend_from_slice(value);
}

fn cstr(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
    out.push(0);
}

/// A whole PDU from its parts.
pub(super) fn raw_pdu(id: u32, status: u32, seq: u32, body: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(16 + body.len());
    b.extend_from_slice(&(16 + body.len() as u32).to_be_bytes());
    b.extend_from_slice(&id.to_be_bytes());
    b.extend_from_slice(&status.to_be_bytes());
    b.extend_from_slice(&seq.to_be_bytes());
    b.extend_from_slice(body);
    b
}

/// A data_sm receipt, written octet by octet: `rusmpp` builds data_sm only with submission
/// TLVs, and a receipt needs `receipted_message_id` and `message_state`.
fn data_sm_receipt(
    rec: &SubmitRecord,
    id: &str,
    state: &(String, String),
    text: &str,
    seq: u32,
) -> Out {
    let mut b = Vec::new();
    cstr(&mut b, ""); // service_type
    b.extend_from_slice(&[rec.dest_addr_ton, rec.dest_addr_npi]);
    cstr(&mut b, &rec.destination_addr);
    b.extend_from_slice(&[rec.source_addr_ton, rec.source_addr_npi]);
    cstr(&mut b, &rec.source_addr);
    b.extend_from_slice(&[0x04, 0x00, 0x00]); // esm_class, registered_delivery, data_coding
    let mut idz = id.as_bytes().to_vec();
    idz.push(0);
    tlv(&mut b, TAG_RECEIPTED_MESSAGE_ID, &idz);
    tlv(&mut b, TAG_MESSAGE_STATE, &[state_of(&state.0).into()]);
    let code: u16 = state.1.parse().unwrap_or(0);
    let [hi, lo] = code.to_be_bytes();
    tlv(&mut b, TAG_NETWORK_ERROR_CODE, &[3, hi, lo]);
    tlv(&mut b, TAG_MESSAGE_PAYLOAD, text.as_bytes());
    Out::Raw(raw_pdu(0x0000_0103, 0, seq, &b))
}
