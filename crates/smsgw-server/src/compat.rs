//! Endpoints that speak what existing clients already send: privacyIDEA's HTTP provider and
//! Kannel's `sendsms`.

use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use indexmap::IndexMap;
use smsgw_queue::{NewMessage, Scope, Status, Target};

use crate::api::messages::{MAX_TEXT_CHARS, check_phone, wait_final};
use crate::api::{App, auth};

/// privacyIDEA's default wait for the outcome.
const PI_DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

fn text(status: StatusCode, body: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body.into() + "\n",
    )
        .into_response()
}

/// Form, query or JSON parameters as one map (first value wins).
fn params(
    query: &[(String, String)],
    headers: &HeaderMap,
    body: &[u8],
) -> IndexMap<String, String> {
    let mut out = IndexMap::new();
    for (k, v) in query {
        out.entry(k.clone()).or_insert_with(|| v.clone());
    }
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.contains("json"));
    if json {
        if let Ok(serde_json::Value::Object(o)) = serde_json::from_slice(body) {
            for (k, v) in o {
                let s = match v {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                out.entry(k).or_insert(s);
            }
        }
    } else if let Ok(pairs) = serde_urlencoded_pairs(body) {
        for (k, v) in pairs {
            out.entry(k).or_insert(v);
        }
    }
    out
}

fn serde_urlencoded_pairs(body: &[u8]) -> Result<Vec<(String, String)>, ()> {
    Ok(url::form_urlencoded::parse(body).into_owned().collect())
}

fn check(to: Option<&String>, msg: Option<&String>) -> Result<(String, String), String> {
    let mut p = Vec::new();
    match to {
        None => p.push("phone: required".to_owned()),
        Some(t) => {
            if let Err(e) = check_phone(t) {
                p.push(format!("phone: {e}"));
            }
        }
    }
    match msg {
        None => p.push("message: required".to_owned()),
        Some(m) if m.is_empty() => p.push("message: is empty".to_owned()),
        Some(m) if m.chars().count() > MAX_TEXT_CHARS => {
            p.push(format!("message: longer than {MAX_TEXT_CHARS} characters"))
        }
        _ => {}
    }
    if p.is_empty() {
        Ok((
            to.expect("checked").trim().to_owned(),
            msg.expect("checked").clone(),
        ))
    } else {
        Err(p.join("; "))
    }
}

/// `POST /compat/privacyidea`: `phone`, `message`, `gateway` or `route`, optional `timeout`
/// (seconds, default 10, at most 60). Waits for the outcome: 200 `OK <id>` when sent.
pub(crate) async fn privacyidea(
    State(app): State<App>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    crate::problem::Body(body): crate::problem::Body,
) -> Response {
    if let Err(p) = auth(&app, &headers, Scope::Send).await {
        return text(p.status, format!("ERROR {}", p.detail));
    }
    let p = params(&query, &headers, &body);
    let (to, msg) = match check(p.get("phone"), p.get("message")) {
        Ok(v) => v,
        Err(e) => return text(StatusCode::UNPROCESSABLE_ENTITY, format!("ERROR {e}")),
    };
    let target = match (p.get("gateway"), p.get("route")) {
        (Some(g), _) => Target::Gateway(g.clone()),
        (None, Some(r)) => Target::Route(r.clone()),
        (None, None) => match default_target(&app) {
            Some(t) => t,
            None => {
                return text(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "ERROR gateway: required (or route)",
                );
            }
        },
    };
    if !app.catalog().knows(&target) {
        return text(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("ERROR no {target}"),
        );
    }
    let timeout = match p.get("timeout").map(|t| t.parse::<f64>()) {
        None => PI_DEFAULT_TIMEOUT,
        Some(Ok(s)) if s > 0.0 && s <= 60.0 => Duration::from_secs_f64(s),
        Some(_) => {
            return text(
                StatusCode::UNPROCESSABLE_ENTITY,
                "ERROR timeout: must be more than 0 and at most 60 seconds",
            );
        }
    };
    let new = NewMessage {
        to,
        text: msg,
        target,
        metadata: None,
        callback_url: None,
        idempotency_key: None,
    };
    let id = match app.wake.enqueue(&*app.queue, new).await {
        Ok(e) => e.record.id,
        Err(e) => {
            tracing::error!(error = %e, "queue store failed");
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                "ERROR the message store failed",
            );
        }
    };
    let rec = match wait_final(&app, &id, timeout).await {
        Ok(Some(r)) => r,
        Ok(None) => {
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("ERROR {id} vanished"),
            );
        }
        Err(p) => return text(p.status, format!("ERROR {}", p.detail)),
    };
    let reason = rec
        .attempts
        .last()
        .and_then(|a| a.error.clone())
        .unwrap_or_default();
    match rec.status {
        Status::Sent | Status::Delivered => text(StatusCode::OK, format!("OK {id}")),
        Status::Queued | Status::Sending => text(
            StatusCode::GATEWAY_TIMEOUT,
            format!("ERROR {id} not sent within {timeout:?}; it stays queued"),
        ),
        Status::Unknown => text(
            StatusCode::GATEWAY_TIMEOUT,
            format!("ERROR {id} outcome unknown, it may have been sent: {reason}"),
        ),
        Status::Failed | Status::Undelivered => text(
            StatusCode::BAD_GATEWAY,
            format!("ERROR {id} not sent: {reason}"),
        ),
    }
}

fn default_target(app: &App) -> Option<Target> {
    let cat = app.catalog();
    match &app.default_target {
        Some(name) => cat.resolve_name(name),
        None if cat.defs.len() == 1 => cat.defs.keys().next().map(|g| Target::Gateway(g.clone())),
        None => None,
    }
}

/// `GET /cgi-bin/sendsms?username=&password=&to=&text=[&smsc=]`
pub(crate) async fn kannel_get(
    State(app): State<App>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Response {
    kannel(app, params(&query, &headers, &[])).await
}

/// `POST /cgi-bin/sendsms` with the same parameters as a form (or in the query).
pub(crate) async fn kannel_post(
    State(app): State<App>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    crate::problem::Body(body): crate::problem::Body,
) -> Response {
    kannel(app, params(&query, &headers, &body)).await
}

/// Kannel's answers: `0: Accepted for delivery` (202); 403 `Authorization failed for sendsms`;
/// 400 for missing or bad parameters; 503 when the store fails.
async fn kannel(app: App, p: IndexMap<String, String>) -> Response {
    let token = p.get("password").map(String::as_str);
    if crate::auth::check(&app.tokens, &*app.queue, token, Scope::Send)
        .await
        .is_err()
    {
        return text(StatusCode::FORBIDDEN, "Authorization failed for sendsms");
    }
    let Some(to) = p.get("to").filter(|t| !t.is_empty()) else {
        return text(StatusCode::BAD_REQUEST, "Missing receiver number, rejected");
    };
    if check_phone(to).is_err() {
        return text(StatusCode::BAD_REQUEST, "Invalid receiver number, rejected");
    }
    let Some(msg) = p.get("text").filter(|t| !t.is_empty()) else {
        return text(StatusCode::BAD_REQUEST, "Missing text, rejected");
    };
    if msg.chars().count() > MAX_TEXT_CHARS {
        return text(StatusCode::BAD_REQUEST, "Text too long, rejected");
    }
    let target = match p.get("smsc").filter(|s| !s.is_empty()) {
        Some(s) => app.catalog().resolve_name(s),
        None => default_target(&app),
    };
    let Some(target) = target else {
        return text(StatusCode::BAD_REQUEST, "Unknown or missing smsc, rejected");
    };
    let new = NewMessage {
        to: to.trim().to_owned(),
        text: msg.clone(),
        target,
        metadata: None,
        callback_url: None,
        idempotency_key: None,
    };
    match app.wake.enqueue(&*app.queue, new).await {
        Ok(_) => text(StatusCode::ACCEPTED, "0: Accepted for delivery"),
        Err(e) => {
            tracing::error!(error = %e, "queue store failed");
            text(StatusCode::SERVICE_UNAVAILABLE, "Sending failed.")
        }
    }
}
