//! `smsgw send`: one message, or one to every line of a recipients file, streamed with bounded
//! concurrency (memory depends on `--concurrency`, not on the file).
//!
//! [`run`] resolves where to send ([`router_for`]: a route, or one gateway with its limits, both
//! through the router) and what ([`message_text`]), then hands over to [`single`] or [`bulk`];
//! `--wait-receipt` is answered by [`Books`]. A new way to choose the target or to wait for a
//! result is a change in one of those steps.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;
use std::time::Duration;

use futures::StreamExt;
use serde_json::json;
use smsgw::routing::{RouteOutcome, Router, RoutingConfig};
use smsgw::{Config, Gateways, Message, Registry};

use crate::receipts::Books;
use crate::recipients::{Item, Recipients};
use crate::report::{FLUSH_EVERY, Report};
use crate::{Context, EXIT_CONFIG, EXIT_FAILED, output};

/// Arguments of `smsgw send`.
#[derive(clap::Args)]
pub struct SendArgs {
    /// The gateway identifier (sent to alone, honouring its `limits`).
    #[arg(
        long,
        short = 'g',
        required_unless_present = "route",
        conflicts_with = "route"
    )]
    pub gateway: Option<String>,
    /// A route (`[routes.NAME]`): failover between its gateways, retries, deadline.
    #[arg(long, value_name = "NAME")]
    pub route: Option<String>,
    /// The recipient's phone number.
    #[arg(long, short = 'p', conflicts_with = "file")]
    pub phone: Option<String>,
    /// The message text; `-` reads it from standard input. With --file, the text for lines that
    /// carry none.
    #[arg(long, short = 'm')]
    pub message: Option<String>,
    /// A CSV file of recipients: `phone[,message]` per line (`#` comments, blank lines and a
    /// `phone,message` header are skipped).
    #[arg(long, short = 'f', value_name = "RECIPIENTS")]
    pub file: Option<PathBuf>,
    /// How many messages are in flight at once (with --file).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub concurrency: u32,
    /// Write one JSON line per message to this file (with --file).
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    /// Wait at most this long for the delivery receipt (SMPP with a transceiver or receiver
    /// bind); with --file, that long after the last send for every outstanding one. A receipt
    /// that does not come in time is `"receipt": null`, never a failure.
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub wait_receipt: Option<u64>,
}

/// The longest message text read from standard input.
const MAX_STDIN: u64 = 1024 * 1024;

/// Runs `smsgw send` and returns the exit status.
pub fn run(ctx: &Context, cfg: &Config, args: SendArgs) -> u8 {
    let text = match message_text(args.message.as_deref()) {
        Ok(t) => t,
        Err(code) => return code,
    };
    match args.file.clone() {
        Some(path) => match router_for(cfg, &args) {
            Ok((router, name)) => bulk(ctx, router, &name, path, text, &args),
            Err(code) => code,
        },
        None => {
            let Some(phone) = args.phone.clone() else {
                eprintln!("error: --phone (or --file) is required");
                return EXIT_CONFIG;
            };
            let Some(text) = text else {
                eprintln!("error: --message is required (use --message - to read standard input)");
                return EXIT_CONFIG;
            };
            let (router, name) = match router_for(cfg, &args) {
                Ok(r) => r,
                Err(code) => return code,
            };
            let wait = args.wait_receipt.map(Duration::from_secs);
            single(
                ctx,
                router,
                &name,
                Message::new(phone, text),
                args.json,
                wait,
            )
        }
    }
}

/// The router and target name for `--route` or `--gateway`. A lone gateway is built alone (a
/// broken neighbour does not stop it) with its `limits`; a route needs every gateway.
fn router_for(cfg: &Config, args: &SendArgs) -> Result<(Router, String), u8> {
    let (built, name) = match (&args.route, &args.gateway) {
        (Some(route), _) => {
            let routing = RoutingConfig::from_config(cfg);
            if !routing.routes.contains_key(route) {
                let known: Vec<&str> = routing.routes.keys().map(String::as_str).collect();
                eprintln!(
                    "error: no route '{route}' in the configuration (defined: {})",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                );
                return Err(EXIT_CONFIG);
            }
            (
                Gateways::build(cfg, Registry::global()).map(|g| (g, routing)),
                route,
            )
        }
        (None, Some(id)) => {
            known_gateway(cfg, id)?;
            let mut alone = cfg.clone();
            alone.gateways.retain(|k, _| k == id);
            alone.sections.shift_remove("routes");
            let routing = RoutingConfig::from_config(&alone);
            (
                Gateways::build(&alone, Registry::global()).map(|g| (g, routing)),
                id,
            )
        }
        (None, None) => {
            eprintln!("error: --gateway or --route is required");
            return Err(EXIT_CONFIG);
        }
    };
    let router = built.and_then(|(gws, routing)| Router::build(&routing, &gws));
    match router {
        Ok(r) => Ok((r, name.clone())),
        Err(e) => {
            crate::report_config_errors(&e);
            Err(EXIT_CONFIG)
        }
    }
}

/// Says so when `--gateway` names no gateway of the configuration.
fn known_gateway(cfg: &Config, id: &str) -> Result<(), u8> {
    if cfg.gateways.contains_key(id) {
        return Ok(());
    }
    let known: Vec<&str> = cfg.gateways.keys().map(String::as_str).collect();
    eprintln!(
        "error: no gateway '{id}' in the configuration (defined: {})",
        if known.is_empty() {
            "none".to_owned()
        } else {
            known.join(", ")
        }
    );
    Err(EXIT_CONFIG)
}

/// `--message`: as given, or read from standard input for `-` (one final line end removed).
/// The one place standard input is read.
fn message_text(arg: Option<&str>) -> Result<Option<String>, u8> {
    match arg {
        Some("-") => {
            let mut s = String::new();
            let read = std::io::stdin()
                .lock()
                .take(MAX_STDIN + 1)
                .read_to_string(&mut s);
            if let Err(e) = read {
                eprintln!("error: cannot read the message from standard input: {e}");
                return Err(EXIT_CONFIG);
            }
            if s.len() as u64 > MAX_STDIN {
                eprintln!("error: the message on standard input is longer than {MAX_STDIN} bytes");
                return Err(EXIT_CONFIG);
            }
            let t = s.strip_suffix('\n').unwrap_or(&s);
            Ok(Some(t.strip_suffix('\r').unwrap_or(t).to_owned()))
        }
        other => Ok(other.map(str::to_owned)),
    }
}

/// Sends one message through the router; the exit status is the send's, whether or not
/// standard output is open.
fn single(
    ctx: &Context,
    router: Router,
    target: &str,
    message: Message,
    json: bool,
    wait: Option<Duration>,
) -> u8 {
    let rt = match ctx.runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let (result, receipt) = rt.block_on(async {
        // The book exists before the send: a receipt may come before the answer is read.
        let books = wait.map(|_| Books::watch(&router));
        let d = router.send(target, &message).await;
        let receipt = match (&books, &d, wait) {
            (Some(b), Ok(ok), Some(w)) => {
                let sent = [(ok.gateway.clone(), ok.receipt.clone())];
                b.wait_all(&sent, w).await.pop()
            }
            _ => None,
        };
        router.shutdown().await;
        (d, receipt)
    });
    output::delivery_result(
        &result,
        json,
        receipt.map(|r| (r, wait.unwrap_or_default())),
    )
}

/// Counts of a bulk run.
#[derive(Default)]
struct Tally {
    sent: u64,
    failed: u64,
    unknown: u64,
    malformed: u64,
    not_started: u64,
    /// With `--wait-receipt`: sent messages whose receipt did not come in time.
    no_receipt: Option<u64>,
}

/// What the reading side and the outcome side of a bulk run share (one task, no lock).
struct Shared {
    report: Report,
    tally: Tally,
    /// Line numbers of the messages in flight, by their index in the stream.
    lines: HashMap<usize, u64>,
    /// Why reading stopped early, if it did.
    read_error: Option<String>,
    path: String,
    /// With `--wait-receipt`: the report lines of sent messages, held until their receipts are
    /// waited for (gateway and receipt beside each).
    held: Option<Vec<(serde_json::Value, String, smsgw::Receipt)>>,
}

impl Shared {
    fn malformed(&mut self, line: u64, why: &str) {
        eprintln!("{}:{line}: skipped: {why}", self.path);
        self.report
            .line(&json!({"line": line, "status": "skipped", "error": why}));
        self.tally.malformed += 1;
    }
}

/// Lines skipped in a row before the reader lets other tasks (signals, the report's flush) run.
const YIELD_EVERY: usize = 1024;

fn bulk(
    ctx: &Context,
    router: Router,
    name: &str,
    path: PathBuf,
    default_text: Option<String>,
    args: &SendArgs,
) -> u8 {
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", path.display());
            return EXIT_CONFIG;
        }
    };
    let report = match &args.report {
        Some(p) => match Report::create(p, &path) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {e}");
                return EXIT_CONFIG;
            }
        },
        None => Report::none(),
    };
    let rt = match ctx.runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let reader = Rc::new(RefCell::new(Recipients::new(
        std::io::BufReader::with_capacity(64 * 1024, file),
        default_text,
    )));
    let shared = Rc::new(RefCell::new(Shared {
        report,
        tally: Tally::default(),
        lines: HashMap::new(),
        read_error: None,
        path: path.display().to_string(),
        held: args.wait_receipt.map(|_| Vec::new()),
    }));
    let stop = Arc::new(AtomicBool::new(false));
    let bar = (std::io::stderr().is_terminal() && !ctx.quiet).then(|| {
        let b = indicatif::ProgressBar::no_length();
        b.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {pos} done {per_sec} {msg}")
                .expect("template"),
        );
        b
    });
    let started_at = std::time::Instant::now();
    let mut done = 0u64;

    // Reads the next recipient when the sender has room for one: the stream is pulled only as
    // capacity frees up, so at most `--concurrency` lines are held.
    let input = {
        let (reader, shared, stop) = (reader.clone(), shared.clone(), stop.clone());
        let mut index = 0usize;
        futures::stream::poll_fn(move |cx| {
            if stop.load(Ordering::SeqCst) {
                return Poll::Ready(None);
            }
            for _ in 0..YIELD_EVERY {
                match reader.borrow_mut().next_item() {
                    Ok(Some(Item::Recipient { line, message })) => {
                        shared.borrow_mut().lines.insert(index, line);
                        index += 1;
                        return Poll::Ready(Some(message));
                    }
                    Ok(Some(Item::Malformed { line, why })) => {
                        shared.borrow_mut().malformed(line, &why)
                    }
                    Ok(None) => return Poll::Ready(None),
                    Err(e) => {
                        shared.borrow_mut().read_error = Some(e);
                        return Poll::Ready(None);
                    }
                }
            }
            cx.waker().wake_by_ref();
            Poll::Pending
        })
    };

    rt.block_on(async {
        // Before the first send: a receipt may come before the answer is read.
        let books = args.wait_receipt.map(|_| Books::watch(&router));
        let mut signals = Signals::new();
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let route = router.route(name).expect("router_for checked the target");
        let outcomes = route.send_stream(input, args.concurrency as usize);
        let mut outcomes = std::pin::pin!(outcomes);
        loop {
            tokio::select! {
                o = outcomes.next() => {
                    let Some(o) = o else { break };
                    done += 1;
                    let failed = o.result.as_ref().err().map(ToString::to_string);
                    let line = record(&mut shared.borrow_mut(), o);
                    match &bar {
                        Some(b) => b.inc(1),
                        None => match failed {
                            Some(e) => eprintln!("line {line}: {e}"),
                            None if !ctx.quiet && done.is_multiple_of(1000) => {
                                eprintln!("{done} done");
                            }
                            None => {}
                        },
                    }
                }
                _ = tick.tick() => shared.borrow_mut().report.flush_if_due(),
                name = signals.next() => {
                    if !stop.swap(true, Ordering::SeqCst) {
                        eprintln!("interrupted ({name}): no new messages are taken; waiting for those in flight");
                    }
                    shared.borrow_mut().report.flush();
                }
            }
        }
        if let (Some(books), Some(secs)) = (&books, args.wait_receipt) {
            let held = shared.borrow_mut().held.take().unwrap_or_default();
            let sent: Vec<(String, smsgw::Receipt)> =
                held.iter().map(|(_, g, r)| (g.clone(), r.clone())).collect();
            if !ctx.quiet && !sent.is_empty() {
                eprintln!("waiting up to {secs} s for {} delivery receipt(s)", sent.len());
            }
            let receipts = books.wait_all(&sent, Duration::from_secs(secs)).await;
            let mut sh = shared.borrow_mut();
            let mut missing = 0u64;
            for ((mut line, _, _), r) in held.into_iter().zip(receipts) {
                missing += u64::from(r.is_null());
                line["receipt"] = r;
                sh.report.line(&line);
            }
            sh.tally.no_receipt = Some(missing);
        }
        router.shutdown().await;
    });
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let mut shared = shared.borrow_mut();
    if stop.load(Ordering::SeqCst) {
        // Every recipient line gets one outcome: the ones never read are read now, not sent.
        let mut reader = reader.borrow_mut();
        loop {
            match reader.next_item() {
                Ok(Some(Item::Recipient { line, .. })) => {
                    shared.tally.not_started += 1;
                    shared.report.line(&json!({"line": line, "status": "not_started", "retry_safe": true, "error": "interrupted before it was sent"}));
                }
                Ok(Some(Item::Malformed { line, why })) => shared.malformed(line, &why),
                Ok(None) => break,
                Err(e) => {
                    shared.read_error = Some(e);
                    break;
                }
            }
        }
    }
    shared.report.flush();
    if let Some(e) = &shared.read_error {
        eprintln!(
            "error: {}: {e}; the lines after it were not read",
            shared.path
        );
    }
    summary(&shared.tally, started_at.elapsed().as_secs_f64(), args.json);
    let t = &shared.tally;
    if t.failed == 0
        && t.unknown == 0
        && t.malformed == 0
        && t.not_started == 0
        && shared.read_error.is_none()
    {
        0
    } else {
        EXIT_FAILED
    }
}

/// Writes one outcome to the report and the tally; returns its line number. Every line names
/// the gateway; a line of a route also lists the attempts.
fn record(shared: &mut Shared, o: RouteOutcome) -> u64 {
    let RouteOutcome {
        index,
        message,
        result,
        elapsed,
    } = o;
    let ms = (elapsed.as_secs_f64() * 1e6).round() / 1e3;
    let line = shared.lines.remove(&index).unwrap_or(0);
    let rec = match &result {
        Ok(d) => {
            shared.tally.sent += 1;
            let r = &d.receipt;
            let mut v = json!({"line": line, "phone": message.phone, "status": "sent", "message_ids": r.message_ids, "parts": r.parts, "ms": ms, "gateway": d.gateway});
            if d.route.is_some() {
                v["attempts"] = json!(d.attempts);
            }
            if d.may_arrive_twice {
                v["may_arrive_twice"] = json!(true);
            }
            if let Some(held) = &mut shared.held {
                held.push((v, d.gateway.clone(), d.receipt.clone()));
                return line;
            }
            v
        }
        Err(e) => {
            if e.may_have_been_sent() {
                shared.tally.unknown += 1;
            } else {
                shared.tally.failed += 1;
            }
            let mut v = output::error_json(&e.to_send_error());
            v["line"] = json!(line);
            v["phone"] = json!(message.phone);
            v["ms"] = json!(ms);
            v["reason"] = json!(e.reason().as_str());
            if e.attempts().len() > 1 || e.target() != v["gateway"] {
                v["attempts"] = json!(e.attempts());
            }
            v
        }
    };
    shared.report.line(&rec);
    line
}

fn summary(t: &Tally, secs: f64, as_json: bool) {
    let usage = ResourceUsage::of_this_process();
    let attempted = t.sent + t.failed + t.unknown;
    if as_json {
        let mut v = json!({
                "sent": t.sent, "failed": t.failed, "may_have_been_sent": t.unknown,
                "not_started": t.not_started, "skipped_lines": t.malformed,
                "seconds": secs, "messages_per_second": if secs > 0.0 { attempted as f64 / secs } else { 0.0 },
                "cpu_seconds": usage.cpu_seconds, "peak_rss_kib": usage.peak_rss_kib,
        });
        if let Some(n) = t.no_receipt {
            v["without_receipt"] = json!(n);
        }
        outln!("{v}");
    } else {
        outln!(
            "sent {}, failed {}, may have been sent {}, not started {}, malformed lines skipped {}",
            t.sent,
            t.failed,
            t.unknown,
            t.not_started,
            t.malformed
        );
        if let Some(n) = t.no_receipt.filter(|n| *n > 0) {
            outln!("{n} sent message(s) without a delivery receipt in time");
        }
    }
}

/// SIGINT (Ctrl-C) and, on Unix, SIGTERM: both stop a bulk send the same way.
struct Signals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> Self {
        Signals {
            #[cfg(unix)]
            term: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok(),
        }
    }

    /// Waits for the next signal and names it.
    async fn next(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            let term = async {
                match self.term.as_mut() {
                    Some(t) => {
                        t.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                Ok(()) = tokio::signal::ctrl_c() => "SIGINT",
                _ = term => "SIGTERM",
            }
        }
        #[cfg(not(unix))]
        {
            match tokio::signal::ctrl_c().await {
                Ok(()) => "Ctrl-C",
                Err(_) => std::future::pending().await,
            }
        }
    }
}

/// CPU time and peak memory of this process, from /proc (Linux); zero elsewhere.
struct ResourceUsage {
    cpu_seconds: f64,
    peak_rss_kib: u64,
}

impl ResourceUsage {
    fn of_this_process() -> Self {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        // Fields after the command name (which may contain spaces) start at ") ".
        let fields: Vec<&str> = stat
            .rsplit_once(") ")
            .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
        // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
        let ticks: f64 = [11, 12]
            .iter()
            .filter_map(|i| fields.get(*i).and_then(|v| v.parse::<f64>().ok()))
            .sum();
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let peak_rss_kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0);
        // Linux reports CPU times in clock ticks of 100 Hz (USER_HZ) to user space.
        ResourceUsage {
            cpu_seconds: ticks / 100.0,
            peak_rss_kib,
        }
    }
}
