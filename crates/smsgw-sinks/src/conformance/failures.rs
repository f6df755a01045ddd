//! Checks of failures: each classified by what may have happened (a silent gateway is unknown,
//! a closed port or a busy gateway not sent), logged under its real kind, and no secret shown.

use super::delivery::sink_and_gateway;
use super::*;

pub(super) async fn never_answering_sink_times_out_as_unknown(
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

pub(super) async fn refused_connection_is_not_sent(
    h: &dyn Harness,
    _c: &Ctx,
) -> Result<(), String> {
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

pub(super) async fn busy_is_retry_safe(h: &dyn Harness, _c: &Ctx) -> Result<(), String> {
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

pub(super) async fn failure_log_names_its_kind(h: &dyn Harness, c: &Ctx) -> Result<(), String> {
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

pub(super) async fn secrets_never_shown(h: &dyn Harness, c: &Ctx) -> Result<(), String> {
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
