//! `/v1/messages`: accept, batch, read, list, and the JSON a message is shown as.

use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use smsgw_queue::{ListQuery, MessageRecord, NewMessage, Scope, Status, Target, TokenRecord};

use super::{App, auth};
use crate::problem::{FieldProblem, Problem, parse_json};

/// The longest `?wait=` in seconds.
pub const MAX_WAIT_SECS: u64 = 60;
/// The longest text, in characters (ten concatenated GSM parts and then some).
pub const MAX_TEXT_CHARS: usize = 1600;
/// The longest `Idempotency-Key`.
const MAX_KEY_LEN: usize = 255;

/// RFC 3339 in UTC with milliseconds.
pub fn rfc3339(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// A message as the API (and callbacks) show it. The text is included only when `with_text`
/// (admin tokens), and only while retention keeps it.
pub fn message_json(rec: &MessageRecord, with_text: bool) -> Value {
    let (gateway, route) = match &rec.target {
        Target::Gateway(g) => (Some(g.clone()), None),
        Target::Route(r) => (
            rec.attempts
                .iter()
                .rev()
                .find(|a| a.kind == "sent")
                .or(rec.attempts.last())
                .map(|a| a.gateway.clone()),
            Some(r.clone()),
        ),
    };
    let attempts: Vec<Value> = rec
        .attempts
        .iter()
        .map(|a| {
            json!({"gateway": a.gateway, "kind": a.kind, "error": a.error, "ms": a.ms,
                   "at": rfc3339(a.at)})
        })
        .collect();
    let mut v = json!({
        "id": rec.id,
        "status": rec.status,
        "to": rec.to,
        "gateway": gateway,
        "route": route,
        "attempts": attempts,
        "message_ids": rec.message_ids,
        "metadata": rec.metadata,
        "possible_duplicate": rec.possible_duplicate,
        "created_at": rfc3339(rec.created_at),
        "updated_at": rfc3339(rec.updated_at),
    });
    if with_text {
        v["text"] = json!(rec.text);
    }
    v
}

/// A phone number: an optional `+`, then 3 to 20 digits, with spaces, dashes, dots, slashes and
/// parentheses allowed between them.
pub fn check_phone(to: &str) -> Result<(), String> {
    let t = to.trim();
    let body = t.strip_prefix('+').unwrap_or(t);
    let digits = body.chars().filter(char::is_ascii_digit).count();
    if body.is_empty()
        || !body
            .chars()
            .all(|c| c.is_ascii_digit() || " -./()".contains(c))
        || !(3..=20).contains(&digits)
    {
        return Err("is not a phone number (an optional + and 3 to 20 digits)".into());
    }
    Ok(())
}

/// The body of `POST /v1/messages` (and of each batch entry).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendBody {
    to: Option<String>,
    text: Option<String>,
    gateway: Option<String>,
    route: Option<String>,
    callback_url: Option<String>,
    metadata: Option<Value>,
    /// Only in batch entries: the entry's idempotency key.
    idempotency_key: Option<String>,
}

/// Validates a send request against the catalog, every problem at once.
pub(crate) fn validate(
    app: &App,
    b: SendBody,
    key: Option<String>,
) -> Result<NewMessage, Vec<FieldProblem>> {
    let mut p = Vec::new();
    let mut bad = |field: &str, message: String| {
        p.push(FieldProblem {
            field: field.into(),
            message,
        })
    };
    match &b.to {
        None => bad("to", "required: the recipient's phone number".into()),
        Some(to) => {
            if let Err(e) = check_phone(to) {
                bad("to", e);
            }
        }
    }
    match &b.text {
        None => bad("text", "required: the message text".into()),
        Some(t) if t.is_empty() => bad("text", "is empty".into()),
        Some(t) if t.chars().count() > MAX_TEXT_CHARS => bad(
            "text",
            format!("is longer than {MAX_TEXT_CHARS} characters"),
        ),
        _ => {}
    }
    let target = match (&b.gateway, &b.route) {
        (Some(g), None) => Some(Target::Gateway(g.clone())),
        (None, Some(r)) => Some(Target::Route(r.clone())),
        (Some(_), Some(_)) => {
            bad("gateway", "give either gateway or route, not both".into());
            None
        }
        (None, None) => {
            bad(
                "gateway",
                "required: a gateway id (or a route name in route)".into(),
            );
            None
        }
    };
    if let Some(t) = &target
        && !app.catalog().knows(t)
    {
        bad(t.kind(), format!("no {} named '{}'", t.kind(), t.name()));
    }
    if let Some(u) = &b.callback_url {
        match url::Url::parse(u) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {}
            _ => bad("callback_url", "must be an http:// or https:// URL".into()),
        }
    }
    if let Some(m) = &b.metadata
        && !m.is_object()
    {
        bad("metadata", "must be a JSON object".into());
    }
    let key = key.or(b.idempotency_key);
    if let Some(k) = &key
        && (k.is_empty() || k.len() > MAX_KEY_LEN)
    {
        bad(
            "idempotency_key",
            format!("must be 1 to {MAX_KEY_LEN} characters"),
        );
    }
    if !p.is_empty() {
        return Err(p);
    }
    Ok(NewMessage {
        to: b.to.unwrap_or_default().trim().to_owned(),
        text: b.text.unwrap_or_default(),
        target: target.expect("checked"),
        metadata: b.metadata,
        callback_url: b.callback_url,
        idempotency_key: key,
    })
}

/// Idempotency keys are scoped to the token that used them, so clients cannot collide.
fn scoped_key(token: &TokenRecord, key: Option<&str>) -> Option<String> {
    key.map(|k| format!("{}:{k}", token.name))
}

/// `?wait=SECONDS`.
#[derive(Debug, Deserialize)]
pub struct WaitQuery {
    wait: Option<String>,
}

fn parse_wait(q: &WaitQuery) -> Result<Duration, Problem> {
    let Some(w) = &q.wait else {
        return Ok(Duration::ZERO);
    };
    match w.parse::<f64>() {
        Ok(s) if (0.0..=MAX_WAIT_SECS as f64).contains(&s) => Ok(Duration::from_secs_f64(s)),
        _ => Err(Problem::invalid(vec![FieldProblem {
            field: "wait".into(),
            message: format!("must be a number of seconds from 0 to {MAX_WAIT_SECS}"),
        }])),
    }
}

/// Waits until message `id` is final or `wait` passed; returns the message as it is then.
pub(crate) async fn wait_final(
    app: &App,
    id: &str,
    wait: Duration,
) -> Result<Option<MessageRecord>, Problem> {
    let rx = app.waiters.subscribe(id);
    let now = app.queue.get(id).await.map_err(Problem::store)?;
    if now.as_ref().is_some_and(|r| r.status.is_final()) || wait.is_zero() {
        app.waiters.forget(id);
        return Ok(now);
    }
    // The in-process waiter wakes at once when this node's worker finishes the message; on a
    // shared queue (NATS) another node may finish it, so the store is asked now and then too.
    let deadline = tokio::time::Instant::now() + wait;
    let mut rx = rx;
    loop {
        let tick = (deadline - tokio::time::Instant::now().min(deadline)).min(WAIT_POLL);
        tokio::select! {
            _ = &mut rx => return app.queue.get(id).await.map_err(Problem::store),
            _ = tokio::time::sleep(tick) => {}
        }
        let now = app.queue.get(id).await.map_err(Problem::store)?;
        if tokio::time::Instant::now() >= deadline
            || now.as_ref().is_none_or(|r| r.status.is_final())
        {
            app.waiters.forget(id);
            return Ok(now);
        }
    }
}

/// How often a waiting request asks the store whether another node finished its message.
const WAIT_POLL: Duration = Duration::from_millis(150);

/// `POST /v1/messages`
pub(crate) async fn send(
    State(app): State<App>,
    Query(q): Query<WaitQuery>,
    headers: HeaderMap,
    crate::problem::Body(body): crate::problem::Body,
) -> Result<Response, Problem> {
    let token = auth(&app, &headers, Scope::Send).await?;
    let wait = parse_wait(&q)?;
    let b: SendBody = parse_json(&body)?;
    let key = headers
        .get("idempotency-key")
        .map(|v| v.to_str().map(str::to_owned))
        .transpose()
        .map_err(|_| Problem::bad_request("the Idempotency-Key header is not text"))?;
    let mut msg = validate(&app, b, key).map_err(Problem::invalid)?;
    msg.idempotency_key = scoped_key(&token, msg.idempotency_key.as_deref());
    let done = app
        .wake
        .enqueue(&*app.queue, msg)
        .await
        .map_err(Problem::store)?;
    let id = done.record.id.clone();
    let mut resp = if wait.is_zero() {
        accepted(&id)
    } else {
        match wait_final(&app, &id, wait).await? {
            Some(r) if r.status.is_final() => {
                let admin = token.scope.allows(Scope::Admin);
                (StatusCode::OK, axum::Json(message_json(&r, admin))).into_response()
            }
            _ => accepted(&id),
        }
    };
    if !done.created {
        resp.headers_mut()
            .insert("idempotent-replayed", "true".parse().expect("valid"));
    }
    Ok(resp)
}

fn accepted(id: &str) -> Response {
    (
        StatusCode::ACCEPTED,
        axum::Json(json!({"id": id, "status": Status::Queued})),
    )
        .into_response()
}

/// The body of `POST /v1/messages:batch`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchBody {
    messages: Vec<Value>,
}

/// `POST /v1/messages:batch`
pub(crate) async fn batch(
    State(app): State<App>,
    headers: HeaderMap,
    crate::problem::Body(body): crate::problem::Body,
) -> Result<Response, Problem> {
    let token = auth(&app, &headers, Scope::Send).await?;
    let b: BatchBody = parse_json(&body)?;
    if b.messages.len() > smsgw_queue::MAX_BATCH {
        return Err(Problem::invalid(vec![FieldProblem {
            field: "messages".into(),
            message: format!("at most {} messages per batch", smsgw_queue::MAX_BATCH),
        }]));
    }
    let mut results: Vec<Value> = Vec::with_capacity(b.messages.len());
    let mut good = Vec::with_capacity(b.messages.len());
    let mut slots = Vec::with_capacity(b.messages.len());
    for (i, v) in b.messages.into_iter().enumerate() {
        let entry = serde_json::from_value::<SendBody>(v)
            .map_err(|e| {
                vec![FieldProblem {
                    field: "body".into(),
                    message: e.to_string(),
                }]
            })
            .and_then(|sb| validate(&app, sb, None));
        match entry {
            Ok(mut m) => {
                m.idempotency_key = scoped_key(&token, m.idempotency_key.as_deref());
                good.push(m);
                slots.push(i);
                results.push(Value::Null);
            }
            Err(errors) => {
                results.push(json!({"index": i, "status": "rejected", "errors": errors}))
            }
        }
    }
    let targets: std::collections::HashSet<Target> =
        good.iter().map(|m| m.target.clone()).collect();
    let done = app
        .queue
        .enqueue_batch(good)
        .await
        .map_err(Problem::store)?;
    for t in &targets {
        app.wake.accepted(t);
    }
    for (i, e) in slots.into_iter().zip(done) {
        results[i] = json!({"index": i, "id": e.record.id, "status": Status::Queued});
    }
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({"results": results})),
    )
        .into_response())
}

/// `GET /v1/messages/{id}`
pub(crate) async fn get(
    State(app): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let token = auth(&app, &headers, Scope::Send).await?;
    match app.queue.get(&id).await.map_err(Problem::store)? {
        Some(r) => {
            Ok(axum::Json(message_json(&r, token.scope.allows(Scope::Admin))).into_response())
        }
        None => Err(Problem::not_found(format!("no message with id '{id}'"))),
    }
}

/// `GET /v1/messages?status=&since=&limit=&before=`
#[derive(Debug, Deserialize)]
pub struct ListParams {
    status: Option<String>,
    since: Option<String>,
    limit: Option<usize>,
    before: Option<String>,
}

/// `GET /v1/messages`
pub(crate) async fn list(
    State(app): State<App>,
    Query(q): Query<ListParams>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let token = auth(&app, &headers, Scope::Send).await?;
    let mut p = Vec::new();
    let status = q.status.as_deref().filter(|s| !s.is_empty()).and_then(|s| {
        let st = Status::parse(s);
        if st.is_none() {
            p.push(FieldProblem {
                field: "status".into(),
                message: format!(
                    "'{s}' is not one of {}",
                    Status::ALL.map(|s| s.as_str()).join(", ")
                ),
            });
        }
        st
    });
    let since = q.since.as_deref().filter(|s| !s.is_empty()).and_then(|s| {
        let t = parse_time(s);
        if t.is_none() {
            p.push(FieldProblem {
                field: "since".into(),
                message: "must be an RFC 3339 time or Unix milliseconds".into(),
            });
        }
        t
    });
    if !p.is_empty() {
        return Err(Problem::invalid(p));
    }
    let page = app
        .queue
        .list(&ListQuery {
            status,
            since,
            before: q.before,
            limit: q.limit.unwrap_or(100),
        })
        .await
        .map_err(Problem::store)?;
    let admin = token.scope.allows(Scope::Admin);
    Ok(axum::Json(json!({
        "messages": page.messages.iter().map(|m| message_json(m, admin)).collect::<Vec<_>>(),
        "next": page.next,
    }))
    .into_response())
}

fn parse_time(s: &str) -> Option<i64> {
    if let Ok(ms) = s.parse::<i64>() {
        return Some(ms);
    }
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    Some((t.unix_timestamp_nanos() / 1_000_000) as i64)
}
