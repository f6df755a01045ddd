//! The running lanes as the accepting side sees them. A lane feeds one target (the delivery loop
//! is [`crate::worker`]). While it runs and has room, a message accepted for that target is
//! stored already claimed and handed to it in memory ([`Wake::enqueue`]): the message skips the
//! claim's write to the store and the wait for it. The store does this only when no older message
//! of the target waits ([`Queue::enqueue_claimed`]), so a backlog is still sent oldest first.
//! Otherwise the message is stored `queued` and the lane (or, when none runs, the worker) is told
//! to claim.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use smsgw_queue::{Claimed, Enqueued, NewMessage, Queue, QueueError, Status, Target};
use tokio::sync::{Notify, mpsc};

/// Tells the worker that messages were accepted, and hands messages to running lanes.
#[derive(Default)]
pub struct Wake {
    /// Wakes the worker to look for targets without a lane.
    pub(crate) notify: Notify,
    lanes: Mutex<HashMap<Target, Arc<Lane>>>,
    /// Orders queued accepts against claims: see [`LaneState::dirty`].
    tickets: AtomicU64,
}

impl Wake {
    /// Messages for `target` were stored `queued`: its lane claims them, or the worker starts one.
    pub fn accepted(&self, target: &Target) {
        // Taken after the store answered: a claim whose ticket is higher was sent to the store
        // after this message was written, so it sees it.
        let ticket = self.ticket();
        let lane = self.lanes().get(target).cloned();
        match lane {
            Some(lane) => {
                let mut s = lane.state();
                s.dirty = s.dirty.max(ticket);
                s.caught_up = false;
                drop(s);
                lane.poke.notify_one();
            }
            None => self.notify.notify_one(),
        }
    }

    /// Stores one accepted message and has it sent: handed to its target's lane when the lane
    /// takes it (see the module's introduction), else queued.
    pub async fn enqueue(
        &self,
        queue: &dyn Queue,
        msg: NewMessage,
    ) -> Result<Enqueued, QueueError> {
        let target = msg.target.clone();
        let done = match self.reserve(&target) {
            Some(r) => {
                let lease = r.lane.lease;
                // Dropped uncalled (message not stored claimed, or an error): the place is freed.
                queue
                    .enqueue_claimed(msg, lease, Box::new(move |c| r.deliver(c)))
                    .await?
            }
            None => queue.enqueue(msg).await?,
        };
        if done.created && done.record.status == Status::Sending {
            metrics::counter!("smsgw_messages_handed_over_total").increment(1);
        } else {
            self.accepted(&target);
        }
        Ok(done)
    }

    fn reserve(&self, target: &Target) -> Option<Reservation> {
        let lane = self.lanes().get(target)?.clone();
        let mut s = lane.state();
        if !(s.open && s.reserved + s.held < lane.room) {
            return None;
        }
        s.reserved += 1;
        drop(s);
        Some(Reservation {
            lane,
            resolved: false,
        })
    }

    /// The next ticket. Acquire and release, so that ticket order is also the order in which
    /// the store got the requests made before and after taking them.
    pub(crate) fn ticket(&self) -> u64 {
        self.tickets.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Registers a lane for `target`; `None` when one runs already.
    pub(crate) fn open_lane(
        &self,
        target: &Target,
        lease: Duration,
        room: usize,
    ) -> Option<(Arc<Lane>, mpsc::UnboundedReceiver<Claimed>)> {
        let mut lanes = self.lanes();
        if lanes.contains_key(target) {
            return None;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let lane = Arc::new(Lane {
            state: Mutex::new(LaneState {
                open: true,
                ..LaneState::default()
            }),
            tx,
            poke: Notify::new(),
            lease,
            room,
        });
        lanes.insert(target.clone(), lane.clone());
        Some((lane, rx))
    }

    /// Forgets the lane of `target` (it has ended).
    pub(crate) fn close_lane(&self, target: &Target) {
        self.lanes().remove(target);
    }

    fn lanes(&self) -> MutexGuard<'_, HashMap<Target, Arc<Lane>>> {
        self.lanes.lock().expect("not poisoned")
    }
}

/// One running lane's shared part.
pub(crate) struct Lane {
    state: Mutex<LaneState>,
    /// Messages stored claimed for this lane. Unbounded, because a sender holds a reservation:
    /// at most `room` messages are in it or in the lane's hands.
    tx: mpsc::UnboundedSender<Claimed>,
    /// Wakes the lane: messages were queued for it, or a reservation ended while it closes.
    pub(crate) poke: Notify,
    lease: Duration,
    /// How many messages the lane holds unsent at most (claimed, handed over or reserved).
    room: usize,
}

#[derive(Default)]
struct LaneState {
    /// Takes hand-overs (false once the lane ends).
    open: bool,
    /// Nothing queued is left in the store: claim only at the periodic look.
    caught_up: bool,
    /// The ticket of the latest message queued for this target. A claim that found less than it
    /// asked for proves the lane caught up only if its ticket is higher.
    dirty: u64,
    /// Places given to accepts whose message is not yet stored.
    reserved: usize,
    /// Messages handed over or claimed, not yet sending.
    held: usize,
}

impl Lane {
    fn state(&self) -> MutexGuard<'_, LaneState> {
        self.state.lock().expect("not poisoned")
    }

    /// How many messages to claim now, if any: when messages may be queued in the store and at
    /// most half the lane's room is taken, or at a periodic `look` (for retries and expired
    /// leases) whatever room is free.
    pub(crate) fn wants(&self, look: bool) -> usize {
        let s = self.state();
        let free = self.room.saturating_sub(s.held + s.reserved);
        let due = look || (!s.caught_up && s.held + s.reserved <= self.room / 2);
        if due { free } else { 0 }
    }

    /// A claim with `ticket` asked for `want` messages and got `got`.
    pub(crate) fn claimed(&self, want: usize, got: usize, ticket: u64) {
        let mut s = self.state();
        s.held += got;
        if got < want {
            s.caught_up |= s.dirty < ticket;
        } else {
            s.caught_up = false;
        }
    }

    /// A held message starts sending.
    pub(crate) fn sending(&self) {
        let mut s = self.state();
        s.held = s.held.saturating_sub(1);
    }

    /// Stops taking hand-overs if the lane holds nothing and nothing is reserved; true if so.
    pub(crate) fn close_if_idle(&self) -> bool {
        let mut s = self.state();
        if s.held == 0 && s.reserved == 0 {
            s.open = false;
        }
        !s.open
    }

    /// Stops taking hand-overs and waits (at most `limit`) until every reserved message was
    /// handed over or given up: afterwards `rx` holds every message handed to this lane.
    pub(crate) async fn close(&self, limit: Duration) {
        self.state().open = false;
        let until = tokio::time::Instant::now() + limit;
        while self.state().reserved > 0 {
            if tokio::time::timeout_at(until, self.poke.notified())
                .await
                .is_err()
            {
                tracing::warn!(
                    "accepts still being stored as a lane stops; they are sent after their lease"
                );
                return;
            }
        }
    }
}

/// A place in a lane for one message being accepted.
struct Reservation {
    lane: Arc<Lane>,
    resolved: bool,
}

impl Reservation {
    /// The message is stored claimed: the lane takes it.
    fn deliver(mut self, c: Claimed) {
        let mut s = self.lane.state();
        // Sent and counted before the place is freed, so that a closing lane that sees no place
        // reserved finds the message in its channel.
        if self.lane.tx.send(c).is_err() {
            tracing::warn!(
                "a lane ended before a message stored for it arrived; it is sent after its lease"
            );
        } else {
            s.held += 1;
        }
        s.reserved -= 1;
        self.resolved = true;
        let closing = !s.open;
        drop(s);
        if closing {
            self.lane.poke.notify_one();
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.resolved {
            let mut s = self.lane.state();
            s.reserved -= 1;
            drop(s);
            // A closing lane waits for this; an open one may now claim into the place.
            self.lane.poke.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lane(wake: &Wake) -> (Arc<Lane>, mpsc::UnboundedReceiver<Claimed>, Target) {
        let t = Target::Gateway("gw".into());
        let (lane, rx) = wake
            .open_lane(&t, Duration::from_secs(30), 4)
            .expect("no lane yet");
        assert!(wake.open_lane(&t, Duration::from_secs(30), 4).is_none());
        (lane, rx, t)
    }

    /// When a lane claims: until a claim proves nothing queued is left, and again after every
    /// message queued for it — but not for a message queued before a claim that proved that.
    #[test]
    fn a_lane_claims_until_nothing_queued_is_left() {
        let wake = Wake::default();
        let (lane, _rx, t) = lane(&wake);
        assert_eq!(lane.wants(false), 4, "a new lane claims");

        // A full claim: more may wait, claim again once half the room is free.
        lane.claimed(4, 4, wake.ticket());
        assert_eq!(lane.wants(false), 0, "no room");
        (0..3).for_each(|_| lane.sending());
        assert_eq!(lane.wants(false), 3);

        // A claim that found less than it asked for: caught up, claims only at the look.
        lane.claimed(3, 0, wake.ticket());
        assert_eq!(lane.wants(false), 0);
        assert_eq!(lane.wants(true), 3, "the periodic look");

        // A message queued after a claim was sent: that claim may have missed it.
        let old_ticket = wake.ticket();
        wake.accepted(&t);
        assert_eq!(lane.wants(false), 3);
        lane.claimed(3, 0, old_ticket);
        assert_eq!(lane.wants(false), 3, "claim again");
        lane.claimed(3, 0, wake.ticket());
        assert_eq!(lane.wants(false), 0);
    }

    /// Hand-overs take places in the lane's room, and give them back when not used.
    #[test]
    fn hand_overs_fill_the_room_and_no_more() {
        let wake = Wake::default();
        let (lane, _rx, t) = lane(&wake);
        lane.claimed(4, 1, wake.ticket());
        let rs: Vec<_> = (0..3).map(|_| wake.reserve(&t).expect("room")).collect();
        assert!(
            wake.reserve(&t).is_none(),
            "1 held and 3 reserved fill the 4 places"
        );
        assert_eq!(lane.wants(true), 0, "no room to claim into either");
        drop(rs);
        assert!(wake.reserve(&t).is_some(), "places given back");
        assert!(
            wake.reserve(&Target::Gateway("other".into())).is_none(),
            "no lane"
        );
    }

    /// A closing lane takes no hand-over, waits for reserved places, and finds every message
    /// handed to it in its channel.
    #[tokio::test]
    async fn a_closing_lane_waits_for_its_reservations() {
        let wake = Wake::default();
        let (lane, mut rx, t) = lane(&wake);
        let r = wake.reserve(&t).expect("room");
        assert!(!lane.close_if_idle(), "a place is reserved");
        let closing = {
            let lane = lane.clone();
            tokio::spawn(async move { lane.close(Duration::from_secs(5)).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!closing.is_finished(), "waits for the reservation");
        assert!(wake.reserve(&t).is_none(), "closed to new hand-overs");
        let record = smsgw_queue::MessageRecord {
            id: "m1".into(),
            to: "+1".into(),
            text: Some("x".into()),
            target: t.clone(),
            status: Status::Sending,
            attempts: Vec::new(),
            message_ids: Vec::new(),
            metadata: None,
            callback_url: None,
            idempotency_key: None,
            possible_duplicate: false,
            created_at: 0,
            updated_at: 0,
        };
        r.deliver(Claimed { record, lease: 1 });
        closing.await.unwrap();
        assert_eq!(rx.try_recv().unwrap().record.id, "m1");
    }
}
