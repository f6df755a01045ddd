//! smsgw provider `sipgate` (in progress).
#![deny(missing_docs)]
