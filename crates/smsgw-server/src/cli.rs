//! What `smsgw serve` and `smsgw token` take on the command line, and the functions the CLI calls.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use smsgw_queue::{Queue, Scope, SqliteQueue, TokenRecord, now_ms};

use crate::server::{ServeError, ServerOptions, start, start_with_queue};

/// `smsgw serve`
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (loopback by default; put TLS in a reverse proxy).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// The SQLite database (created if missing).
    #[arg(long, default_value = "./smsgw.db")]
    pub db: PathBuf,
    /// Days message texts are kept after the message is final.
    #[arg(long, default_value_t = 7)]
    pub text_retention_days: u64,
    /// Days final messages are kept at all.
    #[arg(long, default_value_t = 90)]
    pub retention_days: u64,
    /// Seconds a message that was certainly not sent is retried before it fails.
    #[arg(long, default_value_t = 600)]
    pub retry_for: u64,
    /// Messages in flight per gateway or route.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Seconds SIGTERM waits for sends in flight.
    #[arg(long, default_value_t = 10)]
    pub shutdown_grace: u64,
    /// The gateway or route for Kannel's sendsms (and privacyIDEA's endpoint) when a request
    /// names none.
    #[arg(long)]
    pub default_target: Option<String>,
}

impl ServeArgs {
    /// The server options these arguments stand for, with the configuration file `config`.
    pub fn options(&self, config: Option<&Path>) -> ServerOptions {
        let mut o = ServerOptions::new(self.listen, self.db.clone());
        o.config = config.map(Path::to_path_buf);
        o.text_retention = Duration::from_secs(self.text_retention_days * 86_400);
        o.row_retention =
            Duration::from_secs(self.retention_days.max(self.text_retention_days) * 86_400);
        o.worker.retry_for = Duration::from_secs(self.retry_for);
        o.worker.concurrency = self.concurrency.max(1);
        o.shutdown_grace = Duration::from_secs(self.shutdown_grace);
        o.default_target = self.default_target.clone();
        o
    }
}

/// Runs `smsgw serve` until SIGTERM or Ctrl-C; SIGHUP reloads the configuration file.
pub async fn serve(args: &ServeArgs, config: Option<&Path>) -> Result<(), ServeError> {
    run_until_stopped(start(args.options(config)).await?).await
}

/// Runs `smsgw serve --queue …` on a shared `queue` (e.g. NATS JetStream) until SIGTERM or
/// Ctrl-C; with `run_worker` false this node only accepts and answers, and `smsgw worker`
/// processes send. `shared_rate` keeps gateway `rate` limits across processes (the broker's).
pub async fn serve_with_queue(
    args: &ServeArgs,
    config: Option<&Path>,
    queue: Arc<dyn Queue>,
    run_worker: bool,
    shared_rate: Option<Arc<dyn smsgw_routing::SharedRate>>,
) -> Result<(), ServeError> {
    let mut options = args.options(config);
    options.run_worker = run_worker;
    options.shared_rate = shared_rate;
    run_until_stopped(start_with_queue(options, queue).await?).await
}

async fn run_until_stopped(running: crate::Running) -> Result<(), ServeError> {
    eprintln!("smsgw serve: listening on http://{}", running.addr());
    wait_for_stop(&running).await;
    tracing::info!("stopping: no new requests; finishing the sends in flight");
    running.shutdown().await;
    Ok(())
}

#[cfg(unix)]
async fn wait_for_stop(running: &crate::Running) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => return,
            _ = tokio::signal::ctrl_c() => return,
            _ = hup.recv() => {
                if let Err(e) = running.reload().await {
                    tracing::error!("reload failed; the old configuration stays: {e}");
                }
            }
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_stop(_running: &crate::Running) {
    let _ = tokio::signal::ctrl_c().await;
}

/// `smsgw token …`
#[derive(Debug, Clone, clap::Args)]
pub struct TokenArgs {
    /// The SQLite database.
    #[arg(long, default_value = "./smsgw.db", global = true)]
    pub db: PathBuf,
    /// What to do.
    #[command(subcommand)]
    pub command: TokenCommand,
}

/// `smsgw token create | list | revoke`
#[derive(Debug, Clone, clap::Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it (alone, once) on standard output.
    Create {
        /// A unique name for the token.
        #[arg(long)]
        name: String,
        /// `send` (send and read messages) or `admin` (also manage gateways, routes, tokens).
        #[arg(long, value_parser = ["send", "admin"])]
        scope: String,
    },
    /// List the tokens' names and scopes.
    List,
    /// Revoke a token by name.
    Revoke {
        /// The token's name.
        name: String,
    },
}

/// Runs a token command on the SQLite file `args.db`; what it prints goes to `out`.
pub async fn token(args: &TokenArgs, out: &mut dyn std::io::Write) -> Result<(), ServeError> {
    let q = SqliteQueue::open(&args.db)
        .await
        .map_err(|error| ServeError::Store {
            path: args.db.display().to_string(),
            error,
        })?;
    let r = token_on(&args.command, &q, &args.db.display().to_string(), out).await;
    q.close().await;
    r
}

/// Runs a token command on any queue (`smsgw token --queue nats://…` keeps tokens where the
/// API nodes read them); `store` names it in errors.
pub async fn token_on(
    command: &TokenCommand,
    q: &dyn Queue,
    store: &str,
    out: &mut dyn std::io::Write,
) -> Result<(), ServeError> {
    let store = |error| ServeError::Store {
        path: store.to_owned(),
        error,
    };
    let io = |e: std::io::Error| ServeError::Token(e.to_string());
    match command {
        TokenCommand::Create { name, scope } => {
            let token = crate::auth::generate_token();
            let rec = TokenRecord {
                name: name.clone(),
                scope: Scope::parse(scope)
                    .ok_or_else(|| ServeError::Token(format!("unknown scope '{scope}'")))?,
                hash: crate::auth::hash_token(&token),
                created_at: now_ms(),
            };
            match q.create_token(&rec).await {
                Ok(()) => writeln!(out, "{token}").map_err(io),
                Err(smsgw_queue::QueueError::Exists(_)) => Err(ServeError::Token(format!(
                    "a token named '{name}' exists; revoke it first or pick another name"
                ))),
                Err(e) => Err(store(e)),
            }
        }
        TokenCommand::List => {
            let list = q.list_tokens().await.map_err(store)?;
            for t in list {
                writeln!(
                    out,
                    "{}\t{}\t{}",
                    t.name,
                    t.scope.as_str(),
                    crate::api::messages::rfc3339(t.created_at)
                )
                .map_err(io)?;
            }
            Ok(())
        }
        TokenCommand::Revoke { name } => match q.revoke_token(name).await.map_err(store)? {
            true => Ok(()),
            false => Err(ServeError::Token(format!("no token named '{name}'"))),
        },
    }
}
