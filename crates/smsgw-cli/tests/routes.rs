//! `smsgw send --route`, `check` and `gateways --json` with routes and limits, over the real
//! binary and loopback HTTP sinks.

mod common;

use common::{run, text, write_config};
use smsgw_testkit::Fault;
use smsgw_testkit::http::HttpSink;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

fn gateway(id: &str, sink: &HttpSink) -> String {
    format!(
        "[gateways.{id}]\nprovider = \"http\"\noptions = {{ URL = \"http://{}/send\", HTTP_METHOD = \"POST\", to = \"{{phone}}\", text = \"{{otp}}\" }}\n",
        sink.addr()
    )
}

/// Gateway `id` on a fresh HTTP sink, followed by `extra` configuration; the file written.
struct OneGateway {
    _rt: tokio::runtime::Runtime,
    sink: HttpSink,
    dir: tempfile::TempDir,
    config: String,
}

fn one_gateway(id: &str, extra: &str) -> OneGateway {
    let rt = rt();
    let sink = rt.block_on(HttpSink::start()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = write_config(&dir, &format!("{}{extra}", gateway(id, &sink)));
    OneGateway {
        _rt: rt,
        sink,
        dir,
        config: p.to_str().unwrap().to_owned(),
    }
}

/// Route `otp` over gateway `primary`, whose sink answers with `fault`, then `backup`.
struct Failover {
    _rt: tokio::runtime::Runtime,
    primary: HttpSink,
    backup: HttpSink,
    dir: tempfile::TempDir,
    /// The route's definition; `{extra}` stands for more route options.
    body: String,
}

fn failover(fault: Fault, primary_options: &str) -> Failover {
    let rt = rt();
    let primary = rt.block_on(HttpSink::start()).unwrap();
    let backup = rt.block_on(HttpSink::start()).unwrap();
    primary.faults().always(fault);
    let body = format!(
        "{}{}[routes.otp]\ngateways = [\"primary\", \"backup\"]\n{{extra}}",
        gateway("primary", &primary).replace("text = ", &format!("{primary_options}text = ")),
        gateway("backup", &backup)
    );
    let dir = tempfile::tempdir().unwrap();
    Failover {
        _rt: rt,
        primary,
        backup,
        dir,
        body,
    }
}

impl Failover {
    /// Writes the configuration with `extra` route options; its path.
    fn config(&self, extra: &str) -> String {
        let p = write_config(&self.dir, &self.body.replace("{extra}", extra));
        p.to_str().unwrap().to_owned()
    }
}

fn busy() -> Fault {
    Fault::Reply {
        code: 503,
        text: "busy".into(),
    }
}

#[test]
fn route_fails_over_from_a_503_primary_to_the_backup_once() {
    let f = failover(busy(), "");
    let (primary, backup) = (&f.primary, &f.backup);
    let cfg = f.config("");
    let c = cfg.as_str();
    let o = run(&[
        "-c", c, "send", "--route", "otp", "-p", "+4915", "-m", "123456", "--json",
    ]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["status"], "sent");
    assert_eq!(v["gateway"], "backup");
    assert_eq!(v["route"], "otp");
    assert_eq!(v["provider"], "http");
    let attempts = v["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{v}");
    assert_eq!(attempts[0]["gateway"], "primary");
    assert_eq!(attempts[0]["kind"], "not_sent");
    assert!(
        attempts[0]["error"].as_str().unwrap().contains("503"),
        "{v}"
    );
    assert!(attempts[0]["ms"].is_u64());
    assert_eq!(attempts[1]["gateway"], "backup");
    assert_eq!(backup.recorder().all().len(), 1, "delivered once");
    assert_eq!(
        primary.recorder().all().len(),
        1,
        "the primary was asked once (retries = 0)"
    );

    // An unknown route is a usage error.
    let o = run(&["-c", c, "send", "--route", "nope", "-p", "+4915", "-m", "x"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("no route 'nope'"), "{}", text(&o).1);
}

#[test]
fn gateway_honours_its_per_recipient_limit() {
    let g = one_gateway("h", "[gateways.h.limits]\nper_recipient = \"2/1h\"\n");
    let (sink, dir, c) = (&g.sink, &g.dir, g.config.as_str());
    let o = run(&[
        "-c", c, "send", "-g", "h", "-p", "+4915", "-m", "1", "--json",
    ]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["gateway"], "h");
    assert_eq!(v["attempts"].as_array().unwrap().len(), 1);
    assert!(v.get("route").is_none());

    // Within one run the guard holds: the third message to +4915 stops, +4916 passes.
    let list = dir.path().join("list.csv");
    std::fs::write(&list, "+4915,a\n+4915,b\n+4915,c\n+4916,d\n").unwrap();
    let report = dir.path().join("report.jsonl");
    let o = run(&[
        "-c",
        c,
        "send",
        "-g",
        "h",
        "--file",
        list.to_str().unwrap(),
        "--concurrency",
        "1",
        "--report",
        report.to_str().unwrap(),
    ]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{err}");
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&report)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let limited: Vec<_> = lines.iter().filter(|l| l["status"] == "failed").collect();
    assert_eq!(limited.len(), 1, "{lines:?}");
    assert_eq!(limited[0]["phone"], "+4915");
    assert_eq!(limited[0]["kind"], "not_sent");
    assert_eq!(limited[0]["reason"], "rate_limited");
    assert!(
        lines
            .iter()
            .all(|l| l["status"] == "failed" || l["gateway"] == "h")
    );
    // One from the single send, two of +4915, one of +4916.
    assert_eq!(sink.recorder().all().len(), 4);
}

#[test]
fn bulk_through_a_route_reports_gateway_and_attempts() {
    let f = failover(busy(), "");
    let (dir, backup) = (&f.dir, &f.backup);
    let cfg = f.config("");
    let list = dir.path().join("list.csv");
    std::fs::write(&list, "+4915,a\n+4916,b\n").unwrap();
    let report = dir.path().join("report.jsonl");
    let o = run(&[
        "-c",
        &cfg,
        "send",
        "--route",
        "otp",
        "--file",
        list.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    let text = std::fs::read_to_string(&report).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    for l in &lines {
        assert_eq!(l["status"], "sent");
        assert_eq!(l["gateway"], "backup");
        assert_eq!(l["attempts"].as_array().unwrap().len(), 2, "{l}");
    }
    assert_eq!(backup.recorder().all().len(), 2);
}

#[test]
fn check_reports_every_route_problem_once_and_exits_2() {
    let g = one_gateway(
        "a",
        "[gateways.a.limits]\nrate = 0\nper_recipient = \"5/1x\"\n[routes.otp]\ngateways = [\"a\", \"ghost\"]\n[[routes.otp.rules]]\nmatch = \"([\"\ngateways = [\"a\"]\n[routes.empty]\ngateways = []\n",
    );
    let c = g.config.as_str();
    let o = run(&["-c", c, "check"]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}{err}");
    for want in [
        "route 'otp', field 'gateways': unknown gateway 'ghost'",
        "route 'otp', field 'rules[0].match'",
        "route 'empty', field 'gateways': is empty",
        "gateway 'a', option 'limits.rate'",
        "gateway 'a', option 'limits.per_recipient'",
    ] {
        assert_eq!(err.matches(want).count(), 1, "{want:?} once in\n{err}");
    }
    assert!(err.contains("5 configuration problems"), "{err}");
}

#[test]
fn gateways_json_lists_routes_and_limits() {
    let g = one_gateway(
        "a",
        "[gateways.a.limits]\nrate = 5\nper_recipient = \"5/1h\"\n[routes.otp]\ngateways = [\"a\"]\nretries = 2\n",
    );
    let c = g.config.as_str();
    let o = run(&["-c", c, "check"]);
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
    assert!(text(&o).0.contains("1 route"), "{:?}", text(&o));
    let o = run(&["-c", c, "gateways", "--json"]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["gateways"]["a"].is_object(), "existing shape kept: {v}");
    let routing = &v["routing"];
    assert_eq!(routing["routes"][0]["name"], "otp");
    assert_eq!(routing["routes"][0]["retries"], 2);
    assert_eq!(routing["gateways"][0]["gateway"], "a");
    assert_eq!(routing["gateways"][0]["limits"]["rate"], 5.0);
    assert_eq!(routing["gateways"][0]["limits"]["per_recipient"], "5/1h");
    assert_eq!(routing["gateways"][0]["breaker"], "closed");
}

#[test]
fn unknown_outcome_with_failover_warns_that_it_may_arrive_twice() {
    let f = failover(Fault::NeverAnswer, "TIMEOUT = \"0.5\", ");
    let backup = &f.backup;
    let cfg = f.config("on_unknown = \"failover\"\n");
    let c = cfg.as_str();
    let o = run(&["-c", c, "send", "--route", "otp", "-p", "+4915", "-m", "1"]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    assert!(out.contains("sent via backup"), "{out}");
    assert!(out.contains("warning:"), "the plain output warns: {out}");

    // With "stop", nothing reaches the backup and the exit status says failed.
    let cfg = f.config("on_unknown = \"stop\"\n");
    let c = cfg.as_str();
    let o = run(&[
        "-c", c, "send", "--route", "otp", "-p", "+4916", "-m", "2", "--json",
    ]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["kind"], "unknown");
    assert_eq!(v["may_have_been_sent"], true);
    assert_eq!(v["reason"], "outcome_unknown");
    assert_eq!(v["attempts"][0]["gateway"], "primary");
    assert_eq!(
        backup.recorder().all().len(),
        1,
        "only the failover run reached the backup"
    );
}
