//! Checks that messages arrive as sent: texts, long texts, rewritten numbers, headers, many at
//! once, delivery reports and message ids.

use super::*;

pub(super) async fn sink_and_gateway(
    h: &dyn Harness,
) -> Result<(Box<dyn SinkHandle>, Gateway), String> {
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

pub(super) async fn sends_arrive_intact(h: &dyn Harness, c: &Ctx) -> Result<(), String> {
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

pub(super) async fn long_message_intact(h: &dyn Harness, c: &Ctx) -> Result<(), String> {
    if !c.descriptor.capabilities.long_messages {
        return skip("no long_messages capability");
    }
    let long = "This message is deliberately longer than one SMS: 0123456789 ".repeat(4) + "€ end";
    let unicode = "Ваш код 123456. ".repeat(8) + "🔐";
    send_and_expect(h, c, &[&long, &unicode], PHONE).await
}

pub(super) async fn regexp_rewrites_number(h: &dyn Harness, _c: &Ctx) -> Result<(), String> {
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

pub(super) async fn headers_are_sent(h: &dyn Harness, c: &Ctx) -> Result<(), String> {
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

pub(super) async fn concurrent_sends_each_once(h: &dyn Harness, _c: &Ctx) -> Result<(), String> {
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

pub(super) async fn delivery_reports_arrive(h: &dyn Harness, c: &Ctx) -> Result<(), String> {
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

pub(super) async fn receipts_carry_message_ids(h: &dyn Harness, _c: &Ctx) -> Result<(), String> {
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
