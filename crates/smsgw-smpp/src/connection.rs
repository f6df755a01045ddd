//! The bound connection, driven by smsgw itself on `rusmpp`'s framing (not rusmppc's
//! connection): a reader task, a writer task and a keep-alive task, every queue bounded.
//!
//! Why not rusmppc 0.4 (the newest): it cannot send `data_sm_resp` or any other raw PDU (its
//! request API is crate-private), it answers enquire_link into an unbounded queue and hands
//! incoming PDUs to an unbounded event channel — so an SMSC that floods and stops reading grew
//! memory without bound — and its connection future loses wake-ups. Here:
//! - the reader decodes one PDU at a time and answers requests through the bounded outbound
//!   queue; when that queue is full (the SMSC does not read) it waits, so it stops reading and
//!   TCP pushes back on the SMSC;
//! - enquire_link from the SMSC is answered at most [`ENQUIRE_LINK_ANSWERS_PER_SEC`] a second
//!   (the reader waits for a slot, which is backpressure too);
//! - every other step has a time bound, and closing aborts the tasks, whatever the peer does.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use futures::{SinkExt, StreamExt};
use rusmpp::decode::DecodeWithLength;
use rusmpp::tokio_codec::{CommandCodec, EncodeError};
use rusmpp::{Command, CommandId, CommandStatus, Pdu};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tokio_util::codec::{Decoder, Encoder, FramedRead, FramedWrite};

use crate::pending::Pending;

/// The largest PDU accepted from the SMSC (a longer one ends the session).
pub(crate) const MAX_PDU: usize = 8192;
/// How many PDUs may wait to be written. A full queue makes the reader wait (backpressure).
pub(crate) const OUTBOUND_QUEUE: usize = 256;
/// The most enquire_link PDUs from the SMSC answered a second; more are answered later.
pub(crate) const ENQUIRE_LINK_ANSWERS_PER_SEC: u32 = 50;
/// ESME_RINVCMDID: the answer (in a generic_nack) to a request smsgw does not serve.
pub(crate) const ESME_RINVCMDID: u32 = 0x03;
/// ESME_RSYSERR: the answer to a request whose body could not be decoded.
pub(crate) const ESME_RSYSERR: u32 = 0x08;

/// The last sequence number before wrapping (SMPP 3.4 allows 0x00000001..=0x7FFFFFFF; the
/// largest is the bind's, see [`crate::session::BIND_SEQUENCE`]).
const MAX_SEQUENCE: u32 = 0x7FFF_FFFE;

/// How a write ended, as told to the one who queued it.
#[derive(Debug)]
pub(crate) enum WriteOutcome {
    /// On the socket (flushed).
    Done,
    /// Never written: the connection was gone first.
    NotWritten,
    /// The connection failed with the PDU partly or wholly written.
    MaybeWritten(String),
}

/// The acknowledgement of one queued PDU; dropped unanswered, it tells whether the writer had
/// started on it.
pub(crate) struct Ack {
    tx: Option<oneshot::Sender<WriteOutcome>>,
    started: bool,
}

impl Ack {
    fn done(mut self, w: WriteOutcome) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(w);
        }
    }
}

impl Drop for Ack {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(if self.started {
                WriteOutcome::MaybeWritten("the connection closed during the write".into())
            } else {
                WriteOutcome::NotWritten
            });
        }
    }
}

/// A PDU to write, with an optional acknowledgement.
pub(crate) struct Outgoing {
    cmd: Command,
    ack: Option<Ack>,
}

/// What the connection does with an incoming request it must hand on (receipts).
pub(crate) trait Inbound: Send + Sync + 'static {
    /// A deliver_sm or data_sm arrived (already answered).
    fn message(&self, cmd: &Command);
}

/// The shared state of one connection.
pub(crate) struct Conn {
    /// A number for logs.
    pub id: u64,
    out: mpsc::Sender<Outgoing>,
    pub pending: Mutex<Pending>,
    alive: AtomicBool,
    sequence: AtomicU32,
    tasks: Mutex<Vec<AbortHandle>>,
}

impl Conn {
    /// True until the connection failed, was unbound or closed.
    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst)
    }

    /// Marks the connection as unusable for new sends (it may still be closing).
    pub fn mark_dead(&self) {
        self.alive.store(false, Ordering::SeqCst);
    }

    /// Ends the connection now: every task stops, the socket closes, every waiter learns it.
    pub fn close(&self) {
        self.mark_dead();
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
        self.pending.lock().unwrap().close();
    }

    /// The next sequence number for a request of smsgw.
    pub fn next_sequence(&self) -> u32 {
        let mut cur = self.sequence.load(Ordering::Relaxed);
        loop {
            let next = if cur >= MAX_SEQUENCE { 1 } else { cur + 1 };
            match self.sequence.compare_exchange_weak(
                cur,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return cur,
                Err(now) => cur = now,
            }
        }
    }

    /// Queues `pdu` as request `seq` and waits (at most `t`) until it is written.
    pub async fn write(&self, seq: u32, pdu: impl Into<Pdu>, t: Duration) -> WriteOutcome {
        let cmd = Command::new(CommandStatus::EsmeRok, seq, pdu);
        let (tx, rx) = oneshot::channel();
        let item = Outgoing {
            cmd,
            ack: Some(Ack {
                tx: Some(tx),
                started: false,
            }),
        };
        let deadline = Instant::now() + t;
        match tokio::time::timeout_at(deadline, self.out.send(item)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return WriteOutcome::NotWritten,
            // The queue stayed full: nothing of this PDU was written.
            Err(_) => return WriteOutcome::NotWritten,
        }
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(w)) => w,
            Ok(Err(_)) => {
                WriteOutcome::MaybeWritten("the connection closed during the write".into())
            }
            Err(_) => WriteOutcome::MaybeWritten(format!("the write did not finish within {t:?}")),
        }
    }

    /// Queues a response (no acknowledgement), waiting while the queue is full.
    async fn answer(&self, cmd: Command) -> bool {
        self.out.send(Outgoing { cmd, ack: None }).await.is_ok()
    }
}

/// `CommandCodec`'s framing, but a PDU whose body does not decode is passed on as its header
/// (command_id, status, sequence) instead of ending the stream: a lenient SMSC's over-long field
/// must not drop the session, and a request smsgw cannot read still gets an answer.
pub(crate) struct Framing;

/// One PDU read: decoded whole, or only its header.
pub(crate) enum Frame {
    Whole(Command),
    /// The header of a PDU whose body did not decode, and why.
    Header(Command, String),
}

impl Decoder for Framing {
    type Item = Frame;
    type Error = std::io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, std::io::Error> {
        if src.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([src[0], src[1], src[2], src[3]]) as usize;
        if !(16..=MAX_PDU).contains(&len) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("PDU length {len} out of range 16..={MAX_PDU}"),
            ));
        }
        if src.len() < len {
            src.reserve(len - src.len());
            return Ok(None);
        }
        let frame = src.split_to(len);
        Ok(Some(decode_frame(&frame[4..])))
    }
}

/// Decodes one PDU without its length prefix; see [`Framing`].
pub(crate) fn decode_frame(body: &[u8]) -> Frame {
    let mut buf = BytesMut::from(body);
    match Command::decode(&mut buf, body.len()) {
        Ok((c, _)) => Frame::Whole(c),
        Err(e) => {
            let mut head = BytesMut::from(&body[..12]);
            match Command::decode(&mut head, 12) {
                Ok((c, _)) => Frame::Header(c, e.to_string()),
                // Unreachable for 12 octets (id, status, sequence are plain integers); keep a
                // generic_nack-able header anyway.
                Err(_) => Frame::Header(
                    Command::new(
                        CommandStatus::EsmeRok,
                        u32::from_be_bytes([body[8], body[9], body[10], body[11]]),
                        Pdu::GenericNack,
                    ),
                    e.to_string(),
                ),
            }
        }
    }
}

struct Writing(CommandCodec);

impl Encoder<&Command> for Writing {
    type Error = EncodeError;
    fn encode(&mut self, item: &Command, dst: &mut BytesMut) -> Result<(), EncodeError> {
        self.0.encode(item, dst)
    }
}

/// Settings of a connection.
pub(crate) struct ConnSettings {
    pub id: u64,
    pub timeout: Duration,
    pub enquire_link: Duration,
}

/// Starts the tasks of a bound connection on `stream`.
pub(crate) fn start<S>(stream: S, s: ConnSettings, inbound: Arc<dyn Inbound>) -> Arc<Conn>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (read, write) = tokio::io::split(stream);
    let (tx, rx) = mpsc::channel(OUTBOUND_QUEUE);
    let conn = Arc::new(Conn {
        id: s.id,
        out: tx,
        pending: Mutex::new(Pending::default()),
        alive: AtomicBool::new(true),
        sequence: AtomicU32::new(1),
        tasks: Mutex::new(Vec::new()),
    });
    let writer = tokio::spawn(write_loop(
        FramedWrite::new(write, Writing(CommandCodec::new())),
        rx,
        conn.clone(),
    ));
    let reader = tokio::spawn(read_loop(
        FramedRead::new(read, Framing),
        conn.clone(),
        inbound,
    ));
    let keepalive = tokio::spawn(keep_alive(conn.clone(), s.enquire_link, s.timeout));
    conn.tasks.lock().unwrap().extend([
        writer.abort_handle(),
        reader.abort_handle(),
        keepalive.abort_handle(),
    ]);
    conn
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut sink: FramedWrite<W, Writing>,
    mut rx: mpsc::Receiver<Outgoing>,
    conn: Arc<Conn>,
) {
    while let Some(mut item) = rx.recv().await {
        if let Some(a) = item.ack.as_mut() {
            a.started = true;
        }
        // Write what is queued behind it in the same flush (bounded by the queue).
        let mut batch = vec![item];
        while batch.len() < 64 {
            match rx.try_recv() {
                Ok(mut more) => {
                    if let Some(a) = more.ack.as_mut() {
                        a.started = true;
                    }
                    batch.push(more);
                }
                Err(_) => break,
            }
        }
        let mut failed = None;
        for item in &batch {
            if let Err(e) = sink.feed(&item.cmd).await {
                failed = Some(e.to_string());
                break;
            }
        }
        if failed.is_none()
            && let Err(e) = sink.flush().await
        {
            failed = Some(e.to_string());
        }
        match failed {
            None => {
                for item in batch {
                    if let Some(a) = item.ack {
                        a.done(WriteOutcome::Done);
                    }
                }
            }
            Some(e) => {
                tracing::warn!(session = conn.id, error = %e, "writing to the SMSC failed");
                for item in batch {
                    if let Some(a) = item.ack {
                        a.done(WriteOutcome::MaybeWritten(e.clone()));
                    }
                }
                conn.close();
                return;
            }
        }
    }
}

/// A token bucket for answering enquire_link: waits for the next slot.
struct Pace {
    interval: Duration,
    next: Instant,
}

impl Pace {
    async fn wait(&mut self) {
        let now = Instant::now();
        // A burst of one second's worth is answered at once.
        let earliest = now
            .checked_sub(self.interval * ENQUIRE_LINK_ANSWERS_PER_SEC)
            .unwrap_or(now);
        self.next = self.next.max(earliest);
        if self.next > now {
            tokio::time::sleep_until(self.next).await;
        }
        self.next += self.interval;
    }
}

async fn read_loop<R: AsyncRead + Unpin>(
    mut source: FramedRead<R, Framing>,
    conn: Arc<Conn>,
    inbound: Arc<dyn Inbound>,
) {
    let mut pace = Pace {
        interval: Duration::from_secs(1) / ENQUIRE_LINK_ANSWERS_PER_SEC,
        next: Instant::now(),
    };
    let id = conn.id;
    while let Some(frame) = source.next().await {
        let (cmd, broken) = match frame {
            Ok(Frame::Whole(c)) => (c, None),
            Ok(Frame::Header(c, why)) => (c, Some(why)),
            Err(e) => {
                tracing::warn!(session = id, error = %e, "unreadable data from the SMSC");
                break;
            }
        };
        let seq = cmd.sequence_number();
        let cid = cmd.id();
        if cid.is_response() {
            if let Some(why) = &broken {
                tracing::debug!(session = id, command = ?cid, error = %why, "response body not decoded; header used");
            }
            conn.pending.lock().unwrap().deliver(cmd);
            continue;
        }
        let answer = match (cid, broken) {
            (_, Some(why)) => {
                tracing::info!(session = id, command = ?cid, error = %why, "undecodable request from the SMSC; generic_nack");
                nack(seq, ESME_RSYSERR)
            }
            (CommandId::EnquireLink, None) => {
                pace.wait().await;
                Command::new(CommandStatus::EsmeRok, seq, Pdu::EnquireLinkResp)
            }
            (CommandId::DeliverSm, None) => {
                inbound.message(&cmd);
                Command::new(
                    CommandStatus::EsmeRok,
                    seq,
                    rusmpp::pdus::DeliverSmResp::default(),
                )
            }
            (CommandId::DataSm, None) => {
                inbound.message(&cmd);
                Command::new(
                    CommandStatus::EsmeRok,
                    seq,
                    rusmpp::pdus::DataSmResp::default(),
                )
            }
            (CommandId::Unbind, None) => {
                tracing::info!(session = id, "the SMSC unbound the session");
                conn.mark_dead();
                let resp = Command::new(CommandStatus::EsmeRok, seq, Pdu::UnbindResp);
                let _ = tokio::time::timeout(Duration::from_secs(1), conn.answer(resp)).await;
                // Give the writer a moment to put the unbind_resp on the wire.
                tokio::time::sleep(Duration::from_millis(50)).await;
                break;
            }
            // alert_notification has no response (SMPP 3.4 §4.12).
            (CommandId::AlertNotification, None) => continue,
            (other, None) => {
                tracing::info!(session = id, command = ?other, "request smsgw does not serve; generic_nack ESME_RINVCMDID");
                nack(seq, ESME_RINVCMDID)
            }
        };
        if !conn.answer(answer).await {
            break;
        }
    }
    tracing::debug!(session = id, "SMPP session closed");
    conn.close();
}

fn nack(seq: u32, status: u32) -> Command {
    Command::new(CommandStatus::from(status), seq, Pdu::GenericNack)
}

async fn keep_alive(conn: Arc<Conn>, every: Duration, t: Duration) {
    loop {
        tokio::time::sleep(every).await;
        if !conn.is_alive() {
            return;
        }
        let seq = conn.next_sequence();
        let rx = conn.pending.lock().unwrap().wait(seq);
        let ok = match conn.write(seq, Pdu::EnquireLink, t).await {
            WriteOutcome::Done => match rx {
                Some(rx) => matches!(tokio::time::timeout(t, rx).await, Ok(Ok(_))),
                None => false,
            },
            _ => false,
        };
        if !ok {
            tracing::warn!(session = conn.id, timeout = ?t, "no enquire_link_resp in time; closing the session");
            conn.pending.lock().unwrap().abandon(seq);
            conn.close();
            return;
        }
    }
}
