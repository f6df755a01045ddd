//! `cargo xtask fuzz`: the bolero targets of `fuzz/tests/targets.rs` on stable Rust, each
//! replaying its committed corpus and findings, then random inputs for its share of the time.
//! A debug build, as `cargo test` uses: overflow checks and debug assertions find more.

use std::process::Command;

use crate::{cargo, run};

/// Seconds of random inputs in all when `--time` is not given.
const DEFAULT_SECONDS: f64 = 20.0;
/// No target gets less: bolero checks the time before every input, the corpus included, and the
/// slowest corpus (regexp's) takes about 0.4 s to replay in a debug build.
const MIN_PER_TARGET_MS: f64 = 1000.0;

pub fn fuzz(args: &[String]) -> Result<(), String> {
    let mut seconds = DEFAULT_SECONDS;
    let mut seed = None;
    let mut wanted = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--time" => match it.next().map(|v| v.parse::<f64>()) {
                Some(Ok(t)) if (0.0..=86_400.0).contains(&t) => seconds = t,
                _ => return Err("--time takes seconds between 0 and 86400".into()),
            },
            // bolero's seeds are 128-bit; a failure prints the one that replays it.
            "--seed" => match it.next().map(|v| v.parse::<u128>()) {
                Some(Ok(s)) => seed = Some(s),
                _ => return Err("--seed takes the BOLERO_RANDOM_SEED a failure printed".into()),
            },
            flag if flag.starts_with('-') => return Err(format!("unknown fuzz option '{flag}'")),
            name => wanted.push(name.to_owned()),
        }
    }
    let targets = targets()?;
    if let Some(unknown) = wanted.iter().find(|w| !targets.contains(w)) {
        return Err(format!(
            "unknown fuzz target '{unknown}' (targets: {})",
            targets.join(", ")
        ));
    }
    let count = if wanted.is_empty() {
        targets.len()
    } else {
        wanted.len()
    };
    let mut cmd = bolero_tests();
    // One target at a time, so that each has the machine for its share and the total is --time.
    cmd.args(["--exact", "--nocapture", "--test-threads=1"])
        .args(&wanted);
    if let Some(seed) = seed {
        // Replay that one input (plus the corpus), nothing random.
        cmd.env("BOLERO_RANDOM_SEED", seed.to_string());
        cmd.env("BOLERO_RANDOM_ITERATIONS", "0");
    } else if seconds == 0.0 {
        // The corpus and findings only.
        cmd.env("BOLERO_RANDOM_ITERATIONS", "0");
    } else {
        let per_target_ms = (seconds * 1000.0 / count as f64)
            .ceil()
            .max(MIN_PER_TARGET_MS);
        cmd.env("BOLERO_RANDOM_TEST_TIME_MS", format!("{per_target_ms}"));
    }
    run(&mut cmd)
}

/// `cargo test` of the bolero targets; arguments after it go to the test harness.
fn bolero_tests() -> Command {
    let mut cmd = cargo();
    cmd.args([
        "test",
        "--quiet",
        "-p",
        "smsgw-fuzz",
        "--test",
        "targets",
        "--",
    ]);
    cmd
}

/// The target names, as the test harness lists them (one place: `fuzz/tests/targets.rs`).
fn targets() -> Result<Vec<String>, String> {
    let out = bolero_tests()
        .args(["--list", "--format", "terse"])
        .output()
        .map_err(|e| format!("cannot list the fuzz targets: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "listing the fuzz targets failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_suffix(": test"))
        .map(str::to_owned)
        .collect())
}
