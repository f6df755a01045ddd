//! The SQLite queue against a real database file.

use std::time::Duration;

use smsgw_queue::*;

fn msg(to: &str, key: Option<&str>) -> NewMessage {
    NewMessage {
        to: to.into(),
        text: "secret-otp-123".into(),
        target: Target::Gateway("gw".into()),
        metadata: Some(serde_json::json!({"user": "alice"})),
        callback_url: Some("http://127.0.0.1:9/cb".into()),
        idempotency_key: key.map(str::to_owned),
    }
}

fn attempt(kind: &str) -> Attempt {
    Attempt {
        gateway: "gw".into(),
        kind: kind.into(),
        error: None,
        ms: 1,
        at: now_ms(),
    }
}

/// A delivery receipt from gateway `gw` for `provider_id`: the message it updated, if any.
async fn receipt(q: &SqliteQueue, provider_id: &str, delivered: bool) -> Option<MessageRecord> {
    q.record_receipt(&Receipt {
        gateway: "gw".into(),
        provider_id: provider_id.into(),
        delivered,
    })
    .await
    .unwrap()
}

/// A hand-over for [`Queue::enqueue_claimed`] that puts the message in `tx`.
fn handover(tx: &std::sync::mpsc::Sender<Claimed>) -> Handover {
    let tx = tx.clone();
    Box::new(move |c| tx.send(c).unwrap())
}

async fn open() -> (tempfile::TempDir, SqliteQueue) {
    let dir = tempfile::tempdir().unwrap();
    let q = SqliteQueue::open(&dir.path().join("q.db")).await.unwrap();
    (dir, q)
}

#[tokio::test]
async fn enqueue_is_durable_and_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let q = SqliteQueue::open(&path).await.unwrap();
    let a = q.enqueue(msg("+1", Some("k1"))).await.unwrap();
    assert!(a.created);
    let b = q.enqueue(msg("+2", Some("k1"))).await.unwrap();
    assert!(!b.created);
    assert_eq!(a.record.id, b.record.id);
    assert_eq!(b.record.to, "+1");
    // Duplicate keys inside one batch: one message.
    let v = q
        .enqueue_batch(vec![
            msg("+3", Some("k2")),
            msg("+4", Some("k2")),
            msg("+5", None),
        ])
        .await
        .unwrap();
    assert_eq!(v.len(), 3);
    assert_eq!(v[0].record.id, v[1].record.id);
    assert!(v[0].created && !v[1].created && v[2].created);
    q.close().await;
    let q = SqliteQueue::open(&path).await.unwrap();
    assert_eq!(
        q.get(&a.record.id).await.unwrap().unwrap().status,
        Status::Queued
    );
    assert_eq!(q.find_idempotent("k2").await.unwrap().unwrap().to, "+3");
    assert_eq!(
        q.list(&ListQuery {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .messages
        .len(),
        3
    );
}

#[tokio::test]
async fn many_concurrent_enqueues_share_commits() {
    let (_d, q) = open().await;
    let mut tasks = Vec::new();
    for i in 0..500 {
        let q = q.clone();
        tasks.push(tokio::spawn(async move {
            q.enqueue(msg(&format!("+{i}"), None)).await
        }));
    }
    for t in tasks {
        assert!(t.await.unwrap().unwrap().created);
    }
    let s = q.stats().await.unwrap();
    assert_eq!(s.by_status, vec![(Status::Queued, 500)]);
    assert!(s.oldest_queued.is_some());
}

#[tokio::test]
async fn claim_complete_lease_and_recovery() {
    let (_d, q) = open().await;
    let gw = Target::Gateway("gw".into());
    for i in 0..5 {
        q.enqueue(msg(&format!("+{i}"), None)).await.unwrap();
    }
    q.enqueue(NewMessage {
        target: Target::Route("r".into()),
        ..msg("+9", None)
    })
    .await
    .unwrap();
    let mut targets = q.ready_targets().await.unwrap();
    targets.sort();
    assert_eq!(targets, vec![gw.clone(), Target::Route("r".into())]);

    let c = q.claim(&gw, 2, Duration::from_secs(30)).await.unwrap();
    assert_eq!(c.len(), 2);
    assert!(
        c.iter()
            .all(|c| c.record.status == Status::Sending && !c.record.possible_duplicate)
    );
    // Sent, with provider ids; a callback is queued.
    let done = q
        .complete(
            &c[0].record.id,
            c[0].lease,
            vec![attempt("sent")],
            Outcome::Sent {
                message_ids: vec!["p1".into()],
            },
        )
        .await
        .unwrap();
    assert_eq!(done.status, Status::Sent);
    assert_eq!(done.message_ids, vec!["p1"]);
    assert_eq!(done.attempts.len(), 1);
    // A stale lease is refused.
    let err = q
        .complete(
            &c[0].record.id,
            c[0].lease,
            vec![],
            Outcome::Final {
                status: Status::Failed,
            },
        )
        .await;
    assert!(matches!(err, Err(QueueError::LeaseLost(_))), "{err:?}");
    // Retry: back to queued, not due before the time given.
    let r = q
        .complete(
            &c[1].record.id,
            c[1].lease,
            vec![attempt("not_sent")],
            Outcome::Retry {
                not_before: now_ms() + 60_000,
            },
        )
        .await
        .unwrap();
    assert_eq!(r.status, Status::Queued);
    // An expired lease is claimed again and marked a possible duplicate.
    let c2 = q.claim(&gw, 1, Duration::from_millis(1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let c3 = q.claim(&gw, 10, Duration::from_secs(30)).await.unwrap();
    let again = c3
        .iter()
        .find(|c| c.record.id == c2[0].record.id)
        .expect("reclaimed");
    assert!(again.record.possible_duplicate);
    assert!(
        c3.iter().all(|x| x.record.id != c[1].record.id),
        "not due yet"
    );
    // The old lease is dead.
    assert!(
        q.complete(
            &c2[0].record.id,
            c2[0].lease,
            vec![],
            Outcome::Final {
                status: Status::Failed
            }
        )
        .await
        .is_err()
    );
    // Recovery at start-up.
    assert_eq!(q.recover_in_flight().await.unwrap(), c3.len() as u64);
    let rec = q.get(&c3[0].record.id).await.unwrap().unwrap();
    assert_eq!(rec.status, Status::Queued);
    assert!(rec.possible_duplicate);

    // Receipts.
    let got = receipt(&q, "p1", true).await.unwrap();
    assert_eq!(got.status, Status::Delivered);
    assert!(receipt(&q, "nope", true).await.is_none());
    // Two callbacks: sent, delivered.
    let cbs = q.due_callbacks(10).await.unwrap();
    assert_eq!(
        cbs.iter().map(|c| c.status).collect::<Vec<_>>(),
        vec![Status::Sent, Status::Delivered]
    );
    q.callback_retry(cbs[0].id, now_ms() + 60_000)
        .await
        .unwrap();
    q.callback_done(cbs[1].id).await.unwrap();
    assert!(q.due_callbacks(10).await.unwrap().is_empty());
}

#[tokio::test]
async fn complete_many_writes_every_outcome_at_once() {
    let (_d, q) = open().await;
    let gw = Target::Gateway("gw".into());
    let mut plain = msg("+5", None);
    plain.callback_url = None;
    let mut v = vec![plain];
    v.extend((0..4).map(|i| msg(&format!("+{i}"), None)));
    q.enqueue_batch(v).await.unwrap();
    let c = q.claim(&gw, 10, Duration::from_secs(30)).await.unwrap();
    assert_eq!(c.len(), 5);
    let by_to = |to: &str| c.iter().find(|x| x.record.to == to).unwrap();
    let done = |x: &Claimed, attempts: Vec<Attempt>, outcome: Outcome| Completion {
        id: x.record.id.clone(),
        lease: x.lease,
        attempts,
        outcome,
    };
    let got = q
        .complete_many(vec![
            done(
                by_to("+0"),
                vec![attempt("not_sent"), attempt("sent")],
                Outcome::Sent {
                    message_ids: vec!["m1".into(), "m2".into()],
                },
            ),
            done(
                by_to("+1"),
                vec![attempt("refused")],
                Outcome::Final {
                    status: Status::Failed,
                },
            ),
            done(
                by_to("+2"),
                vec![attempt("not_sent")],
                Outcome::Retry { not_before: 0 },
            ),
            // A lease that is not current.
            Completion {
                lease: by_to("+3").lease + 7,
                ..done(by_to("+3"), vec![], Outcome::Retry { not_before: 0 })
            },
            done(
                by_to("+5"),
                vec![attempt("sent")],
                Outcome::Sent {
                    message_ids: vec![],
                },
            ),
        ])
        .await;
    assert_eq!(got.len(), 5);
    let ok: Vec<(Status, bool)> = got
        .iter()
        .filter_map(|r| r.as_ref().ok().map(|c| (c.status, c.callback_queued)))
        .collect();
    assert_eq!(
        ok,
        vec![
            (Status::Sent, true),
            (Status::Failed, true),
            (Status::Queued, false),
            (Status::Sent, false)
        ]
    );
    assert!(matches!(&got[3], Err(QueueError::LeaseLost(id)) if *id == by_to("+3").record.id));
    let sent = q.get(&by_to("+0").record.id).await.unwrap().unwrap();
    assert_eq!(sent.message_ids, vec!["m1", "m2"]);
    assert_eq!(
        sent.attempts
            .iter()
            .map(|a| a.kind.as_str())
            .collect::<Vec<_>>(),
        vec!["not_sent", "sent"]
    );
    // The retried message keeps its first attempt and appends the next one.
    let again = q.claim(&gw, 10, Duration::from_secs(30)).await.unwrap();
    let retried = again
        .iter()
        .find(|x| x.record.to == "+2")
        .expect("due again");
    let got = q
        .complete_many(vec![done(
            retried,
            vec![attempt("sent")],
            Outcome::Sent {
                message_ids: vec!["m3".into()],
            },
        )])
        .await;
    assert!(got[0].is_ok());
    let rec = q.get(&retried.record.id).await.unwrap().unwrap();
    assert_eq!(
        rec.attempts
            .iter()
            .map(|a| a.kind.as_str())
            .collect::<Vec<_>>(),
        vec!["not_sent", "sent"]
    );
    // Gateway ids find their message (delivery receipts); callbacks are in the outbox.
    let r = receipt(&q, "m2", false).await.unwrap();
    assert_eq!((r.to.as_str(), r.status), ("+0", Status::Undelivered));
    let cbs = q.due_callbacks(10).await.unwrap();
    assert_eq!(
        cbs.iter().map(|c| c.status).collect::<Vec<_>>(),
        vec![
            Status::Sent,
            Status::Failed,
            Status::Sent,
            Status::Undelivered
        ]
    );
    // A closed queue answers every outcome with an error.
    q.close().await;
    let got = q
        .complete_many(vec![done(
            retried,
            vec![],
            Outcome::Retry { not_before: 0 },
        )])
        .await;
    assert!(matches!(got[..], [Err(QueueError::Closed)]));
}

#[tokio::test]
async fn list_pages_and_prune() {
    let (_d, q) = open().await;
    for i in 0..25 {
        q.enqueue(msg(&format!("+{i}"), None)).await.unwrap();
    }
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let p = q
            .list(&ListQuery {
                limit: 10,
                before: before.clone(),
                ..Default::default()
            })
            .await
            .unwrap();
        seen.extend(p.messages.iter().map(|m| m.to.clone()));
        match p.next {
            Some(n) => before = Some(n),
            None => break,
        }
    }
    assert_eq!(seen.len(), 25);
    assert_eq!(seen[0], "+24", "newest first");
    let gw = Target::Gateway("gw".into());
    let c = q.claim(&gw, 3, Duration::from_secs(30)).await.unwrap();
    for c in &c {
        q.complete(
            &c.record.id,
            c.lease,
            vec![attempt("refused")],
            Outcome::Final {
                status: Status::Failed,
            },
        )
        .await
        .unwrap();
    }
    let failed = q
        .list(&ListQuery {
            status: Some(Status::Failed),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(failed.messages.len(), 3);
    let p = q.prune(now_ms() + 1, 0).await.unwrap();
    assert_eq!(p, Pruned { texts: 3, rows: 0 });
    assert_eq!(q.get(&c[0].record.id).await.unwrap().unwrap().text, None);
    assert!(q.get(&c[0].record.id).await.unwrap().is_some());
    let p = q.prune(now_ms() + 1, now_ms() + 1).await.unwrap();
    assert_eq!(p.rows, 3);
    assert!(q.get(&c[0].record.id).await.unwrap().is_none());
    // Pending messages are never pruned.
    assert_eq!(
        q.list(&ListQuery {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .messages
        .len(),
        22
    );
}

#[tokio::test]
async fn definitions_and_tokens() {
    let (_d, q) = open().await;
    let def = StoredDef {
        kind: DefKind::Gateway,
        id: "g1".into(),
        body: serde_json::json!({"provider": "http"}),
        updated_at: now_ms(),
    };
    assert!(q.put_def(&def).await.unwrap());
    assert!(!q.put_def(&def).await.unwrap());
    assert_eq!(q.list_defs(DefKind::Gateway).await.unwrap().len(), 1);
    assert!(q.list_defs(DefKind::Route).await.unwrap().is_empty());
    assert_eq!(
        q.get_def(DefKind::Gateway, "g1")
            .await
            .unwrap()
            .unwrap()
            .body["provider"],
        "http"
    );
    assert!(q.delete_def(DefKind::Gateway, "g1").await.unwrap());
    assert!(!q.delete_def(DefKind::Gateway, "g1").await.unwrap());

    let t = TokenRecord {
        name: "ops".into(),
        scope: Scope::Admin,
        hash: "ab".repeat(32),
        created_at: now_ms(),
    };
    q.create_token(&t).await.unwrap();
    assert!(matches!(
        q.create_token(&t).await,
        Err(QueueError::Exists(_))
    ));
    assert_eq!(q.list_tokens().await.unwrap(), vec![t]);
    assert!(q.revoke_token("ops").await.unwrap());
    assert!(q.list_tokens().await.unwrap().is_empty());
    q.check_writable().await.unwrap();
    q.close().await;
    assert!(matches!(
        q.enqueue(msg("+1", None)).await,
        Err(QueueError::Closed)
    ));
}

#[tokio::test]
async fn ready_targets_names_each_target_with_pending_messages_once() {
    let (_d, q) = open().await;
    let mut expected = Vec::new();
    for (kind, name) in [
        ("gateway", "a"),
        ("gateway", "m"),
        ("gateway", "zz"),
        ("route", "b"),
    ] {
        let target = Target::from_parts(kind, name).unwrap();
        for i in 0..3 {
            q.enqueue(NewMessage {
                target: target.clone(),
                ..msg(&format!("+{i}"), None)
            })
            .await
            .unwrap();
        }
        expected.push(target);
    }
    let mut targets = q.ready_targets().await.unwrap();
    targets.sort();
    expected.sort();
    assert_eq!(targets, expected);
    // A target whose messages are all claimed is still listed (a lease may expire); one whose
    // messages are all final is not.
    let m = Target::Gateway("m".into());
    let claimed = q.claim(&m, 10, Duration::from_secs(30)).await.unwrap();
    assert_eq!(claimed.len(), 3);
    assert!(q.ready_targets().await.unwrap().contains(&m));
    for c in claimed {
        q.complete(
            &c.record.id,
            c.lease,
            vec![attempt("sent")],
            Outcome::Sent {
                message_ids: vec![],
            },
        )
        .await
        .unwrap();
    }
    assert!(!q.ready_targets().await.unwrap().contains(&m));
    assert_eq!(q.ready_targets().await.unwrap().len(), 3);
}

/// Texts, metadata, idempotency keys and errors that JSON escapes (quotes, backslashes, control
/// characters, non-ASCII, emoji) come back byte for byte through the statements that read their
/// rows from one JSON array (accepts, outcomes, gateway ids).
#[tokio::test]
async fn awkward_strings_survive_the_json_array_statements() {
    let (_d, q) = open().await;
    let gw = Target::Gateway("gw".into());
    let text = "Dein Code: 12\"34\\5 – ünïcödé 🚀\n\ttab\u{1}end '); DROP TABLE messages; --";
    let metadata = serde_json::json!({"n": {"deep": ["ä", "\"q\"", 1.5, null]}, "e": "😀"});
    let key = "key \"with\" \\ and ✓";
    let mut m = msg("+491511234567", Some(key));
    m.text = text.into();
    m.metadata = Some(metadata.clone());
    let e = q.enqueue(m).await.unwrap();
    assert!(e.created);
    let stored = q.get(&e.record.id).await.unwrap().unwrap();
    assert_eq!(stored.text.as_deref(), Some(text));
    assert_eq!(stored.metadata, Some(metadata));
    assert_eq!(stored.idempotency_key.as_deref(), Some(key));
    assert_eq!(
        q.find_idempotent(key).await.unwrap().unwrap().id,
        e.record.id
    );

    let c = q.claim(&gw, 1, Duration::from_secs(30)).await.unwrap();
    assert_eq!(c[0].record.text.as_deref(), Some(text));
    let mut tried = attempt("not_sent");
    tried.error = Some("gateway said \"nö\\pe\"\n🙅".into());
    let sent = attempt("sent");
    let r = q
        .complete_many(vec![Completion {
            id: c[0].record.id.clone(),
            lease: c[0].lease,
            attempts: vec![tried.clone(), sent.clone()],
            outcome: Outcome::Sent {
                message_ids: vec!["id \"1\" ✓".into()],
            },
        }])
        .await;
    assert_eq!(r[0].as_ref().unwrap().status, Status::Sent);
    let done = q.get(&e.record.id).await.unwrap().unwrap();
    assert_eq!(done.attempts, vec![tried, sent]);
    assert_eq!(done.message_ids, vec!["id \"1\" ✓".to_owned()]);
    // The gateway id was stored as sent: a receipt for it finds the message.
    let rec = receipt(&q, "id \"1\" ✓", true).await.unwrap();
    assert_eq!(rec.id, e.record.id);
    assert_eq!(rec.status, Status::Delivered);
}

/// A message stored claimed is handed over once, durable and `sending` under lease 1: no claim
/// takes it while the lease holds, its outcome is recorded under that lease, and a restart finds
/// it in flight. With a used idempotency key nothing is stored claimed and nothing handed over.
#[tokio::test]
async fn enqueue_claimed_hands_the_stored_message_over() {
    let (d, q) = open().await;
    let gw = Target::Gateway("gw".into());
    let (tx, rx) = std::sync::mpsc::channel();
    let e = q
        .enqueue_claimed(
            msg("+1", Some("k1")),
            Duration::from_secs(30),
            handover(&tx),
        )
        .await
        .unwrap();
    assert!(e.created);
    assert_eq!(e.record.status, Status::Sending);
    let c = rx.try_recv().expect("handed over before the answer");
    assert_eq!((c.record.id.as_str(), c.lease), (e.record.id.as_str(), 1));
    assert_eq!(c.record.text.as_deref(), Some("secret-otp-123"));
    let stored = q.get(&e.record.id).await.unwrap().unwrap();
    assert_eq!(stored.status, Status::Sending);
    assert!(
        q.claim(&gw, 10, Duration::from_secs(30))
            .await
            .unwrap()
            .is_empty()
    );

    // The same idempotency key: the first message, not claimed again, nothing handed over.
    let again = q
        .enqueue_claimed(
            msg("+1", Some("k1")),
            Duration::from_secs(30),
            handover(&tx),
        )
        .await
        .unwrap();
    assert!(!again.created);
    assert_eq!(again.record.id, e.record.id);
    assert!(rx.try_recv().is_err());

    // Stored claimed, then the process dies: the restart's recovery makes it ready again,
    // marked a possible duplicate (it may have been sent).
    let lost = q
        .enqueue_claimed(msg("+2", None), Duration::from_secs(30), handover(&tx))
        .await
        .unwrap();
    let _ = rx.try_recv().unwrap();
    let done = q
        .complete(
            &c.record.id,
            c.lease,
            vec![attempt("sent")],
            Outcome::Sent {
                message_ids: vec!["p9".into()],
            },
        )
        .await
        .unwrap();
    assert_eq!(done.status, Status::Sent);
    q.close().await;
    let q = SqliteQueue::open(&d.path().join("q.db")).await.unwrap();
    assert_eq!(q.recover_in_flight().await.unwrap(), 1);
    let back = q.claim(&gw, 10, Duration::from_secs(30)).await.unwrap();
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].record.id, lost.record.id);
    assert!(back[0].record.possible_duplicate);
}

/// A message is stored claimed only when no older message of its target waits: behind a queued,
/// due message it is queued too (and claimed after it); a message of another target, or one
/// whose retry is not yet due, does not hold it back.
#[tokio::test]
async fn enqueue_claimed_never_overtakes_a_waiting_message() {
    let (_d, q) = open().await;
    let lease = Duration::from_secs(30);
    let (tx, rx) = std::sync::mpsc::channel::<Claimed>();
    let gw = Target::Gateway("gw".into());
    let old = q.enqueue(msg("+1", None)).await.unwrap().record.id;
    let behind = q
        .enqueue_claimed(msg("+2", None), lease, handover(&tx))
        .await
        .unwrap();
    assert_eq!(behind.record.status, Status::Queued);
    assert!(rx.try_recv().is_err(), "nothing handed over");
    let other = q
        .enqueue_claimed(
            NewMessage {
                target: Target::Gateway("gw2".into()),
                ..msg("+3", None)
            },
            lease,
            handover(&tx),
        )
        .await
        .unwrap();
    assert_eq!(
        other.record.status,
        Status::Sending,
        "another target is not held back"
    );
    assert_eq!(rx.try_recv().unwrap().record.id, other.record.id);

    // Claimed in order; then one is retried later (not due): a new message goes ahead of it.
    let c = q.claim(&gw, 10, lease).await.unwrap();
    let ids: Vec<_> = c.iter().map(|c| c.record.id.clone()).collect();
    assert_eq!(ids, vec![old.clone(), behind.record.id.clone()]);
    q.complete(
        &old,
        c[0].lease,
        vec![attempt("not_sent")],
        Outcome::Retry {
            not_before: now_ms() + 60_000,
        },
    )
    .await
    .unwrap();
    let next = q
        .enqueue_claimed(msg("+4", None), lease, handover(&tx))
        .await
        .unwrap();
    assert_eq!(next.record.status, Status::Sending);
    assert_eq!(rx.try_recv().unwrap().record.id, next.record.id);
}

/// The WAL is copied into the database file beside the writer, long before the writer's own
/// checkpoint (thousands of pages) would: without the background checkpoint the main file would
/// not grow at all here.
#[tokio::test]
async fn the_wal_is_checkpointed_beside_the_writer() {
    let (d, q) = open().await;
    let db = d.path().join("q.db");
    let before = std::fs::metadata(&db).unwrap().len();
    let msgs: Vec<_> = (0..2000).map(|i| msg(&format!("+{i}"), None)).collect();
    q.enqueue_batch(msgs).await.unwrap();
    let wal = std::fs::metadata(d.path().join("q.db-wal")).unwrap().len();
    assert!(wal > 100 * 4096, "the batch is in the WAL: {wal} bytes");
    let until = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let now = std::fs::metadata(&db).unwrap().len();
        if now > before + 50 * 4096 {
            break;
        }
        assert!(
            std::time::Instant::now() < until,
            "the database file stayed at {now} bytes (was {before})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
