//! `smsgw sink` and `smsgw demo`: the test kit's loopback sinks, for people.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use smsgw::{Config, Gateway, Message, Registry};
use smsgw_sinks::Received;
use smsgw_sinks::harness;

/// Arguments of `smsgw sink`.
#[derive(clap::Args)]
pub struct SinkArgs {
    /// Port of the HTTP gateway sink (0: any free port).
    #[arg(long, default_value_t = 8025)]
    pub http_port: u16,
    /// Port of the sipgate XML-RPC/REST sink.
    #[arg(long, default_value_t = 8026)]
    pub sipgate_port: u16,
    /// Port of the SMTP sink.
    #[arg(long, default_value_t = 2525)]
    pub smtp_port: u16,
    /// Port of the SMPP SMSC sink.
    #[arg(long, default_value_t = 2775)]
    pub smpp_port: u16,
    /// Print each message as a JSON line (protocol, recipient, text, detail).
    #[arg(long)]
    pub json: bool,
    /// Also write gateway definitions that send to these sinks into this file (once listening).
    #[arg(long, value_name = "FILE")]
    pub write_config: Option<std::path::PathBuf>,
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// `smsgw sink`: runs until Ctrl-C.
pub fn sink(args: SinkArgs) -> u8 {
    let rt = super::runtime();
    rt.block_on(async move {
        let ports = [
            ("http", args.http_port),
            ("sipgate", args.sipgate_port),
            ("smtp", args.smtp_port),
            ("smpp", args.smpp_port),
        ];
        let mut sinks = Vec::new();
        let mut config = Config::default();
        for h in harness::builtin() {
            let port = ports.iter().find(|(p, _)| *p == h.provider()).map_or(0, |(_, n)| *n);
            match harness::start_builtin_sink_on(h.provider(), loopback(port)).await {
                Ok(s) => {
                    let setup = h.definition(s.addr(), 10.0);
                    config.gateways.insert(setup.gateway.id.clone(), setup.gateway);
                    merge_sections(&mut config, setup.sections);
                    eprintln!("{:<8} sink listening on {}", h.provider(), s.addr());
                    sinks.push((h.provider(), s));
                }
                Err(e) => {
                    eprintln!("error: cannot start the {} sink on port {port}: {e}", h.provider());
                    return super::EXIT_CONFIG;
                }
            }
        }
        let toml = config.to_toml(false);
        if let Some(path) = &args.write_config {
            // Written whole and then renamed, so that a reader never sees half a file.
            let tmp = path.with_extension("tmp");
            if let Err(e) = std::fs::write(&tmp, &toml).and_then(|_| std::fs::rename(&tmp, path)) {
                eprintln!("error: cannot write {}: {e}", path.display());
                return super::EXIT_CONFIG;
            }
        }
        eprintln!("\nGateway definitions that send to these sinks (for smsgw.toml):\n");
        eprintln!("{toml}");
        eprintln!("Waiting for messages; Ctrl-C stops.");
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Received>();
        for (_, s) in &sinks {
            let mut sub = s.recorder().subscribe();
            let tx = tx.clone();
            tokio::spawn(async move {
                loop {
                    match sub.recv().await {
                        Ok(r) => {
                            if tx.send(r).is_err() {
                                break;
                            }
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
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
pub fn demo(as_json: bool) -> u8 {
    let rt = super::runtime();
    let rows = rt.block_on(async {
        let mut rows = Vec::new();
        for h in harness::builtin() {
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
    if as_json {
        let v: Vec<_> = rows
            .iter()
            .map(|r| serde_json::json!({"provider": r.provider, "gateway": r.gateway, "result": r.result, "received": r.received, "ms": r.millis, "intact": r.intact}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&v).expect("json"));
    } else {
        println!(
            "Sending {DEMO_TEXT:?} to {DEMO_PHONE} through every provider, against local sinks:\n"
        );
        let w = rows
            .iter()
            .map(|r| r.result.chars().count())
            .max()
            .unwrap_or(6);
        println!(
            "{:<8}  {:<14}  {:<w$}  {:>6}  received",
            "provider", "gateway", "result", "ms"
        );
        for r in &rows {
            println!(
                "{:<8}  {:<14}  {:<w$}  {:>6}  {}{}",
                r.provider,
                r.gateway,
                r.result,
                r.millis,
                r.received,
                if r.intact { "" } else { "  <- NOT INTACT" }
            );
        }
    }
    let bad = rows.iter().filter(|r| !r.intact).count();
    if rows.is_empty() {
        eprintln!("error: no provider is compiled in");
        return super::EXIT_FAILED;
    }
    if bad > 0 {
        eprintln!("error: {bad} provider(s) did not deliver the message intact");
        super::EXIT_FAILED
    } else {
        if !as_json {
            println!(
                "\nall {} providers delivered the message intact",
                rows.len()
            );
        }
        0
    }
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
