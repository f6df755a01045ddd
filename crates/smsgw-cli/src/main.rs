//! `smsgw` — define SMS gateways once, check them, send through them, try them against local sinks.
//!
//! Exit status: 0 success; 1 sending failed (the output says whether a message may have been sent);
//! 2 usage or configuration error.

mod bulk;
mod import;
mod output;
mod sinks;

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use smsgw::{Config, ConfigErrors, Gateways, Message, Registry};

/// Exit status when sending failed.
const EXIT_FAILED: u8 = 1;
/// Exit status for usage and configuration errors.
const EXIT_CONFIG: u8 = 2;

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
    #[arg(long, global = true, default_value_t = 1, value_name = "N")]
    threads: usize,
    #[command(subcommand)]
    command: Command,
}

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
    Send(bulk::SendArgs),
    /// Run local sinks (HTTP, sipgate XML-RPC, SMTP, SMPP) on loopback and print what arrives.
    Sink(sinks::SinkArgs),
    /// Send one SMS through every compiled-in provider against in-process sinks, and show what
    /// arrived. Needs no configuration and no network.
    Demo {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Convert a privacyIDEA `pi-manage config export` (JSON or YAML) into smsgw.toml on standard output.
    ImportPrivacyidea {
        /// The exported file.
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_CONFIG } else { 0 });
        }
    };
    init_logging(cli.verbose, cli.quiet);
    let _ = THREADS.set(cli.threads);
    let _ = QUIET.set(cli.quiet);
    let code = match cli.command {
        Command::Providers { .. } | Command::Check if duplicates_reported() => EXIT_CONFIG,
        Command::Providers { json, markdown } => {
            if markdown {
                output::providers_markdown(Registry::global())
            } else {
                output::providers(Registry::global(), json)
            }
        }
        Command::Gateways { json } => with_config(cli.config, |cfg| output::gateways(cfg, json)),
        Command::Check => with_config(cli.config, check),
        Command::Send(args) => with_config(cli.config, |cfg| send(cfg, args)),
        Command::ImportPrivacyidea { file } => import::run(&file),
        Command::Sink(args) => sinks::sink(args),
        Command::Demo { json } => sinks::demo(json),
    };
    ExitCode::from(code)
}

fn init_logging(verbose: u8, quiet: bool) {
    use tracing_subscriber::EnvFilter;
    // -v and -vv raise the level of smsgw's own crates only: the protocol crates underneath log
    // PDUs and requests (message texts, for SMPP even the bind password) at debug level.
    let ours = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "debug",
        _ => "trace",
    };
    let level = if quiet || verbose == 0 {
        ours.to_owned()
    } else {
        [
            "smsgw",
            "smsgw_core",
            "smsgw_cli",
            "smsgw_http",
            "smsgw_sipgate",
            "smsgw_smtp",
            "smsgw_smpp",
        ]
        .iter()
        .fold("warn".to_owned(), |acc, c| format!("{acc},{c}={ours}"))
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn config_path(flag: Option<PathBuf>) -> PathBuf {
    flag.or_else(|| std::env::var_os("SMSGW_CONFIG").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("smsgw.toml"))
}

fn with_config(flag: Option<PathBuf>, f: impl FnOnce(&Config) -> u8) -> u8 {
    let path = config_path(flag);
    match Config::load(&path) {
        Ok(cfg) => f(&cfg),
        Err(e) => {
            report_config_errors(&e);
            EXIT_CONFIG
        }
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
    match Gateways::build(cfg, Registry::global()) {
        Ok(gws) => {
            let n = gws.iter().count();
            println!("ok: {n} gateway{} valid", if n == 1 { "" } else { "s" });
            0
        }
        Err(e) => {
            report_config_errors(&e);
            EXIT_CONFIG
        }
    }
}

/// `--quiet`: no progress output.
static QUIET: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// Whether `--quiet` was given.
fn quiet() -> bool {
    *QUIET.get().unwrap_or(&false)
}

/// Worker threads of the async runtime, from `--threads` (set once in `main`).
static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();

/// One thread by default: sending is I/O-bound, and on a small machine a second worker thread
/// costs more in cross-thread wake-ups than it gains (see docs/benchmarks.md).
fn runtime() -> tokio::runtime::Runtime {
    let threads = *THREADS.get().unwrap_or(&1);
    if threads == 1 {
        return tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
    }
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if threads > 1 {
        b.worker_threads(threads);
    }
    b.enable_all().build().expect("tokio runtime")
}

fn send(cfg: &Config, args: bulk::SendArgs) -> u8 {
    let Some(def) = cfg.gateways.get(&args.gateway) else {
        let known: Vec<&str> = cfg.gateways.keys().map(String::as_str).collect();
        eprintln!(
            "error: no gateway '{}' in the configuration (defined: {})",
            args.gateway,
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        );
        return EXIT_CONFIG;
    };
    let gateway = match smsgw::Gateway::build(def, &cfg.sections, Registry::global()) {
        Ok(g) => g,
        Err(e) => {
            report_config_errors(&e);
            return EXIT_CONFIG;
        }
    };
    if args.file.is_some() {
        return bulk::run(gateway, args);
    }
    let Some(phone) = args.phone.clone() else {
        eprintln!("error: --phone (or --file) is required");
        return EXIT_CONFIG;
    };
    let text = match args.message.as_deref() {
        None => {
            eprintln!("error: --message is required (use --message - to read standard input)");
            return EXIT_CONFIG;
        }
        Some("-") => {
            let mut s = String::new();
            if let Err(e) = std::io::stdin().read_to_string(&mut s) {
                eprintln!("error: cannot read the message from standard input: {e}");
                return EXIT_CONFIG;
            }
            s.strip_suffix('\n')
                .map(|t| t.strip_suffix('\r').unwrap_or(t))
                .unwrap_or(&s)
                .to_owned()
        }
        Some(t) => t.to_owned(),
    };
    let rt = runtime();
    let result = rt.block_on(async {
        let r = gateway.send(&Message::new(phone, text)).await;
        gateway.shutdown().await;
        r
    });
    output::single_result(&result, args.json)
}
