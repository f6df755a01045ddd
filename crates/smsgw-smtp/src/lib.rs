//! smsgw provider `smtp` (in progress).
#![deny(missing_docs)]
