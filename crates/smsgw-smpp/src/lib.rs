//! smsgw provider `smpp` (in progress).
#![deny(missing_docs)]
