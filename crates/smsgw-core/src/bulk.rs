//! Bulk sending: many messages, bounded concurrency, exactly one timed outcome per message.
//!
//! The one streaming loop behind [`Gateway::send_stream`](crate::Gateway::send_stream) and the
//! routing crate's `Route::send_stream`: anything that sends one message (a gateway, a route, a
//! provider of a third party) gets bounded bulk sending by handing its send to [`stream`].

use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};

use crate::{Message, Receipt, SendError};

/// The outcome of one message of a bulk send: its position in the input, and what happened.
///
/// `R` is what one send answers: `Result<Receipt, SendError>` for a gateway (the default), a
/// delivery with gateway and attempts for a route.
#[derive(Debug)]
pub struct Outcome<R = Result<Receipt, SendError>> {
    /// The message's index in the input (0-based).
    pub index: usize,
    /// The message.
    pub message: Message,
    /// What the send answered (sent with the receipt, or failed and classified).
    pub result: R,
    /// How long the send took (from taking the message to its outcome), waits included.
    pub elapsed: Duration,
}

/// Sends each message of `messages` through `send` with at most `concurrency` in flight (at
/// least one), yielding each outcome as it completes (not in input order); exactly one outcome
/// per input message.
///
/// Input is pulled only as capacity frees up, so memory depends on `concurrency`, not on the
/// length of the input.
///
/// ```
/// # futures::executor::block_on(async {
/// use futures::StreamExt;
/// use smsgw_core::{Message, bulk};
/// let msgs = futures::stream::iter(vec![Message::new("+4915100", "hi"), Message::new("+4915101", "ho")]);
/// let outcomes: Vec<_> = bulk::stream(msgs, 8, async |m: &Message| m.text.len()).collect().await;
/// assert_eq!(outcomes.len(), 2);
/// # });
/// ```
pub fn stream<'a, S, F, R>(
    messages: S,
    concurrency: usize,
    send: F,
) -> impl Stream<Item = Outcome<R>> + 'a
where
    S: Stream<Item = Message> + 'a,
    // `Copy` lets every in-flight send own its handle (callers capture a reference).
    F: AsyncFn(&Message) -> R + Copy + 'a,
    R: 'a,
{
    messages
        .enumerate()
        .map(move |(index, message)| async move {
            let start = Instant::now();
            let result = send(&message).await;
            Outcome {
                index,
                message,
                result,
                elapsed: start.elapsed(),
            }
        })
        .buffer_unordered(concurrency.max(1))
}

/// Like [`stream`] for a list, returning the outcomes in input order, one per message.
///
/// ```
/// # futures::executor::block_on(async {
/// use smsgw_core::{Message, bulk};
/// let msgs = vec![Message::new("+4915100", "hi"), Message::new("+4915101", "ho")];
/// let outcomes = bulk::all(msgs, 8, async |m: &Message| m.phone.clone()).await;
/// assert_eq!(outcomes[1].result, "+4915101");
/// # });
/// ```
pub async fn all<F, R>(messages: Vec<Message>, concurrency: usize, send: F) -> Vec<Outcome<R>>
where
    F: AsyncFn(&Message) -> R + Copy,
{
    let mut out: Vec<Outcome<R>> = stream(futures::stream::iter(messages), concurrency, send)
        .collect()
        .await;
    out.sort_by_key(|o| o.index);
    out
}
