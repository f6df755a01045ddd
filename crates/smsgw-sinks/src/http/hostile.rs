//! A raw HTTP/1.1 server that answers like a hostile or broken gateway: replies that never end
//! (chunked, or without any length), huge or deeply nested bodies, redirects elsewhere. It
//! writes the bytes itself (hyper would not send an unsized reply to an HTTP/1.1 client), counts
//! every byte it managed to send, and records each request's head and body.
//!
//! One request per connection; the answer for request `n` is `replies[n]`, the last one for
//! every later request.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! use smsgw_sinks::http::hostile::{HostileReply, HostileServer};
//! let server = HostileServer::start(vec![HostileReply::endless_chunked()]).await?;
//! assert!(server.url().starts_with("http://127.0.0.1:"));
//! assert_eq!(server.bytes_sent(), 0);
//! # Ok(()) }
//! ```

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The longest request head it reads, and the longest request body.
const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 1024 * 1024;

/// How the server answers one request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HostileReply {
    /// `200 OK`, then `prefix` and `filler` repeated until the client hangs up.
    Endless {
        /// Chunked (`Transfer-Encoding: chunked`) or unsized (no length at all, the body ends
        /// only when the connection closes).
        chunked: bool,
        /// The body's content type.
        content_type: String,
        /// Sent once, first.
        prefix: Vec<u8>,
        /// Sent again and again (one chunk each time when chunked).
        filler: Vec<u8>,
    },
    /// This status and body, with `Content-Length`.
    Body {
        /// The HTTP status.
        status: u16,
        /// The body's content type.
        content_type: String,
        /// The body.
        body: Vec<u8>,
    },
    /// A redirect: this status (301, 302, 303, 307, 308) with this `Location`.
    Redirect {
        /// The HTTP status.
        status: u16,
        /// The `Location` header, as sent.
        location: String,
    },
}

impl HostileReply {
    /// An endless chunked `text/plain` body of `x`.
    pub fn endless_chunked() -> Self {
        Self::endless(true)
    }

    /// An endless `text/plain` body of `x` without length or chunking.
    pub fn endless_unsized() -> Self {
        Self::endless(false)
    }

    fn endless(chunked: bool) -> Self {
        HostileReply::Endless {
            chunked,
            content_type: "text/plain".into(),
            prefix: Vec::new(),
            filler: vec![b'x'; 16 * 1024],
        }
    }

    /// `200 OK` with this `text/plain` body.
    pub fn ok(body: impl Into<Vec<u8>>) -> Self {
        HostileReply::Body {
            status: 200,
            content_type: "text/plain".into(),
            body: body.into(),
        }
    }

    /// A `302 Found` to `location`.
    pub fn redirect(location: impl Into<String>) -> Self {
        HostileReply::Redirect {
            status: 302,
            location: location.into(),
        }
    }
}

/// A request as the hostile server read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRequest {
    /// The request line: method, target, version.
    pub request_line: String,
    /// The headers in order, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body (by `Content-Length`).
    pub body: Vec<u8>,
}

impl RawRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

struct Shared {
    replies: Vec<HostileReply>,
    requests: Mutex<Vec<RawRequest>>,
    sent: AtomicU64,
}

/// The server; stops when dropped.
pub struct HostileServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for HostileServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostileServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl HostileServer {
    /// Starts on `127.0.0.1`, port chosen by the system. `replies` must not be empty.
    pub async fn start(replies: Vec<HostileReply>) -> io::Result<HostileServer> {
        if replies.is_empty() {
            return Err(io::Error::other(
                "a hostile server needs at least one reply",
            ));
        }
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            replies,
            requests: Mutex::new(Vec::new()),
            sent: AtomicU64::new(0),
        });
        let task = tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(HostileServer { addr, shared, task })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Bytes written to clients so far (heads and bodies; what the kernel accepted).
    pub fn bytes_sent(&self) -> u64 {
        self.shared.sent.load(Ordering::SeqCst)
    }

    /// Checks that a client it fed left memory flat: the server could send less than 64 MiB
    /// (the client stopped reading; the rest is what the kernel buffers) and this process's
    /// resident memory grew by less than 16 MiB since `resident_before` ([`resident_bytes`]).
    pub fn check_memory_flat(&self, resident_before: u64) -> Result<(), String> {
        let sent = self.bytes_sent();
        let grown = resident_bytes().saturating_sub(resident_before);
        if sent >= 64 << 20 || grown >= 16 << 20 {
            return Err(format!(
                "the server could send {sent} bytes; resident memory grew by {grown} bytes"
            ));
        }
        Ok(())
    }

    /// Every request read so far.
    pub fn requests(&self) -> Vec<RawRequest> {
        self.shared.requests.lock().unwrap().clone()
    }
}

impl Drop for HostileServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    conns.spawn(serve(stream, shared.clone()));
                }
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

async fn serve(stream: TcpStream, shared: Arc<Shared>) -> io::Result<()> {
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::new(rd).take(MAX_HEAD as u64);
    let mut request_line = String::new();
    rd.read_line(&mut request_line).await?;
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if rd.read_line(&mut line).await? == 0 || line.trim_end().is_empty() {
            break;
        }
        if let Some((k, v)) = line.trim_end().split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    let length = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0)
        .min(MAX_BODY);
    let mut rd = rd.into_inner();
    let mut body = vec![0; length];
    rd.read_exact(&mut body).await?;
    let n = {
        let mut list = shared.requests.lock().unwrap();
        list.push(RawRequest {
            request_line: request_line.trim_end().to_owned(),
            headers,
            body,
        });
        list.len() - 1
    };
    let reply = shared.replies[n.min(shared.replies.len() - 1)].clone();
    let mut send = async |bytes: &[u8]| -> io::Result<()> {
        wr.write_all(bytes).await?;
        shared.sent.fetch_add(bytes.len() as u64, Ordering::SeqCst);
        Ok(())
    };
    match reply {
        HostileReply::Body {
            status,
            content_type,
            body,
        } => {
            let head = format!(
                "HTTP/1.1 {status} Status\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            send(head.as_bytes()).await?;
            send(&body).await?;
        }
        HostileReply::Redirect { status, location } => {
            let head = format!(
                "HTTP/1.1 {status} Redirect\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            send(head.as_bytes()).await?;
        }
        HostileReply::Endless {
            chunked,
            content_type,
            prefix,
            filler,
        } => {
            let framing = if chunked {
                "Transfer-Encoding: chunked\r\n"
            } else {
                ""
            };
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\n{framing}Connection: close\r\n\r\n"
            );
            send(head.as_bytes()).await?;
            let frame = |data: &[u8]| -> Vec<u8> {
                if chunked {
                    let mut v = format!("{:x}\r\n", data.len()).into_bytes();
                    v.extend_from_slice(data);
                    v.extend_from_slice(b"\r\n");
                    v
                } else {
                    data.to_vec()
                }
            };
            if !prefix.is_empty() {
                send(&frame(&prefix)).await?;
            }
            let filler = frame(&filler);
            // Until the client hangs up: the write fails then.
            loop {
                send(&filler).await?;
            }
        }
    }
    wr.shutdown().await
}

/// This process's resident memory in bytes (Linux: `/proc/self/statm`; 0 elsewhere), for tests
/// that assert a hostile reply left memory flat.
pub fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// `http://127.0.0.1:PORT/` of a port nobody listens on (bound, then released): a host that is
/// down.
pub fn dead_url() -> io::Result<String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(format!("http://{}/", listener.local_addr()?))
}
