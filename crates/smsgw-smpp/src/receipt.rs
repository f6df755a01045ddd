//! Delivery receipts out of `deliver_sm` and `data_sm`: from the TLVs (`receipted_message_id`,
//! `message_state`, `network_error_code`) when present, else from the text in
//! `message_payload`, else from `short_message` (SMPP 3.4 §2.11, §5.3.2, appendix B).

use rusmpp::tlvs::{Tlv, TlvValue};
use rusmpp::values::MessageState;
use rusmpp::{Command, Pdu};
use smsgw_core::DeliveryReport;

use crate::dlr::parse_receipt_text;

/// esm_class bits 2–5: the message type; 0x04 is an SMSC delivery receipt, 0x20 an
/// intermediate delivery notification.
const MESSAGE_TYPE_MASK: u8 = 0x3C;
const SMSC_DELIVERY_RECEIPT: u8 = 0x04;
const INTERMEDIATE_NOTIFICATION: u8 = 0x20;

/// The receipt state names of SMPP 3.4 appendix B for a `message_state` TLV.
pub(crate) fn state_name(state: MessageState) -> String {
    match state {
        MessageState::Scheduled => "SCHEDULED".into(),
        MessageState::Enroute => "ENROUTE".into(),
        MessageState::Delivered => "DELIVRD".into(),
        MessageState::Expired => "EXPIRED".into(),
        MessageState::Deleted => "DELETED".into(),
        MessageState::Undeliverable => "UNDELIV".into(),
        MessageState::Accepted => "ACCEPTD".into(),
        MessageState::Unknown => "UNKNOWN".into(),
        MessageState::Rejected => "REJECTD".into(),
        MessageState::Skipped => "SKIPPED".into(),
        MessageState::Other(n) => format!("STATE_{n}"),
    }
}

/// The delivery report a deliver_sm or data_sm carries, or `None` when it is not a receipt.
pub(crate) fn from_command(gateway: &str, cmd: &Command) -> Option<DeliveryReport> {
    let (esm_class, tlvs, short_message, source): (u8, &[Tlv], &[u8], String) = match cmd.pdu()? {
        Pdu::DeliverSm(d) => (
            u8::from(d.esm_class),
            d.tlvs(),
            d.short_message().as_ref(),
            d.source_addr.to_string(),
        ),
        Pdu::DataSm(d) => (
            u8::from(d.esm_class),
            d.tlvs(),
            &[],
            d.source_addr.to_string(),
        ),
        _ => return None,
    };
    let mut id = None;
    let mut state = None;
    let mut error = None;
    let mut payload: Option<&[u8]> = None;
    for tlv in tlvs {
        match tlv.value() {
            Some(TlvValue::ReceiptedMessageId(v)) => id = Some(v.to_string()),
            Some(TlvValue::MessageState(s)) => state = Some(state_name(*s)),
            Some(TlvValue::NetworkErrorCode(e)) => error = Some(format!("{:03}", e.error_code)),
            Some(TlvValue::MessagePayload(p)) => payload = Some(p.value.as_ref()),
            _ => {}
        }
    }
    let kind = esm_class & MESSAGE_TYPE_MASK;
    let flagged = kind == SMSC_DELIVERY_RECEIPT || kind == INTERMEDIATE_NOTIFICATION;
    let text_bytes = payload.filter(|p| !p.is_empty()).unwrap_or(short_message);
    let text = String::from_utf8_lossy(text_bytes);
    let parsed = parse_receipt_text(&text);
    // A text that merely mentions `id:`, in a message neither flagged as a receipt nor carrying
    // receipt TLVs nor a `stat:`, is a mobile-originated message, not a receipt.
    if id.is_none() && state.is_none() {
        match &parsed {
            None => return None,
            Some(p) if !flagged && p.stat.is_none() => return None,
            Some(_) => {}
        }
    }
    let parsed = parsed.unwrap_or_default();
    Some(DeliveryReport {
        gateway: gateway.to_owned(),
        message_id: id.or(parsed.id).unwrap_or_default(),
        state: state.or(parsed.stat).unwrap_or_else(|| "UNKNOWN".into()),
        error: error.or(parsed.err),
        done_date: parsed.done_date,
        recipient: Some(source).filter(|s| !s.is_empty()),
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use crate::connection::{Frame, decode_frame};

    proptest! {
        /// Whatever an SMSC sends as a PDU body (after the length), reading it and looking for a
        /// receipt in it never panics.
        #[test]
        fn any_pdu_body_is_read_without_panic(
            id in prop::sample::select(vec![0x0000_0005u32, 0x0000_0103, 0x8000_0004, 0x8000_0009, 0x0000_0099]),
            body in prop::collection::vec(any::<u8>(), 8..400),
        ) {
            let mut pdu = id.to_be_bytes().to_vec();
            pdu.extend_from_slice(&body);
            match decode_frame(&pdu) {
                Frame::Whole(c) => {
                    let _ = super::from_command("g", &c);
                }
                Frame::Header(c, _) => prop_assert_eq!(u32::from(c.id()), id),
            }
        }
    }
}
