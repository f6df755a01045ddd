//! The committed corpus and a fixed number of mutations of it pass every target (reproducible:
//! fixed seed), and the targets can fail: a known-bad input is caught and saved.

use std::time::Duration;

use smsgw_fuzz::{TARGETS, engine};

#[test]
fn every_target_has_seeds_and_passes_its_corpus_and_mutations() {
    let budget = engine::Budget {
        time: Duration::from_secs(20),
        iterations: 300,
    };
    for target in TARGETS {
        let r = engine::run(target, budget, 12);
        assert!(r.seeds > 0, "{} has no corpus", target.name);
        assert!(r.crashes.is_empty(), "{}: {:?}", target.name, r.crashes);
    }
}

#[test]
fn every_provider_is_linked_for_the_config_target() {
    let names = smsgw::Registry::global().names();
    for p in ["http", "sipgate", "smtp", "smpp"] {
        assert!(names.iter().any(|n| n == p), "{p} missing from {names:?}");
    }
}

/// Found by the `recipients` target: a bare CR (not followed by LF) inside a line was kept in the
/// phone number (`"+49170\r1234<>7"` was accepted as a recipient and sent); such a line is now
/// reported malformed.
#[test]
fn a_bare_cr_never_reaches_a_phone_number() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("findings/recipients-bare-cr-in-phone.csv");
    let phones = smsgw_fuzz::recipient_phones(&std::fs::read(path).unwrap());
    assert!(!phones.is_empty());
    for p in phones {
        assert!(!p.contains('\r'), "CR in phone {p:?}");
    }
}
