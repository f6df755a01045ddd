//! One SMPP session of the test SMSC: binds, submits, receipts and the misbehaviour asked for.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use rusmpp::pdus::{BindReceiverResp, BindTransceiverResp, BindTransmitterResp, SubmitSmResp};
use rusmpp::tokio_codec::CommandCodec;
use rusmpp::types::COctetString;
use rusmpp::{Command, CommandId, CommandStatus, Pdu};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{broadcast, mpsc};
use tokio_util::codec::Framed;

use super::decode::{
    Out, PduRecord, RawCodec, SubmitRecord, Udh, command_name, decode_text, hex, parse_bind,
    parse_submit,
};
use super::receipts::{self, raw_pdu};
use super::{BindKind, Partial, State, hostile};
use crate::{Fault, Received};

/// ESME_RINVBNDSTS: a submit_sm before a (transmitting) bind.
const ESME_RINVBNDSTS: u32 = 0x04;

/// A header-only response (SMPP 3.4 sends no body with an error status).
fn header_only(id: u32, status: u32, seq: u32) -> Out {
    let mut b = Vec::with_capacity(16);
    b.extend_from_slice(&16u32.to_be_bytes());
    b.extend_from_slice(&id.to_be_bytes());
    b.extend_from_slice(&status.to_be_bytes());
    b.extend_from_slice(&seq.to_be_bytes());
    Out::Raw(b)
}

pub(super) fn cmd(status: u32, seq: u32, pdu: impl Into<Pdu>) -> Out {
    Out::Cmd(Box::new(Command::new(
        CommandStatus::from(status),
        seq,
        pdu,
    )))
}

/// Adds to a log unless the recorder says enough are kept.
fn keep<T>(recorder: &crate::Recorder, log: &Mutex<Vec<T>>, item: T) {
    let mut list = log.lock().unwrap();
    if recorder.keeps(list.len()) {
        list.push(item);
    }
}

impl State {
    fn pdu(&self, rec: PduRecord) {
        keep(&self.recorder, &self.pdus, rec);
    }

    fn submit(&self, rec: SubmitRecord) {
        keep(&self.recorder, &self.submits, rec);
    }

    fn answered(&self) {
        let _ = self
            .in_flight
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| {
                Some(v.saturating_sub(1))
            });
    }

    /// A part was accepted: record the whole message once all its parts are in.
    fn accepted(&self, rec: SubmitRecord, payload: Vec<u8>) {
        let concat = rec.udh.as_ref().and_then(Udh::concat);
        match concat {
            Some((reference, total, seq)) if total > 1 => {
                let key = (
                    rec.source_addr.clone(),
                    rec.destination_addr.clone(),
                    reference,
                    total,
                );
                let done = {
                    let mut partials = self.partials.lock().unwrap();
                    let p = partials.entry(key.clone()).or_insert_with(|| Partial {
                        total,
                        data_coding: rec.data_coding,
                        parts: HashMap::new(),
                    });
                    p.parts.insert(seq, (payload, rec.clone()));
                    if p.parts.len() >= p.total as usize {
                        partials.remove(&key)
                    } else {
                        None
                    }
                };
                if let Some(p) = done {
                    let mut seqs: Vec<u8> = p.parts.keys().copied().collect();
                    seqs.sort_unstable();
                    let mut bytes = Vec::new();
                    let mut records = Vec::new();
                    for s in seqs {
                        let (b, r) = &p.parts[&s];
                        bytes.extend_from_slice(b);
                        records.push(r.clone());
                    }
                    let (text, _) = decode_text(p.data_coding, &bytes);
                    self.recorder.record(Received {
                        protocol: "smpp".into(),
                        recipient: rec.destination_addr.clone(),
                        text,
                        detail: serde_json::json!({ "parts": records }),
                    });
                }
            }
            _ => {
                self.recorder.record(Received {
                    protocol: "smpp".into(),
                    recipient: rec.destination_addr.clone(),
                    text: rec.text.clone(),
                    detail: serde_json::json!({ "parts": [rec] }),
                });
            }
        }
    }
}

/// One SMPP session.
pub(super) async fn serve<S>(
    stream: S,
    conn: usize,
    st: Arc<State>,
    mut kill: broadcast::Receiver<()>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    st.active.fetch_add(1, Ordering::SeqCst);
    let framed = Framed::new(stream, RawCodec(CommandCodec::new()));
    let (mut sink, mut source) = framed.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Out>();
    let st_w = st.clone();
    let writer = tokio::spawn(async move {
        while let Some(out) = rx.recv().await {
            let written = match out {
                Out::Flood(f) => hostile::flood(&mut sink, f, &st_w).await,
                out => sink.send(out).await,
            };
            if written.is_err() {
                break;
            }
        }
    });
    let out_seq = Arc::new(AtomicU64::new(1));
    let mut bound: Option<BindKind> = None;
    loop {
        let item = tokio::select! {
            _ = kill.recv() => break,
            item = source.next() => item,
        };
        let Some(Ok((raw, command))) = item else {
            break;
        };
        let id = command.id();
        let seq = command.sequence_number();
        let status = u32::from(command.status());
        let name = command_name(id);
        st.pdu(PduRecord {
            conn,
            command: name.clone(),
            status,
            sequence: seq,
            raw_hex: hex(&raw),
        });
        match id {
            CommandId::BindTransmitter | CommandId::BindReceiver | CommandId::BindTransceiver => {
                let refuse = *st.refuse_bind.lock().unwrap();
                let answer = refuse.unwrap_or(0);
                st.binds
                    .lock()
                    .unwrap()
                    .push(parse_bind(conn, &raw, &name, answer));
                let resp_id = u32::from(id) | 0x8000_0000;
                if answer != 0 {
                    let _ = tx.send(header_only(resp_id, answer, seq));
                    continue;
                }
                let system_id = COctetString::from_str("smsgw-sink").expect("valid");
                let (kind, out) = match id {
                    CommandId::BindTransmitter => (
                        BindKind::Transmitter,
                        cmd(0, seq, BindTransmitterResp::new(system_id, None)),
                    ),
                    CommandId::BindReceiver => (
                        BindKind::Receiver,
                        cmd(0, seq, BindReceiverResp::new(system_id, None)),
                    ),
                    _ => (
                        BindKind::Transceiver,
                        cmd(0, seq, BindTransceiverResp::new(system_id, None)),
                    ),
                };
                // A system_id of any length, written octet by octet (rusmpp keeps to 16).
                let out = match st.bind_system_id.lock().unwrap().clone() {
                    Some(sid) => {
                        let mut body = sid.into_bytes();
                        body.push(0);
                        Out::Raw(raw_pdu(resp_id, 0, seq, &body))
                    }
                    None => out,
                };
                bound = Some(kind);
                st.accepted_binds.fetch_add(1, Ordering::SeqCst);
                let _ = tx.send(out);
                st.sessions
                    .lock()
                    .unwrap()
                    .push((tx.clone(), out_seq.clone()));
                let flood = st.flood.lock().unwrap().take();
                if let Some((f, keep_reading)) = flood {
                    let _ = tx.send(Out::Flood(f));
                    if !keep_reading {
                        // Stop reading: the client's writes pile up in the socket buffers.
                        let _ = kill.recv().await;
                        break;
                    }
                }
            }
            CommandId::SubmitSm => {
                let (mut rec, payload) = parse_submit(conn, &raw);
                if !matches!(bound, Some(BindKind::Transmitter | BindKind::Transceiver)) {
                    rec.status = Some(ESME_RINVBNDSTS);
                    st.submit(rec);
                    let _ = tx.send(header_only(0x8000_0004, ESME_RINVBNDSTS, seq));
                    continue;
                }
                let now = st.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                st.max_in_flight.fetch_max(now, Ordering::SeqCst);
                let fault = st.faults.next_request();
                let (delay, answer) = match fault {
                    None => (None, Some(0)),
                    Some(Fault::Delay(d)) => (Some(d), Some(0)),
                    Some(Fault::Reply { code, .. }) => (None, Some(code)),
                    Some(Fault::NeverAnswer) => (None, None),
                    Some(Fault::Close) => {
                        st.submit(rec);
                        st.answered();
                        break;
                    }
                };
                let Some(code) = answer else {
                    st.submit(rec);
                    continue;
                };
                rec.status = Some(code);
                let message_id = (code == 0)
                    .then(|| format!("{:08X}", st.message_ids.fetch_add(1, Ordering::SeqCst) + 1));
                rec.message_id = message_id.clone();
                st.submit(rec.clone());
                let st2 = st.clone();
                let tx2 = tx.clone();
                let out_seq2 = out_seq.clone();
                let transceiver = bound == Some(BindKind::Transceiver);
                let respond = async move {
                    if let Some(d) = delay {
                        tokio::time::sleep(d).await;
                    }
                    st2.answered();
                    let Some(mid) = message_id else {
                        let _ = tx2.send(header_only(0x8000_0004, code, seq));
                        return;
                    };
                    let resp =
                        SubmitSmResp::new(COctetString::from_str(&mid).expect("valid id"), vec![]);
                    let _ = tx2.send(cmd(0, seq, resp));
                    let wants_receipt = rec.registered_delivery & 0x03 != 0;
                    st2.accepted(rec.clone(), payload);
                    if transceiver && wants_receipt {
                        let state = st2.receipt_state.lock().unwrap().clone();
                        if let Some(held) = st2.held_receipts.lock().unwrap().as_mut() {
                            held.push((rec.clone(), mid.clone(), state));
                            return;
                        }
                        let style = *st2.receipt_style.lock().unwrap();
                        let s = out_seq2.fetch_add(1, Ordering::SeqCst) as u32;
                        if let Some(out) = receipts::receipt(style, &rec, &mid, &state, s) {
                            let _ = tx2.send(out);
                        }
                    }
                };
                if delay.is_some() {
                    tokio::spawn(respond);
                } else {
                    respond.await;
                }
            }
            CommandId::EnquireLink => {
                let _ = tx.send(cmd(0, seq, Pdu::EnquireLinkResp));
            }
            CommandId::Unbind => {
                let _ = tx.send(cmd(0, seq, Pdu::UnbindResp));
                // Let the writer flush the answer, then close.
                tokio::time::sleep(Duration::from_millis(20)).await;
                break;
            }
            CommandId::DeliverSmResp
            | CommandId::EnquireLinkResp
            | CommandId::UnbindResp
            | CommandId::GenericNack => {}
            _ if id.is_response() => {}
            _ => {
                // Anything else: generic_nack with ESME_RINVCMDID.
                let _ = tx.send(header_only(0x8000_0000, 0x03, seq));
            }
        }
    }
    writer.abort();
    let _ = writer.await;
    st.active.fetch_sub(1, Ordering::SeqCst);
}
