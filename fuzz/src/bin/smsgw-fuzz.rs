//! `smsgw-fuzz [--time SECONDS] [--seed N] [TARGET...]`: replay every target's corpus, then
//! mutate it for SECONDS split across the targets (default 20 in all). Exit 1 on any finding.

use std::process::ExitCode;
use std::time::Duration;

use smsgw_fuzz::{TARGETS, engine};

fn main() -> ExitCode {
    let mut time = 20.0_f64;
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut only = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let value = |args: &mut dyn Iterator<Item = String>| args.next().unwrap_or_default();
        match a.as_str() {
            "--time" => match value(&mut args).parse::<f64>() {
                Ok(t) if (0.0..=86_400.0).contains(&t) => time = t,
                _ => return usage("--time takes seconds between 0 and 86400"),
            },
            "--seed" => match value(&mut args).parse() {
                Ok(s) => seed = s,
                Err(_) => return usage("--seed takes an unsigned integer"),
            },
            "-h" | "--help" => return usage(""),
            name if TARGETS.iter().any(|t| t.name == name) => only.push(name.to_owned()),
            other => return usage(&format!("unknown target or flag {other:?}")),
        }
    }
    let targets: Vec<_> = TARGETS
        .iter()
        .filter(|t| only.is_empty() || only.contains(&t.name.to_owned()))
        .collect();
    let per_target = Duration::from_secs_f64(time / targets.len() as f64);
    // Findings are reported below with their saved input; the default hook would print each.
    std::panic::set_hook(Box::new(|info| eprintln!("  panic: {info}")));
    let mut failed = false;
    println!(
        "fuzz: seed {seed}, {:.1} s per target",
        per_target.as_secs_f64()
    );
    for target in targets {
        let budget = engine::Budget {
            time: per_target,
            iterations: u64::MAX,
        };
        let r = engine::run(target, budget, seed);
        println!(
            "{:<14} {:>4} seeds, {:>8} mutations, {} crashes",
            target.name,
            r.seeds,
            r.mutations,
            r.crashes.len()
        );
        for path in &r.crashes {
            println!("  saved {}", path.display());
        }
        failed |= !r.crashes.is_empty();
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn usage(problem: &str) -> ExitCode {
    if !problem.is_empty() {
        eprintln!("smsgw-fuzz: {problem}");
    }
    eprintln!("usage: smsgw-fuzz [--time SECONDS] [--seed N] [TARGET...]");
    eprintln!(
        "targets: {}",
        TARGETS
            .iter()
            .map(|t| t.name)
            .collect::<Vec<_>>()
            .join(", ")
    );
    ExitCode::from(2)
}
