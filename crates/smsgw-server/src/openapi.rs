//! `/v1/openapi.json`: the API described from one table in the code, which a test checks against
//! the router (every entry answers; none is 404 or 405).

use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

/// One endpoint: method, path (OpenAPI syntax), the scope it needs, a summary.
#[derive(Debug, Clone, Copy)]
pub struct Endpoint {
    /// `get`, `post`, `put`, `delete`.
    pub method: &'static str,
    /// The path, with `{param}`s.
    pub path: &'static str,
    /// `send`, `admin`, or `none`.
    pub scope: &'static str,
    /// What it does.
    pub summary: &'static str,
    /// The success status.
    pub ok: u16,
}

const fn e(
    method: &'static str,
    path: &'static str,
    scope: &'static str,
    ok: u16,
    summary: &'static str,
) -> Endpoint {
    Endpoint {
        method,
        path,
        scope,
        summary,
        ok,
    }
}

/// Every endpoint of the server.
pub const ENDPOINTS: &[Endpoint] = &[
    e(
        "post",
        "/v1/messages",
        "send",
        202,
        "Queue one message: {to, text, gateway | route, callback_url?, metadata?}. 202 {id, status} once durable; ?wait=SECONDS (≤60) answers 200 with the final message; Idempotency-Key replays the first answer.",
    ),
    e(
        "get",
        "/v1/messages",
        "send",
        200,
        "Page through messages, newest first: ?status=&since=&limit=&before= (the previous page's next).",
    ),
    e(
        "post",
        "/v1/messages:batch",
        "send",
        202,
        "Queue up to 10 000 messages: {messages: [...]}; one result per message, in order.",
    ),
    e(
        "get",
        "/v1/messages/{id}",
        "send",
        200,
        "A message with its status, attempts and gateway ids.",
    ),
    e(
        "get",
        "/v1/providers",
        "send",
        200,
        "The providers and their parameter schemas.",
    ),
    e(
        "get",
        "/v1/gateways",
        "send",
        200,
        "Every gateway (secrets censored), with its origin (file or database), limits and breaker {state, open_until, recent_attempts, recent_failures}.",
    ),
    e(
        "get",
        "/v1/gateways/{id}",
        "send",
        200,
        "One gateway, secrets as __CENSORED__, with its limits and breaker.",
    ),
    e(
        "put",
        "/v1/gateways/{id}",
        "admin",
        200,
        "Create or replace a gateway (the TOML table as JSON: provider, description, options, headers, limits); 422 lists every problem; __CENSORED__ keeps a stored secret; 409 for file-defined gateways.",
    ),
    e(
        "delete",
        "/v1/gateways/{id}",
        "admin",
        204,
        "Delete a gateway defined through the API; 409 while a route uses it.",
    ),
    e(
        "post",
        "/v1/gateways/{id}/test",
        "admin",
        200,
        "Send one message now through the gateway: {to, text?} → {status, message_ids, attempts}.",
    ),
    e(
        "get",
        "/v1/routes",
        "send",
        200,
        "Every route (file and database), as its [routes.NAME] table.",
    ),
    e("get", "/v1/routes/{name}", "send", 200, "One route."),
    e(
        "put",
        "/v1/routes/{name}",
        "admin",
        200,
        "Create or replace a route (the [routes.NAME] table as JSON: gateways, deadline, retries, backoff, on_unknown, rules [{match, gateways}]); 422 lists every problem (e.g. rules[0].match); 409 for file-defined routes.",
    ),
    e(
        "delete",
        "/v1/routes/{name}",
        "admin",
        204,
        "Delete a route.",
    ),
    e(
        "post",
        "/v1/routes/{name}/test",
        "admin",
        200,
        "Send one message now through the route: {to, text?} → {status, message_ids, attempts} (every gateway tried).",
    ),
    e("get", "/v1/tokens", "admin", 200, "Token names and scopes."),
    e(
        "post",
        "/v1/tokens",
        "admin",
        201,
        "Create a token: {name, scope}; the token is in the answer, once.",
    ),
    e(
        "delete",
        "/v1/tokens/{name}",
        "admin",
        204,
        "Revoke a token.",
    ),
    e("get", "/v1/openapi.json", "none", 200, "This document."),
    e(
        "post",
        "/compat/privacyidea",
        "send",
        200,
        "privacyIDEA's HTTP provider: phone, message, gateway | route, timeout; waits; 200 'OK <id>' when sent.",
    ),
    e(
        "get",
        "/cgi-bin/sendsms",
        "send",
        202,
        "Kannel: username, password (a send token), to, text, smsc; 202 '0: Accepted for delivery'.",
    ),
    e(
        "post",
        "/cgi-bin/sendsms",
        "send",
        202,
        "Kannel, parameters as a form.",
    ),
    e("get", "/healthz", "none", 200, "The process is up."),
    e(
        "get",
        "/readyz",
        "none",
        200,
        "The database is writable and the gateways are loaded.",
    ),
    e("get", "/metrics", "none", 200, "Prometheus metrics."),
];

/// The OpenAPI 3.1 document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for ep in ENDPOINTS {
        let params: Vec<Value> = ep
            .path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|p| json!({"name": p, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        let mut op = json!({
            "summary": ep.summary,
            "parameters": params,
            "responses": {
                ep.ok.to_string(): {"description": "success"},
                "default": {"description": "an error", "content": {"application/problem+json": {}}},
            },
        });
        if ep.scope != "none" && ep.path.starts_with("/v1") {
            op["security"] = json!([{"bearer": [ep.scope]}]);
        }
        let entry = paths.entry(ep.path.to_owned()).or_insert_with(|| json!({}));
        entry[ep.method] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "smsgw", "version": env!("CARGO_PKG_VERSION")},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "paths": paths,
    })
}

pub(crate) async fn serve() -> Response {
    axum::Json(document()).into_response()
}
