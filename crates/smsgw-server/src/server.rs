//! Starting and stopping a server: the listener (bounded connections, header timeout), the
//! worker, the callback sender, retention, delivery receipts; shutdown bounded in time.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use smsgw_core::Registry;
use smsgw_queue::{Queue, Receipt, SqliteQueue, now_ms};
use smsgw_routing::SharedRate;
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore, watch};

use crate::api::{self, AppInner};
use crate::auth::TokenCache;
use crate::catalog::{Catalog, FileSource};
use crate::dispatch::{Dispatcher, RouterDispatcher};
use crate::worker::{Waiters, Worker, WorkerOptions};

/// Everything a server needs to start.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The SQLite database file.
    pub db: PathBuf,
    /// The configuration file (gateways defined there are read-only through the API).
    pub config: Option<PathBuf>,
    /// The delivery worker's behaviour.
    pub worker: WorkerOptions,
    /// How long message texts are kept after a message is final.
    pub text_retention: Duration,
    /// How long final messages are kept at all.
    pub row_retention: Duration,
    /// How long shutdown waits for sends in flight and open requests.
    pub shutdown_grace: Duration,
    /// Kannel's (and privacyIDEA's) default gateway or route when a request names none.
    pub default_target: Option<String>,
    /// How long a client may take to send the request headers.
    pub header_timeout: Duration,
    /// Open connections at most; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// Whether this process also sends what is queued. On SQLite it must (one node owns the
    /// file); on a shared broker an API-only node leaves sending to `smsgw worker` processes.
    pub run_worker: bool,
    /// Where the gateways' `rate` limits are kept when several processes send (a broker's
    /// key-value store); `None`: in this process.
    pub shared_rate: Option<Arc<dyn SharedRate>>,
}

impl ServerOptions {
    /// The defaults, listening on `listen` with the database at `db`.
    pub fn new(listen: SocketAddr, db: PathBuf) -> Self {
        ServerOptions {
            listen,
            db,
            config: None,
            worker: WorkerOptions {
                concurrency: 64,
                lease: Duration::from_secs(120),
                retry_for: Duration::from_secs(600),
            },
            text_retention: Duration::from_secs(7 * 86_400),
            row_retention: Duration::from_secs(90 * 86_400),
            shutdown_grace: Duration::from_secs(10),
            default_target: None,
            header_timeout: Duration::from_secs(10),
            max_connections: 4096,
            run_worker: true,
            shared_rate: None,
        }
    }
}

/// Why the server could not start (or stopped).
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The configuration file is invalid.
    #[error("{0}")]
    Config(String),
    /// The database cannot be opened or used.
    #[error("database {path}: {error}")]
    Store {
        /// The file.
        path: String,
        /// What failed.
        error: smsgw_queue::QueueError,
    },
    /// The address cannot be listened on.
    #[error("cannot listen on {addr}: {error}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        error: std::io::Error,
    },
    /// A token command failed.
    #[error("{0}")]
    Token(String),
}

/// How often the recorder folds histogram samples into their summaries. The exporter keeps every
/// sample until then (or until `/metrics` is read): without this, a server nobody scrapes grew by
/// about 25 bytes per message sent.
const METRICS_UPKEEP_EVERY: Duration = Duration::from_secs(1);

fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .install_recorder()
                .unwrap_or_else(|e| {
                    tracing::warn!("metrics recorder not installed ({e}); /metrics shows only what this server sets");
                    PrometheusBuilder::new().build_recorder().handle()
                });
            // A thread, not a task: the recorder lives as long as the process, and a task would
            // end with the runtime that first started a server (tests start many).
            let h = handle.clone();
            let upkeep = std::thread::Builder::new()
                .name("smsgw-metrics".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(METRICS_UPKEEP_EVERY);
                        h.run_upkeep();
                    }
                });
            if let Err(e) = upkeep {
                tracing::warn!(error = %e, "metrics upkeep not started; histogram samples are kept until /metrics is read");
            }
            handle
        })
        .clone()
}

/// A running server.
pub struct Running {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    app: api::App,
    file: FileSource,
}

impl Running {
    /// The address it listens on (with the real port when started on port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Reads the configuration file again (SIGHUP); on problems keeps the old one.
    pub async fn reload(&self) -> Result<(), ServeError> {
        let file = self.file.read().map_err(ServeError::Config)?;
        let cat = Catalog::load(
            file,
            &*self.app.queue,
            self.app.registry,
            self.app.shared_rate.clone(),
        )
        .await
        .map_err(ServeError::Config)?;
        let _edit = self.app.edits.lock().await;
        let old = self.app.catalog();
        self.app.swap(cat);
        spawn_receipts(&self.app.catalog(), &self.app.queue, self.app.stop.clone());
        // Every gateway was built anew: close the old ones' connections once the sends that
        // still use them (bounded by the grace time) are done.
        let grace = self.app.shutdown_grace;
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            for g in old.gateways.values() {
                g.shutdown().await;
            }
        });
        tracing::info!("configuration reloaded");
        Ok(())
    }

    /// Stops accepting, finishes what is in flight (bounded by the grace time), closes the store.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Opens the SQLite queue at `options.db` and starts.
pub async fn start(options: ServerOptions) -> Result<Running, ServeError> {
    let q = SqliteQueue::open(&options.db)
        .await
        .map_err(|error| ServeError::Store {
            path: options.db.display().to_string(),
            error,
        })?;
    // One node owns this file: whatever was in flight belonged to a process that is gone.
    match q.recover_in_flight().await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(
            messages = n,
            "resuming messages that were in flight at the last stop; they may be sent twice and are marked possible_duplicate"
        ),
        Err(error) => {
            return Err(ServeError::Store {
                path: options.db.display().to_string(),
                error,
            });
        }
    }
    start_with_queue(options, Arc::new(q)).await
}

/// Starts on any [`Queue`] (the broker-based queue of a scaled-out setup uses this).
pub async fn start_with_queue(
    options: ServerOptions,
    queue: Arc<dyn Queue>,
) -> Result<Running, ServeError> {
    let registry = Registry::global();
    let file = FileSource(options.config.clone());
    let cfg = file.read().map_err(ServeError::Config)?;
    let catalog = Catalog::load(cfg, &*queue, registry, options.shared_rate.clone())
        .await
        .map_err(ServeError::Config)?;
    let catalog = Arc::new(RwLock::new(Arc::new(catalog)));
    let dispatcher: Arc<dyn Dispatcher> = Arc::new(RouterDispatcher {
        catalog: catalog.clone(),
    });
    let (stop, stop_rx) = watch::channel(false);
    let wake = Arc::new(crate::worker::Wake::default());
    let waiters = Arc::new(Waiters::default());
    let callbacks_wake = Arc::new(Notify::new());
    let app = Arc::new(AppInner {
        queue: queue.clone(),
        catalog,
        registry,
        tokens: TokenCache::new(),
        wake: wake.clone(),
        waiters: waiters.clone(),
        dispatcher: dispatcher.clone(),
        metrics: prometheus(),
        ready: Default::default(),
        edits: Default::default(),
        default_target: options.default_target.clone(),
        shared_rate: options.shared_rate.clone(),
        stop: stop_rx.clone(),
        shutdown_grace: options.shutdown_grace,
    });
    app.tokens.reload(&*queue).await;
    let listener = TcpListener::bind(options.listen)
        .await
        .map_err(|error| ServeError::Listen {
            addr: options.listen,
            error,
        })?;
    let addr = listener.local_addr().map_err(|error| ServeError::Listen {
        addr: options.listen,
        error,
    })?;
    let worker = Arc::new(Worker {
        queue: queue.clone(),
        dispatcher,
        options: options.worker.clone(),
        wake,
        waiters,
        callbacks: callbacks_wake.clone(),
    });
    let grace = options.shutdown_grace;
    let worker_task = options
        .run_worker
        .then(|| tokio::spawn(worker.run(stop_rx.clone(), grace)));
    let callback_task = tokio::spawn(crate::callbacks::run(
        queue.clone(),
        callbacks_wake,
        stop_rx.clone(),
    ));
    tokio::spawn(retention(queue.clone(), options.clone(), stop_rx.clone()));
    spawn_receipts(&app.catalog(), &app.queue, stop_rx.clone());
    app.ready.store(true, Ordering::Relaxed);
    // The admin page (`/`, `/admin/*`) talks only to the API beside it.
    let router = api::router(app.clone()).merge(smsgw_admin::router());
    let opts = options.clone();
    let task = tokio::spawn(async move {
        accept(listener, router, &opts, stop_rx).await;
        if let Some(worker_task) = worker_task {
            let _ = tokio::time::timeout(grace + Duration::from_secs(1), worker_task).await;
        }
        callback_task.abort();
        queue.close().await;
        tracing::info!("stopped");
    });
    tracing::info!(%addr, "listening");
    Ok(Running {
        addr,
        stop,
        task,
        app,
        file,
    })
}

async fn accept(
    listener: TcpListener,
    router: axum::Router,
    options: &ServerOptions,
    mut stop: watch::Receiver<bool>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(options.max_connections.max(1)));
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = stop.changed() => break,
        };
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        let _ = stream.set_nodelay(true);
        let svc = hyper_util::service::TowerToHyperService::new(router.clone());
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(options.header_timeout)
            .serve_connection(TokioIo::new(stream), svc);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(options.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("open connections still busy after the grace time; closing them");
    }
}

/// Erases texts and old rows, at start and every hour.
async fn retention(queue: Arc<dyn Queue>, o: ServerOptions, mut stop: watch::Receiver<bool>) {
    loop {
        let now = now_ms();
        let texts = now - o.text_retention.as_millis() as i64;
        let rows = now - o.row_retention.as_millis() as i64;
        match queue.prune(texts, rows).await {
            Ok(p) if p.texts + p.rows > 0 => {
                tracing::info!(texts = p.texts, rows = p.rows, "retention pruned")
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "retention failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Delivery receipts of every gateway that reports them (SMPP) become `delivered` or
/// `undelivered`.
pub(crate) fn spawn_receipts(
    catalog: &Catalog,
    queue: &Arc<dyn Queue>,
    stop: watch::Receiver<bool>,
) {
    for g in catalog.gateways.values() {
        spawn_receipts_of(g, queue, stop.clone());
    }
}

/// Receipts that came before their message's outcome was recorded (an SMSC may answer the
/// submit and send the receipt at once), kept this long and tried again.
const EARLY_RECEIPT_TTL: Duration = Duration::from_secs(60);
/// At most this many such receipts wait per gateway; more are dropped with a warning.
const EARLY_RECEIPTS_MAX: usize = 10_000;

/// Records the delivery receipts of gateway `g`, if it reports them, until it is closed.
pub(crate) fn spawn_receipts_of(
    g: &smsgw_core::Gateway,
    queue: &Arc<dyn Queue>,
    mut stop: watch::Receiver<bool>,
) {
    let Some(mut rx) = g.delivery_reports() else {
        return;
    };
    let queue = queue.clone();
    tokio::spawn(async move {
        let mut early: std::collections::VecDeque<(Receipt, tokio::time::Instant)> =
            Default::default();
        let mut retry = tokio::time::interval(Duration::from_millis(250));
        retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let report = tokio::select! {
                r = rx.recv() => r,
                _ = retry.tick(), if !early.is_empty() => {
                    let now = tokio::time::Instant::now();
                    for _ in 0..early.len() {
                        let Some((r, until)) = early.pop_front() else { break };
                        if !record(&*queue, &r).await && now < until {
                            early.push_back((r, until));
                        }
                    }
                    continue;
                }
                _ = stop.changed() => return,
            };
            let report = match report {
                Ok(r) => r,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(
                        missed = n,
                        "delivery receipts were dropped (too many at once)"
                    );
                    continue;
                }
                Err(_) => return,
            };
            let receipt = Receipt {
                gateway: report.gateway.clone(),
                provider_id: report.message_id.clone(),
                delivered: report.state.eq_ignore_ascii_case("DELIVRD"),
            };
            if !record(&*queue, &receipt).await {
                if early.len() >= EARLY_RECEIPTS_MAX {
                    tracing::warn!(gateway = %receipt.gateway, "too many receipts for unknown messages; one dropped");
                } else {
                    early.push_back((receipt, tokio::time::Instant::now() + EARLY_RECEIPT_TTL));
                }
            }
        }
    });
}

/// Records a receipt; false when no message has that gateway id (yet).
async fn record(queue: &dyn Queue, r: &Receipt) -> bool {
    match queue.record_receipt(r).await {
        Ok(found) => found.is_some(),
        Err(e) => {
            tracing::error!(error = %e, "cannot record a delivery receipt");
            true
        }
    }
}
