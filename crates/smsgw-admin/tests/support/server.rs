//! A real `smsgw serve` (smsgw-server on a SQLite file in a temp dir) with the test kit's HTTP sink
//! as the gateway, a file-defined gateway, and an admin token.
//!
//! The page must come from the API's origin (it calls `/v1/…` relatively, and its CSP allows only
//! `'self'`). While the server does not mount [`smsgw_admin::router`] itself, the test puts a
//! small same-origin front in place: the page's routes, and everything else forwarded unchanged
//! to the server. Once the server serves the page, the front is not used.

use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use smsgw_queue::{Queue, Scope, SqliteQueue, TokenRecord};
use smsgw_server::{Running, ServerOptions};
use smsgw_sinks::http::HttpSink;

// The umbrella registers the providers.
use smsgw as _;

pub struct TestServer {
    pub server: Running,
    pub sink: HttpSink,
    /// Where the browser opens the page (the server itself, or the same-origin front).
    pub base: String,
    /// The server's own address, for direct API calls.
    pub api: String,
    pub admin_token: String,
    pub send_token: String,
    _dir: tempfile::TempDir,
    pub config: PathBuf,
}

/// The id of the gateway the configuration file defines (read-only through the API).
pub const FILE_GATEWAY: &str = "file-gw";

impl TestServer {
    pub async fn start() -> TestServer {
        let sink = HttpSink::start().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("smsgw.toml");
        std::fs::write(
            &config,
            format!(
                "[gateways.{FILE_GATEWAY}]\nprovider = \"http\"\ndescription = \"from the file\"\n\
                 [gateways.{FILE_GATEWAY}.options]\nURL = \"{}/file\"\nPASSWORD = \"file-secret\"\nUSERNAME = \"u\"\n\
                 to = \"{{phone}}\"\ntext = \"{{otp}}\"\n",
                sink.url()
            ),
        )
        .unwrap();
        let db = dir.path().join("smsgw.db");
        let queue = SqliteQueue::open(&db).await.unwrap();
        let admin_token = smsgw_server::generate_token();
        let send_token = smsgw_server::generate_token();
        for (name, scope, token) in [
            ("e2e-admin", Scope::Admin, &admin_token),
            ("e2e-send", Scope::Send, &send_token),
        ] {
            queue
                .create_token(&TokenRecord {
                    name: name.into(),
                    scope,
                    hash: smsgw_server::hash_token(token),
                    created_at: smsgw_queue::now_ms(),
                })
                .await
                .unwrap();
        }
        let mut opts = ServerOptions::new("127.0.0.1:0".parse().unwrap(), db);
        opts.config = Some(config.clone());
        let queue: Arc<dyn Queue> = Arc::new(queue);
        let server = smsgw_server::start_with_queue(opts, queue).await.unwrap();
        let api = format!("http://{}", server.addr());
        let base = if serves_page(&api).await {
            api.clone()
        } else {
            front(&api).await
        };
        TestServer {
            server,
            sink,
            base,
            api,
            admin_token,
            send_token,
            _dir: dir,
            config,
        }
    }

    pub async fn stop(self) {
        self.server.shutdown().await;
    }
}

fn client() -> Client<HttpConnector, Body> {
    Client::builder(hyper_util::rt::TokioExecutor::new()).build(HttpConnector::new())
}

/// True when the server answers `/` with the admin page (it mounts the router itself).
async fn serves_page(api: &str) -> bool {
    let req = axum::http::Request::get(format!("{api}/"))
        .body(Body::empty())
        .unwrap();
    match client().request(req).await {
        Ok(r) => r
            .headers()
            .get("content-security-policy")
            .is_some_and(|v| v == smsgw_admin::CONTENT_SECURITY_POLICY),
        Err(_) => false,
    }
}

#[derive(Clone)]
struct Upstream {
    api: String,
    client: Client<HttpConnector, Body>,
}

async fn forward(up: Upstream, req: Request) -> Response {
    let (mut parts, body) = req.into_parts();
    let pq = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    parts.uri = format!("{}{pq}", up.api).parse().unwrap();
    parts.headers.remove(axum::http::header::HOST);
    match up
        .client
        .request(axum::http::Request::from_parts(parts, body))
        .await
    {
        Ok(r) => r.map(Body::new).into_response(),
        Err(e) => (axum::http::StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

/// The page's routes plus every other path forwarded to `api`, on a loopback port of its own.
async fn front(api: &str) -> String {
    let up = Upstream {
        api: api.to_owned(),
        client: client(),
    };
    let app = smsgw_admin::router::<()>().fallback(move |req: Request| forward(up.clone(), req));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}
