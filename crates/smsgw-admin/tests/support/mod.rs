//! What the browser tests share.
#![allow(dead_code)]

pub mod browser;
pub mod server;
