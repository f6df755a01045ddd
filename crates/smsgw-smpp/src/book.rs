//! Waiting for the delivery receipt of a message that was sent: [`ReceiptBook`].
//!
//! The book keeps the delivery reports of a provider (any provider with
//! [`Provider::delivery_reports`]) by message id, so a receipt that arrives on a new session after
//! a reconnect, or before the caller asks, is still found. It is bounded: entries older than the
//! expiry go, and at most [`MAX_RECEIPTS`] are kept (the oldest go first).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use smsgw_core::{DeliveryReport, Provider, Receipt};
use tokio::sync::{Notify, broadcast};
use tokio::time::Instant;

/// How long the service keeps a receipt mapping by default (72 hours).
pub const DEFAULT_RECEIPT_EXPIRY: Duration = Duration::from_secs(72 * 3600);
/// The most receipts a book keeps; beyond it the oldest go.
pub const MAX_RECEIPTS: usize = 200_000;

/// The receipt of one message, as `smsgw send --wait-receipt` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MessageReceipt {
    /// The final state as the SMSC names it (`DELIVRD`, `UNDELIV`, `EXPIRED`, …).
    pub state: String,
    /// The SMSC's error code (`000` when none), when it gave one.
    pub error: Option<String>,
    /// When the SMSC says the message reached that state, as it wrote it (`YYMMDDhhmm`).
    pub done_at: Option<String>,
    /// The message id the receipt is about (of the part that decided the state).
    pub message_id: String,
}

impl MessageReceipt {
    /// True when the SMSC says the message was delivered (`DELIVRD`).
    pub fn delivered(&self) -> bool {
        self.state.eq_ignore_ascii_case("DELIVRD")
    }
}

impl From<&DeliveryReport> for MessageReceipt {
    fn from(r: &DeliveryReport) -> Self {
        MessageReceipt {
            state: r.state.clone(),
            error: r.error.clone(),
            done_at: r.done_date.clone(),
            message_id: r.message_id.clone(),
        }
    }
}

/// Intermediate states: a later receipt will say how it ended.
fn is_final(state: &str) -> bool {
    !matches!(
        state.to_ascii_uppercase().as_str(),
        "ENROUTE" | "ACCEPTD" | "SCHEDULED"
    )
}

#[derive(Default)]
struct Entries {
    by_id: HashMap<String, (Instant, DeliveryReport)>,
    order: VecDeque<(Instant, String)>,
}

struct State {
    entries: Mutex<Entries>,
    changed: Notify,
    expiry: Duration,
}

impl State {
    fn record(&self, report: DeliveryReport) {
        if report.message_id.is_empty() {
            return;
        }
        let now = Instant::now();
        let mut e = self.entries.lock().unwrap();
        while let Some((at, _)) = e.order.front() {
            if now.duration_since(*at) <= self.expiry && e.order.len() < MAX_RECEIPTS {
                break;
            }
            let (at, id) = e.order.pop_front().expect("front exists");
            // Only remove the entry this order slot stands for (a newer report may replace it).
            if e.by_id.get(&id).is_some_and(|(t, _)| *t == at) {
                e.by_id.remove(&id);
            }
        }
        e.order.push_back((now, report.message_id.clone()));
        e.by_id.insert(report.message_id.clone(), (now, report));
        drop(e);
        self.changed.notify_waiters();
    }

    fn get(&self, id: &str) -> Option<DeliveryReport> {
        let e = self.entries.lock().unwrap();
        e.by_id
            .get(id)
            .filter(|(at, _)| at.elapsed() <= self.expiry)
            .map(|(_, r)| r.clone())
    }

    /// The receipt of a message from those of its parts: `None` until every part has a final
    /// one, except that a failed part decides at once. A delivered message is described by its
    /// last part.
    fn decide(&self, ids: &[String]) -> Option<MessageReceipt> {
        if ids.is_empty() {
            return None;
        }
        let reports: Vec<Option<DeliveryReport>> = ids.iter().map(|id| self.get(id)).collect();
        if let Some(failed) = reports
            .iter()
            .flatten()
            .find(|r| is_final(&r.state) && !r.state.eq_ignore_ascii_case("DELIVRD"))
        {
            return Some(failed.into());
        }
        if reports
            .iter()
            .all(|r| r.as_ref().is_some_and(|r| is_final(&r.state)))
        {
            return reports.last().cloned().flatten().map(|r| (&r).into());
        }
        None
    }
}

/// Delivery reports by message id, filled from a provider's report stream; see the module
/// documentation.
///
/// Create it **before** sending (it sees only reports that arrive after), then wait:
///
/// ```no_run
/// # async fn demo(provider: &dyn smsgw_core::Provider, message: &smsgw_core::Message) {
/// use std::time::Duration;
/// use smsgw_smpp::ReceiptBook;
/// let book = ReceiptBook::watch(provider, Duration::from_secs(600));
/// if let Ok(receipt) = provider.send(message).await {
///     if let Some(book) = &book {
///         match book.wait(&receipt, Duration::from_secs(30)).await {
///             Some(r) => println!("{} {:?}", r.state, r.error),
///             None => println!("no receipt in time"),
///         }
///     }
/// }
/// # }
/// ```
pub struct ReceiptBook {
    state: Arc<State>,
    collector: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for ReceiptBook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceiptBook")
            .field("expiry", &self.state.expiry)
            .field("entries", &self.state.entries.lock().unwrap().by_id.len())
            .finish()
    }
}

impl Drop for ReceiptBook {
    fn drop(&mut self) {
        self.collector.abort();
    }
}

impl ReceiptBook {
    /// A book fed by `provider`'s delivery reports, keeping each for `expiry`
    /// ([`DEFAULT_RECEIPT_EXPIRY`] in the service; the run's length in the CLI). `None` when the
    /// provider gives no reports (e.g. SMPP with `BIND = "transmitter"`). Needs a Tokio runtime.
    pub fn watch(provider: &dyn Provider, expiry: Duration) -> Option<ReceiptBook> {
        provider
            .delivery_reports()
            .map(|rx| Self::from_reports(rx, expiry))
    }

    /// A book fed by a report stream; see [`ReceiptBook::watch`].
    pub fn from_reports(
        mut reports: broadcast::Receiver<DeliveryReport>,
        expiry: Duration,
    ) -> ReceiptBook {
        let state = Arc::new(State {
            entries: Mutex::default(),
            changed: Notify::new(),
            expiry,
        });
        let st = state.clone();
        let collector = tokio::spawn(async move {
            loop {
                match reports.recv().await {
                    Ok(r) => st.record(r),
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(
                            missed = n,
                            "delivery reports came faster than they were recorded; some were missed"
                        );
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        ReceiptBook { state, collector }
    }

    /// Records a report by hand (what the collector does for each one it receives).
    pub fn record(&self, report: DeliveryReport) {
        self.state.record(report);
    }

    /// The report for one message id, if it arrived and has not expired.
    pub fn get(&self, message_id: &str) -> Option<DeliveryReport> {
        self.state.get(message_id)
    }

    /// Waits at most `within` for the receipt of the message `receipt` describes (all its
    /// parts). `None` when none came in time or the send gave no message id; never an error.
    pub async fn wait(&self, receipt: &Receipt, within: Duration) -> Option<MessageReceipt> {
        self.wait_all(std::slice::from_ref(receipt), within)
            .await
            .pop()
            .flatten()
    }

    /// Waits at most `within` (in all, not each) for the receipts of many messages, e.g. after
    /// the last send of a bulk run; one answer per message, in order, `None` where none came.
    pub async fn wait_all(
        &self,
        receipts: &[Receipt],
        within: Duration,
    ) -> Vec<Option<MessageReceipt>> {
        let deadline = Instant::now() + within;
        loop {
            // Register before looking, so a report recorded in between is not missed.
            let changed = self.state.changed.notified();
            let answers: Vec<Option<MessageReceipt>> = receipts
                .iter()
                .map(|r| self.state.decide(&r.message_ids))
                .collect();
            let outstanding = receipts
                .iter()
                .zip(&answers)
                .any(|(r, a)| a.is_none() && !r.message_ids.is_empty());
            if !outstanding || Instant::now() >= deadline {
                return answers;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return receipts
                    .iter()
                    .map(|r| self.state.decide(&r.message_ids))
                    .collect();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(id: &str, state: &str) -> DeliveryReport {
        DeliveryReport {
            gateway: "g".into(),
            message_id: id.into(),
            state: state.into(),
            error: Some("000".into()),
            done_date: Some("2501011200".into()),
            recipient: None,
        }
    }

    fn sent(ids: &[&str]) -> Receipt {
        let mut r = Receipt::new("g", "smpp");
        r.message_ids = ids.iter().map(|s| s.to_string()).collect();
        r
    }

    #[tokio::test]
    async fn waits_for_every_part_and_a_failure_decides() {
        let (tx, rx) = broadcast::channel(16);
        let book = ReceiptBook::from_reports(rx, Duration::from_secs(60));
        let two = sent(&["a", "b"]);
        tx.send(report("a", "DELIVRD")).unwrap();
        let started = Instant::now();
        assert_eq!(book.wait(&two, Duration::from_millis(200)).await, None);
        assert!(started.elapsed() >= Duration::from_millis(150));
        tx.send(report("b", "DELIVRD")).unwrap();
        let r = book.wait(&two, Duration::from_secs(5)).await.unwrap();
        assert_eq!((r.state.as_str(), r.message_id.as_str()), ("DELIVRD", "b"));
        assert!(r.delivered());
        tx.send(report("c", "ENROUTE")).unwrap();
        tx.send(report("d", "UNDELIV")).unwrap();
        let both = book
            .wait_all(&[sent(&["c", "d"]), sent(&[])], Duration::from_secs(5))
            .await;
        assert_eq!(both[0].as_ref().unwrap().state, "UNDELIV");
        assert_eq!(both[1], None);
    }

    #[tokio::test]
    async fn entries_expire() {
        let (_tx, rx) = broadcast::channel(16);
        let book = ReceiptBook::from_reports(rx, Duration::from_millis(50));
        book.record(report("x", "DELIVRD"));
        assert!(book.get("x").is_some());
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert!(book.get("x").is_none());
        book.record(report("y", "DELIVRD"));
        assert_eq!(book.state.entries.lock().unwrap().by_id.len(), 1);
    }
}
