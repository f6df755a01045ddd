//! The conformance suite over every built-in provider compiled in: one line per check and
//! provider, then `N passed, N failed`. `--provider NAME` selects one provider.

use smsgw as _; // links every provider enabled by features into the registry

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let only = args
        .iter()
        .position(|a| a == "--provider")
        .and_then(|i| args.get(i + 1).cloned())
        .or_else(|| std::env::var("SMSGW_CONFORMANCE_PROVIDER").ok());
    let harnesses = smsgw_testkit::harness::builtin();
    let mut failed_setup = 0;
    // Every provider the features enabled must have a harness here.
    for name in smsgw::Registry::global().names() {
        if only.as_deref().is_none_or(|o| o == name)
            && !harnesses.iter().any(|h| h.provider() == name)
        {
            println!(
                "FAIL {name:<8} {:<45} no conformance harness for this provider",
                "harness"
            );
            failed_setup += 1;
        }
    }
    if let Some(o) = &only {
        if smsgw::Registry::global().get(o).is_err() {
            println!(
                "FAIL {o:<8} {:<45} no such provider compiled in",
                "registered"
            );
            failed_setup += 1;
        }
    }
    let (mut passed, mut failed) = (0, failed_setup);
    for h in harnesses
        .iter()
        .filter(|h| only.as_deref().is_none_or(|o| o == h.provider()))
    {
        let results = smsgw_testkit::conformance::run(h.as_ref());
        let (p, f) = smsgw_testkit::conformance::print_results(&results);
        passed += p;
        failed += f;
    }
    println!("{passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}
