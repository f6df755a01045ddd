//! A provider name registered twice: this test binary links the built-in `http` provider (through
//! smsgw-cli) and registers a second `http` of its own, like a third-party crate that picked a
//! taken name. `smsgw providers` and `smsgw check` must refuse with exit status 2 and name both
//! registering crates.
//!
//! It is its own `smsgw`: run with `SMSGW_DUPLICATE_CHILD` set, it hands its arguments to
//! `smsgw_cli::run`; run by `cargo test` (no harness), it runs itself that way and checks.

use std::process::{Command, ExitCode, Output};
use std::sync::Arc;

use smsgw_core::{
    BuildContext, ConfigErrors, Message, Provider, ProviderDescriptor, Receipt, SendError,
    async_trait, register_provider,
};
use smsgw_provider_example as _;

const CHILD: &str = "SMSGW_DUPLICATE_CHILD";

#[derive(Debug)]
struct Impostor;

#[async_trait]
impl Provider for Impostor {
    async fn send(&self, _m: &Message) -> Result<Receipt, SendError> {
        Ok(Receipt::new("impostor", "http"))
    }
}

fn build(_ctx: &BuildContext<'_>) -> Result<Arc<dyn Provider>, ConfigErrors> {
    Ok(Arc::new(Impostor))
}

register_provider!(ProviderDescriptor::new(
    "http",
    "A second provider named http.",
    build
));

fn main() -> ExitCode {
    if std::env::var_os(CHILD).is_some() {
        return smsgw_cli::run(std::env::args_os());
    }
    // `cargo test -- --list` and filters come here too: answer the listing, run otherwise.
    if std::env::args().any(|a| a == "--list") {
        println!("duplicate_provider: test");
        return ExitCode::SUCCESS;
    }
    providers_and_check_refuse_and_name_both_crates();
    println!("test duplicate_provider ... ok");
    ExitCode::SUCCESS
}

fn smsgw(args: &[&str]) -> Output {
    Command::new(std::env::current_exe().expect("own path"))
        .env(CHILD, "1")
        .env_remove("SMSGW_CONFIG")
        .env_remove("RUST_LOG")
        .args(args)
        .output()
        .expect("run this binary as smsgw")
}

fn providers_and_check_refuse_and_name_both_crates() {
    // A valid file without the contested name: only the duplicate can make `check` fail (a
    // missing or broken file would exit 2 too).
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("duplicate-provider-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("smsgw.toml");
    std::fs::write(
        &cfg,
        "[gateways.line]\nprovider = \"linegw\"\n[gateways.line.options]\n\
         HOST = \"127.0.0.1\"\nPORT = \"9\"\nTOKEN = \"t\"\n",
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap();
    for args in [
        &["providers"][..],
        &["providers", "--json"],
        &["-c", cfg, "check"],
    ] {
        let o = smsgw(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "smsgw {args:?}: {err}");
        assert!(
            err.contains("provider name 'http' is registered 2 times"),
            "smsgw {args:?}: {err}"
        );
        // Both registering crates by name: the built-in and this test binary's crate.
        assert!(err.contains("smsgw_http"), "smsgw {args:?}: {err}");
        assert!(err.contains("duplicate_provider"), "smsgw {args:?}: {err}");
        assert!(o.stdout.is_empty(), "smsgw {args:?} listed anyway");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
