//! A small mutation engine that runs on stable Rust without libFuzzer: replay every seed of a
//! target's corpus, then mutate seeds at random (bit flips, byte edits, range copies and
//! deletions, dictionary tokens, splices) until a time or iteration budget is spent.
//! A panicking input is saved under `fuzz/artifacts/<target>/` so that it can be replayed.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::Target;

/// How long, or how many mutated inputs, one target runs after its corpus.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Stop mutating after this long.
    pub time: Duration,
    /// Stop mutating after this many inputs.
    pub iterations: u64,
}

/// What one run found.
#[derive(Debug, Default)]
pub struct Report {
    /// Corpus seeds replayed.
    pub seeds: usize,
    /// Mutated inputs run.
    pub mutations: u64,
    /// Paths of the inputs that panicked (saved as artifacts).
    pub crashes: Vec<PathBuf>,
}

/// The corpus folder of the repository (`fuzz/corpus`).
pub fn corpus_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus")
}

/// Reads a target's seeds (files sorted by name; a missing folder is an empty corpus).
pub fn seeds(target: &Target) -> Vec<Vec<u8>> {
    let dir = corpus_root().join(target.name);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    paths.sort();
    paths
        .into_iter()
        .filter_map(|p| std::fs::read(p).ok())
        .collect()
}

/// Replays the corpus of `target`, then mutates it within `budget`, with a reproducible `seed`.
pub fn run(target: &Target, budget: Budget, seed: u64) -> Report {
    let mut report = Report::default();
    let corpus = seeds(target);
    for input in &corpus {
        report.seeds += 1;
        try_one(target, input, &mut report);
    }
    let mut rng = fastrand::Rng::with_seed(seed);
    let start = Instant::now();
    let mut input = Vec::new();
    while report.mutations < budget.iterations && start.elapsed() < budget.time {
        input.clear();
        if !corpus.is_empty() {
            input.extend_from_slice(&corpus[rng.usize(..corpus.len())]);
        }
        for _ in 0..rng.usize(1..=8) {
            mutate(&mut rng, &mut input, target, &corpus);
        }
        input.truncate(target.max_len);
        report.mutations += 1;
        try_one(target, &input, &mut report);
        if report.crashes.len() >= 5 {
            break;
        }
    }
    report
}

fn try_one(target: &Target, input: &[u8], report: &mut Report) {
    if catch_unwind(AssertUnwindSafe(|| (target.run)(input))).is_ok() {
        return;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("artifacts")
        .join(target.name);
    let name = format!("crash-{:016x}", fnv1a(input));
    let path = dir.join(name);
    if std::fs::create_dir_all(&dir)
        .and_then(|_| std::fs::write(&path, input))
        .is_err()
    {
        eprintln!("could not save the crashing input of {}", target.name);
    }
    report.crashes.push(path);
}

/// A stable name for an input (no hashing dependency needed for a file name).
fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn mutate(rng: &mut fastrand::Rng, input: &mut Vec<u8>, target: &Target, corpus: &[Vec<u8>]) {
    let at = |rng: &mut fastrand::Rng, len: usize| rng.usize(..=len);
    match rng.u8(..8) {
        0 if !input.is_empty() => {
            let i = rng.usize(..input.len());
            input[i] ^= 1 << rng.u8(..8);
        }
        1 if !input.is_empty() => {
            let i = rng.usize(..input.len());
            input[i] = rng.u8(..);
        }
        2 => {
            let i = at(rng, input.len());
            input.insert(i, rng.u8(..));
        }
        3 if !input.is_empty() => {
            let a = rng.usize(..input.len());
            let b = (a + rng.usize(..=16)).min(input.len());
            input.drain(a..b);
        }
        4 if !input.is_empty() => {
            // Repeat a range, to reach nesting and length limits.
            let a = rng.usize(..input.len());
            let b = (a + rng.usize(1..=64)).min(input.len());
            let chunk = input[a..b].to_vec();
            let times = rng.usize(1..=64);
            let i = at(rng, input.len());
            let repeated: Vec<u8> = chunk
                .iter()
                .copied()
                .cycle()
                .take(chunk.len() * times)
                .collect();
            input.splice(i..i, repeated);
        }
        5 | 6 if !target.dictionary.is_empty() => {
            let token = target.dictionary[rng.usize(..target.dictionary.len())];
            let i = at(rng, input.len());
            input.splice(i..i, token.bytes());
        }
        7 if !corpus.is_empty() => {
            let other = &corpus[rng.usize(..corpus.len())];
            let a = rng.usize(..=other.len());
            let i = at(rng, input.len());
            input.truncate(i);
            input.extend_from_slice(&other[a..]);
        }
        _ => input.push(rng.u8(..)),
    }
}
