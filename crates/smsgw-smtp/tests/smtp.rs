//! The smtp provider against the testkit's SMTP sink on loopback: real sockets, real SMTP.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;

use common::{
    PASSWORD, SIMPLE, fast_server, gateway, gateway_on, plain_server, smtps_login, starttls_login,
};
use smsgw_core::{Config, ErrorKind, Gateway, Gateways, Message, Registry};
use smsgw_smtp as _;
use smsgw_testkit::Fault;
use smsgw_testkit::smtp::{SmtpMessage, SmtpSink};

async fn one_message(sink: &SmtpSink) -> SmtpMessage {
    sink.recorder().wait_for(1, Duration::from_secs(2)).await;
    let msgs = sink.messages();
    assert_eq!(msgs.len(), 1, "{msgs:#?}");
    msgs.into_iter().next().unwrap()
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

#[tokio::test]
async fn golden_smtp_tags_same_envelope_subject_and_body() {
    smsgw_testkit::golden::assert_copies_current(Path::new(env!("CARGO_MANIFEST_DIR")));
    let case: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(golden_dir().join("smtp_tags.case.json")).unwrap(),
    )
    .unwrap();
    let lines = std::fs::read_to_string(golden_dir().join("smtp_tags.jsonl")).unwrap();
    let wire: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let expected = wire.iter().find(|v| v["kind"] == "smtp").unwrap();

    let sink = SmtpSink::start().await.unwrap();
    let server = format!(
        "server = \"127.0.0.1\"\nport = {}\nsender = {}",
        sink.addr().port(),
        case["smtpserver"]["sender"]
    );
    let options: String = case["options"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| format!("{k} = {v}\n"))
        .collect();
    let server_id = case["options"]["SMTPIDENTIFIER"].as_str().unwrap();
    let gw = gateway_on(server_id, &server, &options).unwrap();
    let sample = &case["sample"];
    let msg = Message::new(
        sample["phone"].as_str().unwrap(),
        sample["message"].as_str().unwrap(),
    );
    let receipt = gw.send(&msg).await.unwrap();
    assert_eq!(receipt.provider, "smtp");
    assert_eq!(receipt.message_ids.len(), 1, "the Message-ID");

    let got = one_message(&sink).await;
    assert_eq!(got.mail_from, expected["mail_from"]);
    assert_eq!(
        serde_json::to_value(&got.rcpt_tos).unwrap(),
        expected["rcpt_tos"]
    );
    let dec = &expected["headers_decoded"];
    assert_eq!(got.subject.as_deref(), dec["Subject"].as_str());
    assert_eq!(got.header("From"), dec["From"].as_str());
    assert_eq!(got.header("To"), dec["To"].as_str());
    assert_eq!(got.text(), expected["body_decoded"]);
    assert_eq!(got.content_type, expected["content_type"]);
    assert_eq!(got.charset.as_deref(), expected["charset"].as_str());
    // What the issue adds on top of privacyIDEA.
    assert!(got.header("Date").is_some());
    assert!(got.header("Message-ID").is_some());
    assert_eq!(got.header("MIME-Version"), Some("1.0"));
    // The subject is encoded: non-ASCII never goes raw into a header.
    let raw_subject = got.header("Subject").unwrap();
    assert!(
        raw_subject.is_ascii() && raw_subject.contains("=?utf-8?"),
        "{raw_subject}"
    );
    assert!(got.data.is_ascii(), "{}", got.data);
    assert_eq!(got.reply_code, Some(250));
}

#[tokio::test]
async fn defaults_subject_is_phone_and_body_is_otp() {
    let sink = SmtpSink::start().await.unwrap();
    let gw = gateway(&plain_server(&sink), SIMPLE).unwrap();
    gw.send(&Message::new("+491701234567", "424242"))
        .await
        .unwrap();
    let m = one_message(&sink).await;
    assert_eq!(m.subject.as_deref(), Some("+491701234567"));
    assert_eq!(m.text(), "424242");
    assert_eq!(m.rcpt_tos, vec!["sms@gw.example.net"]);
    assert_eq!(m.mail_from, "otp@example.org");
    assert_eq!(m.header("From"), Some("otp@example.org"));
    let r = &sink.recorder().all()[0];
    assert_eq!(
        (r.protocol.as_str(), r.recipient.as_str(), r.text.as_str()),
        ("smtp", "sms@gw.example.net", "424242")
    );
}

#[tokio::test]
async fn spec_typo_smtpidentified_is_accepted() {
    let sink = SmtpSink::start().await.unwrap();
    let gw = gateway(
        &plain_server(&sink),
        "SMTPIDENTIFIED = \"mail\"\nMAILTO = \"{phone}@gw.example.net\"",
    )
    .unwrap();
    gw.send(&Message::new("4917", "1")).await.unwrap();
    assert_eq!(
        one_message(&sink).await.rcpt_tos,
        vec!["4917@gw.example.net"]
    );
}

#[tokio::test]
async fn non_ascii_long_and_multiline_text_arrives_intact() {
    let sink = SmtpSink::start().await.unwrap();
    let gw = gateway(
        &plain_server(&sink),
        "SMTPIDENTIFIER = \"mail\"\nMAILTO = \"sms@gw.example.net\"\nSUBJECT = \"Grüße für {phone} 🎉\"\nBODY = \"Code: {otp}\"",
    )
    .unwrap();
    let texts = [
        "Ünïcödé ß € 😀".to_owned(),
        "A".repeat(1200),
        "line one\nline two\n.\n..dots\n&<>\"'%+".to_owned(),
    ];
    for t in &texts {
        gw.send(&Message::new("+49 170 1", t)).await.unwrap();
    }
    sink.recorder()
        .wait_for(texts.len(), Duration::from_secs(2))
        .await;
    let msgs = sink.messages();
    assert_eq!(msgs.len(), texts.len());
    for (m, t) in msgs.iter().zip(&texts) {
        assert_eq!(m.subject.as_deref(), Some("Grüße für +49 170 1 🎉"));
        assert_eq!(m.text(), format!("Code: {t}"));
        assert_eq!(m.charset.as_deref(), Some("utf-8"));
        assert!(m.data.is_ascii(), "everything is transfer-encoded");
    }
}

const HEADERS: &[&str] = &[
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
];

#[tokio::test]
async fn injection_in_phone_and_message_adds_no_header_or_recipient() {
    let sink = SmtpSink::start().await.unwrap();
    let gw = gateway(
        &plain_server(&sink),
        "SMTPIDENTIFIER = \"mail\"\nMAILTO = \"sms@gw.example.net\"\nSUBJECT = \"SMS {phone} {otp}\"\nBODY = \"{phone}: {otp}\"",
    )
    .unwrap();
    let phone = "+49170\r\nBcc: evil@evil.example\r\nX-Evil: 1";
    let text = "123\r\nBcc: evil2@evil.example\r\n\r\n.\r\nMAIL FROM:<x@evil.example>\r\nRCPT TO:<evil3@evil.example>\r\nDATA\r\nSubject: owned\r\n";
    gw.send(&Message::new(phone, text)).await.unwrap();
    let m = one_message(&sink).await;
    assert_eq!(m.rcpt_tos, vec!["sms@gw.example.net"]);
    for (name, _) in &m.headers {
        assert!(
            HEADERS.iter().any(|h| h.eq_ignore_ascii_case(name)),
            "unexpected header {name}: {:#?}",
            m.headers
        );
    }
    for h in HEADERS {
        assert_eq!(m.header_count(h), 1, "{h}");
    }
    // The values arrive as data.
    let subject = m.subject.clone().unwrap();
    assert!(subject.contains("Bcc: evil@evil.example"), "{subject:?}");
    assert!(m.body.contains("RCPT TO:<evil3@evil.example>"));
    assert_eq!(sink.messages().len(), 1);
}

#[tokio::test]
async fn injection_through_mailto_tags_is_refused_before_sending() {
    let sink = SmtpSink::start().await.unwrap();
    let gw = gateway(
        &plain_server(&sink),
        "SMTPIDENTIFIER = \"mail\"\nMAILTO = \"{phone}@sms.example.net\"",
    )
    .unwrap();
    for phone in [
        "4917\r\nBcc: evil@evil.example",
        "4917\nRCPT TO:<evil@evil.example>",
        "evil@evil.example, 4917",
        "evil@evil.example>, <4917",
        "a@b.c; 4917",
    ] {
        let e = gw.send(&Message::new(phone, "1")).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config, "{phone:?}: {e}");
    }
    // A valid one still goes through, and nothing else ever reached the sink.
    gw.send(&Message::new("4917", "1")).await.unwrap();
    assert_eq!(
        one_message(&sink).await.rcpt_tos,
        vec!["4917@sms.example.net"]
    );
}

#[tokio::test]
async fn auth_plain_over_starttls_with_self_signed_certificate() {
    let sink = SmtpSink::builder()
        .starttls()
        .credentials("otp-user", PASSWORD)
        .require_auth()
        .start()
        .await
        .unwrap();
    let server = starttls_login(&sink, "otp-user", PASSWORD);
    let gw = gateway(&server, SIMPLE).unwrap();
    gw.send(&Message::new("+4917", "1")).await.unwrap();
    let m = one_message(&sink).await;
    assert!(m.tls, "STARTTLS was used");
    let auth = m.auth.unwrap();
    assert_eq!(
        (auth.mechanism.as_str(), auth.username.as_str()),
        ("PLAIN", "otp-user")
    );
}

#[tokio::test]
async fn auth_login_when_the_server_offers_only_login() {
    let sink = SmtpSink::builder()
        .starttls()
        .credentials("otp-user", PASSWORD)
        .auth_mechanisms(["LOGIN"])
        .require_auth()
        .start()
        .await
        .unwrap();
    let server = starttls_login(&sink, "otp-user", PASSWORD);
    let gw = gateway(&server, SIMPLE).unwrap();
    gw.send(&Message::new("+4917", "1")).await.unwrap();
    let m = one_message(&sink).await;
    assert_eq!(m.auth.unwrap().mechanism, "LOGIN");
    assert!(m.tls);
}

#[tokio::test]
async fn starttls_verifies_the_certificate_unless_check_ssl_is_off() {
    let sink = SmtpSink::builder().starttls().start().await.unwrap();
    let server = format!("{}\ntls = true", plain_server(&sink));
    let gw = gateway(&server, SIMPLE).unwrap();
    let e = gw.send(&Message::new("+4917", "1")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    assert!(e.message().contains("check_ssl"), "{e}");
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn tls_true_requires_starttls_from_the_server() {
    let sink = SmtpSink::start().await.unwrap(); // offers no STARTTLS
    let server = format!("{}\ntls = true\ncheck_ssl = false", plain_server(&sink));
    let gw = gateway(&server, SIMPLE).unwrap();
    let e = gw.send(&Message::new("+4917", "1")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    assert!(e.message().contains("STARTTLS"), "{e}");
    assert!(sink.messages().is_empty(), "nothing sent in plaintext");
}

#[tokio::test]
async fn smtps_speaks_tls_from_the_first_byte() {
    let sink = SmtpSink::builder()
        .implicit_tls()
        .credentials("u", PASSWORD)
        .start()
        .await
        .unwrap();
    let server = smtps_login(&sink);
    assert!(sink.url().starts_with("smtps://"));
    let gw = gateway(&server, SIMPLE).unwrap();
    gw.send(&Message::new("+4917", "1")).await.unwrap();
    let m = one_message(&sink).await;
    assert!(m.tls);
    assert_eq!(m.auth.unwrap().username, "u");
}

#[tokio::test]
async fn smtp_url_with_port_is_understood() {
    let sink = SmtpSink::start().await.unwrap();
    let server = format!(
        "server = \"{}\"\nsender = \"otp@example.org\"\ntimeout = 2",
        sink.url()
    );
    let gw = gateway(&server, SIMPLE).unwrap();
    gw.send(&Message::new("+4917", "1")).await.unwrap();
    assert!(!one_message(&sink).await.tls);
}

#[test]
fn credentials_without_tls_are_refused_unless_allowed() {
    let server = "server = \"127.0.0.1\"\nport = 2525\nsender = \"otp@example.org\"\nusername = \"u\"\npassword = \"p\"";
    let e = gateway(server, SIMPLE).unwrap_err().to_string();
    assert!(
        e.contains("smtp server 'mail'") && e.contains("allow_insecure_auth"),
        "{e}"
    );
    assert!(!e.contains("\"p\""));
    gateway(&format!("{server}\nallow_insecure_auth = true"), SIMPLE).unwrap();
    gateway(&format!("{server}\ntls = true"), SIMPLE).unwrap();
}

#[tokio::test]
async fn insecure_auth_works_when_allowed_explicitly() {
    let sink = SmtpSink::builder()
        .credentials("u", PASSWORD)
        .require_auth()
        .start()
        .await
        .unwrap();
    let server = format!(
        "{}\nusername = \"u\"\npassword = \"{PASSWORD}\"\nallow_insecure_auth = true",
        plain_server(&sink)
    );
    let gw = gateway(&server, SIMPLE).unwrap();
    gw.send(&Message::new("+4917", "1")).await.unwrap();
    let m = one_message(&sink).await;
    assert!(!m.tls);
    assert_eq!(m.auth.unwrap().username, "u");
}

#[tokio::test]
async fn wrong_password_is_refused_and_says_authentication() {
    let sink = SmtpSink::builder()
        .starttls()
        .credentials("u", "the-right-one")
        .start()
        .await
        .unwrap();
    let server = starttls_login(&sink, "u", PASSWORD);
    let gw = gateway(&server, SIMPLE).unwrap();
    let e = gw.send(&Message::new("+4917", "1")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Refused, "{e}");
    assert_eq!(e.code(), Some("535"));
    assert!(e.message().contains("authentication failed"), "{e}");
    assert!(!format!("{e} {e:?}").contains(PASSWORD));
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn a_4xx_reply_is_not_sent_and_a_5xx_reply_is_refused() {
    let sink = SmtpSink::start().await.unwrap();
    let gw = gateway(&plain_server(&sink), SIMPLE).unwrap();
    sink.faults().nth(
        0,
        Fault::Reply {
            code: 451,
            text: "4.3.0 Mailbox busy, try later".into(),
        },
    );
    sink.faults().nth(
        1,
        Fault::Reply {
            code: 554,
            text: "5.7.1 Rejected: no SMS for you".into(),
        },
    );
    let e = gw.send(&Message::new("+4917", "1")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotSent, "{e}");
    assert!(e.is_retry_safe());
    assert_eq!(e.code(), Some("451"));
    assert!(e.message().contains("Mailbox busy"), "{e}");

    let e = gw.send(&Message::new("+4917", "2")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Refused, "{e}");
    assert_eq!(e.code(), Some("554"));
    assert!(e.message().contains("no SMS for you"), "{e}");

    // The server behaves again: the next send goes through.
    gw.send(&Message::new("+4917", "3")).await.unwrap();
    assert_eq!(
        sink.recorder().wait_for(1, Duration::from_secs(1)).await[0].text,
        "3"
    );
}

#[tokio::test]
async fn a_server_that_never_answers_after_data_fails_within_the_timeout_as_unknown() {
    let sink = SmtpSink::start().await.unwrap();
    let gw = gateway(&fast_server(&sink), SIMPLE).unwrap();
    sink.faults().nth(0, Fault::NeverAnswer);
    let start = Instant::now();
    let e = gw.send(&Message::new("+4917", "1")).await.unwrap_err();
    let took = start.elapsed();
    assert_eq!(e.kind(), ErrorKind::Unknown, "{e}");
    assert!(e.may_have_been_sent());
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_millis(1500),
        "{took:?}"
    );
    // The stuck connection is not reused: the next send opens a new one and succeeds.
    gw.send(&Message::new("+4917", "2")).await.unwrap();
    assert_eq!(sink.connections(), 2);
    assert_eq!(
        sink.recorder().len(),
        2,
        "the unanswered message did arrive"
    );
}

#[tokio::test]
async fn a_server_that_never_greets_fails_within_the_timeout() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = Arc::new(Mutex::new(Vec::new()));
    let h = held.clone();
    let task = tokio::spawn(async move {
        loop {
            let (s, _) = listener.accept().await.unwrap();
            h.lock().unwrap().push(s); // accept, say nothing
        }
    });
    let server = format!(
        "server = \"127.0.0.1\"\nport = {port}\nsender = \"otp@example.org\"\ntimeout = 0.5"
    );
    let gw = gateway(&server, SIMPLE).unwrap();
    let start = Instant::now();
    let e = gw.send(&Message::new("+4917", "1")).await.unwrap_err();
    assert!(start.elapsed() < Duration::from_millis(1500));
    assert!(
        matches!(e.kind(), ErrorKind::Unknown | ErrorKind::NotSent),
        "{e}"
    );
    task.abort();
}

#[tokio::test]
async fn a_delay_within_the_timeout_is_fine() {
    let sink = SmtpSink::start().await.unwrap();
    let gw = gateway(&fast_server(&sink), SIMPLE).unwrap();
    sink.faults()
        .nth(0, Fault::Delay(Duration::from_millis(100)));
    gw.send(&Message::new("+4917", "1")).await.unwrap();
}

#[tokio::test]
async fn a_server_that_hangs_up_after_data_is_unknown() {
    let sink = SmtpSink::start().await.unwrap();
    let gw = gateway(&plain_server(&sink), SIMPLE).unwrap();
    sink.faults().nth(0, Fault::Close);
    let e = gw.send(&Message::new("+4917", "1")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unknown, "{e}");
    gw.send(&Message::new("+4917", "2")).await.unwrap();
}

#[tokio::test]
async fn a_refused_connection_is_not_sent() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let server =
        format!("server = \"127.0.0.1\"\nport = {port}\nsender = \"otp@example.org\"\ntimeout = 2");
    let gw = gateway(&server, SIMPLE).unwrap();
    let e = gw.send(&Message::new("+4917", "1")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotSent, "{e}");
}

#[tokio::test]
async fn connections_are_reused_across_many_sends_and_shared_between_gateways() {
    let sink = SmtpSink::start().await.unwrap();
    let text = format!(
        "[smtp_servers.mail]\n{}\n\n\
         [gateways.a]\nprovider = \"smtp\"\noptions = {{ SMTPIDENTIFIER = \"mail\", MAILTO = \"a@gw.example.net\" }}\n\
         [gateways.b]\nprovider = \"privacyidea.lib.smsprovider.SmtpSMSProvider.SmtpSMSProvider\"\noptions = {{ SMTPIDENTIFIER = \"mail\", MAILTO = \"b@gw.example.net\" }}\n",
        plain_server(&sink)
    );
    let gws = Gateways::build(&Config::from_toml_str(&text).unwrap(), Registry::global()).unwrap();
    for i in 0..30 {
        let gw = gws.get(if i % 2 == 0 { "a" } else { "b" }).unwrap();
        gw.send(&Message::new("+4917", i.to_string()))
            .await
            .unwrap();
    }
    let got = sink.recorder().wait_for(30, Duration::from_secs(2)).await;
    assert_eq!(got.len(), 30);
    // Both gateways name the same server: one pooled connection carries all 30 sends.
    assert_eq!(
        sink.connections(),
        1,
        "one pooled connection for 30 sequential sends on one server"
    );
    let before = sink.connections();
    assert_eq!(got[1].recipient, "b@gw.example.net");
    gws.shutdown().await;
    // After a shutdown, sending opens a new pool.
    gws.get("a")
        .unwrap()
        .send(&Message::new("+4917", "again"))
        .await
        .unwrap();
    assert_eq!(sink.connections(), before + 1);
}

/// Sends `n` messages one after the other through `gw`; the time per message.
async fn sequential(gw: &Gateway, n: u32) -> Duration {
    let start = Instant::now();
    for i in 0..n {
        gw.send(&Message::new("+4917", i.to_string()))
            .await
            .unwrap();
    }
    start.elapsed() / n
}

// lettre writes the mail data and the final "." in two writes: on a socket without
// TCP_NODELAY the second waits for the server's delayed ACK, ~40 ms per mail even on loopback.
#[tokio::test]
async fn sequential_sends_over_a_pooled_connection_do_not_stall() {
    let sink = SmtpSink::start().await.unwrap();
    let gw = gateway(&plain_server(&sink), SIMPLE).unwrap();
    let start = Instant::now();
    let per_message = sequential(&gw, 200).await;
    let took = start.elapsed();
    eprintln!("plain: {per_message:?} per message");
    assert!(
        took < Duration::from_secs(2),
        "200 sends took {took:?} ({per_message:?} each)"
    );
    assert_eq!(sink.connections(), 1, "all over one pooled connection");
    assert_eq!(sink.recorder().len(), 200);
}

#[tokio::test]
async fn sequential_sends_over_tls_do_not_stall() {
    // A stall is a delayed ACK (~40 ms) per mail; 25 ms leaves room for a loaded machine.
    let stall_free = Duration::from_millis(25);
    let starttls = SmtpSink::builder()
        .starttls()
        .credentials("u", PASSWORD)
        .require_auth()
        .start()
        .await
        .unwrap();
    let server = starttls_login(&starttls, "u", PASSWORD);
    let per_message = sequential(&gateway(&server, SIMPLE).unwrap(), 50).await;
    eprintln!("STARTTLS: {per_message:?} per message");
    assert!(per_message < stall_free, "{per_message:?}");
    assert_eq!(starttls.connections(), 1);

    let smtps = SmtpSink::builder()
        .implicit_tls()
        .credentials("u", PASSWORD)
        .start()
        .await
        .unwrap();
    let server = smtps_login(&smtps);
    let per_message = sequential(&gateway(&server, SIMPLE).unwrap(), 50).await;
    eprintln!("smtps: {per_message:?} per message");
    assert!(per_message < stall_free, "{per_message:?}");
    assert_eq!(smtps.connections(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sends_are_each_received_exactly_once() {
    let sink = SmtpSink::start().await.unwrap();
    let gw = gateway(&plain_server(&sink), SIMPLE).unwrap();
    let mut tasks = Vec::new();
    for i in 0..100 {
        let gw = gw.clone();
        tasks.push(tokio::spawn(async move {
            gw.send(&Message::new("+4917", format!("msg-{i}"))).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let got = sink.recorder().wait_for(100, Duration::from_secs(2)).await;
    let mut texts: Vec<String> = got.iter().map(|r| r.text.clone()).collect();
    texts.sort();
    texts.dedup();
    assert_eq!(texts.len(), 100);
    assert_eq!(got.len(), 100);
}

#[test]
fn an_unknown_smtpidentifier_is_reported_at_validation() {
    let server = "server = \"127.0.0.1\"\nsender = \"otp@example.org\"";
    let e = gateway(
        server,
        "SMTPIDENTIFIER = \"nope\"\nMAILTO = \"a@b.example\"",
    )
    .unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("gateway 'gw', option 'SMTPIDENTIFIER'") && text.contains("'nope'"),
        "{text}"
    );
    assert!(text.contains("defined: mail"), "{text}");
    let e = gateway(
        server,
        "SMTPIDENTIFIED = \"nope\"\nMAILTO = \"a@b.example\"",
    )
    .unwrap_err();
    assert!(e.to_string().contains("option 'SMTPIDENTIFIED'"), "{e}");
}

#[test]
fn every_problem_is_reported_at_once() {
    let server = "server = \"127.0.0.1\"\nport = 25\nsender = \"otp@example.org\"";
    let e = gateway(
        server,
        "MAILTO = \"two@a.example, three@b.example\"\nFOO = \"x\"",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("SMTPIDENTIFIER") && e.contains("FOO"), "{e}");
    let e = gateway(
        server,
        "SMTPIDENTIFIER = \"mail\"\nMAILTO = \"two@a.example, three@b.example\"",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("MAILTO"), "{e}");
    let e = gateway(
        "server = \"smtp://127.0.0.1:2525\"\nport = 25\nsender = \"otp@example.org\"",
        SIMPLE,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("'port'"), "{e}");
}

#[test]
fn gateways_build_and_drop_outside_a_runtime() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let sink = rt.block_on(SmtpSink::start()).unwrap();
    // Built outside any runtime: no network, no spawn.
    let gw = gateway(&plain_server(&sink), SIMPLE).unwrap();
    rt.block_on(gw.send(&Message::new("+4917", "1"))).unwrap();
    // Dropped outside the runtime: the pool's clean-up must not panic.
    drop(gw);
    rt.block_on(async { tokio::time::sleep(Duration::from_millis(20)).await });
    drop(sink);
}

#[test]
fn a_gateway_used_from_two_runtimes_opens_fresh_connections() {
    let rt1 = tokio::runtime::Runtime::new().unwrap();
    let sink = rt1.block_on(SmtpSink::start()).unwrap();
    let gw = gateway(&plain_server(&sink), SIMPLE).unwrap();
    rt1.block_on(gw.send(&Message::new("+4917", "1"))).unwrap();
    let rt2 = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt2.block_on(gw.send(&Message::new("+4917", "2"))).unwrap();
    assert_eq!(sink.connections(), 2);
    drop(rt2);
    drop(gw);
    drop(sink);
}
