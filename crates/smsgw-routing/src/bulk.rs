//! Bulk sending through a route: many messages, bounded concurrency, one outcome per message.

use smsgw_core::{Message, Outcome, bulk};

use crate::outcome::Delivery;
use crate::router::Route;

/// The outcome of one message of a bulk send through a route: `result` is delivered (with
/// gateway, receipt and attempts) or failed (classified, with attempts); `elapsed` includes
/// waits for rate tokens and retries.
pub type RouteOutcome = Outcome<Delivery>;

impl Route {
    /// Sends many messages with at most `concurrency` in flight, yielding each outcome as it
    /// completes (not in input order); exactly one outcome per input message. The rate buckets,
    /// per-recipient tables and breakers are shared by all of them (and by every other send
    /// through the same [`Router`](crate::Router)).
    ///
    /// ```no_run
    /// # async fn f(route: smsgw_routing::Route) {
    /// use futures::StreamExt;
    /// let msgs = vec![smsgw_core::Message::new("+4915100", "hi"), smsgw_core::Message::new("+4915101", "hi")];
    /// let outcomes: Vec<_> = route.send_stream(futures::stream::iter(msgs), 64).collect().await;
    /// assert_eq!(outcomes.len(), 2);
    /// # }
    /// ```
    pub fn send_stream<'a, S>(
        &'a self,
        messages: S,
        concurrency: usize,
    ) -> impl futures::Stream<Item = RouteOutcome> + 'a
    where
        S: futures::Stream<Item = Message> + 'a,
    {
        bulk::stream(messages, concurrency, async |m: &Message| {
            self.send(m).await
        })
    }

    /// Sends all `messages` with at most `concurrency` in flight and returns the outcomes in input
    /// order, one per message.
    pub async fn send_all(&self, messages: Vec<Message>, concurrency: usize) -> Vec<RouteOutcome> {
        bulk::all(messages, concurrency, async |m: &Message| {
            self.send(m).await
        })
        .await
    }
}
