//! smsgw provider `http` (in progress).
#![deny(missing_docs)]
