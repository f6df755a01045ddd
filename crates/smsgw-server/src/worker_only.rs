//! A process that only sends: `smsgw worker --queue nats://…`. The same delivery worker, catalog
//! (file and API-created gateways), callback sender and delivery receipts as `smsgw serve`,
//! without the HTTP listener.

use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use smsgw_core::Registry;
use smsgw_queue::Queue;
use tokio::sync::{Notify, watch};

use crate::catalog::{Catalog, FileSource};
use crate::dispatch::{Dispatcher, RouterDispatcher};
use crate::server::{ServeError, ServerOptions, spawn_receipts};
use crate::worker::{Waiters, Worker};

/// Sends what `queue` holds through the gateways of `options.config` (and those created through
/// the API) until `shutdown` completes, then finishes the sends in flight (at most
/// `options.shutdown_grace`). `options.listen` and `options.db` are not used.
///
/// ```no_run
/// # async fn f(queue: std::sync::Arc<dyn smsgw_queue::Queue>) -> Result<(), smsgw_server::ServeError> {
/// let opts = smsgw_server::ServerOptions::new("127.0.0.1:0".parse().unwrap(), "unused.db".into());
/// smsgw_server::run_worker(opts, queue, async { let _ = tokio::signal::ctrl_c().await; }).await
/// # }
/// ```
pub async fn run_worker(
    options: ServerOptions,
    queue: Arc<dyn Queue>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let registry = Registry::global();
    let cfg = FileSource(options.config.clone())
        .read()
        .map_err(ServeError::Config)?;
    let catalog = Catalog::load(cfg, &*queue, registry, options.shared_rate.clone())
        .await
        .map_err(ServeError::Config)?;
    let (stop, stop_rx) = watch::channel(false);
    spawn_receipts(&catalog, &queue, stop_rx.clone());
    let catalog = Arc::new(RwLock::new(Arc::new(catalog)));
    let callbacks = Arc::new(Notify::new());
    let worker = Arc::new(Worker {
        queue: queue.clone(),
        dispatcher: Arc::new(RouterDispatcher { catalog }) as Arc<dyn Dispatcher>,
        options: options.worker.clone(),
        wake: Arc::default(),
        waiters: Arc::new(Waiters::default()),
        callbacks: callbacks.clone(),
    });
    let grace = options.shutdown_grace;
    let worker_task = tokio::spawn(worker.run(stop_rx.clone(), grace));
    let callback_task = tokio::spawn(crate::callbacks::run(queue.clone(), callbacks, stop_rx));
    shutdown.await;
    tracing::info!("stopping: finishing the sends in flight");
    let _ = stop.send(true);
    let _ = tokio::time::timeout(grace + Duration::from_secs(1), worker_task).await;
    callback_task.abort();
    queue.close().await;
    Ok(())
}
