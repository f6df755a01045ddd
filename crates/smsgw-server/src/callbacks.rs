//! Status callbacks: a POST of the message's JSON to its `callback_url`, signed with
//! `X-Smsgw-Signature: sha256=<hex HMAC-SHA256(body)>`, retried with backoff for a day. They
//! come from the queue's outbox, so they survive restarts and never hold up sending.

use std::sync::Arc;
use std::time::Duration;

use hmac::{KeyInit as _, Mac as _};
use smsgw_queue::{CallbackJob, Queue, now_ms};
use tokio::sync::{Notify, Semaphore, watch};

use crate::api::messages::message_json;

/// How long a callback is retried.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(24 * 3600);
/// How long one callback request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Callbacks in flight at once.
const CONCURRENCY: usize = 16;

/// `sha256=<hex>` of `body` under `secret`.
///
/// ```
/// let s = smsgw_server::sign(b"secret", b"{}");
/// assert!(s.starts_with("sha256=") && s.len() == 7 + 64);
/// ```
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// 5 s, 10 s, 20 s … at most an hour.
fn backoff(tries: u32) -> Duration {
    Duration::from_secs(5u64 << tries.min(10)).min(Duration::from_secs(3600))
}

/// Sends due callbacks until `stop`.
pub async fn run(queue: Arc<dyn Queue>, wake: Arc<Notify>, mut stop: watch::Receiver<bool>) {
    let secret = match queue.server_secret().await {
        Ok(s) => Arc::new(s),
        Err(e) => {
            tracing::error!(error = %e, "no callback secret; callbacks are not sent");
            return;
        }
    };
    let client = match reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the callback client");
            return;
        }
    };
    let permits = Arc::new(Semaphore::new(CONCURRENCY));
    let in_flight = Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
    loop {
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            return;
        }
        let jobs = match queue.due_callbacks(CONCURRENCY * 4).await {
            Ok(j) => j,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the callback outbox");
                continue;
            }
        };
        for job in jobs {
            if !in_flight.lock().expect("not poisoned").insert(job.id) {
                continue;
            }
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let (queue, client, secret, in_flight) = (
                queue.clone(),
                client.clone(),
                secret.clone(),
                in_flight.clone(),
            );
            tokio::spawn(async move {
                deliver(&*queue, &client, &secret, &job).await;
                in_flight.lock().expect("not poisoned").remove(&job.id);
                drop(permit);
            });
        }
    }
}

async fn deliver(queue: &dyn Queue, client: &reqwest::Client, secret: &[u8], job: &CallbackJob) {
    let body = match queue.get(&job.message_id).await {
        Ok(Some(mut rec)) => {
            rec.status = job.status;
            // No text in callbacks: they go to another system, and the text may be an OTP.
            message_json(&rec, false).to_string()
        }
        Ok(None) => {
            let _ = queue.callback_done(job.id).await;
            return;
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot read a message for its callback");
            return;
        }
    };
    let r = client
        .post(&job.url)
        .header("content-type", "application/json")
        .header("x-smsgw-signature", sign(secret, body.as_bytes()))
        .body(body)
        .send()
        .await;
    let ok = matches!(&r, Ok(resp) if resp.status().is_success());
    let target = smsgw_core::url_without_credentials(&job.url);
    if ok {
        let _ = queue.callback_done(job.id).await;
        return;
    }
    let why = match r {
        Ok(resp) => format!("HTTP {}", resp.status().as_u16()),
        Err(e) => e.without_url().to_string(),
    };
    let age = Duration::from_millis((now_ms() - job.created_at).max(0) as u64);
    if age >= GIVE_UP_AFTER {
        tracing::warn!(id = %job.message_id, url = %target, "callback given up after a day: {why}");
        let _ = queue.callback_done(job.id).await;
    } else {
        tracing::info!(id = %job.message_id, url = %target, tries = job.tries + 1, "callback failed, will retry: {why}");
        let next = now_ms() + backoff(job.tries).as_millis() as i64;
        let _ = queue.callback_retry(job.id, next).await;
    }
}
