//! The `smsgw` command as a library, so that anyone can build their own `smsgw` with more
//! providers: every subcommand — `providers`, `check`, `send`, `demo`, `sink`, `conformance` —
//! works with every provider linked into the binary.
//!
//! ```no_run
//! use std::process::ExitCode;
//!
//! // Naming a crate links it in: its provider (and its harness, if it registers one) joins the
//! // registries. `smsgw_cli` itself links the built-in providers of its default features.
//! // use acme_sms as _;
//!
//! fn main() -> ExitCode {
//!     smsgw_cli::main()
//! }
//! ```
//!
//! Exit status: 0 success; 1 sending failed (the output says whether a message may have been
//! sent); 2 usage or configuration error.
#![deny(missing_docs)]

/// `println!` for standard output that may be closed (`smsgw providers | head -0`): what cannot
/// be written is dropped, and the exit status stays that of the command (for `send`, of the
/// send), never a panic.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// `print!` for standard output that may be closed; see [`outln!`].
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout().lock(), $($arg)*);
    }};
}

mod import;
mod output;
mod receipts;
mod recipients;
mod report;
mod send;
mod serve;
mod sinks;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use smsgw::{Config, ConfigErrors, Gateways, Registry};

/// Exit status when sending failed.
const EXIT_FAILED: u8 = 1;
/// Exit status for usage and configuration errors.
const EXIT_CONFIG: u8 = 2;
/// The most worker threads `--threads` accepts: far more than any machine this runs on needs,
/// far fewer than what exhausts the process's resources.
const MAX_THREADS: u32 = 512;

#[derive(Parser)]
#[command(
    name = "smsgw",
    version,
    about = "Send SMS through centrally defined gateways (privacyIDEA-compatible)."
)]
struct Cli {
    /// The configuration file [default: $SMSGW_CONFIG, else ./smsgw.toml]
    #[arg(long, short = 'c', global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    /// More log output on standard error (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Less output: errors only, no progress lines.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// Worker threads for sending and for the sinks (0: one per core).
    #[arg(long, global = true, default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u32).range(0..=MAX_THREADS as i64))]
    threads: u32,
    #[command(subcommand)]
    command: Command,
}

/// The subcommands. Each variant carries its own argument struct and is run by one function
/// that takes the [`Context`]: adding a subcommand is a variant and a match arm.
#[derive(Subcommand)]
enum Command {
    /// List the compiled-in providers with their parameters.
    Providers {
        /// Print JSON instead of text.
        #[arg(long, conflicts_with = "markdown")]
        json: bool,
        /// Print the Markdown parameter reference (docs/providers/reference.md).
        #[arg(long)]
        markdown: bool,
    },
    /// List the configured gateways, secrets censored.
    Gateways {
        /// Print JSON instead of TOML.
        #[arg(long)]
        json: bool,
    },
    /// Validate every gateway; exit 0, or 2 with every problem listed.
    Check,
    /// Send an SMS (or one to every line of a CSV file) through a gateway.
    Send(send::SendArgs),
    /// Run local sinks (one per provider with a harness) on loopback and print what arrives.
    Sink(sinks::SinkArgs),
    /// Send one SMS through every compiled-in provider against in-process sinks, and show what
    /// arrived. Needs no configuration and no network.
    Demo {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Run the provider conformance suite against in-process sinks, one line per check.
    Conformance {
        /// Only this provider.
        #[arg(long, value_name = "NAME")]
        provider: Option<String>,
    },
    /// Run the gateway as a service: HTTP API, durable queue, admin page (docs/service.md).
    Serve(serve::ServeCmd),
    /// Create, list or revoke the service's API tokens.
    Token(serve::TokenCmd),
    /// Send what a NATS JetStream queue holds (docs/scaling.md).
    Worker(smsgw_nats::cli::WorkerArgs),
    /// Inspect the NATS JetStream queue.
    Queue {
        #[command(subcommand)]
        command: serve::QueueCmd,
    },
    /// Convert a privacyIDEA `pi-manage config export` (JSON or YAML) into smsgw.toml on standard output.
    ImportPrivacyidea {
        /// The exported file.
        file: PathBuf,
    },
}

/// What every subcommand may need from the global options, passed down instead of globals.
pub(crate) struct Context {
    /// `--config`, unresolved.
    config: Option<PathBuf>,
    /// `--quiet`: no progress output.
    pub(crate) quiet: bool,
    /// `--threads`.
    threads: u32,
}

impl Context {
    /// The async runtime for `--threads`. One thread by default: sending is I/O-bound, and on a
    /// small machine a second worker thread costs more in cross-thread wake-ups than it gains
    /// (see docs/benchmarks.md).
    pub(crate) fn runtime(&self) -> Result<tokio::runtime::Runtime, u8> {
        let built = if self.threads == 1 {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
        } else {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            if self.threads > 1 {
                b.worker_threads(self.threads as usize);
            }
            b.enable_all().build()
        };
        built.map_err(|e| {
            eprintln!("error: cannot start {} worker thread(s): {e}", self.threads);
            EXIT_CONFIG
        })
    }

    /// `--config`, else `$SMSGW_CONFIG`, else `./smsgw.toml`; and whether it was named.
    pub(crate) fn config_path(&self) -> (PathBuf, bool) {
        match self
            .config
            .clone()
            .or_else(|| std::env::var_os("SMSGW_CONFIG").map(PathBuf::from))
        {
            Some(p) => (p, true),
            None => (PathBuf::from("smsgw.toml"), false),
        }
    }

    /// Loads the configuration file, or prints every problem and gives the exit status.
    pub(crate) fn load_config(&self) -> Result<Config, u8> {
        let (path, _) = self.config_path();
        Config::load(&path).map_err(|e| {
            report_config_errors(&e);
            EXIT_CONFIG
        })
    }
}

/// Runs the `smsgw` command with the process's arguments and returns its exit status.
///
/// Every provider and every conformance harness linked into the calling binary is included.
pub fn main() -> ExitCode {
    run(std::env::args_os())
}

/// Runs the `smsgw` command with `args` (the first is the program name).
pub fn run<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let command = sinks::add_port_args(Cli::command());
    let parsed = command
        .try_get_matches_from(args)
        .and_then(|m| Cli::from_arg_matches(&m).map(|c| (c, m)));
    let (cli, matches) = match parsed {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_CONFIG } else { 0 });
        }
    };
    init_logging(cli.verbose, cli.quiet);
    let ctx = Context {
        config: cli.config,
        quiet: cli.quiet,
        threads: cli.threads,
    };
    let code = match cli.command {
        Command::Providers { .. } | Command::Check if duplicates_reported() => EXIT_CONFIG,
        Command::Providers { json, markdown } => {
            if markdown {
                output::providers_markdown(Registry::global())
            } else {
                output::providers(Registry::global(), json)
            }
        }
        Command::Gateways { json } => with_config(&ctx, |cfg| output::gateways(cfg, json)),
        Command::Check => with_config(&ctx, check),
        Command::Send(args) => with_config(&ctx, |cfg| send::run(&ctx, cfg, args)),
        Command::ImportPrivacyidea { file } => import::run(&file),
        Command::Sink(args) => {
            let ports = sinks::ports(matches.subcommand_matches("sink"));
            sinks::sink(&ctx, args, ports)
        }
        Command::Demo { json } => sinks::demo(&ctx, json),
        Command::Conformance { provider } => conformance(provider.as_deref()),
        Command::Serve(cmd) => serve::serve(&ctx, cmd),
        Command::Token(args) => serve::token(&ctx, args),
        Command::Worker(args) => serve::worker(&ctx, args),
        Command::Queue { command } => serve::queue(&ctx, command),
    };
    ExitCode::from(code)
}

fn init_logging(verbose: u8, quiet: bool) {
    use tracing_subscriber::EnvFilter;
    // -v and -vv raise the level of smsgw's own crates only (a target directive matches every
    // target it prefixes, so `smsgw` covers smsgw_core, smsgw_http, …): the protocol crates
    // underneath log PDUs and requests (message texts, for SMPP even the bind password) at
    // debug level. A third-party provider crate is raised with RUST_LOG.
    let ours = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "debug",
        _ => "trace",
    };
    let level = if quiet || verbose == 0 {
        ours.to_owned()
    } else {
        format!("warn,smsgw={ours}")
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn with_config(ctx: &Context, f: impl FnOnce(&Config) -> u8) -> u8 {
    match ctx.load_config() {
        Ok(cfg) => f(&cfg),
        Err(code) => code,
    }
}

/// A provider name registered twice makes every gateway of that name unusable: `providers` and
/// `check` say so, naming the registering crates, and exit 2.
fn duplicates_reported() -> bool {
    let dups = Registry::global().duplicates();
    for d in &dups {
        eprintln!("error: {d}");
    }
    !dups.is_empty()
}

fn report_config_errors(e: &ConfigErrors) {
    eprintln!("error: {e}");
}

fn check(cfg: &Config) -> u8 {
    use smsgw::routing::{Router, RoutingConfig, check_references};
    // The core runs the routing section hooks inside `Gateways::build`; the references to
    // gateways need the whole file, so each problem is reported exactly once.
    let built = match Gateways::build(cfg, Registry::global()) {
        Ok(gws) => Router::build(&RoutingConfig::from_config(cfg), &gws).map(|r| (gws, r)),
        // Routes naming unknown gateways are found without built gateways too.
        Err(mut e) => {
            e.extend(check_references(cfg));
            Err(e)
        }
    };
    match built {
        Ok((gws, router)) => {
            let n = gws.iter().count();
            let r = router.listing().routes.len();
            let routes = match r {
                0 => String::new(),
                1 => ", 1 route".to_owned(),
                r => format!(", {r} routes"),
            };
            outln!(
                "ok: {n} gateway{}{routes} valid",
                if n == 1 { "" } else { "s" }
            );
            0
        }
        Err(e) => {
            report_config_errors(&e);
            EXIT_CONFIG
        }
    }
}

/// `smsgw conformance`: the suite over every linked-in provider, as `cargo xtask conformance`.
fn conformance(only: Option<&str>) -> u8 {
    let (passed, failed) = smsgw_sinks::conformance::run_registered(only);
    outln!("{passed} passed, {failed} failed");
    if failed > 0 { EXIT_FAILED } else { 0 }
}
