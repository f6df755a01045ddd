//! The JetStream queue against a real `nats-server -js` on loopback, at the `Queue` trait level.

mod support;

use std::time::Duration;

use smsgw_nats::{NatsOptions, NatsQueue};
use smsgw_queue::{
    Attempt, DefKind, NewMessage, Outcome, Queue, QueueError, Receipt, Scope, Status, StoredDef,
    Target, TokenRecord, now_ms,
};
use support::NatsServer;

fn msg(gw: &str, text: &str) -> NewMessage {
    NewMessage {
        to: "+491511234567".into(),
        text: text.into(),
        target: Target::Gateway(gw.into()),
        metadata: Some(serde_json::json!({"order": 7})),
        callback_url: None,
        idempotency_key: None,
    }
}

fn attempt(gw: &str, kind: &str) -> Attempt {
    Attempt {
        gateway: gw.into(),
        kind: kind.into(),
        error: (kind != "sent").then(|| format!("{kind} for the test")),
        ms: 1,
        at: now_ms(),
    }
}

async fn node(url: &str, opts: NatsOptions) -> NatsQueue {
    NatsQueue::connect(url, opts).await.expect("connect")
}

fn fast() -> NatsOptions {
    NatsOptions {
        ack_wait: Duration::from_secs(1),
        request_timeout: Duration::from_secs(5),
        ..NatsOptions::default()
    }
}

#[tokio::test]
async fn a_message_lives_the_same_on_every_node() {
    let nats = NatsServer::start();
    let (a, b) = (
        node(&nats.url(), fast()).await,
        node(&nats.url(), fast()).await,
    );
    let mut m = msg("sms1", "otp-secret-417");
    m.callback_url = Some("http://127.0.0.1:9/cb".into());
    let id = a.enqueue(m).await.unwrap().record.id;
    // The other API node answers the same.
    let seen = b.get(&id).await.unwrap().expect("on node b");
    assert_eq!(seen.status, Status::Queued);
    assert_eq!(seen.metadata, Some(serde_json::json!({"order": 7})));
    assert_eq!(
        b.ready_targets().await.unwrap(),
        vec![Target::Gateway("sms1".into())]
    );

    let claimed = b
        .claim(&Target::Gateway("sms1".into()), 10, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].record.status, Status::Sending);
    // A first delivery is claimed without a write: the record says `queued` until the outcome
    // (tests/claims.rs checks what a later delivery makes of that).
    assert_eq!(a.get(&id).await.unwrap().unwrap().status, Status::Queued);
    // An outcome under a wrong lease is refused.
    let wrong = b
        .complete(
            &id,
            claimed[0].lease + 1,
            vec![],
            Outcome::Final {
                status: Status::Failed,
            },
        )
        .await;
    assert!(matches!(wrong, Err(QueueError::LeaseLost(_))), "{wrong:?}");
    let done = b
        .complete(
            &id,
            claimed[0].lease,
            vec![attempt("sms1", "sent")],
            Outcome::Sent {
                message_ids: vec!["p-1".into()],
            },
        )
        .await
        .unwrap();
    assert_eq!(done.status, Status::Sent);
    assert_eq!(a.get(&id).await.unwrap().unwrap().message_ids, vec!["p-1"]);

    // Acked: nothing more to take.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(a.ready_targets().await.unwrap().is_empty());

    // A delivery receipt reaches the message through the provider id, on any node.
    let r = Receipt {
        gateway: "sms1".into(),
        provider_id: "p-1".into(),
        delivered: true,
    };
    assert_eq!(
        a.record_receipt(&r).await.unwrap().unwrap().status,
        Status::Delivered
    );
    let unknown = Receipt {
        provider_id: "nope".into(),
        ..r
    };
    assert!(a.record_receipt(&unknown).await.unwrap().is_none());

    // One callback per final status (sent, delivered), taken once across nodes.
    let jobs = a.due_callbacks(10).await.unwrap();
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    assert!(b.due_callbacks(10).await.unwrap().is_empty());
    let statuses: Vec<Status> = jobs.iter().map(|j| j.status).collect();
    assert_eq!(statuses, vec![Status::Sent, Status::Delivered]);
    assert!(jobs.iter().all(|j| j.message_id == id));
    a.callback_retry(jobs[0].id, now_ms() + 300).await.unwrap();
    a.callback_done(jobs[1].id).await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let again = b.due_callbacks(10).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].tries, 1);
    b.callback_done(again[0].id).await.unwrap();

    let status = a.status().await.unwrap();
    assert_eq!(status.depth, 0);
    assert_eq!(status.consumers.len(), 1);
    assert_eq!(status.consumers[0].target, "gateway 'sms1'");
    assert!(status.to_string().contains("stream depth"));
}

#[tokio::test]
async fn one_idempotency_key_on_two_nodes_makes_one_message() {
    let nats = NatsServer::start();
    let (a, b) = (
        node(&nats.url(), fast()).await,
        node(&nats.url(), fast()).await,
    );
    for round in 0..20 {
        let mut m = msg("sms1", "hello");
        m.idempotency_key = Some(format!("order-{round}"));
        // Both nodes at the same moment, as a client retrying against a load balancer.
        let (x, y) = tokio::join!(a.enqueue(m.clone()), b.enqueue(m));
        let (x, y) = (x.unwrap(), y.unwrap());
        assert_eq!(x.record.id, y.record.id, "round {round}");
        assert!(
            x.created ^ y.created,
            "round {round}: exactly one created it"
        );
        let found = b.find_idempotent(&format!("order-{round}")).await.unwrap();
        assert_eq!(found.unwrap().id, x.record.id);
    }
    assert_eq!(a.status().await.unwrap().depth, 20);
}

#[tokio::test]
async fn retries_wait_unknown_is_never_sent_again_and_deadlines_fail() {
    let nats = NatsServer::start();
    let q = node(&nats.url(), fast()).await;
    let gw = Target::Gateway("sms1".into());
    let lease = Duration::from_secs(30);

    // Retry-safe: back after the delay, not before.
    let id = q.enqueue(msg("sms1", "a")).await.unwrap().record.id;
    let c = q.claim(&gw, 10, lease).await.unwrap();
    let not_before = now_ms() + 800;
    let r = q
        .complete(
            &id,
            c[0].lease,
            vec![attempt("sms1", "not_sent")],
            Outcome::Retry { not_before },
        )
        .await
        .unwrap();
    assert_eq!(r.status, Status::Queued);
    assert!(
        q.claim(&gw, 10, lease).await.unwrap().is_empty(),
        "too early"
    );
    let until = tokio::time::Instant::now() + Duration::from_secs(10);
    let again = loop {
        let c = q.claim(&gw, 10, lease).await.unwrap();
        if !c.is_empty() {
            break c;
        }
        assert!(tokio::time::Instant::now() < until, "the retry never came");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(now_ms() >= not_before - 50);
    assert!(!again[0].record.possible_duplicate, "a nak is not a crash");
    assert_eq!(again[0].record.attempts.len(), 1);

    // Unknown: recorded and terminated, never delivered again (even after the ack wait).
    q.complete(
        &id,
        again[0].lease,
        vec![attempt("sms1", "unknown")],
        Outcome::Final {
            status: Status::Unknown,
        },
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(q.claim(&gw, 10, lease).await.unwrap().is_empty());
    assert_eq!(q.get(&id).await.unwrap().unwrap().status, Status::Unknown);

    // A retry past the deadline fails instead.
    let short = node(
        &nats.url(),
        NatsOptions {
            deadline: Duration::from_millis(500),
            ..fast()
        },
    )
    .await;
    let id = short.enqueue(msg("sms1", "b")).await.unwrap().record.id;
    let c = short.claim(&gw, 10, lease).await.unwrap();
    let r = short
        .complete(
            &id,
            c[0].lease,
            vec![attempt("sms1", "not_sent")],
            Outcome::Retry {
                not_before: now_ms() + 1000,
            },
        )
        .await
        .unwrap();
    assert_eq!(r.status, Status::Failed);
    assert_eq!(r.attempts.last().unwrap().kind, "not_sent");
}

#[tokio::test]
async fn a_message_no_worker_finishes_becomes_a_dead_letter() {
    let nats = NatsServer::start();
    let opts = NatsOptions {
        poison_after: 2,
        ..fast()
    };
    let api = node(&nats.url(), opts.clone()).await;
    let gw = Target::Gateway("sms1".into());
    let id = api.enqueue(msg("sms1", "boom")).await.unwrap().record.id;
    // Workers that take it and die (their connection goes, no outcome, no heartbeat).
    for round in 0..2 {
        let w = node(&nats.url(), opts.clone()).await;
        let until = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let c = w.claim(&gw, 1, Duration::from_secs(1)).await.unwrap();
            if let Some(c) = c.first() {
                assert_eq!(c.record.possible_duplicate, round > 0);
                break;
            }
            assert!(
                tokio::time::Instant::now() < until,
                "round {round}: never redelivered"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        drop(w);
    }
    // The next delivery is the poison one: failed with the reason, on the dead-letter subject.
    let w = node(&nats.url(), opts.clone()).await;
    let until = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        assert!(
            w.claim(&gw, 1, Duration::from_secs(1))
                .await
                .unwrap()
                .is_empty()
        );
        let rec = api.get(&id).await.unwrap().unwrap();
        if rec.status == Status::Failed {
            let last = rec.attempts.last().unwrap();
            assert_eq!(last.kind, "dead_letter");
            assert!(
                last.error.as_deref().unwrap().contains("taken 2 times"),
                "{last:?}"
            );
            assert!(rec.possible_duplicate);
            break;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "never dead-lettered: {rec:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = api.status().await.unwrap();
    assert_eq!(status.dead_letters, 1);
    assert_eq!(status.depth, 0);
}

#[tokio::test]
async fn definitions_and_tokens_are_shared() {
    let nats = NatsServer::start();
    let (a, b) = (
        node(&nats.url(), fast()).await,
        node(&nats.url(), fast()).await,
    );
    let def = StoredDef {
        kind: DefKind::Gateway,
        id: "api.gw 1".into(),
        body: serde_json::json!({"provider": "http", "options": {"URL": "http://127.0.0.1:1/"}}),
        updated_at: now_ms(),
    };
    assert!(a.put_def(&def).await.unwrap());
    assert!(!b.put_def(&def).await.unwrap());
    assert_eq!(
        b.get_def(DefKind::Gateway, "api.gw 1").await.unwrap(),
        Some(def.clone())
    );
    assert_eq!(b.list_defs(DefKind::Gateway).await.unwrap(), vec![def]);
    assert!(b.list_defs(DefKind::Route).await.unwrap().is_empty());
    assert!(a.delete_def(DefKind::Gateway, "api.gw 1").await.unwrap());
    assert!(!b.delete_def(DefKind::Gateway, "api.gw 1").await.unwrap());
    assert!(
        b.get_def(DefKind::Gateway, "api.gw 1")
            .await
            .unwrap()
            .is_none()
    );

    let t = TokenRecord {
        name: "idp".into(),
        scope: Scope::Send,
        hash: "ab".repeat(32),
        created_at: now_ms(),
    };
    a.create_token(&t).await.unwrap();
    assert!(matches!(
        b.create_token(&t).await,
        Err(QueueError::Exists(_))
    ));
    assert_eq!(b.list_tokens().await.unwrap(), vec![t]);
    assert!(b.revoke_token("idp").await.unwrap());
    assert!(!a.revoke_token("idp").await.unwrap());
    assert!(a.list_tokens().await.unwrap().is_empty());
    a.check_writable().await.unwrap();
    // Callbacks signed on any node verify with the same secret.
    let (sa, sb) = tokio::join!(a.server_secret(), b.server_secret());
    let (sa, sb) = (sa.unwrap(), sb.unwrap());
    assert_eq!(sa, sb);
    assert_eq!(sa.len(), 32);
}

#[tokio::test]
async fn listing_pruning_and_counts() {
    let nats = NatsServer::start();
    let q = node(&nats.url(), fast()).await;
    let gw = Target::Gateway("sms1".into());
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            q.enqueue(msg("sms1", &format!("t{i}")))
                .await
                .unwrap()
                .record
                .id,
        );
    }
    let stats = q.stats().await.unwrap();
    assert_eq!(stats.by_status, vec![(Status::Queued, 5)]);
    assert!(stats.oldest_queued.is_some());
    let c = q.claim(&gw, 2, Duration::from_secs(30)).await.unwrap();
    for c in &c {
        q.complete(
            &c.record.id,
            c.lease,
            vec![attempt("sms1", "sent")],
            Outcome::Sent {
                message_ids: vec![],
            },
        )
        .await
        .unwrap();
    }
    let page = q
        .list(&smsgw_queue::ListQuery {
            limit: 3,
            ..Default::default()
        })
        .await
        .unwrap();
    let got: Vec<_> = page.messages.iter().map(|m| m.id.clone()).collect();
    assert_eq!(got, vec![ids[4].clone(), ids[3].clone(), ids[2].clone()]);
    let rest = q
        .list(&smsgw_queue::ListQuery {
            limit: 3,
            before: page.next,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(rest.messages.len(), 2);
    let sent = q
        .list(&smsgw_queue::ListQuery {
            status: Some(Status::Sent),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(sent.messages.len(), 2);

    let future = now_ms() + 60_000;
    let pruned = q.prune(future, 0).await.unwrap();
    assert_eq!((pruned.texts, pruned.rows), (2, 0));
    assert_eq!(q.get(&ids[0]).await.unwrap().unwrap().text, None);
    assert!(
        q.get(&ids[2]).await.unwrap().unwrap().text.is_some(),
        "pending keeps its text"
    );
    let pruned = q.prune(future, future).await.unwrap();
    assert_eq!(pruned.rows, 2);
    assert!(q.get(&ids[0]).await.unwrap().is_none());
    assert!(q.get("not a uuid/../x").await.unwrap().is_none());
}

#[tokio::test]
async fn a_bad_queue_url_names_the_option_and_hides_the_password() {
    let err = NatsQueue::connect("http://user:hunter2@127.0.0.1:1", NatsOptions::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("--queue"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}

#[tokio::test]
async fn an_unreachable_broker_fails_in_bounded_time_without_the_password() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let opts = NatsOptions {
        request_timeout: Duration::from_millis(500),
        ..NatsOptions::default()
    };
    let started = std::time::Instant::now();
    let err = NatsQueue::connect(&format!("nats://app:s3cret-pw@127.0.0.1:{port}"), opts)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert!(!err.contains("s3cret-pw"), "{err}");
    assert!(err.contains("nats"), "{err}");
}
