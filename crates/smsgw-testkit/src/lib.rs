//! Loopback sinks and the conformance suite for smsgw providers.
#![deny(missing_docs)]
