//! Project automation: `cargo xtask <command>`. Kept free of dependencies on purpose: it only
//! runs cargo and compares files.

use std::path::PathBuf;
use std::process::{Command, ExitCode};

mod bench;
mod fuzz;

const HELP: &str = "\
cargo xtask <command>

  ci                       everything .ci/run needs: fmt check, clippy, test
  test                     the test suite: workspace tests, the one-feature build, conformance
  conformance [--provider NAME]
                           the provider conformance suite, one line per check and provider
  docs [--check]           regenerate docs/providers/reference.md from the registry
                           (--check: fail if it is stale)
  bench [--quick] [--stream]
                           throughput benchmarks against the sinks (see docs/benchmarks.md);
                           --stream: only the constant-memory case (10 000 000 recipients,
                           1 000 000 with --quick)
  bench serve [ARGS...]    the `smsgw serve` benchmark (smsgw-server's bench_serve example)
  bench nats [ARGS...]     the scale-out benchmark (smsgw-nats's bench_nats example)
  fuzz [--time SECONDS] [--seed N] [TARGET...]
                           the bolero fuzz targets of fuzz/ on stable: each replays its corpus
                           and findings, then random inputs for SECONDS in all (default 20,
                           at least 1 s a target; 0: the corpus only); --seed replays the
                           input a failure printed as BOLERO_RANDOM_SEED; see docs/security.md
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = root();
    std::env::set_current_dir(&root).expect("cd to the workspace root");
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("test") => test(),
        Some("conformance") => conformance(&args[1..]),
        Some("docs") => docs(args.iter().any(|a| a == "--check")),
        Some("bench") => match args.get(1).map(String::as_str) {
            Some("serve") => example("smsgw-server", "bench_serve", &args[2..]),
            Some("nats") => example("smsgw-nats", "bench_nats", &args[2..]),
            _ => bench::bench(&args[1..]),
        },
        Some("fuzz") => fuzz::fuzz(&args[1..]),
        Some("help" | "--help" | "-h") | None => {
            print!("{HELP}");
            Ok(())
        }
        Some(other) => Err(format!("unknown command '{other}'\n{HELP}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn root() -> PathBuf {
    // `cargo run` sets the variable at run time too; preferring it keeps a binary that cargo did
    // not rebuild after the checkout moved (same sources, other path) working on this checkout.
    let dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    dir.parent()
        .expect("xtask lives in the workspace root")
        .to_owned()
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn run(cmd: &mut Command) -> Result<(), String> {
    eprintln!("xtask: running {cmd:?}");
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed with {status}"))
    }
}

fn ci() -> Result<(), String> {
    run(cargo().args(["fmt", "--all", "--check"]))?;
    run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    test()
}

fn test() -> Result<(), String> {
    // One build serves the workspace tests (all providers enabled through the tests crate).
    run(cargo().args(["test", "--workspace", "--no-fail-fast"]))?;
    // The umbrella built with one feature only: its registry must hold exactly that provider.
    // A separate package outside the workspace's feature unification, sharing target/.
    let target = root().join("target");
    // Same versions as the workspace, so that target/ already holds most of what it needs.
    std::fs::copy("Cargo.lock", "tests/one-feature/Cargo.lock").map_err(|e| e.to_string())?;
    run(cargo()
        .args([
            "run",
            "--quiet",
            "--manifest-path",
            "tests/one-feature/Cargo.toml",
        ])
        .env("CARGO_TARGET_DIR", &target))?;
    // The command with each provider feature alone must build too: no module of it may assume
    // a provider is compiled in. `cargo check` (no codegen) keeps this cheap.
    for feature in cli_features()? {
        run(cargo().args([
            "check",
            "--quiet",
            "-p",
            "smsgw-cli",
            "--no-default-features",
            "--features",
            &feature,
        ]))?;
    }
    // Last, so that its closing line is the run's summary.
    conformance(&[])
}

/// smsgw-cli's features other than `default` (one per provider, each mapped to the umbrella's),
/// read from its Cargo.toml so that the list stays written in one place.
fn cli_features() -> Result<Vec<String>, String> {
    let path = root().join("crates/smsgw-cli/Cargo.toml");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let features = features_of(&text);
    if features.is_empty() {
        return Err(format!("{} declares no provider features", path.display()));
    }
    Ok(features)
}

/// The provider features of a manifest's `[features]` table: those that enable one of the
/// umbrella's (`x = ["smsgw/x"]`), not `default` or others such as the allocator's.
fn features_of(manifest: &str) -> Vec<String> {
    manifest
        .lines()
        .skip_while(|l| l.trim() != "[features]")
        .skip(1)
        .take_while(|l| !l.trim_start().starts_with('['))
        .filter_map(|l| l.split_once('='))
        .filter(|(_, v)| v.contains("\"smsgw/"))
        .map(|(k, _)| k.trim().to_owned())
        .filter(|k| !k.is_empty() && !k.starts_with('#') && k != "default")
        .collect()
}

fn conformance(args: &[String]) -> Result<(), String> {
    let mut cmd = cargo();
    cmd.args([
        "test",
        "--quiet",
        "-p",
        "smsgw-e2e",
        "--test",
        "conformance",
        "--",
    ]);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--provider" => {
                let name = it.next().ok_or("--provider needs a name")?;
                cmd.args(["--provider", name]);
            }
            other => return Err(format!("unknown conformance option '{other}'")),
        }
    }
    run(&mut cmd)
}

/// A benchmark that lives as an example of its crate, run in release mode with `args`.
fn example(package: &str, name: &str, args: &[String]) -> Result<(), String> {
    run(cargo()
        .args([
            "run",
            "--release",
            "--quiet",
            "-p",
            package,
            "--example",
            name,
            "--",
        ])
        .args(args))
}

const REFERENCE: &str = "docs/providers/reference.md";

fn docs(check: bool) -> Result<(), String> {
    let out = cargo()
        .args([
            "run",
            "--quiet",
            "-p",
            "smsgw-cli",
            "--",
            "providers",
            "--markdown",
        ])
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "smsgw providers --markdown failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let fresh = String::from_utf8(out.stdout).map_err(|e| e.to_string())?;
    let current = std::fs::read_to_string(REFERENCE).unwrap_or_default();
    if check {
        if current != fresh {
            return Err(format!(
                "{REFERENCE} is stale: run `cargo xtask docs` and commit it"
            ));
        }
        eprintln!("xtask: {REFERENCE} is up to date");
        return Ok(());
    }
    std::fs::write(REFERENCE, fresh).map_err(|e| e.to_string())?;
    eprintln!("xtask: wrote {REFERENCE}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_provider_features_are_read_from_the_cli_manifest() {
        let manifest = "[package]\nname = \"x\"\n\n[features]\ndefault = [\"http\"]\n\
                        ## docs\nhttp = [\"smsgw/http\"]\nsmpp = [\"smsgw/smpp\"]\n\
                        mimalloc = [\"dep:mimalloc\"]\n\n\
                        [dependencies]\nsmsgw = \"1\"\n";
        assert_eq!(features_of(manifest), ["http", "smpp"]);
        assert_eq!(cli_features().unwrap(), ["http", "sipgate", "smtp", "smpp"]);
    }
}
