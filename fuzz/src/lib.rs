//! Fuzz targets for the parsers and encoders of smsgw that take outside input.
//!
//! Every target takes arbitrary bytes, must never panic, and checks the properties its input
//! promises (a split message rejoins to the text, a header line stays under RFC 5322's limit, a
//! phone number never holds a line break). [`engine`] runs them on stable Rust: it replays the
//! corpus under `fuzz/corpus/<target>/` and then mutates it at random for a bounded time.
//! `cargo xtask fuzz [--time SECONDS]` runs every target; `cargo test -p smsgw-fuzz` replays the
//! corpus plus a fixed number of mutations.
#![deny(missing_docs)]

pub mod engine;
mod targets;

pub use targets::{TARGETS, recipient_phones};

/// One fuzz target: a name (its corpus folder) and a function that panics on a bug.
#[derive(Clone, Copy)]
pub struct Target {
    /// The name, also the folder of its seeds under `fuzz/corpus/`.
    pub name: &'static str,
    /// Runs one input; a panic is a finding.
    pub run: fn(&[u8]),
    /// Tokens the mutator inserts (what the format is made of).
    pub dictionary: &'static [&'static str],
    /// The largest input generated (the parser's own bound, or a little above it).
    pub max_len: usize,
}
