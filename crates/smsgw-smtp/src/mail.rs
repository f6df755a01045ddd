//! Building the mail: addresses that cannot smuggle in a header or a recipient, and a Subject
//! that never makes a line longer than RFC 5322 allows (998 octets).

use email_encoding::headers::writer::EmailWriter;
use lettre::message::header::{ContentType, HeaderName, HeaderValue, MIME_VERSION_1_0};
use lettre::message::{Mailbox, MessageBuilder};

/// The longest word lettre is left to write as it is: its header folding breaks lines only
/// between words, so a longer word (a long one-time text without spaces) is encoded instead.
const MAX_PLAIN_WORD: usize = 900;

/// Parses `text` as exactly one mailbox, refusing anything that could smuggle in a header or a
/// second recipient.
pub(crate) fn single_mailbox(text: &str) -> Result<Mailbox, String> {
    if text.chars().any(char::is_control) {
        return Err("the address contains control characters (CR, LF, …)".into());
    }
    let mailbox: Mailbox = text
        .trim()
        .parse()
        .map_err(|e| format!("'{text}' is not one email address: {e}"))?;
    let all: lettre::message::Mailboxes = text
        .trim()
        .parse()
        .map_err(|e| format!("'{text}' is not one email address: {e}"))?;
    if all.iter().count() != 1 {
        return Err(format!("'{text}' is more than one address"));
    }
    Ok(mailbox)
}

/// The Subject header's value as it goes on the wire (folded; without `Subject: `).
///
/// A subject lettre can fold (every word short) is left to lettre, so that ordinary subjects
/// stay byte for byte what they were. Otherwise the whole subject is RFC 2047 encoded, in
/// encoded words of at most 75 octets on lines of at most 76, which any reader decodes back.
///
/// ```
/// let v = smsgw_smtp::encode_subject(&"9".repeat(5000));
/// assert!(v.split("\r\n").all(|line| line.len() <= 998 - "Subject: ".len()));
/// ```
pub fn encode_subject(subject: &str) -> String {
    let name = "Subject";
    if !needs_encoding(subject) {
        let value = HeaderValue::new(HeaderName::new_from_ascii_str(name), subject.to_owned());
        return lettre_encoded(&value);
    }
    let mut out = String::with_capacity(subject.len() * 4 / 3 + 64);
    {
        let mut w = EmailWriter::new(&mut out, name.len() + ": ".len(), 0, false);
        // Writing to a String cannot fail.
        let _ = email_encoding::headers::rfc2047::encode(subject, &mut w);
    }
    out
}

fn needs_encoding(subject: &str) -> bool {
    subject.split(' ').any(|w| w.len() > MAX_PLAIN_WORD)
}

/// What lettre writes for a header value (its `Display` is `Name: value\r\n`).
fn lettre_encoded(value: &HeaderValue) -> String {
    let mut headers = lettre::message::header::Headers::new();
    headers.insert_raw(value.clone());
    let shown = headers.to_string();
    shown
        .strip_prefix("Subject: ")
        .unwrap_or(&shown)
        .trim_end_matches("\r\n")
        .to_owned()
}

/// A mail builder with From, To, Subject (bounded line length), a Message-ID, MIME-Version
/// and a UTF-8 text/plain content type.
pub(crate) fn builder(from: Mailbox, to: Mailbox, subject: &str) -> MessageBuilder {
    let b = lettre::Message::builder().from(from).to(to);
    let b = if needs_encoding(subject) {
        b.raw_header(HeaderValue::dangerous_new_pre_encoded(
            HeaderName::new_from_ascii_str("Subject"),
            subject.to_owned(),
            encode_subject(subject),
        ))
    } else {
        b.subject(subject.to_owned())
    };
    b.message_id(None)
        .header(MIME_VERSION_1_0)
        .header(ContentType::TEXT_PLAIN)
}
