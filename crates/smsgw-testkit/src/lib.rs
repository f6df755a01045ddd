//! Test helpers for smsgw: golden-file checks, plus everything of `smsgw-sinks` (the loopback
//! sinks, the harnesses, the conformance suite, log capture) re-exported under the paths tests have
//! always used (`smsgw_testkit::http::HttpSink`, `smsgw_testkit::conformance`, …).
#![deny(missing_docs)]

pub mod golden;

pub use smsgw_sinks::*;
