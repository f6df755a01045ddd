//! The service subcommands: `serve`, `token`, `worker`, `queue status`. The arguments and the
//! work live in `smsgw-server` and `smsgw-nats`; this file only picks the runtime, the
//! configuration file and the exit status.

use std::path::PathBuf;
use std::sync::Arc;

use smsgw_nats::cli::{NatsArgs, NatsTuning, WorkerArgs};
use smsgw_server::{ServeArgs, ServerOptions, TokenArgs};

use crate::{Context, EXIT_CONFIG, EXIT_FAILED};

/// `smsgw serve`
#[derive(clap::Args)]
pub(crate) struct ServeCmd {
    #[command(flatten)]
    serve: ServeArgs,
    /// Keep the queue on NATS JetStream (nats://HOST:4222) instead of the SQLite file.
    #[arg(long, env = "SMSGW_QUEUE", value_name = "nats://HOST:PORT")]
    queue: Option<String>,
    #[command(flatten)]
    nats: NatsTuning,
    /// With --queue: also send in this process (without it, `smsgw worker` processes send).
    #[arg(long, requires = "queue")]
    worker: bool,
}

/// `smsgw token …`
#[derive(clap::Args)]
pub(crate) struct TokenCmd {
    #[command(flatten)]
    token: TokenArgs,
    /// Keep the tokens on NATS JetStream (nats://HOST:4222), where `serve --queue` reads them,
    /// instead of in the SQLite file.
    #[arg(
        long,
        global = true,
        env = "SMSGW_QUEUE",
        value_name = "nats://HOST:PORT"
    )]
    queue: Option<String>,
    #[command(flatten)]
    nats: NatsTuning,
}

/// `smsgw queue …`
#[derive(clap::Subcommand)]
pub(crate) enum QueueCmd {
    /// Print the broker's stream depth, consumers, redeliveries and dead letters.
    Status(NatsArgs),
}

/// `smsgw serve`: runs until SIGTERM; 0 on a clean stop, 2 when it cannot start.
pub(crate) fn serve(ctx: &Context, cmd: ServeCmd) -> u8 {
    let rt = match ctx.runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let config = config_file(ctx);
    let r = rt.block_on(async {
        match &cmd.queue {
            None => smsgw_server::serve(&cmd.serve, config.as_deref()).await,
            Some(url) => {
                let queue = cmd
                    .nats
                    .connect(url)
                    .await
                    .map_err(|e| smsgw_server::ServeError::Config(e.to_string()))?;
                // Every worker process takes send tokens from one bucket per gateway.
                let rate = queue.shared_rate();
                smsgw_server::serve_with_queue(
                    &cmd.serve,
                    config.as_deref(),
                    Arc::new(queue),
                    cmd.worker,
                    Some(rate),
                )
                .await
            }
        }
    });
    match r {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_CONFIG
        }
    }
}

/// `smsgw token create | list | revoke`: what they print goes to standard output.
pub(crate) fn token(ctx: &Context, cmd: TokenCmd) -> u8 {
    let rt = match ctx.runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let mut out = Vec::new();
    let r = rt.block_on(async {
        let Some(url) = &cmd.queue else {
            return smsgw_server::token(&cmd.token, &mut out).await;
        };
        let q = cmd
            .nats
            .connect(url)
            .await
            .map_err(|e| smsgw_server::ServeError::Config(e.to_string()))?;
        let r = smsgw_server::token_on(&cmd.token.command, &q, "the NATS queue", &mut out).await;
        smsgw_queue::Queue::close(&q).await;
        r
    });
    out!("{}", String::from_utf8_lossy(&out));
    match r {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_CONFIG
        }
    }
}

/// `smsgw worker`: sends what the broker holds through the configuration file's gateways (and
/// those created through the API) until SIGTERM or Ctrl-C — the server's own delivery worker.
pub(crate) fn worker(ctx: &Context, args: WorkerArgs) -> u8 {
    let rt = match ctx.runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let r = rt.block_on(async {
        let queue = args
            .nats
            .connect()
            .await
            .map_err(|e| smsgw_server::ServeError::Config(e.to_string()))?;
        // No listener and no database file: only the delivery side of the server options.
        let mut opts = ServerOptions::new(([127, 0, 0, 1], 0).into(), PathBuf::new());
        opts.config = config_file(ctx);
        opts.worker.concurrency = args.concurrency as usize;
        // Gateway rates hold across all workers together: one bucket per gateway in the broker.
        opts.shared_rate = Some(queue.shared_rate());
        smsgw_server::run_worker(opts, Arc::new(queue), stop_signal()).await
    });
    match r {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_CONFIG
        }
    }
}

/// The configuration file: the one named, else `./smsgw.toml` if it exists, else none (every
/// gateway then comes from the API).
fn config_file(ctx: &Context) -> Option<PathBuf> {
    let (path, named) = ctx.config_path();
    (named || path.exists()).then_some(path)
}

/// `smsgw queue status`
pub(crate) fn queue(ctx: &Context, cmd: QueueCmd) -> u8 {
    let rt = match ctx.runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match cmd {
        QueueCmd::Status(args) => match rt.block_on(smsgw_nats::cli::status(&args)) {
            Ok(status) => {
                out!("{status}");
                0
            }
            Err(e) => {
                eprintln!("error: {e}");
                EXIT_FAILED
            }
        },
    }
}

/// SIGTERM or Ctrl-C.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
