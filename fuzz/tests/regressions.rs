//! Checks beside the bolero targets: every provider is linked for the config target, and a
//! finding kept under `tests/__fuzz__/<target>/crashes/` asserts more than "no panic".

#[test]
fn every_provider_is_linked_for_the_config_target() {
    let names = smsgw::Registry::global().names();
    for p in ["http", "sipgate", "smtp", "smpp"] {
        assert!(names.iter().any(|n| n == p), "{p} missing from {names:?}");
    }
}

/// Found by the `recipients` target: a bare CR (not followed by LF) inside a line was kept in the
/// phone number (`"+49170\r1234<>7"` was accepted as a recipient and sent); such a line is now
/// reported malformed, and the valid lines around it are still read.
#[test]
fn a_bare_cr_never_reaches_a_phone_number() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/__fuzz__/recipients/crashes/bare-cr-in-phone.csv");
    let phones = smsgw_fuzz::recipient_phones(&std::fs::read(path).unwrap());
    assert!(!phones.is_empty());
    for p in phones {
        assert!(!p.contains('\r'), "CR in phone {p:?}");
    }
}
