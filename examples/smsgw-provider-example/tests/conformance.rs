//! Holds `linegw` to smsgw's provider contract: the harness the crate registers, one call.

#[test]
fn linegw_passes_the_conformance_suite() {
    smsgw_testkit::conformance::assert_conformant(&smsgw_provider_example::harness::LineHarness);
}
