//! Misbehaviour of the test SMSC beyond the per-submit faults: floods after the bind (the SMSC
//! then stops reading), and requests pushed to the bound sessions that a client must answer
//! (unknown command_ids, query_sm).

use std::sync::atomic::Ordering;

use futures::{Sink, SinkExt};

use super::State;
use super::decode::Out;
use super::receipts::{raw_pdu, receipt_text};

/// A flood the test SMSC sends right after the next accepted bind; it then stops reading from
/// that session ([`super::Smsc::flood_after_bind`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flood {
    /// That many enquire_link PDUs.
    EnquireLink(usize),
    /// That many deliver_sm delivery receipts (ids `flood-0`, `flood-1`, …).
    DeliverSm(usize),
}

/// Writes the flood, waiting whenever the client does not read (so the SMSC's own memory stays
/// flat); counts what was written in [`State::flood_written`].
pub(super) async fn flood<S>(sink: &mut S, flood: Flood, st: &State) -> Result<(), S::Error>
where
    S: Sink<Out> + Unpin,
{
    let (count, deliver) = match flood {
        Flood::EnquireLink(n) => (n, false),
        Flood::DeliverSm(n) => (n, true),
    };
    for i in 0..count {
        let seq = 0x4000_0000 + i as u32;
        let pdu = if deliver {
            deliver_sm_raw(&format!("flood-{i}"), seq)
        } else {
            raw_pdu(0x0000_0015, 0, seq, &[])
        };
        sink.feed(Out::Raw(pdu)).await?;
        st.flood_written.fetch_add(1, Ordering::SeqCst);
        if i % 256 == 255 {
            sink.flush().await?;
        }
    }
    sink.flush().await
}

/// A deliver_sm receipt for `id`, octet by octet (fast: a flood builds hundreds of thousands).
fn deliver_sm_raw(id: &str, seq: u32) -> Vec<u8> {
    let text = receipt_text(id, "DELIVRD", "000", "");
    let mut b = Vec::with_capacity(64 + text.len());
    b.push(0); // service_type
    b.extend_from_slice(&[1, 1]);
    b.extend_from_slice(b"491511234567\0");
    b.extend_from_slice(&[5, 0]);
    b.extend_from_slice(b"smsgw\0");
    // esm_class, protocol_id, priority, schedule, validity, registered_delivery, replace,
    // data_coding, sm_default_msg_id
    b.extend_from_slice(&[0x04, 0, 0, 0, 0, 0, 0, 0, 0]);
    b.push(text.len() as u8);
    b.extend_from_slice(text.as_bytes());
    raw_pdu(0x0000_0005, 0, seq, &b)
}

/// A query_sm for `message_id` (SMPP 3.4 §4.8), a request an ESME does not serve.
pub(super) fn query_sm(message_id: &str, seq: u32) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(message_id.as_bytes());
    b.push(0);
    b.extend_from_slice(&[0, 0, 0]); // source_addr_ton, npi, empty source_addr
    raw_pdu(0x0000_0003, 0, seq, &b)
}

/// A request with `command_id` and no body.
pub(super) fn unknown(command_id: u32, seq: u32) -> Vec<u8> {
    raw_pdu(command_id, 0, seq, &[])
}
