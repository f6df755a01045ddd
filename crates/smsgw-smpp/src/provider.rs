//! The provider: one shared session per gateway, the window, the throughput limit, retries on
//! throttling and the classification of every failure.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use rusmpp::pdus::SubmitSm;
use rusmpp::types::{COctetString, EmptyOrFullCOctetString, OctetString};
use rusmpp::values::{
    DataCoding, EsmClass, Npi, PriorityFlag, RegisteredDelivery, ReplaceIfPresentFlag, ServiceType,
    Ton,
};
use rusmpp::{Command, CommandId, Pdu};
use smsgw_core::{DeliveryReport, ErrorKind, Message, Provider, Receipt, SendError};
use tokio::sync::{Semaphore, broadcast};
use tokio::time::Instant;

use crate::config::{BindMode, MAX_ADDRESS, Settings};
use crate::connection::Inbound;
use crate::encoding;
use crate::receipt;
use crate::session::{self, Session, WriteError};
use crate::status::{ESME_RMSGQFUL, ESME_RTHROTTLED, status_name};

/// How often a part refused with ESME_RTHROTTLED / ESME_RMSGQFUL is sent again.
pub const MAX_THROTTLE_RETRIES: u32 = 3;
/// How often a send opens a new session because the old one was gone before a part was written.
const MAX_RESESSIONS: u32 = 2;
/// Longest pause between two connection attempts after failures.
const MAX_RECONNECT_BACKOFF: Duration = Duration::from_secs(30);
/// First pause after a failed connection attempt; doubles with every further failure.
const FIRST_RECONNECT_BACKOFF: Duration = Duration::from_millis(250);

/// How many delivery reports wait for slow subscribers of
/// [`Provider::delivery_reports`]; a subscriber that falls further behind misses the oldest.
const REPORTS_CHANNEL: usize = 4096;

/// Hands the delivery receipts of every session (old or new) to the subscribers.
struct Receipts {
    gateway: String,
    reports: broadcast::Sender<DeliveryReport>,
}

impl Inbound for Receipts {
    fn message(&self, cmd: &Command) {
        match receipt::from_command(&self.gateway, cmd) {
            Some(report) => {
                tracing::debug!(
                    message_id = %report.message_id,
                    state = %report.state,
                    command = ?cmd.id(),
                    "delivery receipt"
                );
                let _ = self.reports.send(report);
            }
            None => {
                tracing::debug!(command = ?cmd.id(), "message that is not a delivery receipt ignored")
            }
        }
    }
}

/// An SMPP gateway: SMS centers over SMPP 3.4 with one persistent session.
///
/// Build it through the registry (provider `smpp`); see the crate documentation.
pub struct SmppProvider {
    inner: Arc<Inner>,
}

struct Inner {
    settings: Settings,
    slot: tokio::sync::Mutex<Slot>,
    window: Semaphore,
    rate: RateLimiter,
    reports: broadcast::Sender<DeliveryReport>,
    inbound: Arc<dyn Inbound>,
    reference: std::sync::atomic::AtomicU32,
    session_ids: AtomicU64,
}

#[derive(Default)]
struct Slot {
    session: Option<Arc<Session>>,
    failures: u32,
    next_attempt: Option<Instant>,
}

impl std::fmt::Debug for SmppProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmppProvider")
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

struct RateLimiter {
    interval: Option<Duration>,
    next: std::sync::Mutex<Option<Instant>>,
}

impl RateLimiter {
    fn new(per_second: u32) -> Self {
        RateLimiter {
            interval: (per_second > 0).then(|| Duration::from_secs_f64(1.0 / per_second as f64)),
            next: std::sync::Mutex::new(None),
        }
    }

    /// Waits for the next free slot; `false` (without taking one) when it is after `deadline`.
    async fn acquire(&self, deadline: Instant) -> bool {
        let Some(interval) = self.interval else {
            return true;
        };
        let slot = {
            let mut next = self.next.lock().unwrap();
            let now = Instant::now();
            let slot = next.map_or(now, |n| n.max(now));
            if slot > deadline {
                return false;
            }
            *next = Some(slot + interval);
            slot
        };
        tokio::time::sleep_until(slot).await;
        true
    }
}

/// How one attempt at one part ended, when not with a message id.
enum PartFail {
    /// Never written (session gone); a new session may take it.
    NotWritten,
    /// ESME_RTHROTTLED / ESME_RMSGQFUL.
    Throttled(u32),
    /// Any other error status.
    Refused(u32, CommandId),
    /// The outcome is unknown.
    Unknown(String),
    /// A wait before writing ran out.
    Queue(String),
}

impl SmppProvider {
    /// A provider for checked settings. Nothing is opened until the first send.
    pub(crate) fn new(settings: Settings) -> Self {
        let (reports, _) = broadcast::channel(REPORTS_CHANNEL);
        let inbound: Arc<dyn Inbound> = Arc::new(Receipts {
            gateway: settings.gateway.clone(),
            reports: reports.clone(),
        });
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() ^ d.as_secs() as u32)
            .unwrap_or(0);
        SmppProvider {
            inner: Arc::new(Inner {
                window: Semaphore::new(settings.window),
                rate: RateLimiter::new(settings.throughput),
                settings,
                slot: tokio::sync::Mutex::new(Slot::default()),
                reports,
                inbound,
                reference: std::sync::atomic::AtomicU32::new(seed),
                session_ids: AtomicU64::new(1),
            }),
        }
    }

    fn err(&self, kind: ErrorKind, msg: impl Into<String>) -> SendError {
        SendError::new(kind, &self.inner.settings.gateway, msg)
    }

    /// The live session, opening one (with back-off after failures) when there is none.
    async fn session(&self, deadline: Instant) -> Result<Arc<Session>, SendError> {
        let inner = &self.inner;
        let mut slot = tokio::time::timeout_at(deadline, inner.slot.lock())
            .await
            .map_err(|_| {
                self.err(
                    ErrorKind::NotSent,
                    "timed out waiting for the SMPP session to be established",
                )
            })?;
        if let Some(s) = &slot.session {
            if s.is_alive() {
                return Ok(s.clone());
            }
            tracing::debug!(session = s.id, "SMPP session is gone; reconnecting");
            slot.session = None;
        }
        if let Some(at) = slot.next_attempt
            && at > Instant::now()
        {
            if at > deadline {
                return Err(self.err(
                    ErrorKind::NotSent,
                    format!(
                        "the SMSC is unavailable ({} failed connection attempts); next attempt in {:.1}s",
                        slot.failures,
                        (at - Instant::now()).as_secs_f64()
                    ),
                ));
            }
            tokio::time::sleep_until(at).await;
        }
        let id = inner.session_ids.fetch_add(1, Ordering::Relaxed);
        let opened = tokio::time::timeout_at(
            deadline,
            session::open(&inner.settings, id, inner.inbound.clone()),
        )
        .await
        .unwrap_or_else(|_| {
            Err(self.err(
                ErrorKind::NotSent,
                "timed out connecting and binding to the SMSC",
            ))
        });
        match opened {
            Ok(s) => {
                slot.failures = 0;
                slot.next_attempt = None;
                let s = Arc::new(s);
                slot.session = Some(s.clone());
                Ok(s)
            }
            Err(e) => {
                slot.failures += 1;
                let backoff = FIRST_RECONNECT_BACKOFF
                    .saturating_mul(1 << (slot.failures - 1).min(16))
                    .min(MAX_RECONNECT_BACKOFF);
                slot.next_attempt = Some(Instant::now() + backoff);
                tracing::warn!(failures = slot.failures, backoff = ?backoff, "SMPP session not established: {}", e.message());
                Err(e)
            }
        }
    }

    fn submit_pdu(
        &self,
        destination: &str,
        data_coding: u8,
        esm_class: u8,
        short_message: &[u8],
    ) -> Result<SubmitSm, SendError> {
        let s = &self.inner.settings;
        let source = COctetString::from_str(&s.source_addr)
            .map_err(|_| self.err(ErrorKind::Config, "S_ADDR does not fit a submit_sm"))?;
        let dest = COctetString::from_str(destination).map_err(|_| {
            self.err(
                ErrorKind::Config,
                "the phone number does not fit a submit_sm destination_addr",
            )
        })?;
        let sm = OctetString::from_slice(short_message)
            .map_err(|_| self.err(ErrorKind::Config, "a message part is too long"))?;
        Ok(SubmitSm::builder()
            .service_type(ServiceType::default())
            .source_addr_ton(Ton::from(s.source_ton))
            .source_addr_npi(Npi::from(s.source_npi))
            .source_addr(source)
            .dest_addr_ton(Ton::from(s.dest_ton))
            .dest_addr_npi(Npi::from(s.dest_npi))
            .destination_addr(dest)
            // EsmClass::default() is not 0x00 on the wire: always set it from the octet.
            .esm_class(EsmClass::from(esm_class))
            .protocol_id(0)
            .priority_flag(PriorityFlag::from(0u8))
            .schedule_delivery_time(EmptyOrFullCOctetString::empty())
            .validity_period(EmptyOrFullCOctetString::empty())
            .registered_delivery(RegisteredDelivery::from(s.registered_delivery))
            .replace_if_present_flag(ReplaceIfPresentFlag::from(0u8))
            .data_coding(DataCoding::from(data_coding))
            .sm_default_msg_id(0)
            .short_message(sm)
            .build())
    }

    /// One attempt at one part: window, throughput, write, wait for the response.
    async fn submit_once(
        &self,
        session: &Session,
        pdu: SubmitSm,
        deadline: Instant,
    ) -> Result<String, PartFail> {
        let inner = &self.inner;
        let t = inner.settings.timeout;
        let _permit = tokio::time::timeout_at(deadline, inner.window.acquire())
            .await
            .map_err(|_| {
                PartFail::Queue(format!(
                    "waited too long for a free place in the window of {} submits",
                    inner.settings.window
                ))
            })?
            .expect("the semaphore is never closed");
        if !inner.rate.acquire(deadline).await {
            return Err(PartFail::Queue(format!(
                "THROUGHPUT {} a second leaves no slot in time",
                inner.settings.throughput
            )));
        }
        let (seq, waiting) = match session.request(pdu).await {
            Ok(w) => w,
            Err(WriteError::NotWritten) => return Err(PartFail::NotWritten),
            Err(WriteError::MaybeWritten(e)) => {
                return Err(PartFail::Unknown(format!(
                    "the connection failed while submit_sm was written: {e}"
                )));
            }
        };
        let resp: Command = match tokio::time::timeout(t, waiting).await {
            Ok(Ok(c)) => c,
            Ok(Err(_)) => {
                return Err(PartFail::Unknown(
                    "the connection to the SMSC was lost with the submit_sm in flight".into(),
                ));
            }
            Err(_) => {
                session.abandon(seq);
                return Err(PartFail::Unknown(format!("no submit_sm_resp within {t:?}")));
            }
        };
        let status = u32::from(resp.status());
        match (status, resp.pdu()) {
            (0, Some(Pdu::SubmitSmResp(r))) => Ok(r.message_id().to_string()),
            (0, _) if resp.id() == CommandId::SubmitSmResp => Ok(String::new()),
            (0, _) => Err(PartFail::Unknown(format!(
                "the SMSC answered submit_sm with {:?}",
                resp.id()
            ))),
            (ESME_RTHROTTLED | ESME_RMSGQFUL, _) => Err(PartFail::Throttled(status)),
            (s, _) => Err(PartFail::Refused(s, resp.id())),
        }
    }

    fn throttle_backoff(&self, attempt: u32) -> Duration {
        let s = &self.inner.settings;
        let base = (s.timeout / 10).clamp(Duration::from_millis(20), Duration::from_millis(500));
        let base = if s.throughput > 0 {
            base.max(Duration::from_secs_f64(1.0 / s.throughput as f64))
        } else {
            base
        };
        base * (1 << attempt.saturating_sub(1).min(8))
    }

    /// Sends the parts in order; `ids` collects the message ids of the accepted ones.
    async fn send_parts(
        &self,
        encoded: &encoding::Encoded,
        destination: &str,
        deadline: Instant,
        ids: &mut Vec<String>,
    ) -> Result<(), SendError> {
        let n = encoded.parts.len();
        let mut resessions = 0;
        let partial = |ids: &[String]| {
            if ids.is_empty() {
                String::new()
            } else {
                format!(
                    " ({} of {n} parts were accepted: {})",
                    ids.len(),
                    ids.join(", ")
                )
            }
        };
        for (i, part) in encoded.parts.iter().enumerate() {
            let mut throttled = 0;
            loop {
                let session = self.session(deadline).await.map_err(|e| {
                    let more = SendError::new(
                        e.kind(),
                        e.gateway(),
                        format!("{}{}", e.message(), partial(ids)),
                    );
                    match e.code() {
                        Some(code) => more.with_code(code),
                        None => more,
                    }
                })?;
                let pdu =
                    self.submit_pdu(destination, encoded.data_coding, encoded.esm_class(), part)?;
                match self.submit_once(&session, pdu, deadline).await {
                    Ok(id) => {
                        tracing::debug!(session = session.id, part = i + 1, parts = n, message_id = %id, "submit_sm accepted");
                        ids.push(id);
                        break;
                    }
                    Err(PartFail::NotWritten) => {
                        resessions += 1;
                        if resessions > MAX_RESESSIONS {
                            return Err(self.err(
                                ErrorKind::NotSent,
                                format!("the SMPP session kept closing before part {} could be written{}", i + 1, partial(ids)),
                            ));
                        }
                    }
                    Err(PartFail::Throttled(status)) => {
                        throttled += 1;
                        let name = status_name(status);
                        if throttled > MAX_THROTTLE_RETRIES {
                            return Err(self
                                .err(
                                    ErrorKind::NotSent,
                                    format!(
                                        "the SMSC kept answering {name} (tried {throttled} times){}",
                                        partial(ids)
                                    ),
                                )
                                .with_code(name));
                        }
                        let pause = self.throttle_backoff(throttled);
                        tracing::info!(part = i + 1, status = %name, pause = ?pause, "SMSC throttles; backing off");
                        if Instant::now() + pause > deadline {
                            return Err(self
                                .err(
                                    ErrorKind::NotSent,
                                    format!("the SMSC answered {name}{}", partial(ids)),
                                )
                                .with_code(name));
                        }
                        tokio::time::sleep(pause).await;
                    }
                    Err(PartFail::Refused(status, id)) => {
                        let name = status_name(status);
                        let what = if id == CommandId::GenericNack {
                            "generic_nack"
                        } else {
                            "submit_sm_resp"
                        };
                        return Err(self
                            .err(
                                ErrorKind::Refused,
                                format!(
                                    "the SMSC refused the message: {what} {name} (0x{status:08X}){}",
                                    partial(ids)
                                ),
                            )
                            .with_code(name));
                    }
                    Err(PartFail::Unknown(reason)) => {
                        return Err(self.err(
                            ErrorKind::Unknown,
                            format!("part {} of {n}: {reason}{}", i + 1, partial(ids)),
                        ));
                    }
                    Err(PartFail::Queue(reason)) => {
                        return Err(
                            self.err(ErrorKind::NotSent, format!("{reason}{}", partial(ids)))
                        );
                    }
                }
            }
        }
        Ok(())
    }

    /// A failure after some parts were accepted: those parts may reach the phone (a fragment
    /// of the text), so the message is `unknown` (may have been sent), never retry-safe.
    fn partial_failure(&self, e: SendError, ids: &[String], n: usize) -> SendError {
        if ids.is_empty() || e.kind() == ErrorKind::Unknown {
            return e;
        }
        let msg = format!(
            "{}; parts 1-{} of {n} were already accepted and may reach the phone, so the message may have been sent in part",
            e.message(),
            ids.len()
        );
        let out = SendError::new(ErrorKind::Unknown, e.gateway(), msg);
        match e.code() {
            Some(code) => out.with_code(code),
            None => out,
        }
    }

    async fn send_inner(&self, message: &Message) -> Result<Receipt, SendError> {
        let s = &self.inner.settings;
        // Used as given (the provider declares verbatim phone numbers): no trimming.
        let destination = message.phone.as_str();
        if destination.len() > MAX_ADDRESS
            || !destination.bytes().all(|b| (0x20..0x7f).contains(&b))
        {
            return Err(self.err(
                ErrorKind::Config,
                format!(
                    "the phone number '{destination}' cannot be an SMPP destination_addr (at most {MAX_ADDRESS} ASCII characters)"
                ),
            ));
        }
        let reference = self.inner.reference.fetch_add(1, Ordering::Relaxed) as u8;
        let encoded = encoding::encode(&message.text, reference).map_err(|e| {
            self.err(
                ErrorKind::Config,
                format!(
                    "the message needs {} SMS parts; at most {} can be concatenated",
                    e.parts,
                    encoding::MAX_PARTS
                ),
            )
        })?;
        let n = encoded.parts.len();
        let t = s.timeout;
        let throttle_allowance: Duration = (1..=MAX_THROTTLE_RETRIES)
            .map(|a| self.throttle_backoff(a))
            .sum();
        let deadline = Instant::now() + t * (2 + 2 * n as u32) + throttle_allowance;
        let mut ids: Vec<String> = Vec::with_capacity(n);
        if let Err(e) = self
            .send_parts(&encoded, destination, deadline, &mut ids)
            .await
        {
            return Err(self.partial_failure(e, &ids, n));
        }
        let mut receipt = Receipt::new(&s.gateway, "smpp").with_parts(n as u32);
        receipt.message_ids = ids;
        Ok(receipt)
    }
}

#[async_trait]
impl Provider for SmppProvider {
    async fn send(&self, message: &Message) -> Result<Receipt, SendError> {
        self.send_inner(message).await
    }

    fn delivery_reports(&self) -> Option<broadcast::Receiver<DeliveryReport>> {
        (self.inner.settings.bind == BindMode::Transceiver).then(|| self.inner.reports.subscribe())
    }

    async fn shutdown(&self) {
        let t = self.inner.settings.timeout;
        let session = match tokio::time::timeout(t, self.inner.slot.lock()).await {
            Ok(mut slot) => slot.session.take(),
            Err(_) => None,
        };
        if let Some(s) = session {
            s.unbind().await;
        }
    }
}
