//! Capturing `tracing` output in tests, to prove that no secret is ever logged.

use std::sync::{Arc, Mutex};

use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;

/// Everything logged at any level (TRACE included) while it is installed, as text.
///
/// The sinks' own logs (target `smsgw_sinks`) are left out: a sink is the gateway's side and sees
/// credentials by design.
///
/// ```
/// let logs = smsgw_sinks::logs::LogCapture::new();
/// {
///     let _guard = logs.set_default();
///     tracing::trace!(user = "alice", "logged in");
/// }
/// assert!(logs.text().contains("alice"));
/// ```
#[derive(Clone)]
pub struct LogCapture {
    buf: Arc<Mutex<Vec<u8>>>,
    level: tracing::Level,
}

impl Default for LogCapture {
    fn default() -> Self {
        Self::at(tracing::Level::TRACE)
    }
}

impl LogCapture {
    /// An empty capture of every level.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty capture of `level` and above (e.g. DEBUG, to check what a debug log shows).
    pub fn at(level: tracing::Level) -> Self {
        LogCapture {
            buf: Arc::new(Mutex::new(Vec::new())),
            level,
        }
    }

    /// A subscriber that writes into this capture.
    pub fn subscriber(&self) -> impl tracing::Subscriber + Send + Sync + 'static {
        let me = self.clone();
        let layer = tracing_subscriber::fmt::layer()
            .with_writer(move || me.clone())
            .with_ansi(false)
            .with_filter(tracing_subscriber::filter::filter_fn(|m| {
                !m.target().starts_with("smsgw_sinks")
            }));
        tracing_subscriber::registry().with(layer).with(
            tracing_subscriber::filter::LevelFilter::from_level(self.level),
        )
    }

    /// Captures this thread's logs until the guard is dropped. Keep a test that relies on it
    /// alone in its test binary (or on a current-thread runtime): `tracing` caches per call site
    /// whether anyone listens, and other tests' threads can race with that cache.
    pub fn set_default(&self) -> tracing::subscriber::DefaultGuard {
        tracing::subscriber::set_default(self.subscriber())
    }

    /// Captures the whole process's logs from now on (once per process).
    pub fn set_global(&self) -> Result<(), tracing::subscriber::SetGlobalDefaultError> {
        tracing::subscriber::set_global_default(self.subscriber())
    }

    /// What was captured so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.buf.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for LogCapture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
