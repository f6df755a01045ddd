//! The recipients file of `send --file`, read one physical line at a time.
//!
//! A recipient file is one record per line: `phone[,message]`, CSV-quoted where a message holds a
//! comma. Line numbers are physical (CRLF, blank and `#` comment lines count), a line that is not
//! a valid record (an unbalanced quote, too many fields, no phone number) is reported as
//! malformed with its number and the next line is read normally, so a phone number never holds a
//! line break. Lines are bounded by [`MAX_LINE`]: memory does not depend on the file.

use std::io::{BufRead, Read};

use smsgw::Message;

/// The longest line accepted, in bytes (without its line end). A message of a few SMS parts is
/// a few hundred bytes; a longer line is not a recipient file (e.g. `--file /dev/zero`).
pub const MAX_LINE: usize = 64 * 1024;

/// What one line holds.
pub enum Item {
    /// A recipient and the message to send.
    Recipient {
        /// The physical line number (from 1).
        line: u64,
        /// The message.
        message: Message,
    },
    /// A line that is not a valid record.
    Malformed {
        /// The physical line number (from 1).
        line: u64,
        /// Why.
        why: String,
    },
}

/// Reads recipients from a file, one line at a time.
pub struct Recipients<R> {
    reader: R,
    default_text: Option<String>,
    line: u64,
    records: u64,
    buf: Vec<u8>,
}

impl<R: BufRead> Recipients<R> {
    /// Reads from `reader`; lines without a message take `default_text`.
    pub fn new(reader: R, default_text: Option<String>) -> Self {
        Recipients {
            reader,
            default_text,
            line: 0,
            records: 0,
            buf: Vec::new(),
        }
    }

    /// The next recipient or malformed line; `Ok(None)` at the end of the file. An error (the
    /// file cannot be read, or a line is over [`MAX_LINE`]) ends the reading.
    pub fn next_item(&mut self) -> Result<Option<Item>, String> {
        loop {
            self.buf.clear();
            let n = (&mut self.reader)
                .take(MAX_LINE as u64 + 2)
                .read_until(b'\n', &mut self.buf)
                .map_err(|e| format!("cannot read line {}: {e}", self.line + 1))?;
            if n == 0 {
                return Ok(None);
            }
            self.line += 1;
            let line = self.line;
            let ended = self.buf.last() == Some(&b'\n');
            if ended {
                self.buf.pop();
                if self.buf.last() == Some(&b'\r') {
                    self.buf.pop();
                }
            }
            if self.buf.len() > MAX_LINE {
                return Err(format!(
                    "line {line} is longer than {MAX_LINE} bytes: not a recipient file"
                ));
            }
            let Ok(text) = std::str::from_utf8(&self.buf) else {
                return Ok(Some(Item::Malformed {
                    line,
                    why: "not valid UTF-8".into(),
                }));
            };
            let trimmed = text.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            // A CR that does not end the line (found by the recipients fuzz target) would
            // otherwise travel inside a phone number or text to the gateway.
            if text.contains('\r') {
                self.records += 1;
                let why = "a carriage return inside the line (a record is one line)".into();
                return Ok(Some(Item::Malformed { line, why }));
            }
            let first = self.records == 0;
            self.records += 1;
            let fields = match fields(text) {
                Ok(f) => f,
                Err(why) => return Ok(Some(Item::Malformed { line, why })),
            };
            let phone = fields[0].as_str();
            if first && phone.eq_ignore_ascii_case("phone") {
                continue;
            }
            if fields.len() > 2 {
                let why = format!(
                    "{} fields; expected phone[,message] (quote a message that contains commas)",
                    fields.len()
                );
                return Ok(Some(Item::Malformed { line, why }));
            }
            if !phone.chars().any(|c| c.is_ascii_digit()) {
                let why = format!("'{phone}' is not a phone number");
                return Ok(Some(Item::Malformed { line, why }));
            }
            let text = match fields.get(1).filter(|t| !t.is_empty()) {
                Some(t) => t.clone(),
                None => match &self.default_text {
                    Some(t) => t.clone(),
                    None => {
                        let why = "no message on the line and no --message given".into();
                        return Ok(Some(Item::Malformed { line, why }));
                    }
                },
            };
            return Ok(Some(Item::Recipient {
                line,
                message: Message::new(phone, text),
            }));
        }
    }
}

/// Splits one line into trimmed CSV fields. Quoting is the csv crate's; a line with an odd
/// number of quotes is refused here, because the csv crate would end its quoted field at the end
/// of the line without a word (or, reading a whole file, carry on into the next lines).
fn fields(line: &str) -> Result<Vec<String>, String> {
    if !line.contains('"') {
        return Ok(line.split(',').map(|f| f.trim().to_owned()).collect());
    }
    if line.bytes().filter(|b| *b == b'"').count() % 2 == 1 {
        return Err(
            "unbalanced quote (a record is one line; the next line is read on its own)".into(),
        );
    }
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::Fields)
        .from_reader(line.as_bytes());
    match rdr.records().next() {
        Some(Ok(rec)) => Ok(rec.iter().map(str::to_owned).collect()),
        Some(Err(e)) => Err(format!("not valid CSV: {e}")),
        None => Ok(vec![String::new()]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(input: &str) -> Vec<String> {
        let mut r = Recipients::new(input.as_bytes(), Some("dflt".into()));
        let mut out = Vec::new();
        while let Some(i) = r.next_item().unwrap() {
            out.push(match i {
                Item::Recipient { line, message } => {
                    format!("{line}:{}:{}", message.phone, message.text)
                }
                Item::Malformed { line, .. } => format!("{line}:malformed"),
            });
        }
        out
    }

    #[test]
    fn physical_line_numbers_with_crlf_blank_and_comments() {
        let got = read("phone,message\r\n\r\n# c\r\n+491,a\r\n\r\n+492\r\n");
        assert_eq!(got, ["4:+491:a", "6:+492:dflt"]);
    }

    #[test]
    fn an_unbalanced_quote_is_one_malformed_line() {
        let got = read("+491,\"open\n+492,b\n+493,\"x, \"\"y\"\"\"\n");
        assert_eq!(got, ["1:malformed", "2:+492:b", "3:+493:x, \"y\""]);
    }

    #[test]
    fn a_bare_cr_inside_a_line_is_malformed() {
        let mut r = Recipients::new("+49170\r1234,hi\n+492,b\n".as_bytes(), None);
        assert!(matches!(
            r.next_item(),
            Ok(Some(Item::Malformed { line: 1, .. }))
        ));
        assert!(matches!(
            r.next_item(),
            Ok(Some(Item::Recipient { line: 2, .. }))
        ));
    }

    #[test]
    fn an_overlong_line_is_an_error() {
        let long = format!("+491,{}\n", "x".repeat(MAX_LINE));
        let mut r = Recipients::new(long.as_bytes(), None);
        let e = r.next_item().err().unwrap();
        assert!(e.contains("line 1 is longer than"), "{e}");
    }
}
