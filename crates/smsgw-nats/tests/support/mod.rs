//! Test support: a real `nats-server -js` on a free loopback port with its own store directory,
//! an `http` gateway against a loopback sink, and the server's delivery worker (what
//! `smsgw worker --queue` runs) over a `NatsQueue`. Included with `#[path]` by the examples and
//! by other crates' tests, which use only some of it.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

// Linking the umbrella crate puts its providers (the `http` gateway of these tests) in the
// registry the server's worker builds gateways from.
use smsgw as _;

/// A `nats-server` with JetStream on file storage, killed when dropped.
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

fn binary() -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/usr/local/bin", "/usr/local/sbin"] {
        let p = Path::new(dir).join("nats-server");
        if p.exists() {
            return p;
        }
    }
    if let Ok(path) = std::env::var("PATH") {
        for dir in path.split(':') {
            let p = Path::new(dir).join("nats-server");
            if p.exists() {
                return p;
            }
        }
    }
    panic!(
        "nats-server is not installed: these tests need a real broker. \
         Install it with `apt-get install nats-server` (Debian package nats-server, 2.9+)."
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl NatsServer {
    /// Starts a fresh server.
    pub fn start() -> NatsServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut s = NatsServer {
            child: None,
            port: free_port(),
            dir,
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let store = self.dir.path().join("js");
        let child = Command::new(binary())
            .args(["-js", "-a", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .arg("-sd")
            .arg(&store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting nats-server");
        self.child = Some(child);
        let addr: SocketAddr = ([127, 0, 0, 1], self.port).into();
        let until = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < until,
                "nats-server did not listen on {addr}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `nats://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Stops the server (SIGKILL: as abrupt as a crash; the file store must hold).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port and store.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A configuration with one `http` gateway `id` that posts `to` and `text` to `url`.
pub fn http_gateway(id: &str, url: &str) -> String {
    format!(
        r#"
[gateways.{id}]
provider = "http"
[gateways.{id}.options]
URL = "{url}/send"
HTTP_METHOD = "POST"
TIMEOUT = "5"
to = "{{phone}}"
text = "{{otp}}"
"#
    )
}

/// The server's delivery worker (`smsgw worker --queue …`) in this process, over its own
/// connection: sends through the gateways of the configuration file `config` until stopped.
pub struct Worker {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), smsgw_server::ServeError>>,
}

impl Worker {
    /// Connects to `url` with `opts` and starts sending, `concurrency` messages at once.
    pub async fn start(
        url: &str,
        opts: smsgw_nats::NatsOptions,
        config: &Path,
        concurrency: usize,
    ) -> Worker {
        let q = smsgw_nats::NatsQueue::connect(url, opts)
            .await
            .expect("the worker connects");
        Worker::spawn(q, config, concurrency)
    }

    /// Starts sending from `q`, already connected.
    pub fn spawn(q: smsgw_nats::NatsQueue, config: &Path, concurrency: usize) -> Worker {
        let mut o = smsgw_server::ServerOptions::new(([127, 0, 0, 1], 0).into(), PathBuf::new());
        o.config = Some(config.to_owned());
        o.worker.concurrency = concurrency;
        o.shutdown_grace = Duration::from_secs(5);
        // As `smsgw worker --queue` does: gateway rates are held by the broker for all workers.
        o.shared_rate = Some(q.shared_rate());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(smsgw_server::run_worker(
            o,
            std::sync::Arc::new(q),
            async move {
                let _ = stopped.await;
            },
        ));
        Worker {
            stop: Some(stop),
            task,
        }
    }

    /// Stops taking messages, finishes the sends in flight and closes the queue.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        (&mut self.task)
            .await
            .expect("the worker task")
            .expect("the worker ran");
    }
}
