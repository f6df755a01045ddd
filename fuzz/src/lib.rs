//! Fuzz targets for the parsers and encoders of smsgw that take outside input.
//!
//! Each function here is one target: it takes arbitrary bytes, must never panic, and asserts the
//! properties its input promises (a split message rejoins to the text, a header line stays under
//! RFC 5322's limit, a phone number never holds a line break). `fuzz/tests/targets.rs` drives each
//! one with [bolero](https://docs.rs/bolero): on stable, `cargo test -p smsgw-fuzz` (and
//! `cargo xtask fuzz`) replays the committed corpus under `fuzz/tests/__fuzz__/<target>/` and
//! then random inputs for a bounded time; `cargo bolero test` runs the same targets under
//! libFuzzer or AFL (see docs/security.md).
//!
//! ```
//! // A subject of 5 000 characters folds into lines of at most 998 octets.
//! smsgw_fuzz::smtp_subject("x".repeat(5000).as_bytes());
//! ```
#![deny(missing_docs)]

use std::io::Cursor;
use std::sync::LazyLock;

// `send --file`'s reader is private to smsgw-cli (its `send` module is not a library API), so
// the fuzz crate compiles the same source file rather than a copy of it.
#[allow(dead_code, missing_docs)]
#[path = "../../crates/smsgw-cli/src/recipients.rs"]
mod reader;

/// The longest line `send --file` reads (its reader's bound), for the `recipients` target to cross.
pub const MAX_RECIPIENT_LINE: usize = reader::MAX_LINE;

/// Some factories may start tasks when built; give them a runtime as the CLI does.
static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime")
});

fn text(data: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(data)
}

/// The configuration loader (TOML, every section, every provider's parameters and REGEXP): any
/// input ends as a configuration or a list of problems, each rendered without a panic.
pub fn config(data: &[u8]) {
    if data.len() as u64 > smsgw::MAX_CONFIG_BYTES {
        return;
    }
    let Ok(cfg) = smsgw::Config::from_toml_str(&text(data)) else {
        return;
    };
    let _rt = RUNTIME.enter();
    if let Err(errors) = smsgw::Gateways::build(&cfg, smsgw::Registry::global()) {
        let shown = errors.to_string();
        // A password given in a URL's userinfo is never repeated in a problem.
        assert!(!shown.contains("u:p@"), "userinfo shown in: {shown}");
    }
}

/// `REGEXP = /pattern/replacement/`: parsed or refused, and applied to a phone number.
pub fn regexp(data: &[u8]) {
    let s = text(data);
    let (option, phone) = s.split_once('\0').unwrap_or((&s, "+491701234567"));
    if let Ok(rewrite) = smsgw::PhoneRewrite::parse(option) {
        let _ = rewrite.apply(phone);
    }
}

/// `{phone}` / `{otp}` rendering: text without a tag is returned unchanged, a tag's value is
/// never scanned again.
pub fn template(data: &[u8]) {
    let s = text(data);
    let mut it = s.splitn(3, '\0');
    let (t, phone, otp) = (
        it.next().unwrap_or(""),
        it.next().unwrap_or(""),
        it.next().unwrap_or(""),
    );
    let out = smsgw::render(t, phone, otp);
    if !smsgw::has_tag(t) {
        assert_eq!(out, t);
    }
    // Values are data: rendering a tag-free template with hostile values is still the template.
    let plain = t.replace('{', "(");
    assert_eq!(smsgw::render(&plain, "{otp}", "{phone}"), plain);
}

/// `send --file`: every line is a recipient, a malformed line, or the end; no phone number or
/// text holds a line break; line numbers only grow.
pub fn recipients(data: &[u8]) {
    let mut reader = reader::Recipients::new(Cursor::new(data), Some("code".into()));
    let mut last = 0;
    // A line is at least one byte, so this bounds the loop whatever the reader does.
    for _ in 0..=data.len() + 1 {
        let line = match reader.next_item() {
            Ok(None) | Err(_) => return,
            Ok(Some(reader::Item::Recipient { line, message })) => {
                // Lines never merge: no field holds a line break (a bare CR included).
                for field in [&message.phone, &message.text] {
                    assert!(!field.contains(['\r', '\n']), "line break in {field:?}");
                }
                assert!(!message.phone.is_empty());
                line
            }
            Ok(Some(reader::Item::Malformed { line, .. })) => line,
        };
        assert!(line > last, "line {line} after {last}");
        last = line;
    }
    panic!("more items than bytes");
}

/// The phone numbers `send --file` reads from `data` (to replay a finding).
pub fn recipient_phones(data: &[u8]) -> Vec<String> {
    let mut reader = reader::Recipients::new(Cursor::new(data), Some("code".into()));
    let mut phones = Vec::new();
    while let Ok(Some(item)) = reader.next_item() {
        if let reader::Item::Recipient { message, .. } = item {
            phones.push(message.phone);
        }
    }
    phones
}

/// GSM 03.38 / UCS-2 splitting: parts within their size, no escape or surrogate pair cut, and
/// the parts rejoin to the text.
pub fn sms_split(data: &[u8]) {
    let s = text(data);
    let Ok(enc) = smsgw::smpp::encode(&s, data.first().copied().unwrap_or(0)) else {
        return;
    };
    let concat = enc.parts.len() > 1;
    let mut joined = Vec::new();
    for part in &enc.parts {
        let body = if concat {
            let (udh, body) = smsgw_sinks::smsc::parse_udh(part).expect("a UDH on every part");
            assert_eq!(udh.ies.len(), 1);
            body
        } else {
            part.as_slice()
        };
        if enc.data_coding == smsgw::smpp::DC_UCS2 {
            assert!(part.len() <= 140, "UCS-2 part of {} octets", part.len());
            assert_eq!(body.len() % 2, 0);
            if concat {
                let last = u16::from_be_bytes([body[body.len() - 2], body[body.len() - 1]]);
                assert!(!(0xd800..0xdc00).contains(&last), "surrogate pair cut");
            }
        } else {
            // Unpacked septets: 160 per message, UDH included.
            assert!(
                part.len() <= smsgw::smpp::GSM_SINGLE,
                "GSM part of {} septets",
                part.len()
            );
            if concat {
                assert_ne!(body.last(), Some(&0x1b), "escape cut");
            }
        }
        joined.extend_from_slice(body);
    }
    let (back, _) = smsgw_sinks::smsc::decode_text(enc.data_coding, &joined);
    assert_eq!(back, s, "split and rejoin changed the text");
}

/// Delivery-receipt text from an SMSC.
pub fn receipt(data: &[u8]) {
    if let Some(r) = smsgw::smpp::parse_receipt_text(&text(data)) {
        let _ = format!("{r:?}");
    }
}

/// sipgate's XML-RPC reply reader: bounded size and depth, an error never a crash.
pub fn xmlrpc_reply(data: &[u8]) {
    match smsgw::sipgate::read_reply(data) {
        Ok(v) => drop(format!("{v:?}")),
        Err(e) => drop(e.to_string()),
    }
}

/// SMTP Subject encoding: no line over 998 octets with its name, no line break but the fold,
/// so a subject can never add a header.
pub fn smtp_subject(data: &[u8]) {
    let s = text(data);
    let v = smsgw::smtp::encode_subject(&s);
    for (i, line) in v.split("\r\n").enumerate() {
        assert!(!line.contains(['\r', '\n']), "bare line break in {v:?}");
        let width = if i == 0 { "Subject: ".len() } else { 0 };
        assert!(
            line.len() + width <= 998,
            "line of {} octets",
            line.len() + width
        );
        if i > 0 {
            assert!(
                line.starts_with([' ', '\t']),
                "continuation not folded: {line:?}"
            );
        }
    }
}
