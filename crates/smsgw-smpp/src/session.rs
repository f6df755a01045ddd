//! One bound SMPP session: connect, bind (written by hand so the password never passes through
//! `rusmpp`'s debug logging), then a `rusmppc` client with enquire_link keep-alive, plus a task
//! that routes submit_sm_resp to the waiting sends, acknowledges and parses delivery receipts and
//! notices when the SMSC goes away.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use futures::task::AtomicWaker;
use futures::{Stream, StreamExt};
use rusmpp::decode::DecodeWithLength;
use rusmpp::encode::{Encode, Length};
use rusmpp::pdus::{BindTransceiver, BindTransmitter, DeliverSm, DeliverSmResp, SubmitSm};
use rusmpp::types::COctetString;
use rusmpp::values::{InterfaceVersion, Npi, Ton};
use rusmpp::{Command, CommandId, CommandStatus, Pdu};
use smsgw_core::secrecy::ExposeSecret;
use smsgw_core::{DeliveryReport, ErrorKind, SendError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::{broadcast, oneshot};

use crate::config::{BindMode, Settings};
use crate::dlr::parse_receipt_text;
use crate::status::{ESME_RINVPASWD, ESME_RINVSYSID, ESME_RINVSYSTYP, status_name};

/// The largest PDU accepted from the SMSC.
const MAX_PDU: usize = 8192;

/// The sequence number of the hand-written bind. rusmppc numbers its own PDUs 1, 3, 5, … (client
/// requests) and 2, 4, 6, … (its enquire_links), so the bind takes the largest valid number
/// (SMPP 3.4 allows 0x00000001..=0x7FFFFFFF), which rusmppc reaches only after about a billion
/// PDUs on one session.
pub(crate) const BIND_SEQUENCE: u32 = 0x7FFF_FFFF;

/// Responses that arrived for sequence numbers, and the sends waiting for them.
#[derive(Default)]
struct Pending {
    waiters: HashMap<u32, oneshot::Sender<Command>>,
    /// Responses that arrived before their send registered (the write acknowledgement and the
    /// response race).
    early: HashMap<u32, Command>,
    /// Sends that gave up waiting: their late responses are dropped.
    abandoned: HashSet<u32>,
    closed: bool,
}

struct Shared {
    pending: Mutex<Pending>,
    alive: AtomicBool,
    kick: Arc<Kick>,
}

impl Shared {
    fn mark_dead(&self) {
        self.alive.store(false, Ordering::SeqCst);
    }

    /// The connection is gone: every waiter learns it (its receiver errors).
    fn close_all(&self) {
        self.mark_dead();
        let mut p = self.pending.lock().unwrap();
        p.closed = true;
        p.waiters.clear();
    }

    fn deliver(&self, cmd: Command) {
        let seq = cmd.sequence_number();
        let mut p = self.pending.lock().unwrap();
        if p.abandoned.remove(&seq) {
            return;
        }
        match p.waiters.remove(&seq) {
            Some(tx) => {
                let _ = tx.send(cmd);
            }
            None => {
                if p.early.len() < 10_000 {
                    p.early.insert(seq, cmd);
                }
            }
        }
    }
}

/// What waiting for a response gives.
pub(crate) enum Awaiting {
    /// The response is already here.
    Ready(Box<Command>),
    /// Wait on this.
    Wait(oneshot::Receiver<Command>),
    /// The connection is gone.
    Lost,
}

/// Why a submit_sm could not be handed to the connection.
pub(crate) enum WriteError {
    /// It was never written: the connection was already closed.
    NotWritten,
    /// Writing failed part-way: the SMSC may have read it.
    MaybeWritten(String),
}

/// A bound session.
pub(crate) struct Session {
    /// A number for logs.
    pub id: u64,
    client: rusmppc::Client,
    shared: Arc<Shared>,
    kick: Arc<Kick>,
    task: tokio::task::JoinHandle<()>,
    unbind_timeout: Duration,
}

/// Works around a lost wake-up in rusmppc 0.4's connection future: one poll takes at most 5
/// queued actions and writes at most about 2 PDUs, then returns `Pending` as soon as the socket
/// has nothing to read, without waking itself for the rest. It is polled again only when
/// something arrives or a timer fires, so PDUs queued behind the limit wait for a response to
/// an earlier one, and wait for ever when none is in flight (or until the next enquire_link).
///
/// [`Kick`] counts the PDUs handed to the client whose write is not yet acknowledged and wakes
/// the connection for each new one; [`Driven`] (which runs the connection future) polls the
/// connection again while that count is not zero and the socket is not what it waits on
/// ([`Watched`] notes when a write would block: then the socket wakes it).
#[derive(Default)]
struct Kick {
    unacked: AtomicUsize,
    write_blocked: AtomicBool,
    connection: AtomicWaker,
}

/// Counts one PDU as handed to rusmppc and not yet written, for as long as it lives.
struct Unacked<'a>(&'a Kick);

impl<'a> Unacked<'a> {
    fn new(kick: &'a Kick) -> Self {
        kick.unacked.fetch_add(1, Ordering::SeqCst);
        // The connection may have gone to sleep with actions still queued.
        kick.connection.wake();
        Unacked(kick)
    }
}

impl Drop for Unacked<'_> {
    fn drop(&mut self) {
        self.0.unacked.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The connection future of rusmppc, polled again while writes wait (see [`Kick`]).
struct Driven<F> {
    connection: Pin<Box<F>>,
    kick: Arc<Kick>,
}

impl<F: Future<Output = ()>> Future for Driven<F> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        this.kick.connection.register(cx.waker());
        match this.connection.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(()),
            Poll::Pending => {
                if this.kick.unacked.load(Ordering::SeqCst) > 0
                    && !this.kick.write_blocked.load(Ordering::SeqCst)
                {
                    // Writes are queued and nothing else will wake the connection for them:
                    // poll it again after the other tasks had their turn.
                    cx.waker().wake_by_ref();
                }
                Poll::Pending
            }
        }
    }
}

/// The stream under rusmppc: passes everything through and notes whether a write would block.
struct Watched<S> {
    inner: S,
    kick: Arc<Kick>,
}

impl<S> Watched<S> {
    fn note<T>(&self, poll: Poll<T>) -> Poll<T> {
        self.kick
            .write_blocked
            .store(poll.is_pending(), Ordering::SeqCst);
        poll
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.note(poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.note(poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.note(poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl Session {
    /// True while the session can take submits.
    ///
    /// Not `Client::is_active`: that queues a ping action in the connection on every call, and
    /// a burst of sends buried their submits behind hundreds of pings (see [`Kick`]).
    pub fn is_alive(&self) -> bool {
        self.shared.alive.load(Ordering::SeqCst) && !self.client.is_closed()
    }

    /// Writes a submit_sm; returns its sequence number once it is flushed to the socket.
    pub async fn write_submit(&self, sm: SubmitSm) -> Result<u32, WriteError> {
        let _unacked = Unacked::new(&self.kick);
        match self.client.no_wait().submit_sm(sm).await {
            Ok(seq) => Ok(seq),
            Err(rusmppc::error::Error::ConnectionClosed) => {
                self.shared.mark_dead();
                Err(WriteError::NotWritten)
            }
            Err(e) => {
                self.shared.mark_dead();
                Err(WriteError::MaybeWritten(e.to_string()))
            }
        }
    }

    /// Starts waiting for the response to `seq`.
    pub fn await_response(&self, seq: u32) -> Awaiting {
        let mut p = self.shared.pending.lock().unwrap();
        if let Some(cmd) = p.early.remove(&seq) {
            return Awaiting::Ready(Box::new(cmd));
        }
        if p.closed {
            return Awaiting::Lost;
        }
        let (tx, rx) = oneshot::channel();
        p.waiters.insert(seq, tx);
        Awaiting::Wait(rx)
    }

    /// The send waiting for `seq` gave up.
    pub fn abandon(&self, seq: u32) {
        let mut p = self.shared.pending.lock().unwrap();
        p.waiters.remove(&seq);
        if !p.closed {
            p.abandoned.insert(seq);
        }
    }

    /// Unbinds and closes the connection, each step bounded.
    pub async fn unbind(&self) {
        self.shared.mark_dead();
        let t = self.unbind_timeout;
        if !self.client.is_closed() {
            // Written without waiting (the write is counted, see `Kick`); the unbind_resp comes
            // through the event task like a submit_sm_resp.
            let unacked = Unacked::new(&self.kick);
            let written = tokio::time::timeout(t, self.client.no_wait().unbind()).await;
            drop(unacked);
            match written {
                Ok(Ok(seq)) => {
                    let answered = match self.await_response(seq) {
                        Awaiting::Ready(_) => true,
                        Awaiting::Wait(rx) => {
                            matches!(tokio::time::timeout(t, rx).await, Ok(Ok(_)))
                        }
                        Awaiting::Lost => false,
                    };
                    if answered {
                        tracing::debug!(session = self.id, "unbound");
                    } else {
                        self.abandon(seq);
                        tracing::debug!(session = self.id, "no unbind_resp in time");
                    }
                }
                Ok(Err(e)) => tracing::debug!(session = self.id, error = %e, "unbind failed"),
                Err(_) => tracing::debug!(session = self.id, "unbind not written in time"),
            }
        }
        // After unbind the connection may already be closed: ignore ConnectionClosed.
        let _unacked = Unacked::new(&self.kick);
        let _ = tokio::time::timeout(t, self.client.close_and_wait()).await;
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.task.abort();
        // Unbind politely when a runtime is there to do it; the connection closes either way
        // once the last client handle is gone.
        if self.shared.alive.load(Ordering::SeqCst)
            && let Ok(handle) = tokio::runtime::Handle::try_current()
        {
            let client = self.client.clone();
            let kick = self.kick.clone();
            let t = self.unbind_timeout;
            handle.spawn(async move {
                // Nobody reads the unbind_resp any more: write the unbind, then close.
                let _unacked = Unacked::new(&kick);
                let _ = tokio::time::timeout(t, client.no_wait().unbind()).await;
                let _ = tokio::time::timeout(t, client.close()).await;
            });
        }
    }
}

fn err(settings: &Settings, kind: ErrorKind, msg: impl Into<String>) -> SendError {
    SendError::new(kind, &settings.gateway, msg)
}

/// Connects, binds and starts the session. Every step is bounded by `settings.timeout`.
pub(crate) async fn open(
    settings: &Settings,
    id: u64,
    reports: broadcast::Sender<DeliveryReport>,
) -> Result<Session, SendError> {
    let t = settings.timeout;
    let target = format!("{}:{}", settings.host, settings.port);
    let tcp = match tokio::time::timeout(
        t,
        tokio::net::TcpStream::connect((settings.host.as_str(), settings.port)),
    )
    .await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            return Err(err(
                settings,
                ErrorKind::NotSent,
                format!("cannot connect to the SMSC at {target}: {e}"),
            ));
        }
        Err(_) => {
            return Err(err(
                settings,
                ErrorKind::NotSent,
                format!("connecting to the SMSC at {target} timed out after {t:?}"),
            ));
        }
    };
    let _ = tcp.set_nodelay(true);
    if settings.tls {
        #[cfg(feature = "tls")]
        {
            let tls = tokio::time::timeout(
                t,
                crate::tls::connect(tcp, &settings.host, settings.check_ssl),
            )
            .await
            .map_err(|_| {
                err(
                    settings,
                    ErrorKind::NotSent,
                    format!("TLS handshake with {target} timed out after {t:?}"),
                )
            })?
            .map_err(|e| match e {
                // Nothing was written (the bind never left), and a retry meets the same
                // certificate: the gateway definition (or the SMSC's certificate) must change.
                crate::tls::TlsError::Untrusted(why) => err(
                    settings,
                    ErrorKind::Config,
                    format!(
                        "the TLS certificate of the SMSC at {target} was not trusted ({why}); \
                         nothing was sent. Fix the SMSC's certificate or SMSC_HOST, or set \
                         CHECK_SSL = \"no\" for a test SMSC"
                    ),
                )
                .with_code("untrusted_certificate"),
                crate::tls::TlsError::Other(why) => err(
                    settings,
                    ErrorKind::NotSent,
                    format!("TLS handshake with {target} failed: {why}"),
                ),
            })?;
            return start(settings, id, tls, reports).await;
        }
        #[cfg(not(feature = "tls"))]
        return Err(err(
            settings,
            ErrorKind::Config,
            "TLS = yes, but this build has no TLS support (feature \"tls\" of smsgw-smpp)",
        ));
    }
    start(settings, id, tcp, reports).await
}

fn bind_command(settings: &Settings) -> Result<Command, SendError> {
    let bad = |what: &str| {
        err(
            settings,
            ErrorKind::Config,
            format!("{what} does not fit an SMPP bind"),
        )
    };
    let system_id = COctetString::from_str(&settings.system_id).map_err(|_| bad("SYSTEM_ID"))?;
    let password =
        COctetString::from_str(settings.password.expose_secret()).map_err(|_| bad("PASSWORD"))?;
    let system_type =
        COctetString::from_str(&settings.system_type).map_err(|_| bad("SYSTEM_TYPE"))?;
    let pdu: Pdu = match settings.bind {
        BindMode::Transmitter => BindTransmitter::new(
            system_id,
            password,
            system_type,
            InterfaceVersion::Smpp3_4,
            Ton::Unknown,
            Npi::Unknown,
            COctetString::empty(),
        )
        .into(),
        BindMode::Transceiver => BindTransceiver::new(
            system_id,
            password,
            system_type,
            InterfaceVersion::Smpp3_4,
            Ton::Unknown,
            Npi::Unknown,
            COctetString::empty(),
        )
        .into(),
    };
    Ok(Command::new(CommandStatus::EsmeRok, BIND_SEQUENCE, pdu))
}

/// Encodes a command as it goes on the wire (length prefix included), without logging it.
fn encode_command(cmd: &Command) -> Vec<u8> {
    let len = 4 + cmd.length();
    let mut buf = vec![0u8; len];
    buf[..4].copy_from_slice(&(len as u32).to_be_bytes());
    cmd.encode(&mut buf[4..]);
    buf
}

/// The message of the error [`read_command`] gives when the bytes are a TLS record.
const TLS_RECORD: &str = "a TLS record, not an SMPP PDU";

fn looks_like_tls(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::InvalidData && e.to_string() == TLS_RECORD
}

/// Reads one PDU from a raw stream.
async fn read_command<S: AsyncRead + Unpin>(stream: &mut S) -> std::io::Result<Command> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).await?;
    // A TLS record header (content type 0x14..=0x17, version 3.x) read as a PDU length would be
    // hundreds of megabytes: no SMPP PDU starts like that.
    if (0x14..=0x17).contains(&len[0]) && len[1] == 0x03 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            TLS_RECORD,
        ));
    }
    let len = u32::from_be_bytes(len) as usize;
    if !(16..=MAX_PDU).contains(&len) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("PDU length {len} out of range"),
        ));
    }
    let mut body = BytesMut::zeroed(len - 4);
    stream.read_exact(&mut body).await?;
    Command::decode(&mut body, len - 4)
        .map(|(c, _)| c)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))
}

async fn bind<S: AsyncRead + AsyncWrite + Unpin>(
    settings: &Settings,
    stream: &mut S,
) -> Result<(), SendError> {
    let cmd = bind_command(settings)?;
    let seq = cmd.sequence_number();
    let expected = match settings.bind {
        BindMode::Transmitter => CommandId::BindTransmitterResp,
        BindMode::Transceiver => CommandId::BindTransceiverResp,
    };
    let bytes = encode_command(&cmd);
    drop(cmd);
    let what = settings.bind.pdu_name();
    let lost = |e: std::io::Error| {
        err(
            settings,
            ErrorKind::NotSent,
            format!("the SMSC closed the connection during {what}: {e}"),
        )
    };
    stream.write_all(&bytes).await.map_err(lost)?;
    stream.flush().await.map_err(lost)?;
    // The SMSC may send other PDUs (e.g. enquire_link) first; skip a few.
    for _ in 0..8 {
        let resp = read_command(stream).await.map_err(|e| {
            if looks_like_tls(&e) {
                // A TLS SMSC answers the plain bind with an alert; a retry meets the same.
                err(
                    settings,
                    ErrorKind::Config,
                    format!(
                        "the SMSC at {}:{} answered {what} with TLS, not SMPP; no message was \
                         sent. It expects TLS = \"yes\"",
                        settings.host, settings.port
                    ),
                )
                .with_code("tls_expected")
            } else {
                lost(e)
            }
        })?;
        if resp.sequence_number() != seq && resp.id() != CommandId::GenericNack {
            continue;
        }
        let status = u32::from(resp.status());
        if status == 0 && resp.id() == expected {
            return Ok(());
        }
        let name = status_name(status);
        let kind = match status {
            ESME_RINVPASWD | ESME_RINVSYSID | ESME_RINVSYSTYP => ErrorKind::Config,
            _ => ErrorKind::NotSent,
        };
        let msg = if status == 0 {
            format!("the SMSC answered {what} with {:?}", resp.id())
        } else {
            format!(
                "the SMSC refused {what} (system_id '{}'): {name} (0x{status:08X})",
                settings.system_id
            )
        };
        return Err(err(settings, kind, msg).with_code(name));
    }
    Err(err(
        settings,
        ErrorKind::NotSent,
        format!("the SMSC did not answer {what}"),
    ))
}

async fn start<S>(
    settings: &Settings,
    id: u64,
    mut stream: S,
    reports: broadcast::Sender<DeliveryReport>,
) -> Result<Session, SendError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let t = settings.timeout;
    tokio::time::timeout(t, bind(settings, &mut stream))
        .await
        .map_err(|_| {
            err(
                settings,
                ErrorKind::NotSent,
                format!(
                    "the SMSC did not answer {} within {t:?}",
                    settings.bind.pdu_name()
                ),
            )
        })??;
    let kick = Arc::new(Kick::default());
    let (client, events, connection) = rusmppc::ConnectionBuilder::new()
        .max_command_length(MAX_PDU)
        .enquire_link_interval(settings.enquire_link)
        .enquire_link_response_timeout(t)
        .response_timeout(t)
        .disable_interface_version_check()
        .no_spawn()
        .connected(Watched {
            inner: stream,
            kick: kick.clone(),
        });
    tokio::spawn(Driven {
        connection: Box::pin(connection),
        kick: kick.clone(),
    });
    let shared = Arc::new(Shared {
        pending: Mutex::new(Pending::default()),
        alive: AtomicBool::new(true),
        kick: kick.clone(),
    });
    let task = tokio::spawn(run_events(
        events,
        client.clone(),
        shared.clone(),
        reports,
        settings.gateway.clone(),
        id,
        t,
    ));
    tracing::info!(
        session = id,
        smsc = %format!("{}:{}", settings.host, settings.port),
        bind = settings.bind.pdu_name(),
        "SMPP session bound"
    );
    Ok(Session {
        id,
        client,
        shared,
        kick,
        task,
        unbind_timeout: t,
    })
}

async fn run_events(
    mut events: impl Stream<Item = rusmppc::Event> + Unpin,
    client: rusmppc::Client,
    shared: Arc<Shared>,
    reports: broadcast::Sender<DeliveryReport>,
    gateway: String,
    id: u64,
    t: Duration,
) {
    use rusmppc::error::Error as E;
    while let Some(event) = events.next().await {
        match event {
            rusmppc::Event::Incoming(cmd) => match cmd.id() {
                CommandId::SubmitSmResp | CommandId::GenericNack | CommandId::UnbindResp => {
                    shared.deliver(cmd)
                }
                CommandId::DeliverSm => {
                    let seq = cmd.sequence_number();
                    let _unacked = Unacked::new(&shared.kick);
                    let _ = tokio::time::timeout(
                        t,
                        client.deliver_sm_resp(seq, DeliverSmResp::default()),
                    )
                    .await;
                    if let Some(Pdu::DeliverSm(dsm)) = cmd.pdu() {
                        if let Some(report) = receipt(&gateway, dsm) {
                            tracing::debug!(
                                session = id,
                                message_id = %report.message_id,
                                state = %report.state,
                                "delivery receipt"
                            );
                            let _ = reports.send(report);
                        } else {
                            tracing::debug!(
                                session = id,
                                "deliver_sm that is not a delivery receipt ignored"
                            );
                        }
                    }
                }
                CommandId::Unbind => {
                    tracing::info!(session = id, "the SMSC unbound the session");
                    shared.mark_dead();
                    let unacked = Unacked::new(&shared.kick);
                    let _ =
                        tokio::time::timeout(t, client.unbind_resp(cmd.sequence_number())).await;
                    drop(unacked);
                    let _ = client.close().await;
                }
                other => tracing::trace!(session = id, command = ?other, "ignored PDU"),
            },
            rusmppc::Event::Error(e) => {
                tracing::warn!(session = id, error = %e, "SMPP session error");
                if matches!(
                    e,
                    E::ConnectionClosedByPeer
                        | E::EnquireLinkTimeout { .. }
                        | E::Io(_)
                        | E::Decode(_)
                        | E::ConnectionClosed
                ) {
                    shared.mark_dead();
                }
            }
        }
    }
    tracing::debug!(session = id, "SMPP session closed");
    shared.close_all();
}

fn receipt(gateway: &str, dsm: &DeliverSm) -> Option<DeliveryReport> {
    let text = String::from_utf8_lossy(dsm.short_message().as_ref()).into_owned();
    let parsed = parse_receipt_text(&text)?;
    Some(DeliveryReport {
        gateway: gateway.to_owned(),
        message_id: parsed.id.unwrap_or_default(),
        state: parsed.stat.unwrap_or_else(|| "UNKNOWN".into()),
        error: parsed.err,
        done_date: parsed.done_date,
        recipient: Some(dsm.source_addr.to_string()).filter(|s| !s.is_empty()),
    })
}
