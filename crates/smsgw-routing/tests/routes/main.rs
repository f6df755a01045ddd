//! Routes over real loopback sockets: the test kit's HTTP sinks stand in for the gateways.

use smsgw as _;

mod common;

mod breaker;
mod bulk;
mod failover;
mod limits;
mod metrics;
mod retries;
