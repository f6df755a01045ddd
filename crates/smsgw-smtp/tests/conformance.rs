//! The provider contract every smsgw provider is held to, run against the SMTP sink.

use smsgw_smtp as _;

#[test]
fn smtp_passes_the_conformance_suite() {
    smsgw_testkit::conformance::assert_conformant(&smsgw_testkit::harness::SmtpHarness);
}
