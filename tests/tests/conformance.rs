//! The conformance suite over every provider compiled into the umbrella (and any other provider
//! linked in with a registered harness): one line per check and provider, then
//! `N passed, N failed`. `--provider NAME` selects one provider.

use smsgw as _; // links every provider enabled by features into the registry
use smsgw_testkit as _; // links the built-in harnesses

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let only = args
        .iter()
        .position(|a| a == "--provider")
        .and_then(|i| args.get(i + 1).cloned())
        .or_else(|| std::env::var("SMSGW_CONFORMANCE_PROVIDER").ok());
    let (passed, failed) = smsgw_testkit::conformance::run_registered(only.as_deref());
    println!("{passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}
