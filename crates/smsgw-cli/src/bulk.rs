//! `smsgw send`: one message, or one to every line of a CSV file with bounded concurrency.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::StreamExt;
use serde_json::json;
use smsgw::{Gateway, Message, Outcome};

/// Arguments of `smsgw send`.
#[derive(clap::Args)]
pub struct SendArgs {
    /// The gateway identifier.
    #[arg(long, short = 'g')]
    pub gateway: String,
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
}

struct Line {
    line: usize,
    message: Message,
}

/// A line that was skipped: its number and why.
type Malformed = (usize, String);

/// Reads the recipients; malformed lines are returned as (line number, reason).
fn read_recipients(
    path: &std::path::Path,
    default_text: Option<&str>,
) -> Result<(Vec<Line>, Vec<Malformed>), String> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .comment(Some(b'#'))
        .trim(csv::Trim::Fields)
        .from_path(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for (i, rec) in rdr.records().enumerate() {
        let line_no =
            |r: &csv::StringRecord| r.position().map(|p| p.line() as usize).unwrap_or(i + 1);
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map(|p| p.line() as usize).unwrap_or(i + 1);
                bad.push((line, format!("not valid CSV: {e}")));
                continue;
            }
        };
        let line = line_no(&rec);
        let phone = rec.get(0).unwrap_or("");
        if rec.len() == 1 && phone.is_empty() {
            continue;
        }
        if good.is_empty() && bad.is_empty() && phone.eq_ignore_ascii_case("phone") {
            continue;
        }
        if rec.len() > 2 {
            bad.push((
                line,
                format!(
                    "{} fields; expected phone[,message] (quote a message that contains commas)",
                    rec.len()
                ),
            ));
            continue;
        }
        if phone.is_empty() || !phone.chars().any(|c| c.is_ascii_digit()) {
            bad.push((line, format!("'{phone}' is not a phone number")));
            continue;
        }
        let text = match rec.get(1).filter(|t| !t.is_empty()) {
            Some(t) => t.to_owned(),
            None => match default_text {
                Some(t) => t.to_owned(),
                None => {
                    bad.push((line, "no message on the line and no --message given".into()));
                    continue;
                }
            },
        };
        good.push(Line {
            line,
            message: Message::new(phone, text),
        });
    }
    Ok((good, bad))
}

/// Runs a bulk send and returns the exit status.
pub fn run(gateway: Gateway, args: SendArgs) -> u8 {
    let path = args.file.clone().expect("checked by caller");
    let default_text = match args.message.as_deref() {
        Some("-") => {
            let mut s = String::new();
            if std::io::Read::read_to_string(&mut std::io::stdin(), &mut s).is_err() {
                eprintln!("error: cannot read the message from standard input");
                return super::EXIT_CONFIG;
            }
            Some(s.trim_end_matches(['\r', '\n']).to_owned())
        }
        other => other.map(str::to_owned),
    };
    let (lines, bad) = match read_recipients(&path, default_text.as_deref()) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: {e}");
            return super::EXIT_CONFIG;
        }
    };
    for (line, why) in &bad {
        eprintln!("{}:{line}: skipped: {why}", path.display());
    }
    let mut report = match &args.report {
        Some(p) => match std::fs::File::create(p) {
            Ok(f) => Some(std::io::BufWriter::new(f)),
            Err(e) => {
                eprintln!("error: cannot write the report {}: {e}", p.display());
                return super::EXIT_CONFIG;
            }
        },
        None => None,
    };
    if let Some(w) = report.as_mut() {
        for (line, why) in &bad {
            let _ = writeln!(
                w,
                "{}",
                json!({"line": line, "status": "skipped", "error": why})
            );
        }
    }

    let total = lines.len();
    let stop = Arc::new(AtomicBool::new(false));
    let line_numbers: Vec<usize> = lines.iter().map(|l| l.line).collect();
    let messages: Vec<Message> = lines.into_iter().map(|l| l.message).collect();
    let tty = std::io::stderr().is_terminal();
    let bar = if tty && !super::quiet() {
        let b = indicatif::ProgressBar::new(total as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {per_sec} {msg}")
                .expect("template"),
        );
        Some(b)
    } else {
        None
    };
    let rt = super::runtime();
    let started_at = std::time::Instant::now();
    let (mut sent, mut failed, mut unknown) = (0usize, 0usize, 0usize);
    let mut started = vec![false; total];
    rt.block_on(async {
        {
            let stop = stop.clone();
            tokio::spawn(async move {
                if tokio::signal::ctrl_c().await.is_ok() {
                    eprintln!("interrupted: no new messages are taken; waiting for those in flight");
                    stop.store(true, Ordering::SeqCst);
                }
            });
        }
        let stop_in = stop.clone();
        let input = futures::stream::iter(messages).take_while(move |_| {
            let go = !stop_in.load(Ordering::SeqCst);
            async move { go }
        });
        let outcomes = gateway.send_stream(input, args.concurrency as usize);
        let mut outcomes = std::pin::pin!(outcomes);
        let mut done = 0usize;
        while let Some(Outcome { index, message, result, elapsed }) = outcomes.next().await {
            let ms = (elapsed.as_secs_f64() * 1e6).round() / 1e3;
            started[index] = true;
            done += 1;
            let line = line_numbers[index];
            let rec = match &result {
                Ok(r) => {
                    sent += 1;
                    json!({"line": line, "phone": message.phone, "status": "sent", "message_ids": r.message_ids, "parts": r.parts, "ms": ms})
                }
                Err(e) => {
                    if e.may_have_been_sent() {
                        unknown += 1;
                    } else {
                        failed += 1;
                    }
                    let mut v = super::output::error_json(e);
                    v["line"] = json!(line);
                    v["phone"] = json!(message.phone);
                    v["ms"] = json!(ms);
                    v
                }
            };
            if let Some(w) = report.as_mut() {
                let _ = writeln!(w, "{rec}");
            }
            match &bar {
                Some(b) => b.inc(1),
                None => {
                    if let Err(e) = &result {
                        eprintln!("line {line}: {e}");
                    } else if !super::quiet() && (done.is_multiple_of(1000) || done == total) {
                        eprintln!("{done}/{total} done");
                    }
                }
            }
        }
        gateway.shutdown().await;
    });
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let not_started: Vec<usize> = (0..total).filter(|i| !started[*i]).collect();
    if let Some(w) = report.as_mut() {
        for i in &not_started {
            let _ = writeln!(
                w,
                "{}",
                json!({"line": line_numbers[*i], "status": "not_started", "retry_safe": true, "error": "interrupted before it was sent"})
            );
        }
        let _ = w.flush();
    }
    let secs = started_at.elapsed().as_secs_f64();
    let usage = ResourceUsage::of_this_process();
    let summary = json!({
        "sent": sent, "failed": failed, "may_have_been_sent": unknown,
        "not_started": not_started.len(), "skipped_lines": bad.len(),
        "seconds": secs, "messages_per_second": if secs > 0.0 { (total - not_started.len()) as f64 / secs } else { 0.0 },
        "cpu_seconds": usage.cpu_seconds, "peak_rss_kib": usage.peak_rss_kib,
    });
    if args.json {
        println!("{summary}");
    } else {
        println!(
            "sent {sent}, failed {failed}, may have been sent {unknown}, not started {}, malformed lines skipped {}",
            not_started.len(),
            bad.len()
        );
    }
    if sent == total && bad.is_empty() {
        0
    } else {
        super::EXIT_FAILED
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
