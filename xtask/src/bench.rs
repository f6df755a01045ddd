//! `cargo xtask bench`: throughput, latency, CPU and peak memory of the release `smsgw` against
//! its own sinks (see docs/benchmarks.md); `--stream` is the constant-memory case.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{cargo, root, run};

/// A number field of a flat JSON object, found by name (xtask keeps no JSON dependency).
fn json_number(line: &str, key: &str) -> Option<f64> {
    let at = line.find(&format!("\"{key}\":"))? + key.len() + 3;
    let rest = &line[at..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    rest[..end].trim().parse().ok()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

struct BenchRow {
    provider: String,
    concurrency: u32,
    messages: usize,
    sent: f64,
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    cpu_per_1000: f64,
    peak_rss_mib: f64,
}

/// Sends `n` messages through `gateway` with the release `smsgw send --file` and measures it.
fn bench_one(
    bin: &Path,
    cfg: &Path,
    dir: &Path,
    provider: &str,
    gateway: &str,
    n: usize,
    concurrency: u32,
) -> Result<BenchRow, String> {
    let csv = recipients_file(dir, n)?;
    let report = dir.join(format!("{gateway}-c{concurrency}.jsonl"));
    let out = Command::new(bin)
        .args(["-q", "-c"])
        .arg(cfg)
        .args([
            "send",
            "-g",
            gateway,
            "-m",
            "Your code is 123456",
            "--json",
            "--file",
        ])
        .arg(&csv)
        .args(["--concurrency", &concurrency.to_string(), "--report"])
        .arg(&report)
        .output()
        .map_err(|e| e.to_string())?;
    let summary = String::from_utf8_lossy(&out.stdout).to_string();
    let mut lat: Vec<f64> = std::fs::read_to_string(&report)
        .map_err(|e| {
            format!(
                "{gateway}: no report ({e}); smsgw said: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })?
        .lines()
        .filter_map(|l| json_number(l, "ms"))
        .collect();
    lat.sort_by(|a, b| a.total_cmp(b));
    let sent = json_number(&summary, "sent").unwrap_or(0.0);
    if sent < n as f64 {
        eprintln!(
            "xtask: {gateway} c{concurrency}: only {sent} of {n} sent: {summary} {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
    }
    Ok(BenchRow {
        provider: provider.to_owned(),
        concurrency,
        messages: n,
        sent,
        per_second: json_number(&summary, "messages_per_second").unwrap_or(0.0),
        p50_ms: percentile(&lat, 50.0),
        p99_ms: percentile(&lat, 99.0),
        cpu_per_1000: json_number(&summary, "cpu_seconds").unwrap_or(0.0) / (n as f64 / 1000.0),
        peak_rss_mib: json_number(&summary, "peak_rss_kib").unwrap_or(0.0) / 1024.0,
    })
}

/// The sinks in a process of their own, as a real gateway would be, and the gateway definitions
/// that send to them. Killed when dropped.
struct SinkProcess {
    child: std::process::Child,
    cfg: PathBuf,
    /// (provider, gateway id, WINDOW set by the benchmark) of every gateway in `cfg`.
    gateways: Vec<(String, String, Option<u32>)>,
}

impl SinkProcess {
    /// The first gateway of `provider`, if that provider has a sink in this build.
    fn gateway_of(&self, provider: &str) -> Option<&str> {
        self.gateways
            .iter()
            .find(|(p, _, _)| p == provider)
            .map(|(_, g, _)| g.as_str())
    }
}

impl Drop for SinkProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the benchmark asks the `smsgw` it measures, instead of keeping a provider list: the
/// sinks it offers (`--NAME-port` of `smsgw sink --help`) and which providers declare a
/// `WINDOW` (`smsgw providers --json`), measured at windows 1 and 64.
struct Offer {
    port_flags: Vec<String>,
    windowed: Vec<String>,
}

fn offer(bin: &Path) -> Result<Offer, String> {
    let output = |args: &[&str]| -> Result<String, String> {
        let out = Command::new(bin)
            .args(args)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "smsgw {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    Ok(Offer {
        port_flags: port_flags(&output(&["sink", "--help"])?),
        windowed: windowed(&output(&["providers", "--json"])?),
    })
}

/// The `--NAME-port` flags in `smsgw sink --help`.
fn port_flags(help: &str) -> Vec<String> {
    help.split_whitespace()
        .filter(|w| w.starts_with("--") && w.ends_with("-port"))
        .map(str::to_owned)
        .collect()
}

/// The providers declaring a `WINDOW` parameter in `smsgw providers --json` (pretty JSON: a
/// provider's "name" is indented 4, a parameter's 8; xtask keeps no JSON dependency).
fn windowed(json: &str) -> Vec<String> {
    let quoted = |l: &str| {
        l.trim()
            .strip_prefix("\"name\": \"")
            .and_then(|r| r.split('"').next())
            .map(str::to_owned)
    };
    let mut windowed = Vec::new();
    let mut provider = String::new();
    for line in json.lines() {
        if line.starts_with("    \"name\"") {
            provider = quoted(line).unwrap_or_default();
        } else if line.starts_with("        \"name\"") && quoted(line).as_deref() == Some("WINDOW")
        {
            windowed.push(provider.clone());
        }
    }
    windowed
}

/// Gateways of a TOML configuration as `smsgw sink` writes it: (provider, id), and the option
/// lines of each.
fn gateways_of(cfg: &str) -> Vec<(String, String, Vec<String>)> {
    let mut out: Vec<(String, String, Vec<String>)> = Vec::new();
    let mut in_options = false;
    for line in cfg.lines() {
        if let Some(head) = line
            .strip_prefix("[gateways.")
            .and_then(|l| l.strip_suffix(']'))
        {
            in_options = head.ends_with(".options");
            if !in_options {
                out.push((String::new(), head.to_owned(), Vec::new()));
            }
        } else if line.starts_with('[') {
            in_options = false;
        } else if let Some(last) = out.last_mut() {
            if in_options && !line.trim().is_empty() {
                last.2.push(line.to_owned());
            } else if let Some(p) = line.strip_prefix("provider = \"") {
                last.0 = p.trim_end_matches('"').to_owned();
            }
        }
    }
    out
}

/// Starts a fresh `smsgw sink` on free ports (each measurement gets its own, so that what an
/// earlier run left in the sink's memory cannot slow a later one) and writes `bench.toml` for it,
/// with two extra gateways of WINDOW 1 and 64 for each windowed provider.
fn start_sinks(bin: &Path, dir: &Path, offer: &Offer) -> Result<SinkProcess, String> {
    let sinks_cfg = dir.join("sinks.toml");
    let _ = std::fs::remove_file(&sinks_cfg);
    let mut cmd = Command::new(bin);
    cmd.args(["-q", "sink"]);
    for flag in &offer.port_flags {
        cmd.args([flag.as_str(), "0"]);
    }
    let child = cmd
        .arg("--write-config")
        .arg(&sinks_cfg)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut process = SinkProcess {
        child,
        cfg: dir.join("bench.toml"),
        gateways: Vec::new(),
    };
    for _ in 0..100 {
        if sinks_cfg.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let mut cfg_text =
        std::fs::read_to_string(&sinks_cfg).map_err(|e| format!("the sink did not start: {e}"))?;
    for (provider, id, options) in gateways_of(&cfg_text) {
        if !offer.windowed.contains(&provider) {
            process.gateways.push((provider, id, None));
            continue;
        }
        for w in [1, 64] {
            let wid = format!("{id}-w{w}");
            cfg_text.push_str(&format!(
                "\n[gateways.{wid}]\nprovider = \"{provider}\"\n[gateways.{wid}.options]\n{}\nWINDOW = \"{w}\"\n",
                options.join("\n")
            ));
            process.gateways.push((provider.clone(), wid, Some(w)));
        }
    }
    std::fs::write(&process.cfg, &cfg_text).map_err(|e| e.to_string())?;
    Ok(process)
}

/// A recipients file of `n` lines, written as it goes (10 000 000 lines are 160 MB).
fn recipients_file(dir: &Path, n: usize) -> Result<PathBuf, String> {
    use std::io::Write;
    let csv = dir.join(format!("recipients-{n}.csv"));
    if !csv.exists() {
        let tmp = csv.with_extension("tmp");
        let mut w =
            std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(|e| e.to_string())?);
        for i in 0..n {
            writeln!(w, "+4915{i:09}").map_err(|e| e.to_string())?;
        }
        w.flush().map_err(|e| e.to_string())?;
        drop(w);
        std::fs::rename(&tmp, &csv).map_err(|e| e.to_string())?;
    }
    Ok(csv)
}

/// The streaming case: `n` recipients through HTTP at concurrency 64, no report (it would be
/// gigabytes); the point is the peak resident memory, which must not grow with `n`.
fn bench_stream(bin: &Path, dir: &Path, offer: &Offer, n: usize) -> Result<(), String> {
    let csv = recipients_file(dir, n)?;
    let sinks = start_sinks(bin, dir, offer)?;
    let http = sinks
        .gateway_of("http")
        .ok_or("the streaming case needs the http provider's sink")?
        .to_owned();
    let out = Command::new(bin)
        .args(["-q", "-c"])
        .arg(&sinks.cfg)
        .args([
            "send",
            "-g",
            &http,
            "-m",
            "Your code is 123456",
            "--json",
            "--file",
        ])
        .arg(&csv)
        .args(["--concurrency", "64"])
        .output()
        .map_err(|e| e.to_string())?;
    drop(sinks);
    let summary = String::from_utf8_lossy(&out.stdout).to_string();
    let sent = json_number(&summary, "sent").unwrap_or(0.0);
    let rss = json_number(&summary, "peak_rss_kib").unwrap_or(0.0) / 1024.0;
    let rate = json_number(&summary, "messages_per_second").unwrap_or(0.0);
    println!(
        "stream: {n} recipients over http c64: sent {sent}, {rate:.0} msg/s, peak RSS {rss:.1} MiB"
    );
    std::fs::write(
        dir.join("stream.json"),
        format!(
            "{{\"messages\": {n}, \"sent\": {sent}, \"messages_per_second\": {rate:.1}, \"peak_rss_mib\": {rss:.1}}}\n"
        ),
    )
    .map_err(|e| e.to_string())?;
    if sent < n as f64 {
        return Err(format!(
            "only {sent} of {n} sent: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

pub(crate) fn bench(args: &[String]) -> Result<(), String> {
    let quick = args.iter().any(|a| a == "--quick");
    let scale = |n: usize| if quick { n / 10 } else { n };
    run(cargo().args(["build", "--release", "--quiet", "-p", "smsgw-cli"]))?;
    let bin = root().join("target/release/smsgw");
    let dir = root().join("target/bench");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let offer = offer(&bin)?;
    if args.iter().any(|a| a == "--stream") {
        return bench_stream(&bin, &dir, &offer, scale(10_000_000));
    }
    // Every gateway the sink offers, at concurrency 1 and 64 (a windowed provider: window 1 at
    // concurrency 1 and window 64 at 64).
    let mut runs: Vec<(String, String, usize, u32)> = Vec::new();
    let probe = start_sinks(&bin, &dir, &offer)?;
    for (provider, gw, window) in &probe.gateways {
        // A mail per message is slow through the SMTP sink; fewer keep the run near a minute.
        let n = scale(if provider == "smtp" { 2_000 } else { 20_000 });
        let concurrencies = match window {
            Some(w) => vec![*w],
            None => vec![1, 64],
        };
        for c in concurrencies {
            runs.push((provider.clone(), gw.clone(), n, c));
        }
    }
    drop(probe);
    let mut rows = Vec::new();
    for (provider, gw, n, c) in runs {
        let sinks = start_sinks(&bin, &dir, &offer)?;
        rows.push(bench_one(&bin, &sinks.cfg, &dir, &provider, &gw, n, c)?);
    }
    let sinks = start_sinks(&bin, &dir, &offer)?;
    let http = sinks
        .gateway_of("http")
        .ok_or("the large run and the cold start need the http provider's sink")?
        .to_owned();
    let big = bench_one(&bin, &sinks.cfg, &dir, "http", &http, scale(100_000), 64)?;
    // Cold start: one whole `smsgw send` process, start to exit.
    let mut cold = Vec::new();
    for _ in 0..20 {
        let t = std::time::Instant::now();
        let ok = Command::new(&bin)
            .arg("-c")
            .arg(&sinks.cfg)
            .args(["send", "-g", &http, "-p", "+491511234567", "-m", "123456"])
            .stdout(std::process::Stdio::null())
            .status()
            .map_err(|e| e.to_string())?
            .success();
        if !ok {
            return Err("a cold smsgw send failed".to_owned());
        }
        cold.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    drop(sinks);
    cold.sort_by(|a, b| a.total_cmp(b));
    bench_stream(&bin, &dir, &offer, scale(10_000_000))?;

    println!(
        "{:<8} {:>5} {:>8} {:>10} {:>8} {:>8} {:>12} {:>9}",
        "provider", "conc", "messages", "msg/s", "p50 ms", "p99 ms", "CPU s/1000", "peak MiB"
    );
    let mut json = String::from("{\n  \"machine_cores\": ");
    json.push_str(
        &std::thread::available_parallelism()
            .map_or(0, |n| n.get())
            .to_string(),
    );
    json.push_str(",\n  \"runs\": [\n");
    for (i, r) in rows.iter().chain(std::iter::once(&big)).enumerate() {
        println!(
            "{:<8} {:>5} {:>8} {:>10.0} {:>8.2} {:>8.2} {:>12.3} {:>9.1}{}",
            r.provider,
            r.concurrency,
            r.messages,
            r.per_second,
            r.p50_ms,
            r.p99_ms,
            r.cpu_per_1000,
            r.peak_rss_mib,
            if r.sent < r.messages as f64 {
                "  (not all sent)"
            } else {
                ""
            }
        );
        json.push_str(&format!(
            "    {{\"provider\": \"{}\", \"concurrency\": {}, \"messages\": {}, \"sent\": {}, \"messages_per_second\": {:.1}, \"p50_ms\": {:.3}, \"p99_ms\": {:.3}, \"cpu_seconds_per_1000\": {:.4}, \"peak_rss_mib\": {:.1}}}{}\n",
            r.provider, r.concurrency, r.messages, r.sent, r.per_second, r.p50_ms, r.p99_ms, r.cpu_per_1000, r.peak_rss_mib,
            if i == rows.len() { "" } else { "," }
        ));
    }
    let median = percentile(&cold, 50.0);
    println!(
        "cold `smsgw send` (process start to exit, 20 runs): median {median:.1} ms, min {:.1} ms",
        cold[0]
    );
    json.push_str(&format!(
        "  ],\n  \"cold_send_ms\": {{\"median\": {median:.2}, \"min\": {:.2}}}\n}}\n",
        cold[0]
    ));
    std::fs::write(dir.join("results.json"), json).map_err(|e| e.to_string())?;
    eprintln!("xtask: wrote target/bench/results.json");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sinks_and_windowed_providers_are_read_from_the_cli() {
        let help = "      --http-port <PORT>     Port of the http sink [default: 8025]\n      \
                    --smpp-port <PORT>     Port of the smpp sink\n      --write-config <FILE>";
        assert_eq!(port_flags(help), ["--http-port", "--smpp-port"]);
        let json = "[\n  {\n    \"name\": \"http\",\n    \"parameters\": [\n      {\n        \
                    \"name\": \"URL\"\n      }\n    ]\n  },\n  {\n    \"name\": \"smpp\",\n    \
                    \"parameters\": [\n      {\n        \"name\": \"WINDOW\"\n      }\n    ]\n  }\n]";
        assert_eq!(windowed(json), ["smpp"]);
    }

    #[test]
    fn gateways_and_their_options_are_read_from_the_sink_config() {
        let cfg = "[smtp_servers.sink]\nserver = \"smtp://127.0.0.1:1\"\n\n[gateways.smpp-sink]\n\
                   provider = \"smpp\"\n\n[gateways.smpp-sink.options]\nSMSC_PORT = \"9\"\n\
                   TIMEOUT = \"10\"\n\n[gateways.http-sink]\nprovider = \"http\"\n";
        let g = gateways_of(cfg);
        assert_eq!(g.len(), 2);
        assert_eq!((g[0].0.as_str(), g[0].1.as_str()), ("smpp", "smpp-sink"));
        assert_eq!(g[0].2, ["SMSC_PORT = \"9\"", "TIMEOUT = \"10\""]);
        assert_eq!((g[1].0.as_str(), g[1].1.as_str()), ("http", "http-sink"));
    }
}
