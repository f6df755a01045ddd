//! A test SMSC: an SMPP 3.4/5.0 server on loopback built on `tokio_util`'s `Framed` with
//! `rusmpp`'s `CommandCodec`.
//!
//! It accepts `bind_transmitter`, `bind_transceiver` and `bind_receiver`, answers `submit_sm`
//! with message ids, `enquire_link` and `unbind`, and records what it receives decoded from the
//! raw bytes: every bind ([`BindRecord`]), every submit_sm with all its fields, its UDH and its
//! text ([`SubmitRecord`]), and every PDU ([`PduRecord`]). Messages split into concatenated parts
//! are reassembled and recorded once in the [`Recorder`] when all their parts were accepted
//! (recipient = destination_addr, text = the whole text).
//!
//! On transceiver binds it sends delivery receipts (`deliver_sm`, esm_class 0x04) for every
//! accepted submit_sm whose registered_delivery asks for one.
//!
//! Misbehaviour: the [`FaultPlan`] is consulted once per submit_sm ([`Fault::Reply`] answers with
//! that command_status, e.g. `0x58` ESME_RTHROTTLED; [`Fault::Delay`] answers late;
//! [`Fault::NeverAnswer`] never answers; [`Fault::Close`] drops the session with the submit in
//! flight). [`Smsc::refuse_binds`] refuses binds with a status, [`Smsc::drop_sessions`] drops
//! every open session at once.
//!
//! The corners of SMPP 3.4 real SMSCs use: receipts as `message_payload`, as TLVs next to a
//! misleading text, or as `data_sm` ([`Smsc::set_receipt_style`]); receipts held back and sent
//! on a later session ([`Smsc::hold_receipts`], [`Smsc::release_receipts`]); a bind_resp
//! `system_id` of any length ([`Smsc::set_bind_system_id`]); requests pushed to the bound
//! sessions ([`Smsc::push_unknown`], [`Smsc::push_query_sm`], [`Smsc::push_request`]); and a
//! flood after the bind, with or without reading on ([`Smsc::flood_after_bind`]).
//!
//! [`Smsc::start_tls`] (or `Smsc::builder().tls().start()`) speaks SMPP over TLS (the handshake
//! first, then SMPP) with a fresh self-signed certificate for `localhost` and `127.0.0.1`
//! ([`Smsc::certificate_pem`]); [`Smsc::failed_handshakes`] counts clients that did not complete
//! the handshake (untrusted certificate, plain SMPP).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use smsgw_sinks::smsc::Smsc;
//! let smsc = Smsc::start().await.unwrap();
//! assert!(smsc.addr().ip().is_loopback());
//! assert_eq!(smsc.connections(), 0);
//! assert!(smsc.certificate_pem().is_none());
//! let tls = Smsc::builder().tls().start().await.unwrap();
//! assert!(tls.is_tls());
//! assert!(tls.certificate_pem().unwrap().contains("BEGIN CERTIFICATE"));
//! # }
//! ```

mod decode;
mod hostile;
mod receipts;
mod session;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc};

use crate::{FaultPlan, Recorder};

pub use decode::{
    BindRecord, PduRecord, SubmitRecord, Udh, UdhIe, decode_gsm_unpacked, decode_text, parse_udh,
};
pub use hostile::Flood;
pub use receipts::ReceiptStyle;
use session::serve;

/// A receipt kept back: the submit it is for, its message id, and its `stat:`/`err:`.
type HeldReceipt = (SubmitRecord, String, (String, String));

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum BindKind {
    Transmitter,
    Receiver,
    Transceiver,
}

struct Partial {
    total: u8,
    data_coding: u8,
    parts: HashMap<u8, (Vec<u8>, SubmitRecord)>,
}

struct State {
    recorder: Recorder,
    faults: FaultPlan,
    binds: Mutex<Vec<BindRecord>>,
    submits: Mutex<Vec<SubmitRecord>>,
    pdus: Mutex<Vec<PduRecord>>,
    connections: AtomicUsize,
    failed_handshakes: AtomicUsize,
    accepted_binds: AtomicUsize,
    active: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    message_ids: AtomicU64,
    refuse_bind: Mutex<Option<u32>>,
    receipt_state: Mutex<(String, String)>,
    partials: Mutex<HashMap<(String, String, u16, u8), Partial>>,
    kill: broadcast::Sender<()>,
    receipt_style: Mutex<ReceiptStyle>,
    bind_system_id: Mutex<Option<String>>,
    flood: Mutex<Option<(Flood, bool)>>,
    flood_written: AtomicUsize,
    /// Receipts kept back (`Some`) instead of sent: (submit, message id, stat/err).
    held_receipts: Mutex<Option<Vec<HeldReceipt>>>,
    /// The writers of the bound sessions and their next sequence numbers, for pushed requests.
    sessions: Mutex<Vec<(mpsc::UnboundedSender<decode::Out>, Arc<AtomicU64>)>>,
}

/// The test SMSC. It stops (and drops its sessions) when dropped.
pub struct Smsc {
    addr: SocketAddr,
    state: Arc<State>,
    accept: tokio::task::JoinHandle<()>,
    cert_pem: Option<String>,
}

impl std::fmt::Debug for Smsc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Smsc")
            .field("addr", &self.addr)
            .field("tls", &self.is_tls())
            .finish()
    }
}

impl Drop for Smsc {
    fn drop(&mut self) {
        self.accept.abort();
        let _ = self.state.kill.send(());
    }
}

/// Configures an [`Smsc`] before it starts: [`Smsc::builder`].
#[derive(Debug, Default, Clone)]
pub struct SmscBuilder {
    tls: bool,
}

impl SmscBuilder {
    /// Speak SMPP over TLS (implicit TLS: the handshake comes first, as with the provider's
    /// `TLS = yes`) with a fresh self-signed certificate for `localhost` and `127.0.0.1`
    /// (see [`Smsc::certificate_pem`]).
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// Starts on `127.0.0.1` on a free port.
    pub async fn start(self) -> std::io::Result<Smsc> {
        self.start_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Starts on `addr`.
    pub async fn start_on(self, addr: SocketAddr) -> std::io::Result<Smsc> {
        let (acceptor, cert_pem) = if self.tls {
            let crate::tls::SelfSigned {
                acceptor: a,
                cert_pem: pem,
                ..
            } = crate::tls::self_signed(&[])?;
            (Some(a), Some(pem))
        } else {
            (None, None)
        };
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (kill, _) = broadcast::channel(16);
        let state = Arc::new(State {
            recorder: Recorder::new(),
            faults: FaultPlan::default(),
            binds: Mutex::default(),
            submits: Mutex::default(),
            pdus: Mutex::default(),
            connections: AtomicUsize::new(0),
            failed_handshakes: AtomicUsize::new(0),
            accepted_binds: AtomicUsize::new(0),
            active: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            message_ids: AtomicU64::new(0),
            refuse_bind: Mutex::new(None),
            receipt_state: Mutex::new(("DELIVRD".into(), "000".into())),
            partials: Mutex::default(),
            kill,
            receipt_style: Mutex::default(),
            bind_system_id: Mutex::default(),
            flood: Mutex::default(),
            flood_written: AtomicUsize::new(0),
            held_receipts: Mutex::default(),
            sessions: Mutex::default(),
        });
        let st = state.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let conn = st.connections.fetch_add(1, Ordering::SeqCst) + 1;
                let kill = st.kill.subscribe();
                let st = st.clone();
                match acceptor.clone() {
                    None => {
                        tokio::spawn(serve(stream, conn, st, kill));
                    }
                    Some(acceptor) => {
                        tokio::spawn(async move {
                            match tokio::time::timeout(TLS_HANDSHAKE, acceptor.accept(stream)).await
                            {
                                Ok(Ok(tls)) => serve(tls, conn, st, kill).await,
                                _ => {
                                    st.failed_handshakes.fetch_add(1, Ordering::SeqCst);
                                }
                            }
                        });
                    }
                }
            }
        });
        Ok(Smsc {
            addr,
            state,
            accept,
            cert_pem,
        })
    }
}

/// How long the TLS SMSC waits for a client's handshake.
const TLS_HANDSHAKE: Duration = Duration::from_secs(10);

impl Smsc {
    /// Starts a plain (TCP) SMSC on 127.0.0.1 on a free port.
    pub async fn start() -> std::io::Result<Smsc> {
        SmscBuilder::default().start().await
    }

    /// Starts a plain (TCP) SMSC on `addr`.
    pub async fn start_on(addr: SocketAddr) -> std::io::Result<Smsc> {
        SmscBuilder::default().start_on(addr).await
    }

    /// Starts an SMSC that speaks SMPP over TLS with a self-signed certificate, on 127.0.0.1 on
    /// a free port (`Smsc::builder().tls().start()`).
    pub async fn start_tls() -> std::io::Result<Smsc> {
        SmscBuilder::default().tls().start().await
    }

    /// Configure an SMSC (e.g. TLS) before starting it.
    pub fn builder() -> SmscBuilder {
        SmscBuilder::default()
    }

    /// Whether it speaks TLS.
    pub fn is_tls(&self) -> bool {
        self.cert_pem.is_some()
    }

    /// The self-signed certificate (PEM) it presents, when it speaks TLS: trust it in a client,
    /// or connect with `CHECK_SSL = "no"`.
    pub fn certificate_pem(&self) -> Option<&str> {
        self.cert_pem.as_deref()
    }

    /// TLS handshakes that failed or timed out (a client that does not trust the certificate,
    /// or that speaks plain SMPP to a TLS SMSC). Such connections never reach SMPP.
    pub fn failed_handshakes(&self) -> usize {
        self.state.failed_handshakes.load(Ordering::SeqCst)
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The uniform record of every accepted message (reassembled from its parts).
    pub fn recorder(&self) -> Recorder {
        self.state.recorder.clone()
    }

    /// How it misbehaves, consulted once per submit_sm.
    pub fn faults(&self) -> FaultPlan {
        self.state.faults.clone()
    }

    /// Every bind received, accepted or refused.
    pub fn binds(&self) -> Vec<BindRecord> {
        self.state.binds.lock().unwrap().clone()
    }

    /// Every submit_sm received, in arrival order.
    pub fn submits(&self) -> Vec<SubmitRecord> {
        self.state.submits.lock().unwrap().clone()
    }

    /// Every PDU received, in arrival order.
    pub fn pdus(&self) -> Vec<PduRecord> {
        self.state.pdus.lock().unwrap().clone()
    }

    /// How many PDUs of `command` (e.g. `enquire_link`, `unbind`, `deliver_sm_resp`) arrived.
    pub fn count(&self, command: &str) -> usize {
        self.state
            .pdus
            .lock()
            .unwrap()
            .iter()
            .filter(|p| p.command == command)
            .count()
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// Binds accepted so far.
    pub fn bind_count(&self) -> usize {
        self.state.accepted_binds.load(Ordering::SeqCst)
    }

    /// Sessions (TCP connections) open now.
    pub fn active_sessions(&self) -> usize {
        self.state.active.load(Ordering::SeqCst)
    }

    /// submit_sm received and not answered yet.
    pub fn in_flight(&self) -> usize {
        self.state.in_flight.load(Ordering::SeqCst)
    }

    /// The most submit_sm that were unanswered at one moment.
    pub fn max_in_flight(&self) -> usize {
        self.state.max_in_flight.load(Ordering::SeqCst)
    }

    /// Refuse every bind from now on with `status` (e.g. `0x0E` ESME_RINVPASWD, `0x0D`
    /// ESME_RBINDFAIL); `None` accepts binds again.
    pub fn refuse_binds(&self, status: Option<u32>) {
        *self.state.refuse_bind.lock().unwrap() = status;
    }

    /// Drops every open session now (TCP close without unbind), with whatever is in flight.
    pub fn drop_sessions(&self) {
        let _ = self.state.kill.send(());
    }

    /// The `stat:` and `err:` of the delivery receipts sent from now on (default `DELIVRD`, `000`).
    pub fn set_receipt_state(&self, stat: &str, err: &str) {
        *self.state.receipt_state.lock().unwrap() = (stat.to_owned(), err.to_owned());
    }

    /// How delivery receipts are sent from now on (default [`ReceiptStyle::ShortMessage`]).
    pub fn set_receipt_style(&self, style: ReceiptStyle) {
        *self.state.receipt_style.lock().unwrap() = style;
    }

    /// The `system_id` of the bind responses from now on, of any length (SMPP allows 15
    /// characters; lenient SMSCs send longer ones); `None`: `smsgw-sink`.
    pub fn set_bind_system_id(&self, system_id: Option<&str>) {
        *self.state.bind_system_id.lock().unwrap() = system_id.map(str::to_owned);
    }

    /// After the next accepted bind, send `flood` on that session and, unless `keep_reading`,
    /// stop reading from it (the session stays open until the SMSC is dropped or
    /// [`Smsc::drop_sessions`]).
    pub fn flood_after_bind(&self, flood: Flood, keep_reading: bool) {
        *self.state.flood.lock().unwrap() = Some((flood, keep_reading));
    }

    /// How many flood PDUs were written so far (the client's reading paces this).
    pub fn flood_written(&self) -> usize {
        self.state.flood_written.load(Ordering::SeqCst)
    }

    /// Sends a request with `command_id` (no body) on every bound session; returns on how many.
    /// A client must answer it with generic_nack ESME_RINVCMDID when it does not serve it.
    pub fn push_unknown(&self, command_id: u32) -> usize {
        self.push(|seq| hostile::unknown(command_id, seq))
    }

    /// Sends a request with `command_id` and exactly `body` (e.g. one that does not decode) on
    /// every bound session; returns on how many.
    pub fn push_request(&self, command_id: u32, body: &[u8]) -> usize {
        self.push(|seq| receipts::raw_pdu(command_id, 0, seq, body))
    }

    /// Sends a query_sm for `message_id` on every bound session; returns on how many.
    pub fn push_query_sm(&self, message_id: &str) -> usize {
        self.push(|seq| hostile::query_sm(message_id, seq))
    }

    /// Keep delivery receipts back from now on instead of sending them, until
    /// [`Smsc::release_receipts`] (e.g. to send them on a later session).
    pub fn hold_receipts(&self) {
        self.state
            .held_receipts
            .lock()
            .unwrap()
            .get_or_insert_with(Vec::new);
    }

    /// Sends the receipts kept back on every session bound now and sends receipts at once
    /// again; returns how many receipts were released.
    pub fn release_receipts(&self) -> usize {
        let held = self
            .state
            .held_receipts
            .lock()
            .unwrap()
            .take()
            .unwrap_or_default();
        let style = *self.state.receipt_style.lock().unwrap();
        let mut sessions = self.state.sessions.lock().unwrap();
        sessions.retain(|(tx, _)| !tx.is_closed());
        for (rec, id, state) in &held {
            for (tx, seq) in sessions.iter() {
                let s = seq.fetch_add(1, Ordering::SeqCst) as u32;
                if let Some(out) = receipts::receipt(style, rec, id, state, s) {
                    let _ = tx.send(out);
                }
            }
        }
        held.len()
    }

    fn push(&self, pdu: impl Fn(u32) -> Vec<u8>) -> usize {
        let mut sessions = self.state.sessions.lock().unwrap();
        sessions.retain(|(tx, _)| !tx.is_closed());
        for (tx, seq) in sessions.iter() {
            let s = seq.fetch_add(1, Ordering::SeqCst) as u32;
            let _ = tx.send(decode::Out::Raw(pdu(s)));
        }
        sessions.len()
    }

    /// Waits until `cond` holds or `timeout` passes; returns whether it holds.
    pub async fn wait_until(&self, timeout: Duration, cond: impl Fn(&Smsc) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if cond(self) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}
