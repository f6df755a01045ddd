//! Connections to one SMTP server: opened lazily with `TCP_NODELAY`, bounded while reading the
//! server's replies, pooled per server definition and runtime, shared by every gateway that
//! names the same server.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::io::{AsyncRead as _, AsyncWrite as _};
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
#[allow(deprecated)]
use lettre::transport::smtp::client::AsyncNetworkStream;
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use smsgw_core::secrecy::{ExposeSecret, SecretString};

use crate::bounded::BoundedReplies;
use crate::server::{Resolved, Security};

/// Everything that makes two server definitions share a pool. The password is only hashed.
#[derive(Clone, PartialEq, Eq, Hash)]
struct PoolKey {
    id: String,
    host: String,
    port: u16,
    security: Security,
    check_ssl: bool,
    username: Option<String>,
    password_hash: Option<u64>,
    timeout_ms: u128,
}

/// Connections kept open between sends, per server definition and runtime. More may be open
/// while sends run concurrently; a connection finishing when this many are idle is closed.
const MAX_IDLE: usize = 10;

/// An idle connection older than this is closed instead of reused (servers drop idle clients).
const MAX_IDLE_TIME: Duration = Duration::from_secs(60);

/// A server definition resolved for sending: where, how, and its (lazily opened) connections.
pub(crate) struct ServerConn {
    pub(crate) id: String,
    pub(crate) host: String,
    pub(crate) port: u16,
    security: Security,
    tls_parameters: Option<TlsParameters>,
    username: Option<String>,
    password: Option<SecretString>,
    pub(crate) timeout: Duration,
    hello_name: ClientId,
    pub(crate) slot: Mutex<Option<Slot>>,
    generation: AtomicU64,
}

/// The pool of one tokio runtime (connections belong to the runtime that opened them).
pub(crate) struct Slot {
    runtime: tokio::runtime::Id,
    pub(crate) generation: u64,
    pool: Arc<Pool>,
}

/// Idle, authenticated connections in a clean state (after a successful send), ready for the
/// next `MAIL FROM`, with the time they were put back. A connection is only put back after a
/// send that succeeded; after any error or timeout it is dropped.
#[derive(Default)]
pub(crate) struct Pool {
    idle: Mutex<Vec<(Instant, AsyncSmtpConnection)>>,
}

impl Pool {
    /// The most recently used idle connection; idle ones older than `MAX_IDLE_TIME` are closed.
    fn take(&self) -> Option<AsyncSmtpConnection> {
        let mut idle = self.idle.lock().unwrap();
        while let Some((since, conn)) = idle.pop() {
            if since.elapsed() < MAX_IDLE_TIME {
                return Some(conn);
            }
            drop(conn);
        }
        None
    }

    /// Puts a connection back; hands it back when the pool is full (or it is broken).
    pub(crate) fn put(&self, conn: AsyncSmtpConnection) -> Option<AsyncSmtpConnection> {
        let mut idle = self.idle.lock().unwrap();
        if idle.len() >= MAX_IDLE || conn.has_broken() {
            return Some(conn);
        }
        idle.push((Instant::now(), conn));
        None
    }

    pub(crate) fn drain(&self) -> Vec<AsyncSmtpConnection> {
        std::mem::take(&mut *self.idle.lock().unwrap())
            .into_iter()
            .map(|(_, c)| c)
            .collect()
    }
}

impl std::fmt::Debug for ServerConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpServer")
            .field("id", &self.id)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("username", &self.username)
            .field(
                "password",
                &self.password.as_ref().map(|_| smsgw_core::CENSORED),
            )
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Process-wide: server definitions in use, so that gateways naming the same server share one
/// pool. Weak, so a pool goes away with the last gateway using it.
static SERVERS: LazyLock<Mutex<HashMap<PoolKey, Weak<ServerConn>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// Why getting a connection ready failed.
pub(crate) enum ConnectError {
    /// Resolving or the TCP connect failed: nothing was sent.
    Tcp(std::io::Error),
    /// TLS, the greeting, EHLO, STARTTLS or AUTH failed.
    Smtp(lettre::transport::smtp::Error),
    /// The mail transaction failed (MAIL FROM … DATA and the final reply).
    Exchange(lettre::transport::smtp::Error),
}

impl From<lettre::transport::smtp::Error> for ConnectError {
    fn from(e: lettre::transport::smtp::Error) -> Self {
        ConnectError::Smtp(e)
    }
}

impl ServerConn {
    /// The pool for the current runtime, created on first use, and its generation.
    pub(crate) fn pool(&self) -> Option<(Arc<Pool>, u64)> {
        let current = tokio::runtime::Handle::try_current().ok()?.id();
        let mut slot = self.slot.lock().unwrap();
        if let Some(s) = slot.as_ref()
            && s.runtime == current
        {
            return Some((s.pool.clone(), s.generation));
        }
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::debug!(server = %self.id, generation, "smtp: new connection pool");
        let pool = Arc::new(Pool::default());
        let old = slot.replace(Slot {
            runtime: current,
            generation,
            pool: pool.clone(),
        });
        drop(slot);
        drop(old);
        Some((pool, generation))
    }

    /// Forgets the pool of `generation`; the next send starts a new one.
    pub(crate) fn reset(&self, generation: u64) -> Option<Arc<Pool>> {
        let mut slot = self.slot.lock().unwrap();
        if slot.as_ref().is_some_and(|s| s.generation == generation) {
            return slot.take().map(|s| s.pool);
        }
        None
    }

    /// Opens a TCP connection with `TCP_NODELAY` (lettre writes the mail data and the final
    /// `.` in two writes: with Nagle's algorithm the second waits for the server's delayed ACK,
    /// ~40 ms per mail), then lets lettre do TLS, the greeting, EHLO, STARTTLS and AUTH on it.
    async fn connect(&self) -> Result<AsyncSmtpConnection, ConnectError> {
        let addrs = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(ConnectError::Tcp)?;
        let mut last = None;
        let mut tcp = None;
        for addr in addrs {
            match tokio::net::TcpStream::connect(addr).await {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let tcp =
            tcp.ok_or_else(|| {
                ConnectError::Tcp(last.unwrap_or_else(|| {
                    std::io::Error::other("the host name resolves to no address")
                }))
            })?;
        tcp.set_nodelay(true).map_err(ConnectError::Tcp)?;
        let mut conn = match (&self.security, &self.tls_parameters) {
            (Security::Implicit, Some(p)) => {
                #[allow(deprecated)] // public, and the only way to do lettre's TLS on our socket
                let mut stream = AsyncNetworkStream::use_existing_tokio1(Box::new(tcp));
                stream.upgrade_tls(p.clone()).await?;
                AsyncSmtpConnection::connect_with_transport(
                    Box::new(BoundedReplies::new(TokioCompat(stream))),
                    &self.hello_name,
                )
                .await?
            }
            _ => {
                AsyncSmtpConnection::connect_with_transport(
                    Box::new(BoundedReplies::new(tcp)),
                    &self.hello_name,
                )
                .await?
            }
        };
        if let (Security::StartTls, Some(p)) = (&self.security, &self.tls_parameters) {
            // Fails (client error) when the server does not offer STARTTLS.
            conn.starttls(p.clone(), &self.hello_name).await?;
        }
        if let Some(user) = &self.username {
            let password = self
                .password
                .as_ref()
                .map(|p| p.expose_secret().to_owned())
                .unwrap_or_default();
            conn.auth(
                DEFAULT_MECHANISMS,
                &Credentials::new(user.clone(), password),
            )
            .await?;
        }
        Ok(conn)
    }

    /// A connection ready for a mail: an idle one that still answers `NOOP`, or a new one.
    pub(crate) async fn checkout(&self, pool: &Pool) -> Result<AsyncSmtpConnection, ConnectError> {
        // A pooled connection that does not answer NOOP quickly is given up, so that a dead
        // idle connection cannot use up the whole send's time before anything was sent.
        let probe = (self.timeout / 4).min(Duration::from_secs(2));
        while let Some(mut conn) = pool.take() {
            if let Ok(true) = tokio::time::timeout(probe, conn.test_connected()).await {
                tracing::trace!(server = %self.id, "smtp: reusing a pooled connection");
                return Ok(conn);
            }
            tracing::debug!(server = %self.id, "smtp: dropping a broken pooled connection");
        }
        tracing::debug!(server = %self.id, "smtp: opening a connection");
        self.connect().await
    }
}

/// Lets lettre's (futures-io) TLS stream be handed back to lettre as a tokio stream: implicit
/// TLS is set up by lettre on our socket before the greeting is read.
#[allow(deprecated)]
#[derive(Debug)]
struct TokioCompat(AsyncNetworkStream);

#[allow(deprecated)]
impl AsyncTokioStream for TokioCompat {
    fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.0.peer_addr()
    }
}

impl tokio::io::AsyncRead for TokioCompat {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let n = std::task::ready!(Pin::new(&mut self.0).poll_read(cx, buf.initialize_unfilled()))?;
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl tokio::io::AsyncWrite for TokioCompat {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_close(cx)
    }
}

/// The connection state for server definition `id`: shared with every gateway whose server
/// definition is the same.
pub(crate) fn server_conn(id: &str, r: &Resolved) -> Arc<ServerConn> {
    let key = PoolKey {
        id: id.to_owned(),
        host: r.host.clone(),
        port: r.port,
        security: r.security,
        check_ssl: r.check_ssl,
        username: r.username.clone(),
        password_hash: r.password.as_ref().map(|p| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            p.expose_secret().hash(&mut h);
            h.finish()
        }),
        timeout_ms: r.timeout.as_millis(),
    };
    let mut map = SERVERS.lock().unwrap();
    map.retain(|_, w| w.strong_count() > 0);
    if let Some(existing) = map.get(&key).and_then(Weak::upgrade) {
        return existing;
    }
    let conn = Arc::new(ServerConn {
        id: id.to_owned(),
        host: r.host.clone(),
        port: r.port,
        security: r.security,
        tls_parameters: r.tls_parameters.clone(),
        username: r.username.clone(),
        password: r.password.clone(),
        timeout: r.timeout,
        hello_name: ClientId::default(),
        slot: Mutex::new(None),
        generation: AtomicU64::new(0),
    });
    map.insert(key, Arc::downgrade(&conn));
    conn
}
