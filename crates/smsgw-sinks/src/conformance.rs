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
use crate::{Fault, SinkHandle};

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

async fn sink_and_gateway(h: &dyn Harness) -> Result<(Box<dyn SinkHandle>, Gateway), String> {
    let sink = h.start_sink().await;
    let setup = h.definition(sink.addr(), TIMEOUT_SECS);
    let gw = setup
        .build()
        .map_err(|e| format!("the harness definition is invalid: {e}"))?;
    Ok((sink, gw))
}

fn normalize(s: &str) -> String {
    s.replace("\r\n", "\n").trim_end_matches('\n').to_owned()
}

fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

fn recipient_matches(verbatim: bool, got: &str, phone: &str) -> bool {
    if verbatim {
        got.contains(phone)
    } else {
        digits(got).contains(&digits(phone))
    }
}

async fn send_and_expect(
    h: &dyn Harness,
    c: &Ctx,
    texts: &[&str],
    phone: &str,
) -> Result<(), String> {
    let (sink, gw) = sink_and_gateway(h).await?;
    for (i, text) in texts.iter().enumerate() {
        gw.send(&Message::new(phone, *text))
            .await
            .map_err(|e| format!("send of text #{i} failed: {e}"))?;
        let got = sink
            .recorder()
            .wait_for(i + 1, Duration::from_secs(5))
            .await;
        let r = got
            .get(i)
            .ok_or_else(|| format!("text #{i} did not arrive at the sink"))?;
        if normalize(&r.text) != normalize(text) {
            return Err(format!(
                "text #{i} arrived as {:?}, sent {:?}",
                r.text, text
            ));
        }
        if !recipient_matches(
            c.descriptor.capabilities.verbatim_phone,
            &r.recipient,
            phone,
        ) {
            return Err(format!(
                "recipient arrived as {:?}, sent {:?}",
                r.recipient, phone
            ));
        }
    }
    gw.shutdown().await;
    Ok(())
}

async fn registered(h: &dyn Harness, c: &Ctx) -> Result<(), String> {
    let d = Registry::global()
        .get(c.descriptor.name)
        .map_err(|e| e.to_string())?;
    if d.name != h.provider() {
        return Err(format!("looked up {} but got {}", h.provider(), d.name));
    }
    for a in d.aliases {
        let by_alias = Registry::global().get(a).map_err(|e| e.to_string())?;
        if by_alias.name != d.name {
            return Err(format!("alias {a} resolves to {}", by_alias.name));
        }
    }
    Ok(())
}

async fn param_specs_well_formed(_h: &dyn Harness, c: &Ctx) -> Result<(), String> {
    let mut problems = Vec::new();
    let mut seen = std::collections::HashSet::new();
    if c.descriptor.description.trim().is_empty() {
        problems.push("the provider has no description".to_owned());
    }
    for p in c.descriptor.all_params() {
        for n in std::iter::once(p.name).chain(p.aliases.iter().copied()) {
            if n.is_empty() || n.contains(char::is_whitespace) {
                problems.push(format!("parameter name {n:?} is empty or has white space"));
            }
            if !seen.insert(n) {
                problems.push(format!("parameter name {n} appears twice"));
            }
        }
        if p.description.trim().is_empty() {
            problems.push(format!("{} has no description", p.name));
        }
        if p.required && p.default.is_some() {
            problems.push(format!("{} is required but has a default", p.name));
        }
        if p.secret && p.default.is_some() {
            problems.push(format!("{} is secret but has a default", p.name));
        }
        if let Some(d) = p.default {
            if !p.allowed.is_empty() && !p.allowed.iter().any(|a| a.eq_ignore_ascii_case(d)) {
                problems.push(format!(
                    "{}'s default {d} is not among its allowed values",
                    p.name
                ));
            }
            let ok = match p.kind {
                ParamKind::Seconds => parse_seconds(d).is_ok(),
                ParamKind::YesNo => parse_yes_no(d).is_some(),
                ParamKind::Integer { min, max } => {
                    d.parse::<i64>().is_ok_and(|n| (min..=max).contains(&n))
                }
                ParamKind::Url => d.contains("://"),
                _ => true,
            };
            if !ok {
                problems.push(format!(
                    "{}'s default {d} does not pass its own check ({})",
                    p.name,
                    p.kind.describe()
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

async fn missing_required_rejected(h: &dyn Harness, c: &Ctx) -> Result<(), String> {
    let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let base = h.definition(addr, TIMEOUT_SECS);
    base.build()
        .map_err(|e| format!("the harness definition is invalid: {e}"))?;
    let required: Vec<_> = c
        .descriptor
        .all_params()
        .into_iter()
        .filter(|p| p.required)
        .collect();
    for p in required {
        let mut s = base.clone();
        s.gateway.options.retain(|k, _| !p.matches(k));
        match s.build() {
            Ok(_) => return Err(format!("a definition without {} was accepted", p.name)),
            Err(e) if e.to_string().contains(p.name) => {}
            Err(e) => {
                return Err(format!(
                    "without {} the error does not name it: {e}",
                    p.name
                ));
            }
        }
    }
    Ok(())
}

async fn sends_arrive_intact(h: &dyn Harness, c: &Ctx) -> Result<(), String> {
    send_and_expect(
        h,
        c,
        &[
            "Your code: 123456",
            "Grüße aus Köln, ÄÖÜ äöü ß",
            "Emoji 🔐 ok 👍",
            "&<>\"'%+ = # ; ?x=1&y=2 ]]> %20 +49",
            "line one\nline two",
        ],
        PHONE,
    )
    .await
}

async fn long_message_intact(h: &dyn Harness, c: &Ctx) -> Result<(), String> {
    if !c.descriptor.capabilities.long_messages {
        return skip("no long_messages capability");
    }
    let long = "This message is deliberately longer than one SMS: 0123456789 ".repeat(4) + "€ end";
    let unicode = "Ваш код 123456. ".repeat(8) + "🔐";
    send_and_expect(h, c, &[&long, &unicode], PHONE).await
}

async fn regexp_rewrites_number(h: &dyn Harness, _c: &Ctx) -> Result<(), String> {
    let sink = h.start_sink().await;
    let mut setup = h.definition(sink.addr(), TIMEOUT_SECS);
    setup
        .gateway
        .options
        .insert("REGEXP".into(), r"/^\+49/0/".into());
    let gw = setup.build().map_err(|e| e.to_string())?;
    gw.send(&Message::new(PHONE, "regexp"))
        .await
        .map_err(|e| e.to_string())?;
    let got = sink.recorder().wait_for(1, Duration::from_secs(5)).await;
    let r = got.first().ok_or("nothing arrived")?;
    if !digits(&r.recipient).contains("01511234567") || r.recipient.contains("+49") {
        return Err(format!(
            "recipient {:?}, expected the number rewritten to 01511234567",
            r.recipient
        ));
    }
    Ok(())
}

async fn headers_are_sent(h: &dyn Harness, c: &Ctx) -> Result<(), String> {
    if !c.descriptor.capabilities.headers {
        return skip("no headers capability");
    }
    let sink = h.start_sink().await;
    let mut setup = h.definition(sink.addr(), TIMEOUT_SECS);
    setup
        .gateway
        .headers
        .insert("X-Conformance".into(), "phone={phone}".into());
    let gw = setup.build().map_err(|e| e.to_string())?;
    gw.send(&Message::new(PHONE, "headers"))
        .await
        .map_err(|e| e.to_string())?;
    let got = sink.recorder().wait_for(1, Duration::from_secs(5)).await;
    let detail = got.first().ok_or("nothing arrived")?.detail.to_string();
    if !detail.contains("X-Conformance") && !detail.contains("x-conformance") {
        return Err("the header X-Conformance did not arrive".into());
    }
    if !detail.contains(&format!("phone={PHONE}")) {
        return Err("the {phone} tag in a header was not replaced".into());
    }
    Ok(())
}

async fn never_answering_sink_times_out_as_unknown(
    h: &dyn Harness,
    _c: &Ctx,
) -> Result<(), String> {
    let (sink, gw) = sink_and_gateway(h).await?;
    sink.faults().always(Fault::NeverAnswer);
    let start = Instant::now();
    let r = gw.send(&Message::new(PHONE, "never")).await;
    let took = start.elapsed();
    let limit = Duration::from_secs_f64(TIMEOUT_SECS) + MARGIN;
    match r {
        Ok(_) => Err("the send succeeded although the sink never answered".into()),
        Err(_) if took > limit => Err(format!("the send took {took:?}, more than {limit:?}")),
        Err(e) if e.kind() == ErrorKind::Unknown => Ok(()),
        Err(e) => Err(format!("classified as {}, expected unknown: {e}", e.kind())),
    }
}

async fn refused_connection_is_not_sent(h: &dyn Harness, _c: &Ctx) -> Result<(), String> {
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        l.local_addr().map_err(|e| e.to_string())?
    };
    let gw = h
        .definition(addr, TIMEOUT_SECS)
        .build()
        .map_err(|e| e.to_string())?;
    let start = Instant::now();
    match gw.send(&Message::new(PHONE, "refused")).await {
        Ok(_) => Err("the send succeeded against a closed port".into()),
        Err(_) if start.elapsed() > Duration::from_secs_f64(TIMEOUT_SECS) + MARGIN => {
            Err(format!("took {:?}", start.elapsed()))
        }
        Err(e) if e.kind() == ErrorKind::NotSent => Ok(()),
        Err(e) => Err(format!(
            "classified as {}, expected not_sent: {e}",
            e.kind()
        )),
    }
}

async fn concurrent_sends_each_once(h: &dyn Harness, _c: &Ctx) -> Result<(), String> {
    let sink = h.start_sink().await;
    let setup = h.definition(sink.addr(), 10.0);
    let gw = setup.build().map_err(|e| e.to_string())?;
    const N: usize = 200;
    let sends = (0..N).map(|i| {
        let gw = gw.clone();
        async move {
            gw.send(&Message::new(PHONE, format!("concurrent {i}")))
                .await
        }
    });
    let results = futures::future::join_all(sends).await;
    let failed: Vec<String> = results
        .iter()
        .filter_map(|r| r.as_ref().err().map(|e| e.to_string()))
        .collect();
    if !failed.is_empty() {
        return Err(format!(
            "{} of {N} sends failed, first: {}",
            failed.len(),
            failed[0]
        ));
    }
    let got = sink.recorder().wait_for(N, Duration::from_secs(10)).await;
    let mut counts = std::collections::HashMap::new();
    for r in &got {
        *counts.entry(normalize(&r.text)).or_insert(0) += 1;
    }
    for i in 0..N {
        let n = counts.get(&format!("concurrent {i}")).copied().unwrap_or(0);
        if n != 1 {
            return Err(format!("message {i} arrived {n} times"));
        }
    }
    if got.len() != N {
        return Err(format!("{} messages arrived for {N} sends", got.len()));
    }
    gw.shutdown().await;
    Ok(())
}

async fn delivery_reports_arrive(h: &dyn Harness, c: &Ctx) -> Result<(), String> {
    if !c.descriptor.capabilities.delivery_reports {
        return skip("no delivery_reports capability");
    }
    let sink = h.start_sink().await;
    let mut setup = h.definition(sink.addr(), TIMEOUT_SECS);
    h.enable_delivery_reports(&mut setup);
    let gw = setup.build().map_err(|e| e.to_string())?;
    let mut reports = gw
        .delivery_reports()
        .ok_or("delivery_reports() gave None")?;
    let receipt = gw
        .send(&Message::new(PHONE, "report me"))
        .await
        .map_err(|e| e.to_string())?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(deadline, reports.recv()).await {
            Ok(Ok(r)) if receipt.message_ids.contains(&r.message_id) => break,
            Ok(Ok(_)) => continue,
            Ok(Err(e)) => return Err(format!("report channel: {e}")),
            Err(_) => return Err("no delivery report within 5 s".into()),
        }
    }
    gw.shutdown().await;
    Ok(())
}

async fn busy_is_retry_safe(h: &dyn Harness, _c: &Ctx) -> Result<(), String> {
    let Some(busy) = h.busy_fault() else {
        return skip("the harness's sink cannot answer busy");
    };
    let (sink, gw) = sink_and_gateway(h).await?;
    sink.faults().always(busy.clone());
    let r = gw.send(&Message::new(PHONE, "busy")).await;
    gw.shutdown().await;
    match r {
        Ok(_) => Err(format!(
            "the send succeeded although the gateway answered {busy:?}"
        )),
        Err(e) if e.kind() == ErrorKind::NotSent && e.is_retry_safe() => Ok(()),
        Err(e) => Err(format!(
            "a busy answer ({busy:?}) was classified as {}, expected not_sent (retry-safe): {e}",
            e.kind()
        )),
    }
}

async fn receipts_carry_message_ids(h: &dyn Harness, _c: &Ctx) -> Result<(), String> {
    if !h.promises_message_ids() {
        return skip("the harness promises no message ids");
    }
    let (_sink, gw) = sink_and_gateway(h).await?;
    let r = gw.send(&Message::new(PHONE, "id please")).await;
    gw.shutdown().await;
    let receipt = r.map_err(|e| format!("send failed: {e}"))?;
    if receipt.message_ids.is_empty() || receipt.message_ids.iter().any(|i| i.trim().is_empty()) {
        return Err(format!(
            "the receipt carries no message id: {:?}",
            receipt.message_ids
        ));
    }
    Ok(())
}

async fn failure_log_names_its_kind(h: &dyn Harness, c: &Ctx) -> Result<(), String> {
    let (sink, gw) = sink_and_gateway(h).await?;
    sink.faults().always(Fault::NeverAnswer);
    let r = gw.send(&Message::new(PHONE, "log me")).await;
    gw.shutdown().await;
    match r {
        Err(e) if e.kind() == ErrorKind::Unknown => {}
        other => return skip(&format!("no unknown outcome to log ({other:?})")),
    }
    let logs = c.logs.text();
    let failure: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .collect();
    if failure.is_empty() {
        return Err("a failed send logged no warning".into());
    }
    if let Some(l) = failure.iter().find(|l| l.contains("not sent")) {
        return Err(format!(
            "an unknown outcome (may have been sent) is logged as \"not sent\": {}",
            l.trim()
        ));
    }
    Ok(())
}

async fn secrets_never_shown(h: &dyn Harness, c: &Ctx) -> Result<(), String> {
    let secrets = h.secrets();
    if secrets.is_empty() {
        return skip("the harness declares no secrets");
    }
    let mut shown = String::new();
    // A working send, a refused one, and a timed-out one, all at TRACE level.
    let (sink, gw) = sink_and_gateway(h).await?;
    let _ = gw.send(&Message::new(PHONE, "secret check")).await;
    sink.faults().always(Fault::Reply {
        code: 500,
        text: "refused".into(),
    });
    if let Err(e) = gw.send(&Message::new(PHONE, "secret check 2")).await {
        shown += &format!("{e}\n{e:?}\n");
    }
    sink.faults().always(Fault::NeverAnswer);
    if let Err(e) = gw.send(&Message::new(PHONE, "secret check 3")).await {
        shown += &format!("{e}\n{e:?}\n");
    }
    shown += &format!("{gw:?}\n");
    let setup = h.definition(sink.addr(), TIMEOUT_SECS);
    shown += &format!(
        "{:?}\n{}\n",
        setup.gateway,
        setup
            .sections
            .values()
            .map(|v| smsgw_core::censor_toml(v).to_string())
            .collect::<String>()
    );
    let mut broken = setup.clone();
    broken
        .gateway
        .options
        .insert("REGEXP".into(), "not a rule".into());
    if let Err(e) = broken.build() {
        shown += &format!("{e}\n{e:?}\n");
    }
    gw.shutdown().await;
    shown += &c.logs.text();
    for s in &secrets {
        if shown.contains(s.as_str()) {
            let at = shown.find(s.as_str()).unwrap();
            let from = shown[..at]
                .char_indices()
                .rev()
                .nth(60)
                .map_or(0, |(i, _)| i);
            return Err(format!("secret shown: …{}…", &shown[from..at]));
        }
    }
    Ok(())
}
