//! The `--report` file of a bulk send: one JSON line per recipient line, written as outcomes
//! happen. Lines are buffered, but the buffer is written out whole lines at a time at least every
//! [`FLUSH_EVERY`] and on every signal, so that after a crash or SIGKILL at most the last
//! 100 ms of outcomes are missing (and never half a line, short of a full disk).

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

/// The longest time an outcome waits in the buffer.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// Buffered bytes that are written out at once, whatever the time.
const FLUSH_AT: usize = 64 * 1024;

/// The report writer; without `--report` it writes nothing.
pub struct Report {
    file: Option<File>,
    buf: Vec<u8>,
    since: Instant,
    failed: bool,
}

impl Report {
    /// No report.
    pub fn none() -> Self {
        Report {
            file: None,
            buf: Vec::new(),
            since: Instant::now(),
            failed: false,
        }
    }

    /// Creates (truncates) the report at `path`, refusing the recipients file itself.
    pub fn create(path: &Path, recipients: &Path) -> Result<Self, String> {
        if same_file(path, recipients) {
            return Err(format!(
                "--report {} names the recipients file (--file): it would be overwritten",
                path.display()
            ));
        }
        let file = File::create(path)
            .map_err(|e| format!("cannot write the report {}: {e}", path.display()))?;
        let mut report = Report::none();
        report.file = Some(file);
        Ok(report)
    }

    /// Adds one line.
    pub fn line(&mut self, record: &serde_json::Value) {
        if self.file.is_none() {
            return;
        }
        if self.buf.is_empty() {
            self.since = Instant::now();
        }
        // Writing JSON into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut self.buf, record);
        self.buf.push(b'\n');
        if self.buf.len() >= FLUSH_AT || self.since.elapsed() >= FLUSH_EVERY {
            self.flush();
        }
    }

    /// Writes out what is buffered if it has waited [`FLUSH_EVERY`].
    pub fn flush_if_due(&mut self) {
        if !self.buf.is_empty() && self.since.elapsed() >= FLUSH_EVERY {
            self.flush();
        }
    }

    /// Writes out everything buffered.
    pub fn flush(&mut self) {
        let Some(f) = self.file.as_mut() else { return };
        if self.buf.is_empty() {
            return;
        }
        if let Err(e) = f.write_all(&self.buf)
            && !self.failed
        {
            eprintln!("error: cannot write the report: {e}");
            self.failed = true;
        }
        self.buf.clear();
    }
}

impl Drop for Report {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Whether `a` and `b` are the same file (by identity where both exist, else by path).
fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let (Ok(x), Ok(y)) = (std::fs::metadata(a), std::fs::metadata(b)) {
            return x.dev() == y.dev() && x.ino() == y.ino();
        }
    }
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}
