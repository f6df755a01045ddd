//! Hostile and broken SMTP peers (issue #12, items 4 and 12): an endless reply line leaves
//! memory flat and fails the send, classified; a subject that would make a header line over
//! 998 octets is encoded so that none is.

use std::time::{Duration, Instant};

mod common;

use common::SIMPLE;
use smsgw_core::{ErrorKind, Gateway, Message};
use smsgw_smtp as _;
use smsgw_testkit::smtp::SmtpSink;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn gateway(server_toml: &str, options_toml: &str) -> Gateway {
    common::gateway(server_toml, &format!("{SIMPLE}\n{options_toml}")).unwrap()
}

/// A server that greets with `220 ` and then sends bytes without a line end until the client
/// hangs up; returns how many bytes it managed to send.
async fn endless_greeting() -> (std::net::SocketAddr, tokio::task::JoinHandle<u64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let chunk = vec![b'x'; 64 * 1024];
        let mut sent = 0u64;
        if sock.write_all(b"220 ").await.is_err() {
            return sent;
        }
        // Bounded by the test: stop after 64 MiB whatever the client does.
        while sent < 64 * 1024 * 1024 {
            match sock.write_all(&chunk).await {
                Ok(()) => sent += chunk.len() as u64,
                Err(_) => break,
            }
        }
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(1), sock.read_to_end(&mut rest)).await;
        sent
    });
    (addr, task)
}

#[tokio::test]
async fn an_endless_greeting_line_fails_the_send_with_bounded_reading() {
    let (addr, server) = endless_greeting().await;
    let gw = gateway(
        &format!(
            "server = \"127.0.0.1\"\nport = {}\nsender = \"otp@example.org\"\ntimeout = 20",
            addr.port()
        ),
        "",
    );
    let start = Instant::now();
    let e = gw
        .send(&Message::new("+4915100", "123456"))
        .await
        .unwrap_err();
    // Nothing was sent before the greeting: retry-safe, and said why.
    assert_eq!(e.kind(), ErrorKind::NotSent, "{e}");
    assert!(e.to_string().contains("512 octets"), "{e}");
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "{:?}",
        start.elapsed()
    );
    let sent = server.await.unwrap();
    // The client stopped reading at the bound: the server could not push its 64 MiB (what it
    // sent is what fits in the socket buffers on top of the bound).
    assert!(
        sent < 32 * 1024 * 1024,
        "the client kept reading: {sent} bytes"
    );
}

#[tokio::test]
async fn a_long_subject_is_encoded_so_no_header_line_exceeds_998_octets() {
    let sink = SmtpSink::start().await.unwrap();
    let gw = gateway(
        &format!(
            "server = \"127.0.0.1\"\nport = {}\nsender = \"otp@example.org\"\ntimeout = 5",
            sink.addr().port()
        ),
        "SUBJECT = \"SMS {otp}\"\nBODY = \"{otp}\"",
    );
    let text = "7".repeat(5000);
    gw.send(&Message::new("+4915100", &text)).await.unwrap();
    sink.recorder().wait_for(1, Duration::from_secs(5)).await;
    let msgs = sink.messages();
    let m = msgs.first().expect("the mail arrived");
    for line in m.data.split("\r\n") {
        assert!(line.len() <= 998, "a line of {} octets", line.len());
    }
    // Any reader decodes the subject back.
    let parsed = mail_parser::MessageParser::default()
        .parse(m.data.as_bytes())
        .expect("parses");
    assert_eq!(parsed.subject(), Some(format!("SMS {text}").as_str()));
    assert_eq!(m.subject.as_deref(), Some(format!("SMS {text}").as_str()));
}

#[tokio::test]
async fn an_ordinary_subject_is_written_as_before() {
    let sink = SmtpSink::start().await.unwrap();
    let gw = gateway(
        &format!(
            "server = \"127.0.0.1\"\nport = {}\nsender = \"otp@example.org\"\ntimeout = 5",
            sink.addr().port()
        ),
        "SUBJECT = \"SMS for {phone}\"",
    );
    gw.send(&Message::new("+4915100", "123456")).await.unwrap();
    sink.recorder().wait_for(1, Duration::from_secs(5)).await;
    let m = sink.messages().into_iter().next().unwrap();
    assert!(
        m.data.contains("Subject: SMS for +4915100\r\n"),
        "{}",
        m.data
    );
}
