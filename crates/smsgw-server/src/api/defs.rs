//! `/v1/providers`, `/v1/gateways`, `/v1/routes`, `/v1/tokens`: definitions managed through the
//! API. File-defined entries are read-only (409); secrets are write-only (`__CENSORED__`).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use smsgw_core::{ConfigErrors, Gateway, GatewayDef, Message};
use smsgw_queue::{DefKind, Scope, Target, TokenRecord};

use super::messages::check_phone;
use super::{App, auth};
use crate::catalog::{self, Catalog, Origin};
use crate::problem::{FieldProblem, Problem, parse_json};

/// `GET /v1/providers`
pub(crate) async fn providers(
    State(app): State<App>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    auth(&app, &headers, Scope::Send).await?;
    let list: Vec<Value> = app
        .registry
        .providers()
        .iter()
        .map(|d| d.to_json())
        .collect();
    Ok(axum::Json(json!({"providers": list})).into_response())
}

/// `GET /v1/gateways`
pub(crate) async fn list_gateways(
    State(app): State<App>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    auth(&app, &headers, Scope::Send).await?;
    let cat = app.catalog();
    let list: Vec<Value> = cat
        .defs
        .keys()
        .filter_map(|id| cat.gateway_view(id, app.registry))
        .collect();
    Ok(axum::Json(json!({"gateways": list})).into_response())
}

/// `GET /v1/gateways/{id}`
pub(crate) async fn get_gateway(
    State(app): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    auth(&app, &headers, Scope::Send).await?;
    app.catalog()
        .gateway_view(&id, app.registry)
        .map(|v| axum::Json(v).into_response())
        .ok_or_else(|| Problem::not_found(format!("no gateway '{id}'")))
}

fn read_only(kind: &str, id: &str) -> Problem {
    Problem::new(
        StatusCode::CONFLICT,
        "defined in the configuration file",
        format!("{kind} '{id}' is defined in the configuration file; change it there"),
    )
}

fn check_id(id: &str) -> Result<(), Problem> {
    if id.is_empty()
        || id.len() > 64
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(Problem::invalid(vec![FieldProblem {
            field: "id".into(),
            message: "1 to 64 letters, digits, '-', '_' or '.'".into(),
        }]));
    }
    Ok(())
}

/// `PUT /v1/gateways/{id}`
pub(crate) async fn put_gateway(
    State(app): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
    crate::problem::Body(body): crate::problem::Body,
) -> Result<Response, Problem> {
    auth(&app, &headers, Scope::Admin).await?;
    check_id(&id)?;
    let _edit = app.edits.lock().await;
    let cat = app.catalog();
    let old = match cat.defs.get(&id) {
        Some((_, Origin::File)) => return Err(read_only("gateway", &id)),
        Some((d, Origin::Database)) => Some(d.clone()),
        None => None,
    };
    if cat.routes.contains_key(&id) {
        return Err(taken(&id, "route"));
    }
    let v: Value = parse_json(&body)?;
    let mut def = catalog::gateway_from_json(&id, &v).map_err(Problem::invalid)?;
    let mut problems = Vec::new();
    catalog::keep_censored(&mut def, old.as_ref(), &mut problems);
    if !problems.is_empty() {
        return Err(Problem::invalid(problems));
    }
    // The same checks as `smsgw check`, every problem at once.
    let gw = Gateway::build(&def, &cat.file.sections, app.registry)
        .map_err(|errs| Problem::invalid(fields(&errs, &def)))?;
    let mut next = (*cat).clone();
    let replaced = next.gateways.insert(id.clone(), gw);
    let stored = catalog::gateway_to_json(&def);
    next.defs
        .insert(id.clone(), (def.clone(), Origin::Database));
    let r = store_and_swap(&app, DefKind::Gateway, &id, stored, next, &def).await;
    if r.is_ok() {
        if let Some(old) = replaced {
            tokio::spawn(async move { old.shutdown().await });
        }
        if let Some(g) = app.catalog().gateways.get(&id) {
            crate::server::spawn_receipts_of(g, &app.queue, app.stop.clone());
        }
    }
    r
}

/// Where a problem of a gateway definition goes in the body.
fn fields(errs: &ConfigErrors, def: &GatewayDef) -> Vec<FieldProblem> {
    errs.problems()
        .iter()
        .map(|p| FieldProblem {
            field: match p.key.as_deref() {
                Some(k @ ("provider" | "headers" | "description")) => k.to_owned(),
                Some(k) if k.starts_with("limits") => k.to_owned(),
                Some(k) if def.headers.contains_key(k) => format!("headers.{k}"),
                Some(k) => format!("options.{k}"),
                None => "body".into(),
            },
            message: p.message.clone(),
        })
        .collect()
}

fn taken(id: &str, by: &str) -> Problem {
    Problem::new(
        StatusCode::CONFLICT,
        "identifier taken",
        format!("'{id}' is already the name of a {by}"),
    )
}

/// The end of every PUT: builds the router of `next` (so that nothing is stored that cannot
/// send), stores the definition, swaps `next` in, and answers 201 or 200 with the view.
async fn store_and_swap(
    app: &App,
    kind: DefKind,
    id: &str,
    body: Value,
    mut next: Catalog,
    def: &GatewayDef,
) -> Result<Response, Problem> {
    next.rebuild_router()
        .map_err(|errs| Problem::invalid(fields(&errs, def)))?;
    let created = app
        .queue
        .put_def(&catalog::stored(kind, id, body))
        .await
        .map_err(Problem::store)?;
    app.swap(next);
    let cat = app.catalog();
    let view = match kind {
        DefKind::Gateway => cat.gateway_view(id, app.registry),
        DefKind::Route => cat.route_view(id),
    };
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(view)).into_response())
}

/// `DELETE /v1/gateways/{id}` and `DELETE /v1/routes/{name}`.
async fn delete_def(app: &App, kind: DefKind, id: &str) -> Result<Response, Problem> {
    let _edit = app.edits.lock().await;
    let cat = app.catalog();
    let (what, origin) = match kind {
        DefKind::Gateway => ("gateway", cat.defs.get(id).map(|(_, o)| *o)),
        DefKind::Route => ("route", cat.routes.get(id).map(|(_, o)| *o)),
    };
    match origin {
        Some(Origin::File) => return Err(read_only(what, id)),
        None => return Err(Problem::not_found(format!("no {what} '{id}'"))),
        Some(Origin::Database) => {}
    }
    let users = match kind {
        DefKind::Gateway => cat.routes_using(id),
        DefKind::Route => Vec::new(),
    };
    if !users.is_empty() {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "in use",
            format!(
                "gateway '{id}' is used by route(s) {}; change them first",
                users.join(", ")
            ),
        ));
    }
    let mut next = (*cat).clone();
    next.defs.shift_remove(id);
    next.routes.shift_remove(id);
    let old = next.gateways.shift_remove(id);
    next.rebuild_router()
        .map_err(|e| Problem::new(StatusCode::CONFLICT, "in use", e.to_string()))?;
    app.queue
        .delete_def(kind, id)
        .await
        .map_err(Problem::store)?;
    app.swap(next);
    if let Some(old) = old {
        tokio::spawn(async move { old.shutdown().await });
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `DELETE /v1/gateways/{id}`
pub(crate) async fn delete_gateway(
    State(app): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    auth(&app, &headers, Scope::Admin).await?;
    delete_def(&app, DefKind::Gateway, &id).await
}

/// The body of `POST /v1/gateways/{id}/test`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestBody {
    to: String,
    #[serde(default = "test_text")]
    text: String,
}

fn test_text() -> String {
    "smsgw test message".into()
}

/// `POST /v1/gateways/{id}/test` and `POST /v1/routes/{name}/test`: one send now, not queued.
pub(crate) async fn test_send(
    app: App,
    target: Target,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> Result<Response, Problem> {
    auth(&app, &headers, Scope::Admin).await?;
    if !app.catalog().knows(&target) {
        return Err(Problem::not_found(format!("no {target}")));
    }
    let b: TestBody = parse_json(&body)?;
    check_phone(&b.to).map_err(|m| {
        Problem::invalid(vec![FieldProblem {
            field: "to".into(),
            message: m,
        }])
    })?;
    let d = app
        .dispatcher
        .dispatch(&target, &Message::new(b.to.trim(), b.text))
        .await;
    let attempts: Vec<Value> = d
        .attempts
        .iter()
        .map(|a| json!({"gateway": a.gateway, "kind": a.kind, "error": a.error, "ms": a.ms, "at": super::messages::rfc3339(a.at)}))
        .collect();
    let (status, ids) = match &d.result {
        Ok(r) => ("sent", r.message_ids.clone()),
        Err(e) if e.may_have_been_sent() => ("unknown", Vec::new()),
        Err(_) => ("failed", Vec::new()),
    };
    Ok(
        axum::Json(json!({"status": status, "message_ids": ids, "attempts": attempts}))
            .into_response(),
    )
}

/// `POST /v1/gateways/{id}/test`
pub(crate) async fn test_gateway(
    State(app): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
    crate::problem::Body(body): crate::problem::Body,
) -> Result<Response, Problem> {
    test_send(app, Target::Gateway(id), headers, body).await
}

/// `POST /v1/routes/{name}/test`
pub(crate) async fn test_route(
    State(app): State<App>,
    Path(name): Path<String>,
    headers: HeaderMap,
    crate::problem::Body(body): crate::problem::Body,
) -> Result<Response, Problem> {
    test_send(app, Target::Route(name), headers, body).await
}

/// `GET /v1/routes`
pub(crate) async fn list_routes(
    State(app): State<App>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    auth(&app, &headers, Scope::Send).await?;
    let cat = app.catalog();
    let list: Vec<Value> = cat
        .routes
        .keys()
        .filter_map(|n| cat.route_view(n))
        .collect();
    Ok(axum::Json(json!({"routes": list})).into_response())
}

/// `GET /v1/routes/{name}`
pub(crate) async fn get_route(
    State(app): State<App>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    auth(&app, &headers, Scope::Send).await?;
    app.catalog()
        .route_view(&name)
        .map(|v| axum::Json(v).into_response())
        .ok_or_else(|| Problem::not_found(format!("no route '{name}'")))
}

/// `PUT /v1/routes/{name}`
pub(crate) async fn put_route(
    State(app): State<App>,
    Path(name): Path<String>,
    headers: HeaderMap,
    crate::problem::Body(body): crate::problem::Body,
) -> Result<Response, Problem> {
    auth(&app, &headers, Scope::Admin).await?;
    check_id(&name)?;
    let _edit = app.edits.lock().await;
    let cat = app.catalog();
    if let Some((_, Origin::File)) = cat.routes.get(&name) {
        return Err(read_only("route", &name));
    }
    if cat.defs.contains_key(&name) {
        return Err(taken(&name, "gateway"));
    }
    let v: Value = parse_json(&body)?;
    // smsgw-routing's checks, as `smsgw check` runs them, every problem at once.
    let table = catalog::route_from_json(&name, &v, |g| cat.gateways.contains_key(g))
        .map_err(Problem::invalid)?;
    let mut next = (*cat).clone();
    next.routes.insert(name.clone(), (table, Origin::Database));
    let stored = match next.route_view(&name) {
        Some(Value::Object(mut o)) => {
            o.remove("name");
            o.remove("origin");
            Value::Object(o)
        }
        other => other.unwrap_or_default(),
    };
    let none = GatewayDef::default();
    store_and_swap(&app, DefKind::Route, &name, stored, next, &none).await
}

/// `DELETE /v1/routes/{name}`
pub(crate) async fn delete_route(
    State(app): State<App>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    auth(&app, &headers, Scope::Admin).await?;
    delete_def(&app, DefKind::Route, &name).await
}

/// `GET /v1/tokens`: names and scopes, never hashes.
pub(crate) async fn list_tokens(
    State(app): State<App>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    auth(&app, &headers, Scope::Admin).await?;
    let list = app.queue.list_tokens().await.map_err(Problem::store)?;
    let list: Vec<Value> = list
        .iter()
        .map(|t| json!({"name": t.name, "scope": t.scope, "created_at": super::messages::rfc3339(t.created_at)}))
        .collect();
    Ok(axum::Json(json!({"tokens": list})).into_response())
}

/// The body of `POST /v1/tokens`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenBody {
    name: String,
    scope: Scope,
}

/// `POST /v1/tokens`: the token is in the answer, once.
pub(crate) async fn create_token(
    State(app): State<App>,
    headers: HeaderMap,
    crate::problem::Body(body): crate::problem::Body,
) -> Result<Response, Problem> {
    auth(&app, &headers, Scope::Admin).await?;
    let b: TokenBody = parse_json(&body)?;
    check_id(&b.name)?;
    let token = crate::auth::generate_token();
    let rec = TokenRecord {
        name: b.name,
        scope: b.scope,
        hash: crate::auth::hash_token(&token),
        created_at: smsgw_queue::now_ms(),
    };
    match app.queue.create_token(&rec).await {
        Ok(()) => {}
        Err(smsgw_queue::QueueError::Exists(what)) => {
            return Err(Problem::new(
                StatusCode::CONFLICT,
                "exists",
                format!("{what} exists"),
            ));
        }
        Err(e) => return Err(Problem::store(e)),
    }
    app.tokens.reload(&*app.queue).await;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({"name": rec.name, "scope": rec.scope, "token": token})),
    )
        .into_response())
}

/// `DELETE /v1/tokens/{name}`
pub(crate) async fn revoke_token(
    State(app): State<App>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    auth(&app, &headers, Scope::Admin).await?;
    if !app
        .queue
        .revoke_token(&name)
        .await
        .map_err(Problem::store)?
    {
        return Err(Problem::not_found(format!("no token '{name}'")));
    }
    app.tokens.reload(&*app.queue).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}
