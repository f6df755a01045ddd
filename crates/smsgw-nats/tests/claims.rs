//! Claims without a write: a first delivery leaves the record `queued`; the broker's delivery
//! count tells a later delivery that an earlier one ended without an outcome (and may have
//! sent), which flags the message and fences the earlier holder out.

mod support;

use std::time::Duration;

use smsgw_nats::{NatsOptions, NatsQueue};
use smsgw_queue::{Attempt, NewMessage, Outcome, Queue, QueueError, Status, Target, now_ms};
use support::NatsServer;

fn msg(text: &str) -> NewMessage {
    NewMessage {
        to: "+491511234567".into(),
        text: text.into(),
        target: Target::Gateway("sms1".into()),
        metadata: None,
        callback_url: None,
        idempotency_key: None,
    }
}

fn sent() -> (Vec<Attempt>, Outcome) {
    let a = Attempt {
        gateway: "sms1".into(),
        kind: "sent".into(),
        error: None,
        ms: 1,
        at: now_ms(),
    };
    (
        vec![a],
        Outcome::Sent {
            message_ids: vec![],
        },
    )
}

async fn node(url: &str, ack_wait: Duration) -> NatsQueue {
    let opts = NatsOptions {
        ack_wait,
        request_timeout: Duration::from_secs(5),
        ..NatsOptions::default()
    };
    NatsQueue::connect(url, opts).await.expect("connect")
}

/// Claims on `q` until a message comes (bounded).
async fn claim_one(q: &NatsQueue) -> smsgw_queue::Claimed {
    let gw = Target::Gateway("sms1".into());
    let until = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let mut c = q.claim(&gw, 1, Duration::from_secs(1)).await.unwrap();
        if let Some(c) = c.pop() {
            return c;
        }
        assert!(tokio::time::Instant::now() < until, "never delivered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_redelivered_first_delivery_is_a_possible_duplicate() {
    let nats = NatsServer::start();
    let api = node(&nats.url(), Duration::from_secs(1)).await;
    let id = api.enqueue(msg("a")).await.unwrap().record.id;

    // The first worker takes it (no write: the record stays `queued`) and dies.
    let dead = node(&nats.url(), Duration::from_secs(1)).await;
    let first = claim_one(&dead).await;
    assert!(!first.record.possible_duplicate);
    let rec = api.get(&id).await.unwrap().unwrap();
    assert_eq!(rec.status, Status::Queued);
    assert!(!rec.possible_duplicate);
    drop(dead);

    // The next delivery knows from the broker's count that an earlier one may have sent it.
    let w = node(&nats.url(), Duration::from_secs(1)).await;
    let again = claim_one(&w).await;
    assert_eq!(again.record.id, id);
    assert!(again.record.possible_duplicate);
    let rec = api.get(&id).await.unwrap().unwrap();
    assert_eq!(
        rec.status,
        Status::Sending,
        "a redelivery is fenced by a write"
    );
    assert!(rec.possible_duplicate);
    let (attempts, outcome) = sent();
    let done = w
        .complete(&id, again.lease, attempts, outcome)
        .await
        .unwrap();
    assert_eq!(done.status, Status::Sent);
    assert!(done.possible_duplicate);
}

#[tokio::test]
async fn a_hung_first_delivery_cannot_record_over_the_next_one() {
    let nats = NatsServer::start();
    // The consumer (and its 1 s ack wait) is made by the first node that claims.
    let fast = node(&nats.url(), Duration::from_secs(1)).await;
    let gw = Target::Gateway("sms1".into());
    assert!(
        fast.claim(&gw, 1, Duration::from_secs(1))
            .await
            .unwrap()
            .is_empty()
    );
    let id = fast.enqueue(msg("b")).await.unwrap().record.id;

    // A worker whose heartbeat (every 20 s) comes too late for the consumer's ack wait: to the
    // broker it looks hung, yet it finishes its send later.
    let slow = node(&nats.url(), Duration::from_secs(60)).await;
    let hung = claim_one(&slow).await;
    assert!(!hung.record.possible_duplicate);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let next = claim_one(&fast).await;
    assert_eq!(next.record.id, id);
    assert!(next.record.possible_duplicate);

    let (attempts, outcome) = sent();
    let late = slow
        .complete(&id, hung.lease, attempts.clone(), outcome.clone())
        .await;
    assert!(matches!(late, Err(QueueError::LeaseLost(_))), "{late:?}");
    let done = fast
        .complete(&id, next.lease, attempts, outcome)
        .await
        .unwrap();
    assert_eq!(done.status, Status::Sent);
    assert!(done.possible_duplicate, "both may have sent it: it says so");
    assert_eq!(done.attempts.len(), 1);
}

#[tokio::test]
async fn a_settled_retry_is_claimed_without_a_write_and_not_flagged() {
    let nats = NatsServer::start();
    let q = node(&nats.url(), Duration::from_secs(1)).await;
    let id = q.enqueue(msg("c")).await.unwrap().record.id;
    let c = claim_one(&q).await;
    let a = Attempt {
        gateway: "sms1".into(),
        kind: "not_sent".into(),
        error: Some("busy".into()),
        ms: 1,
        at: now_ms(),
    };
    let r = q
        .complete(
            &id,
            c.lease,
            vec![a],
            Outcome::Retry {
                not_before: now_ms() + 100,
            },
        )
        .await
        .unwrap();
    assert_eq!(r.status, Status::Queued);
    let again = claim_one(&q).await;
    assert!(!again.record.possible_duplicate, "a nak is not a crash");
    assert_eq!(q.get(&id).await.unwrap().unwrap().status, Status::Queued);
    let (attempts, outcome) = sent();
    let done = q
        .complete(&id, again.lease, attempts, outcome)
        .await
        .unwrap();
    assert_eq!(done.status, Status::Sent);
    assert!(!done.possible_duplicate);
    assert_eq!(done.attempts.len(), 2);
}

/// Enqueues a message and puts a second copy of it in the stream, as when an API node's
/// publish is retried after the dedup window while the first copy still waits (published here
/// without a message id, which the dedup window would drop).
async fn two_copies(nats: &NatsServer, api: &NatsQueue) -> smsgw_queue::MessageRecord {
    let rec = api.enqueue(msg("d")).await.unwrap().record;
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    js.publish(
        smsgw_nats::names::msg_subject(&rec.target),
        serde_json::to_vec(&rec).unwrap().into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    rec
}

#[tokio::test]
async fn one_process_never_holds_two_copies_of_a_message() {
    let nats = NatsServer::start();
    let api = node(&nats.url(), Duration::from_secs(5)).await;
    let rec = two_copies(&nats, &api).await;
    let w = node(&nats.url(), Duration::from_secs(5)).await;
    let gw = Target::Gateway("sms1".into());
    let both = w.claim(&gw, 10, Duration::from_secs(5)).await.unwrap();
    assert_eq!(both.len(), 1, "{both:?}");
    let (attempts, outcome) = sent();
    w.complete(&rec.id, both[0].lease, attempts, outcome)
        .await
        .unwrap();
    // The second copy comes back after its delay, finds the outcome and is settled unsent.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        w.claim(&gw, 10, Duration::from_secs(5))
            .await
            .unwrap()
            .is_empty()
    );
    let done = api.get(&rec.id).await.unwrap().unwrap();
    assert_eq!(done.status, Status::Sent);
    assert!(!done.possible_duplicate, "sent once");
    assert_eq!(api.status().await.unwrap().depth, 0);
}

#[tokio::test]
async fn two_copies_sent_at_once_leave_the_message_flagged() {
    let nats = NatsServer::start();
    let api = node(&nats.url(), Duration::from_secs(5)).await;
    let rec = two_copies(&nats, &api).await;

    // Two workers take one copy each; each is a first delivery, claimed without a write.
    let (a, b) = (
        node(&nats.url(), Duration::from_secs(5)).await,
        node(&nats.url(), Duration::from_secs(5)).await,
    );
    let (ca, cb) = (claim_one(&a).await, claim_one(&b).await);
    assert_eq!(
        (ca.record.id.as_str(), cb.record.id.as_str()),
        (rec.id.as_str(), rec.id.as_str())
    );
    let (attempts, outcome) = sent();
    let first = a
        .complete(&rec.id, ca.lease, attempts.clone(), outcome.clone())
        .await
        .unwrap();
    assert!(!first.possible_duplicate);
    // The second outcome loses the race, but both were sent: the record must say so.
    let second = b.complete(&rec.id, cb.lease, attempts, outcome).await;
    assert!(
        matches!(second, Err(QueueError::LeaseLost(_))),
        "{second:?}"
    );
    let now = api.get(&rec.id).await.unwrap().unwrap();
    assert_eq!(now.status, Status::Sent);
    assert!(now.possible_duplicate, "{now:?}");
}

#[tokio::test]
async fn several_outcomes_at_once_answer_in_order() {
    let nats = NatsServer::start();
    let q = node(&nats.url(), Duration::from_secs(5)).await;
    let a = q.enqueue(msg("e1")).await.unwrap().record.id;
    let b = q.enqueue(msg("e2")).await.unwrap().record.id;
    let gw = Target::Gateway("sms1".into());
    let claimed = q.claim(&gw, 10, Duration::from_secs(5)).await.unwrap();
    assert_eq!(claimed.len(), 2);
    let lease_of = |id: &str| claimed.iter().find(|c| c.record.id == id).unwrap().lease;
    let (attempts, outcome) = sent();
    let answers = q
        .complete_many(vec![
            smsgw_queue::Completion {
                id: b.clone(),
                lease: lease_of(&b) + 7,
                attempts: attempts.clone(),
                outcome: outcome.clone(),
            },
            smsgw_queue::Completion {
                id: a.clone(),
                lease: lease_of(&a),
                attempts,
                outcome,
            },
        ])
        .await;
    assert_eq!(answers.len(), 2);
    assert!(
        matches!(&answers[0], Err(QueueError::LeaseLost(id)) if *id == b),
        "{answers:?}"
    );
    let done = answers[1].as_ref().unwrap();
    assert_eq!((done.id.as_str(), done.status), (a.as_str(), Status::Sent));
    assert!(!done.callback_queued);
}
