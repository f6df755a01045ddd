//! One behaviour suite that every provider — ours and third parties' — must pass.
//!
//! A provider joins by implementing [`Harness`]: which sink stands in for its gateway, and how a
//! gateway definition pointing at that sink looks. [`run`] then runs every check that the
//! provider's [`Capabilities`](smsgw_core::Capabilities) make applicable, each on its own
//! single-threaded runtime with the provider's logs captured at TRACE level.
//!
//! ```no_run
//! # struct MyHarness;
//! # #[smsgw_sinks::async_trait] impl smsgw_sinks::conformance::Harness for MyHarness {
//! #   fn provider(&self) -> &'static str { "mine" }
//! #   async fn start_sink(&self) -> Box<dyn smsgw_sinks::SinkHandle> { unimplemented!() }
//! #   fn definition(&self, _: std::net::SocketAddr, _: f64) -> smsgw_sinks::conformance::Setup { unimplemented!() }
//! # }
//! // In a third-party provider crate's tests/conformance.rs:
//! #[test]
//! fn conformance() {
//!     smsgw_sinks::conformance::assert_conformant(&MyHarness);
//! }
//! ```

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use indexmap::IndexMap;
use smsgw_core::toml;
use smsgw_core::{
    ErrorKind, Gateway, GatewayDef, Message, ParamKind, ProviderDescriptor, Registry,
    parse_seconds, parse_yes_no,
};

use crate::logs::LogCapture;

mod definition;
mod delivery;
mod failures;

use crate::{Fault, SinkHandle};
use definition::{missing_required_rejected, param_specs_well_formed, registered};
use delivery::{
    concurrent_sends_each_once, delivery_reports_arrive, headers_are_sent, long_message_intact,
    receipts_carry_message_ids, regexp_rewrites_number, sends_arrive_intact,
};
use failures::{
    busy_is_retry_safe, failure_log_names_its_kind, never_answering_sink_times_out_as_unknown,
    refused_connection_is_not_sent, secrets_never_shown,
};

/// A gateway definition and the top-level configuration sections it may reference (e.g.
/// `smtp_servers`).
#[derive(Debug, Clone)]
pub struct Setup {
    /// The gateway definition.
    pub gateway: GatewayDef,
    /// Top-level sections owned by registered crates (for providers that use them).
    pub sections: IndexMap<String, toml::Value>,
}

impl Setup {
    /// A setup without sections.
    pub fn new(gateway: GatewayDef) -> Self {
        Setup {
            gateway,
            sections: IndexMap::new(),
        }
    }

    fn build(&self) -> Result<Gateway, smsgw_core::ConfigErrors> {
        Gateway::build(&self.gateway, &self.sections, Registry::global())
    }
}

/// How the suite drives one provider.
#[async_trait::async_trait]
pub trait Harness: Send + Sync {
    /// The provider's registered name.
    fn provider(&self) -> &'static str;

    /// Starts a sink on loopback that receives what the provider sends.
    async fn start_sink(&self) -> Box<dyn SinkHandle>;

    /// Starts the sink on `addr` (for `smsgw sink --PROVIDER-port`). The default serves only a
    /// loopback address with port 0 (any free port), through [`start_sink`](Harness::start_sink).
    async fn start_sink_on(&self, addr: SocketAddr) -> std::io::Result<Box<dyn SinkHandle>> {
        if addr.port() == 0 && addr.ip().is_loopback() {
            Ok(self.start_sink().await)
        } else {
            Err(std::io::Error::other(format!(
                "the {} sink cannot listen on a chosen address ({addr}); use port 0",
                self.provider()
            )))
        }
    }

    /// The port `smsgw sink` listens on by default (0: any free port).
    fn default_port(&self) -> u16 {
        0
    }

    /// A valid gateway definition that sends to `addr` and gives up after `timeout_secs`.
    /// Its secret options should hold the values of [`secrets`](Harness::secrets).
    fn definition(&self, addr: SocketAddr, timeout_secs: f64) -> Setup;

    /// The secret values the definition carries; none may show up in Debug, errors or logs.
    fn secrets(&self) -> Vec<String> {
        Vec::new()
    }

    /// Changes a definition so that the gateway reports delivery receipts (for providers with the
    /// `delivery_reports` capability).
    fn enable_delivery_reports(&self, _setup: &mut Setup) {}

    /// How the sink says "busy, try again later" in the provider's protocol (HTTP 429, SMPP
    /// `ESME_RTHROTTLED`, SMTP 451 …), if it can. The suite expects a retry-safe `not_sent`.
    fn busy_fault(&self) -> Option<Fault> {
        None
    }

    /// Whether every receipt from this sink carries a message id (the gateway returns one and
    /// the provider must not accept a reply without it).
    fn promises_message_ids(&self) -> bool {
        false
    }
}

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The check passed.
    Passed,
    /// The check failed, with why.
    Failed(String),
    /// The check does not apply (a capability is missing).
    Skipped(String),
}

/// One check against one provider.
#[derive(Debug, Clone)]
pub struct CheckResult {
    /// The provider name.
    pub provider: String,
    /// The check's name.
    pub check: &'static str,
    /// What happened.
    pub verdict: Verdict,
    /// How long it took.
    pub elapsed: Duration,
}

const PHONE: &str = "+491511234567";
const TIMEOUT_SECS: f64 = 1.0;
const MARGIN: Duration = Duration::from_secs(2);

type CheckFn =
    for<'a> fn(&'a dyn Harness, &'a Ctx) -> futures::future::BoxFuture<'a, Result<(), String>>;

/// What a check may use.
struct Ctx {
    logs: LogCapture,
    descriptor: &'static ProviderDescriptor,
}

macro_rules! check {
    ($name:ident) => {
        (stringify!($name), (|h, c| Box::pin($name(h, c))) as CheckFn)
    };
}

fn checks() -> Vec<(&'static str, CheckFn)> {
    vec![
        check!(registered),
        check!(param_specs_well_formed),
        check!(missing_required_rejected),
        check!(sends_arrive_intact),
        check!(long_message_intact),
        check!(regexp_rewrites_number),
        check!(headers_are_sent),
        check!(never_answering_sink_times_out_as_unknown),
        check!(refused_connection_is_not_sent),
        check!(concurrent_sends_each_once),
        check!(delivery_reports_arrive),
        check!(busy_is_retry_safe),
        check!(receipts_carry_message_ids),
        check!(failure_log_names_its_kind),
        check!(secrets_never_shown),
    ]
}

/// The names of all checks, in the order they run.
pub fn check_names() -> Vec<&'static str> {
    checks().into_iter().map(|(n, _)| n).collect()
}

/// Runs every applicable check against the harness's provider.
pub fn run(harness: &dyn Harness) -> Vec<CheckResult> {
    let mut out = Vec::new();
    let descriptor = match Registry::global().get(harness.provider()) {
        Ok(d) => d,
        Err(e) => {
            return vec![CheckResult {
                provider: harness.provider().to_owned(),
                check: "registered",
                verdict: Verdict::Failed(e.to_string()),
                elapsed: Duration::ZERO,
            }];
        }
    };
    for (name, f) in checks() {
        let logs = LogCapture::new();
        let ctx = Ctx {
            logs: logs.clone(),
            descriptor,
        };
        let start = Instant::now();
        let subscriber = logs.subscriber();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let res = tracing::subscriber::with_default(subscriber, || {
            rt.block_on(async {
                match tokio::time::timeout(Duration::from_secs(60), f(harness, &ctx)).await {
                    Ok(r) => r,
                    Err(_) => Err("the check did not finish within 60 s".into()),
                }
            })
        });
        drop(rt);
        let verdict = match res {
            Ok(()) => Verdict::Passed,
            Err(e) if e.starts_with(SKIP) => Verdict::Skipped(e[SKIP.len()..].to_owned()),
            Err(e) => Verdict::Failed(e),
        };
        out.push(CheckResult {
            provider: descriptor.name.to_owned(),
            check: name,
            verdict,
            elapsed: start.elapsed(),
        });
    }
    out
}

/// Prints one line per check (`ok`, `FAIL`, `skip`) and returns (passed, failed).
pub fn print_results(results: &[CheckResult]) -> (usize, usize) {
    let (mut passed, mut failed) = (0, 0);
    for r in results {
        match &r.verdict {
            Verdict::Passed => {
                passed += 1;
                println!(
                    "ok   {:<8} {:<45} {:>6} ms",
                    r.provider,
                    r.check,
                    r.elapsed.as_millis()
                );
            }
            Verdict::Failed(why) => {
                failed += 1;
                println!("FAIL {:<8} {:<45} {why}", r.provider, r.check);
            }
            Verdict::Skipped(why) => {
                println!("skip {:<8} {:<45} {why}", r.provider, r.check);
            }
        }
    }
    (passed, failed)
}

/// Runs the suite over every provider in the global registry (or only `only`), printing one
/// line per check and provider, and returns (passed, failed). A registered provider without a
/// [registered harness](crate::register_harness), a provider name registered twice and an
/// unknown `only` each count as a failure.
pub fn run_registered(only: Option<&str>) -> (usize, usize) {
    let registry = Registry::global();
    let mut failed = 0;
    let mut fail = |name: &str, check: &str, why: String| {
        println!("FAIL {name:<8} {check:<45} {why}");
        failed += 1;
    };
    if let Some(Err(e)) = only.map(|o| registry.get(o)) {
        fail(only.unwrap_or_default(), "registered", e.to_string());
    }
    for name in registry.names() {
        if only.is_some_and(|o| o != name) {
            continue;
        }
        if let Err(e) = registry.get(&name) {
            fail(&name, "registered", e.to_string());
        } else if crate::harness::find(&name).is_none() {
            fail(
                &name,
                "harness",
                "no conformance harness registered for this provider (smsgw_sinks::register_harness!)".into(),
            );
        }
    }
    for (name, crates) in crate::harness::duplicates() {
        if only.is_none_or(|o| o == name) {
            fail(
                name,
                "harness",
                format!("registered more than once, by {}", crates.join(", ")),
            );
        }
    }
    let mut passed = 0;
    for h in crate::harness::registered() {
        if only.is_none_or(|o| o == h.provider()) {
            let (p, f) = print_results(&run(h));
            passed += p;
            failed += f;
        }
    }
    (passed, failed)
}

/// Runs the suite and panics with the failures if any check failed: for a provider crate's tests.
pub fn assert_conformant(harness: &dyn Harness) {
    let results = run(harness);
    let (passed, failed) = print_results(&results);
    println!("{passed} passed, {failed} failed");
    assert_eq!(
        failed,
        0,
        "{failed} conformance check(s) failed for {}",
        harness.provider()
    );
}

const SKIP: &str = "\u{0}skip:";

fn skip(why: &str) -> Result<(), String> {
    Err(format!("{SKIP}{why}"))
}
