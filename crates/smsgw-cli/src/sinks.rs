//! `smsgw sink` and `smsgw demo`: the test kit's loopback sinks, for people.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use smsgw::{Config, Gateway, Message, Registry};
use smsgw_sinks::Received;
use smsgw_sinks::conformance::Harness;
use smsgw_sinks::harness;

use crate::Context;

/// Registered providers that have no registered harness, so no sink.
fn without_harness() -> Vec<String> {
    Registry::global()
        .names()
        .into_iter()
        .filter(|n| harness::find(n).is_none())
        .collect()
}

/// Arguments of `smsgw sink`; the `--PROVIDER-port` options are added at run time, one per
/// registered harness (see [`add_port_args`]).
#[derive(clap::Args)]
pub struct SinkArgs {
    /// Print each message as a JSON line (protocol, recipient, text, detail).
    #[arg(long)]
    pub json: bool,
    /// Also write gateway definitions that send to these sinks into this file (once listening).
    #[arg(long, value_name = "FILE")]
    pub write_config: Option<std::path::PathBuf>,
}

fn port_arg_id(provider: &str) -> String {
    format!("{provider}_port")
}

/// Adds `--PROVIDER-port` to `smsgw sink` for every provider with a registered harness, with the
/// harness's default port: the list of sinks lives next to the providers, not here.
pub fn add_port_args(cmd: clap::Command) -> clap::Command {
    cmd.mut_subcommand("sink", |mut sub| {
        for h in harness::registered() {
            let name = h.provider();
            sub = sub.arg(
                clap::Arg::new(port_arg_id(name))
                    .long(format!("{name}-port"))
                    .value_name("PORT")
                    .value_parser(clap::value_parser!(u16))
                    .default_value(h.default_port().to_string())
                    .help(format!("Port of the {name} sink (0: any free port)")),
            );
        }
        sub
    })
}

/// The port chosen for each registered harness's sink.
pub fn ports(matches: Option<&clap::ArgMatches>) -> Vec<(&'static dyn Harness, u16)> {
    harness::registered()
        .into_iter()
        .map(|h| {
            let port = matches
                .and_then(|m| m.get_one::<u16>(&port_arg_id(h.provider())).copied())
                .unwrap_or_else(|| h.default_port());
            (h, port)
        })
        .collect()
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// `smsgw sink`: runs until Ctrl-C.
pub fn sink(ctx: &Context, args: SinkArgs, ports: Vec<(&'static dyn Harness, u16)>) -> u8 {
    let rt = match ctx.runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async move {
        for name in without_harness() {
            eprintln!("{name:<8} has no sink (its crate registers no conformance harness)");
        }
        let mut sinks = Vec::new();
        let mut config = Config::default();
        for (h, port) in ports {
            match h.start_sink_on(loopback(port)).await {
                Ok(s) => {
                    // Each message is printed, not kept: a sink left running (or a 10-million
                    // message benchmark) must not grow with what it receives.
                    s.recorder().keep_at_most(0);
                    let setup = h.definition(s.addr(), 10.0);
                    config.gateways.insert(setup.gateway.id.clone(), setup.gateway);
                    merge_sections(&mut config, setup.sections);
                    eprintln!("{:<8} sink listening on {}", h.provider(), s.addr());
                    sinks.push((h.provider(), s));
                }
                Err(e) => {
                    eprintln!("error: cannot start the {} sink on port {port}: {e}", h.provider());
                    return crate::EXIT_CONFIG;
                }
            }
        }
        let toml = config.to_toml(false);
        if let Some(path) = &args.write_config {
            // Written whole and then renamed, so that a reader never sees half a file.
            let tmp = path.with_extension("tmp");
            if let Err(e) = std::fs::write(&tmp, &toml).and_then(|_| std::fs::rename(&tmp, path)) {
                eprintln!("error: cannot write {}: {e}", path.display());
                return crate::EXIT_CONFIG;
            }
        }
        eprintln!("\nGateway definitions that send to these sinks (for smsgw.toml):\n");
        eprintln!("{toml}");
        eprintln!("Waiting for messages; Ctrl-C stops.");
        // Bounded: when standard output is slower than the sinks, lines are skipped (and counted
        // on standard error), never queued without end.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Received>(1024);
        for (_, s) in &sinks {
            let mut sub = s.recorder().subscribe();
            let tx = tx.clone();
            tokio::spawn(async move {
                loop {
                    match sub.recv().await {
                        Ok(r) => {
                            if tx.send(r).await.is_err() {
                                break;
                            }
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                            eprintln!("({n} messages received but not printed: output too slow)");
                        }
                        Err(_) => break,
                    }
                }
            });
        }
        // Buffered, and flushed whenever no message is waiting: one write per burst, not per line.
        let mut out = std::io::BufWriter::new(std::io::stdout());
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                Some(r) = rx.recv() => {
                    let _ = if args.json {
                        writeln!(out, "{}", serde_json::to_string(&r).expect("json"))
                    } else {
                        writeln!(out, "[{}] to {}: {}", r.protocol, r.recipient, r.text.replace('\n', "\n    "))
                    };
                    if rx.is_empty() {
                        let _ = out.flush();
                    }
                }
            }
        }
        let _ = out.flush();
        0
    })
}

const DEMO_PHONE: &str = "+491511234567";
const DEMO_TEXT: &str = "Your code: 123456 – Grüße & <ok> 🔐";

struct Row {
    provider: String,
    gateway: String,
    result: String,
    received: String,
    millis: u128,
    intact: bool,
}

/// `smsgw demo`: one gateway per compiled-in provider against in-process sinks.
pub fn demo(ctx: &Context, as_json: bool) -> u8 {
    let rt = match ctx.runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let rows = rt.block_on(async {
        let mut rows = Vec::new();
        for h in harness::registered() {
            let sink = h.start_sink().await;
            let setup = h.definition(sink.addr(), 5.0);
            let gw = match Gateway::build(&setup.gateway, &setup.sections, Registry::global()) {
                Ok(g) => g,
                Err(e) => {
                    rows.push(Row {
                        provider: h.provider().into(),
                        gateway: setup.gateway.id.clone(),
                        result: format!("invalid definition: {e}"),
                        received: String::new(),
                        millis: 0,
                        intact: false,
                    });
                    continue;
                }
            };
            let start = Instant::now();
            let r = gw.send(&Message::new(DEMO_PHONE, DEMO_TEXT)).await;
            let millis = start.elapsed().as_millis();
            let got = sink.recorder().wait_for(1, Duration::from_secs(5)).await;
            gw.shutdown().await;
            let (received, intact) = match got.first() {
                Some(g) => (
                    format!("to {}: {}", g.recipient, g.text),
                    got.len() == 1 && g.text.replace("\r\n", "\n").trim_end() == DEMO_TEXT,
                ),
                None => ("nothing".into(), false),
            };
            let result = match &r {
                Ok(rc) if rc.message_ids.is_empty() => "sent".to_owned(),
                Ok(rc) => format!("sent, id {}", rc.message_ids.join(",")),
                Err(e) => format!("failed: {e}"),
            };
            rows.push(Row {
                provider: h.provider().into(),
                gateway: gw.id().into(),
                result,
                received,
                millis,
                intact: intact && r.is_ok(),
            });
        }
        rows
    });
    let no_sink = without_harness();
    if as_json {
        let mut v: Vec<_> = rows
            .iter()
            .map(|r| serde_json::json!({"provider": r.provider, "gateway": r.gateway, "result": r.result, "received": r.received, "ms": r.millis, "intact": r.intact}))
            .collect();
        v.extend(no_sink.iter().map(|p| {
            serde_json::json!({"provider": p, "gateway": null, "result": "not run: no sink", "received": "", "ms": 0, "intact": null})
        }));
        outln!("{}", serde_json::to_string_pretty(&v).expect("json"));
    } else {
        outln!(
            "Sending {DEMO_TEXT:?} to {DEMO_PHONE} through every provider, against local sinks:\n"
        );
        let w = rows
            .iter()
            .map(|r| r.result.chars().count())
            .max()
            .unwrap_or(6);
        outln!(
            "{:<8}  {:<14}  {:<w$}  {:>6}  received",
            "provider",
            "gateway",
            "result",
            "ms"
        );
        for r in &rows {
            outln!(
                "{:<8}  {:<14}  {:<w$}  {:>6}  {}{}",
                r.provider,
                r.gateway,
                r.result,
                r.millis,
                r.received,
                if r.intact { "" } else { "  <- NOT INTACT" }
            );
        }
        for p in &no_sink {
            outln!(
                "{p:<8}  {:<14}  {:<w$}  {:>6}",
                "-",
                "not run: no sink",
                "-"
            );
        }
    }
    let bad: Vec<&str> = rows
        .iter()
        .filter(|r| !r.intact)
        .map(|r| r.provider.as_str())
        .collect();
    if rows.is_empty() {
        eprintln!("error: no provider with a sink is compiled in");
        return crate::EXIT_FAILED;
    }
    let ran: Vec<&str> = rows.iter().map(|r| r.provider.as_str()).collect();
    if !bad.is_empty() {
        eprintln!(
            "error: {} of {} providers did not deliver the message intact: {}",
            bad.len(),
            rows.len(),
            bad.join(", ")
        );
        return crate::EXIT_FAILED;
    }
    if !as_json {
        outln!(
            "\n{} delivered the message intact: {}",
            if ran.len() == 1 {
                "1 provider".to_owned()
            } else {
                format!("{} providers", ran.len())
            },
            ran.join(", ")
        );
        if !no_sink.is_empty() {
            outln!("not run (no sink registered): {}", no_sink.join(", "));
        }
    }
    0
}

/// Adds a harness's top-level sections to `config`, entry by entry (two providers may use the
/// same section).
fn merge_sections(config: &mut Config, sections: indexmap::IndexMap<String, toml::Value>) {
    for (name, value) in sections {
        match (config.sections.get_mut(&name), value) {
            (Some(toml::Value::Table(have)), toml::Value::Table(add)) => have.extend(add),
            (_, value) => {
                config.sections.insert(name, value);
            }
        }
    }
}
