//! The HTTP API: state, routes, limits, health and metrics.

pub(crate) mod defs;
pub(crate) mod messages;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use smsgw_core::Registry;
use smsgw_queue::{Queue, Scope, TokenRecord};

use crate::auth::TokenCache;
use crate::catalog::{Catalog, SharedCatalog};
use crate::dispatch::Dispatcher;
use crate::problem::Problem;
use crate::worker::Waiters;

/// The largest request body, except for batches.
pub const MAX_BODY: usize = 1024 * 1024;
/// The largest batch body (10 000 messages of a few hundred bytes each).
pub const MAX_BATCH_BODY: usize = 16 * 1024 * 1024;
/// How long reading a request body may take.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything a handler needs.
pub(crate) struct AppInner {
    pub queue: Arc<dyn Queue>,
    pub catalog: SharedCatalog,
    pub registry: &'static Registry,
    pub tokens: TokenCache,
    pub wake: Arc<crate::worker::Wake>,
    pub waiters: Arc<Waiters>,
    pub dispatcher: Arc<dyn Dispatcher>,
    pub metrics: PrometheusHandle,
    pub ready: AtomicBool,
    /// Serializes edits of definitions, so that two PUTs never lose each other's change.
    pub edits: tokio::sync::Mutex<()>,
    /// Kannel's default `smsc` (a gateway or route name).
    pub default_target: Option<String>,
    /// Where gateway rates are kept (for catalogs built later).
    pub shared_rate: Option<Arc<dyn smsgw_routing::SharedRate>>,
    /// Turns true at shutdown (for tasks started later, such as receipts of a new gateway).
    pub stop: tokio::sync::watch::Receiver<bool>,
    /// How long sends in flight may take to finish.
    pub shutdown_grace: Duration,
}

pub(crate) type App = Arc<AppInner>;

impl AppInner {
    /// The current catalog.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog.read().expect("not poisoned").clone()
    }

    /// Replaces the catalog.
    pub fn swap(&self, next: Catalog) {
        *self.catalog.write().expect("not poisoned") = Arc::new(next);
    }
}

/// Checks the request's bearer token for `needed`.
pub(crate) async fn auth(
    app: &App,
    headers: &HeaderMap,
    needed: Scope,
) -> Result<TokenRecord, Problem> {
    crate::auth::check(
        &app.tokens,
        &*app.queue,
        crate::auth::bearer(headers),
        needed,
    )
    .await
}

/// The whole router.
pub(crate) fn router(app: App) -> Router {
    use defs::*;
    let batch = Router::new()
        .route("/v1/messages:batch", post(messages::batch))
        .layer(DefaultBodyLimit::max(MAX_BATCH_BODY));
    Router::new()
        .route("/v1/messages", post(messages::send).get(messages::list))
        .route("/v1/messages/{id}", get(messages::get))
        .route("/v1/providers", get(providers))
        .route("/v1/gateways", get(list_gateways))
        .route(
            "/v1/gateways/{id}",
            get(get_gateway).put(put_gateway).delete(delete_gateway),
        )
        .route("/v1/gateways/{id}/test", post(test_gateway))
        .route("/v1/routes", get(list_routes))
        .route(
            "/v1/routes/{name}",
            get(get_route).put(put_route).delete(delete_route),
        )
        .route("/v1/routes/{name}/test", post(test_route))
        .route("/v1/tokens", get(list_tokens).post(create_token))
        .route("/v1/tokens/{name}", axum::routing::delete(revoke_token))
        .route("/v1/openapi.json", get(crate::openapi::serve))
        .route("/compat/privacyidea", post(crate::compat::privacyidea))
        .route(
            "/cgi-bin/sendsms",
            get(crate::compat::kannel_get).post(crate::compat::kannel_post),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .merge(batch)
        .fallback(|| async { Problem::not_found("no such endpoint") })
        .layer(axum::middleware::from_fn(http_metrics))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            BODY_TIMEOUT,
        ))
        .with_state(app)
}

async fn readyz(State(app): State<App>) -> Response {
    let db = app.queue.check_writable().await;
    let loaded = app.ready.load(Ordering::Relaxed);
    match (db, loaded) {
        (Ok(()), true) => "ready\n".into_response(),
        (Err(e), _) => {
            tracing::error!(error = %e, "the database is not writable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the database is not writable\n",
            )
                .into_response()
        }
        (_, false) => (StatusCode::SERVICE_UNAVAILABLE, "gateways not loaded\n").into_response(),
    }
}

async fn metrics(State(app): State<App>) -> Response {
    if let Ok(s) = app.queue.stats().await {
        for st in smsgw_queue::Status::ALL {
            let n = s
                .by_status
                .iter()
                .find(|(x, _)| *x == st)
                .map_or(0, |(_, n)| *n);
            metrics::gauge!("smsgw_queue_messages", "status" => st.as_str()).set(n as f64);
        }
        let age = s.oldest_queued.map_or(0.0, |t| {
            ((smsgw_queue::now_ms() - t).max(0) as f64) / 1000.0
        });
        metrics::gauge!("smsgw_queue_oldest_queued_age_seconds").set(age);
        metrics::gauge!("smsgw_callbacks_pending").set(s.callbacks_pending as f64);
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        app.metrics.render(),
    )
        .into_response()
}

/// `http_requests_total{method,route,status}` and `http_request_duration_seconds{method,route}`,
/// by the route's pattern (never the path itself: ids and tokens stay out of metrics).
async fn http_metrics(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |m| m.as_str())
        .to_owned();
    let method = req.method().as_str().to_owned();
    let resp = next.run(req).await;
    metrics::counter!("http_requests_total", "method" => method.clone(), "route" => route.clone(),
        "status" => resp.status().as_u16().to_string())
    .increment(1);
    metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route)
        .record(start.elapsed().as_secs_f64());
    resp
}
