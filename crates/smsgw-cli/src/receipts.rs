//! `--wait-receipt`: delivery receipts of the messages this run sent, waited for a bounded time.
//!
//! One book per gateway that gives reports (SMPP on a transceiver or receiver bind), created
//! before the first send so no receipt is missed. Without the `smpp` feature no provider gives
//! reports and every answer is "none arrived".

use std::time::Duration;

use serde_json::Value;
use smsgw::Receipt;
use smsgw::routing::Router;

/// How long a book keeps a receipt mapping in the CLI: longer than any run waits.
#[cfg(feature = "smpp")]
const EXPIRY: Duration = Duration::from_secs(24 * 3600);

/// The receipt books of a run, by gateway id.
pub(crate) struct Books {
    #[cfg(feature = "smpp")]
    books: std::collections::HashMap<String, smsgw::smpp::ReceiptBook>,
}

impl Books {
    /// Starts watching every gateway of `router` that gives reports. Needs the Tokio runtime.
    pub(crate) fn watch(router: &Router) -> Books {
        #[cfg(not(feature = "smpp"))]
        let _ = router;
        Books {
            #[cfg(feature = "smpp")]
            books: router
                .gateways()
                .iter()
                .filter_map(|g| {
                    let rx = g.delivery_reports()?;
                    let book = smsgw::smpp::ReceiptBook::from_reports(rx, EXPIRY);
                    Some((g.id().to_owned(), book))
                })
                .collect(),
        }
    }

    /// Waits at most `within` (in all) for the receipts of `sent` (gateway, receipt); one JSON
    /// value per message in order: the receipt, or `null` when none came in time.
    pub(crate) async fn wait_all(
        &self,
        sent: &[(String, Receipt)],
        within: Duration,
    ) -> Vec<Value> {
        #[cfg(feature = "smpp")]
        {
            let deadline = tokio::time::Instant::now() + within;
            let mut out = vec![Value::Null; sent.len()];
            for (id, book) in &self.books {
                let (idx, receipts): (Vec<usize>, Vec<Receipt>) = sent
                    .iter()
                    .enumerate()
                    .filter(|(_, (g, _))| g == id)
                    .map(|(i, (_, r))| (i, r.clone()))
                    .unzip();
                if receipts.is_empty() {
                    continue;
                }
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                for (i, a) in idx.into_iter().zip(book.wait_all(&receipts, left).await) {
                    out[i] = a.map_or(Value::Null, |r| serde_json::to_value(r).unwrap_or_default());
                }
            }
            out
        }
        #[cfg(not(feature = "smpp"))]
        {
            let _ = within;
            vec![Value::Null; sent.len()]
        }
    }
}

/// The plain-text line for a receipt (or its absence).
pub(crate) fn describe(receipt: &Value, within: Duration) -> String {
    if receipt.is_null() {
        return format!(
            "receipt: none within {} s (the message may still be delivered)",
            within.as_secs()
        );
    }
    let state = receipt["state"].as_str().unwrap_or("?");
    let mut s = format!("receipt: {state}");
    if let Some(e) = receipt["error"].as_str() {
        s.push_str(&format!(", error {e}"));
    }
    if let Some(d) = receipt["done_at"].as_str() {
        s.push_str(&format!(", done {d}"));
    }
    if !state.eq_ignore_ascii_case("DELIVRD") {
        s.push_str(" — NOT delivered");
    }
    s
}
