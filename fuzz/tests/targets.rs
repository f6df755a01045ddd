//! The fuzz targets, one bolero `check!()` each, over raw bytes so that one committed corpus
//! serves every engine. On stable (`cargo test`, `cargo xtask fuzz`) bolero replays
//! `tests/__fuzz__/<target>/crashes/` (findings, kept as regressions) and `.../corpus/`, then
//! runs random inputs for `BOLERO_RANDOM_TEST_TIME_MS` ([`BUDGET`] by default) or
//! `BOLERO_RANDOM_ITERATIONS`; a failure prints the input (shrunk) and, for a random one, the
//! `BOLERO_RANDOM_SEED` that replays it. `cargo bolero test -p smsgw-fuzz TARGET` runs the same
//! function under libFuzzer (docs/security.md).

use std::path::Path;
use std::time::Duration;

/// Each target's time when `BOLERO_RANDOM_TEST_TIME_MS` is not set (`cargo test`, CI: 8 targets
/// on the test harness's threads). bolero checks the time before every input, the corpus
/// included, so this leaves a wide margin over the slowest replay (regexp's, about 0.4 s in a
/// debug build on a loaded machine).
const BUDGET: Duration = Duration::from_secs(2);

/// One `#[test]` per target, named as the target and its folder under `tests/__fuzz__/`.
/// `$max` bounds the length of the random inputs: above the bound the code under test enforces
/// where it has one (so that the bound itself is crossed), otherwise well above what the format
/// needs (a subject longer than a header line, a text longer than several SMS). The config
/// loader's 1 MiB bound is tested by smsgw-core; random TOML of that size would only be slow.
macro_rules! targets {
    ($($name:ident: $max:expr;)*) => {$(
        #[test]
        fn $name() {
            assert_has_corpus(stringify!($name));
            bolero::check!()
                .with_max_len($max)
                .with_test_time(BUDGET)
                .for_each(smsgw_fuzz::$name);
        }
    )*};
}

targets! {
    config: 16 * 1024;
    regexp: 512;
    template: 4096;
    recipients: 2 * smsgw_fuzz::MAX_RECIPIENT_LINE;
    sms_split: 4096;
    receipt: 1024;
    xmlrpc_reply: smsgw::sipgate::MAX_REPLY_BYTES + 16 * 1024;
    smtp_subject: 8 * 1024;
}

/// bolero treats a missing corpus folder as empty; a target without seeds would only see
/// random bytes, which rarely get past a parser's first check.
fn assert_has_corpus(target: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/__fuzz__")
        .join(target)
        .join("corpus");
    let seeds = std::fs::read_dir(&dir).map_or(0, |d| d.count());
    assert!(seeds > 0, "no seeds in {}", dir.display());
}
