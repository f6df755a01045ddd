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

use std::collections::HashMap;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use rusmpp::decode::DecodeWithLength;
use rusmpp::pdus::{
    BindReceiverResp, BindTransceiverResp, BindTransmitterResp, DeliverSm, SubmitSmResp,
};
use rusmpp::tokio_codec::{CommandCodec, DecodeError, EncodeError};
use rusmpp::types::{COctetString, EmptyOrFullCOctetString, OctetString};
use rusmpp::values::{
    DataCoding, EsmClass, Npi, PriorityFlag, RegisteredDelivery, ReplaceIfPresentFlag, ServiceType,
    Ton,
};
use rusmpp::{Command, CommandId, CommandStatus, Pdu};
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc};
use tokio_util::bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder, Framed};

use crate::{Fault, FaultPlan, Received, Recorder};

/// ESME_RINVBNDSTS: a submit_sm before a (transmitting) bind.
const ESME_RINVBNDSTS: u32 = 0x04;
/// The largest PDU accepted.
const MAX_PDU: usize = 64 * 1024;

/// A bind as the SMSC received it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BindRecord {
    /// Connection number (from 1, in accept order).
    pub conn: usize,
    /// `bind_transmitter`, `bind_transceiver` or `bind_receiver`.
    pub command: String,
    /// The bind's sequence number.
    pub sequence: u32,
    /// system_id.
    pub system_id: String,
    /// password (this is a test sink: it records it to let tests check it).
    pub password: String,
    /// system_type.
    pub system_type: String,
    /// interface_version as `0x34`.
    pub interface_version: String,
    /// addr_ton.
    pub addr_ton: u8,
    /// addr_npi.
    pub addr_npi: u8,
    /// address_range.
    pub address_range: String,
    /// The command_status the SMSC answered with.
    pub status: u32,
    /// The whole PDU in hex.
    pub raw_hex: String,
}

/// One information element of a user data header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UdhIe {
    /// The IE identifier (0x00: concatenation with an 8-bit reference, 0x08: 16-bit).
    pub iei: u8,
    /// The IE data in hex.
    pub data_hex: String,
    /// The concatenation reference, for IEI 0x00 and 0x08.
    pub concat_ref: Option<u16>,
    /// How many parts, for IEI 0x00 and 0x08.
    pub total: Option<u8>,
    /// This part's number (from 1), for IEI 0x00 and 0x08.
    pub seq: Option<u8>,
}

/// A user data header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Udh {
    /// The UDH length octet.
    pub udhl: u8,
    /// Its information elements.
    pub ies: Vec<UdhIe>,
}

impl Udh {
    /// The concatenation IE as (reference, total, seq), if there is one.
    pub fn concat(&self) -> Option<(u16, u8, u8)> {
        self.ies
            .iter()
            .find_map(|ie| Some((ie.concat_ref?, ie.total?, ie.seq?)))
    }
}

/// A submit_sm as the SMSC received it, field by field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubmitRecord {
    /// Connection number.
    pub conn: usize,
    /// The PDU's sequence number.
    pub sequence: u32,
    /// service_type.
    pub service_type: String,
    /// source_addr_ton.
    pub source_addr_ton: u8,
    /// source_addr_npi.
    pub source_addr_npi: u8,
    /// source_addr.
    pub source_addr: String,
    /// dest_addr_ton.
    pub dest_addr_ton: u8,
    /// dest_addr_npi.
    pub dest_addr_npi: u8,
    /// destination_addr.
    pub destination_addr: String,
    /// esm_class.
    pub esm_class: u8,
    /// protocol_id.
    pub protocol_id: u8,
    /// priority_flag.
    pub priority_flag: u8,
    /// schedule_delivery_time.
    pub schedule_delivery_time: String,
    /// validity_period.
    pub validity_period: String,
    /// registered_delivery.
    pub registered_delivery: u8,
    /// replace_if_present_flag.
    pub replace_if_present_flag: u8,
    /// data_coding.
    pub data_coding: u8,
    /// sm_default_msg_id.
    pub sm_default_msg_id: u8,
    /// sm_length.
    pub sm_length: u8,
    /// short_message in hex (UDH included).
    pub short_message_hex: String,
    /// Bytes after short_message (TLVs) in hex.
    pub tlvs_hex: String,
    /// The UDH, when esm_class has the UDHI bit (0x40).
    pub udh: Option<Udh>,
    /// This part's text, decoded.
    pub text: String,
    /// How it was decoded: `gsm7-unpacked`, `ucs2`, `latin1`, `ascii` or `binary`.
    pub text_decoding: String,
    /// The command_status the SMSC answered with; `None` when it never answered.
    pub status: Option<u32>,
    /// The message id it answered with, if it accepted the message.
    pub message_id: Option<String>,
    /// The whole PDU in hex.
    pub raw_hex: String,
}

/// Any PDU the SMSC received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PduRecord {
    /// Connection number.
    pub conn: usize,
    /// The command name (`submit_sm`, `enquire_link`, `unbind`, …).
    pub command: String,
    /// command_status.
    pub status: u32,
    /// sequence_number.
    pub sequence: u32,
    /// The whole PDU in hex.
    pub raw_hex: String,
}

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
            let (a, pem) = tls_acceptor()?;
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

/// A TLS acceptor on aws-lc-rs with a fresh self-signed certificate for `localhost` and
/// `127.0.0.1`, and that certificate in PEM.
fn tls_acceptor() -> std::io::Result<(tokio_rustls::TlsAcceptor, String)> {
    let err = |e: &dyn std::fmt::Display| std::io::Error::other(e.to_string());
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .map_err(|e| err(&e))?;
    let cert = ck.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(
        ck.signing_key.serialize_der(),
    ));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| err(&e))?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .map_err(|e| err(&e))?;
    Ok((
        tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        ck.cert.pem(),
    ))
}

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

/// What the codec writes: a command, or raw bytes (header-only error responses as SMPP 3.4
/// sends them).
enum Out {
    Cmd(Box<Command>),
    Raw(Vec<u8>),
}

/// `CommandCodec`, with the raw bytes of every decoded PDU.
struct RawCodec(CommandCodec);

impl Decoder for RawCodec {
    type Item = (Vec<u8>, Command);
    type Error = DecodeError;

    // Decodes without `CommandCodec::decode`, which logs every PDU (binds with their password)
    // at debug level: the sink must not put the secrets it receives into a test's logs.
    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Self::Item>, Self::Error> {
        if src.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([src[0], src[1], src[2], src[3]]) as usize;
        if !(16..=MAX_PDU).contains(&len) {
            return Err(DecodeError::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("PDU length {len} out of range"),
            )));
        }
        if src.len() < len {
            src.reserve(len - src.len());
            return Ok(None);
        }
        let mut frame = src.split_to(len);
        let raw = frame.to_vec();
        let _ = frame.split_to(4);
        let (command, _) = Command::decode(&mut frame, len - 4).map_err(DecodeError::Decode)?;
        Ok(Some((raw, command)))
    }
}

impl Encoder<Out> for RawCodec {
    type Error = EncodeError;

    fn encode(&mut self, item: Out, dst: &mut BytesMut) -> Result<(), Self::Error> {
        match item {
            Out::Cmd(c) => self.0.encode(&*c, dst),
            Out::Raw(b) => {
                dst.extend_from_slice(&b);
                Ok(())
            }
        }
    }
}

fn hex(b: &[u8]) -> String {
    // Table lookup, not format! per byte: this runs for every PDU and bounds the sink's rate.
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(b.len() * 2);
    for &x in b {
        out.push(DIGITS[usize::from(x >> 4)] as char);
        out.push(DIGITS[usize::from(x & 0x0f)] as char);
    }
    out
}

fn command_name(id: CommandId) -> String {
    let s = format!("{id:?}");
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// A cursor over a PDU body.
struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn u8(&mut self) -> u8 {
        let v = self.b.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        v
    }
    fn cstr(&mut self) -> String {
        let rest = self.b.get(self.at..).unwrap_or(&[]);
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        let s = String::from_utf8_lossy(&rest[..end]).into_owned();
        self.at += end + 1;
        s
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let rest = self.b.get(self.at..).unwrap_or(&[]);
        let v = rest[..n.min(rest.len())].to_vec();
        self.at += n;
        v
    }
    fn rest(&self) -> &[u8] {
        self.b.get(self.at..).unwrap_or(&[])
    }
}

// The GSM 03.38 table again (smsgw-smpp has its own for encoding), on purpose: the test SMSC
// decodes independently of the provider, so a wrong entry in one shows up as a test failure.
const GSM_BASIC: [char; 128] = [
    '@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å', //
    'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', '\u{1b}', 'Æ', 'æ', 'ß', 'É', //
    ' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/', //
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?', //
    '¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O', //
    'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§', //
    '¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', //
    'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à', //
];

fn gsm_extension(s: u8) -> Option<char> {
    Some(match s {
        0x0A => '\u{0c}',
        0x14 => '^',
        0x28 => '{',
        0x29 => '}',
        0x2F => '\\',
        0x3C => '[',
        0x3D => '~',
        0x3E => ']',
        0x40 => '|',
        0x65 => '€',
        _ => return None,
    })
}

/// Decodes GSM 03.38 septets, one an octet (unpacked), with the extension table.
pub fn decode_gsm_unpacked(b: &[u8]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < b.len() {
        let s = b[i] & 0x7f;
        if s == 0x1b && i + 1 < b.len() {
            // An unknown extension falls back to the basic character (GSM 03.38).
            let n = b[i + 1] & 0x7f;
            out.push(gsm_extension(n).unwrap_or(GSM_BASIC[n as usize]));
            i += 2;
        } else {
            out.push(GSM_BASIC[s as usize]);
            i += 1;
        }
    }
    out
}

/// Decodes `short_message` octets by their data_coding: (text, decoding name).
pub fn decode_text(data_coding: u8, b: &[u8]) -> (String, &'static str) {
    match data_coding {
        0x00 => (decode_gsm_unpacked(b), "gsm7-unpacked"),
        0x08 => {
            let units: Vec<u16> = b
                .chunks(2)
                .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))
                .collect();
            (String::from_utf16_lossy(&units), "ucs2")
        }
        0x01 => (String::from_utf8_lossy(b).into_owned(), "ascii"),
        0x03 => (b.iter().map(|&c| c as char).collect(), "latin1"),
        _ => (hex(b), "binary"),
    }
}

/// Parses a UDH at the start of `sm`: (the UDH, the octets after it).
pub fn parse_udh(sm: &[u8]) -> Option<(Udh, &[u8])> {
    let udhl = *sm.first()? as usize;
    let body = sm.get(1..1 + udhl)?;
    let mut ies = Vec::new();
    let mut i = 0;
    while i + 1 < body.len() {
        let iei = body[i];
        let len = body[i + 1] as usize;
        let data = body.get(i + 2..i + 2 + len)?;
        let (concat_ref, total, seq) = match (iei, data) {
            (0x00, [r, t, s]) => (Some(*r as u16), Some(*t), Some(*s)),
            (0x08, [r1, r2, t, s]) => (Some(u16::from_be_bytes([*r1, *r2])), Some(*t), Some(*s)),
            _ => (None, None, None),
        };
        ies.push(UdhIe {
            iei,
            data_hex: hex(data),
            concat_ref,
            total,
            seq,
        });
        i += 2 + len;
    }
    Some((
        Udh {
            udhl: udhl as u8,
            ies,
        },
        &sm[1 + udhl..],
    ))
}

fn parse_bind(conn: usize, raw: &[u8], command: &str, status: u32) -> BindRecord {
    let mut r = Reader {
        b: raw.get(16..).unwrap_or(&[]),
        at: 0,
    };
    BindRecord {
        conn,
        command: command.to_owned(),
        sequence: u32::from_be_bytes([raw[12], raw[13], raw[14], raw[15]]),
        system_id: r.cstr(),
        password: r.cstr(),
        system_type: r.cstr(),
        interface_version: format!("0x{:02x}", r.u8()),
        addr_ton: r.u8(),
        addr_npi: r.u8(),
        address_range: r.cstr(),
        status,
        raw_hex: hex(raw),
    }
}

/// Parses a submit_sm from its raw bytes; returns the record and the payload after the UDH.
fn parse_submit(conn: usize, raw: &[u8]) -> (SubmitRecord, Vec<u8>) {
    let mut r = Reader {
        b: raw.get(16..).unwrap_or(&[]),
        at: 0,
    };
    let service_type = r.cstr();
    let source_addr_ton = r.u8();
    let source_addr_npi = r.u8();
    let source_addr = r.cstr();
    let dest_addr_ton = r.u8();
    let dest_addr_npi = r.u8();
    let destination_addr = r.cstr();
    let esm_class = r.u8();
    let protocol_id = r.u8();
    let priority_flag = r.u8();
    let schedule_delivery_time = r.cstr();
    let validity_period = r.cstr();
    let registered_delivery = r.u8();
    let replace_if_present_flag = r.u8();
    let data_coding = r.u8();
    let sm_default_msg_id = r.u8();
    let sm_length = r.u8();
    let sm = r.bytes(sm_length as usize);
    let tlvs_hex = hex(r.rest());
    let (udh, payload) = if esm_class & 0x40 != 0 {
        match parse_udh(&sm) {
            Some((u, p)) => (Some(u), p.to_vec()),
            None => (None, sm.clone()),
        }
    } else {
        (None, sm.clone())
    };
    let (text, decoding) = decode_text(data_coding, &payload);
    let rec = SubmitRecord {
        conn,
        sequence: u32::from_be_bytes([raw[12], raw[13], raw[14], raw[15]]),
        service_type,
        source_addr_ton,
        source_addr_npi,
        source_addr,
        dest_addr_ton,
        dest_addr_npi,
        destination_addr,
        esm_class,
        protocol_id,
        priority_flag,
        schedule_delivery_time,
        validity_period,
        registered_delivery,
        replace_if_present_flag,
        data_coding,
        sm_default_msg_id,
        sm_length,
        short_message_hex: hex(&sm),
        tlvs_hex,
        udh,
        text,
        text_decoding: decoding.to_owned(),
        status: None,
        message_id: None,
        raw_hex: hex(raw),
    };
    (rec, payload)
}

/// A header-only response (SMPP 3.4 sends no body with an error status).
fn header_only(id: u32, status: u32, seq: u32) -> Out {
    let mut b = Vec::with_capacity(16);
    b.extend_from_slice(&16u32.to_be_bytes());
    b.extend_from_slice(&id.to_be_bytes());
    b.extend_from_slice(&status.to_be_bytes());
    b.extend_from_slice(&seq.to_be_bytes());
    Out::Raw(b)
}

fn cmd(status: u32, seq: u32, pdu: impl Into<Pdu>) -> Out {
    Out::Cmd(Box::new(Command::new(
        CommandStatus::from(status),
        seq,
        pdu,
    )))
}

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

impl State {
    fn pdu(&self, rec: PduRecord) {
        self.pdus.lock().unwrap().push(rec);
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

fn receipt_pdu(rec: &SubmitRecord, id: &str, state: &(String, String)) -> Option<DeliverSm> {
    let date = smpp_date();
    let text: String = rec.text.chars().take(20).collect();
    let body = format!(
        "id:{id} sub:001 dlvrd:{} submit date:{date} done date:{date} stat:{} err:{} text:{}",
        if state.0 == "DELIVRD" { "001" } else { "000" },
        state.0,
        state.1,
        text
    );
    let mut body = body.into_bytes();
    body.truncate(254);
    Some(
        DeliverSm::builder()
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
            .sm_default_msg_id(0)
            .short_message(OctetString::from_vec(body).ok()?)
            .build(),
    )
}

/// One SMPP session.
async fn serve<S>(stream: S, conn: usize, st: Arc<State>, mut kill: broadcast::Receiver<()>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    st.active.fetch_add(1, Ordering::SeqCst);
    let framed = Framed::new(stream, RawCodec(CommandCodec::new()));
    let (mut sink, mut source) = framed.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Out>();
    let writer = tokio::spawn(async move {
        while let Some(out) = rx.recv().await {
            if sink.send(out).await.is_err() {
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
                bound = Some(kind);
                st.accepted_binds.fetch_add(1, Ordering::SeqCst);
                let _ = tx.send(out);
            }
            CommandId::SubmitSm => {
                let (mut rec, payload) = parse_submit(conn, &raw);
                if !matches!(bound, Some(BindKind::Transmitter | BindKind::Transceiver)) {
                    rec.status = Some(ESME_RINVBNDSTS);
                    st.submits.lock().unwrap().push(rec);
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
                        st.submits.lock().unwrap().push(rec);
                        st.answered();
                        break;
                    }
                };
                let Some(code) = answer else {
                    st.submits.lock().unwrap().push(rec);
                    continue;
                };
                rec.status = Some(code);
                let message_id = (code == 0)
                    .then(|| format!("{:08X}", st.message_ids.fetch_add(1, Ordering::SeqCst) + 1));
                rec.message_id = message_id.clone();
                st.submits.lock().unwrap().push(rec.clone());
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
                        if let Some(dsm) = receipt_pdu(&rec, &mid, &state) {
                            let s = out_seq2.fetch_add(1, Ordering::SeqCst) as u32;
                            let _ = tx2.send(cmd(0, s, dsm));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_gsm_extension_and_udh() {
        let b = [
            0x59, 0x1b, 0x3c, 0x1b, 0x65, 0x00, 0x02, 0x11, 0x1b, 0x28, 0x1b, 0x29,
        ];
        assert_eq!(decode_gsm_unpacked(&b), "Y[€@$_{}");
        let (udh, rest) = parse_udh(&[5, 0, 3, 0xc5, 2, 1, 0x41]).unwrap();
        assert_eq!(udh.concat(), Some((0xc5, 2, 1)));
        assert_eq!(rest, &[0x41]);
        assert_eq!(decode_text(8, &[0xd8, 0x3d, 0xdd, 0x10]).0, "🔐");
        assert_eq!(smpp_date().len(), 10);
        assert_eq!(
            command_name(CommandId::BindTransmitterResp),
            "bind_transmitter_resp"
        );
    }
}
