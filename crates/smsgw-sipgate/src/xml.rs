//! XML-RPC for sipgate: the `samurai.SessionInitiate` call written with the `xmlrpc` crate, and
//! the reply read with bounds — at most [`MAX_REPLY_BYTES`] (the HTTP exchange stops reading
//! there) and at most [`MAX_XML_DEPTH`] nested elements, checked with a streaming XML reader
//! (xml-rs, no recursion) before the `xmlrpc` crate's recursive parser sees the reply.

use std::collections::BTreeMap;

/// The most bytes of an XML-RPC reply that are read: 64 KiB, the shared HTTP bound
/// ([`smsgw_reqwest::DEFAULT_BODY_LIMIT`]). sipgate's answer is a struct of three members, well
/// under 1 KiB.
pub const MAX_REPLY_BYTES: usize = smsgw_reqwest::DEFAULT_BODY_LIMIT;

/// The deepest nesting of XML elements a reply may have: 32. sipgate's success reply is 8 deep
/// (`methodResponse/params/param/value/struct/member/value/string`), a fault 7; a deeper reply
/// is refused before parsing, so that no reply can exhaust the stack.
pub const MAX_XML_DEPTH: usize = 32;

/// Why a reply is not a usable XML-RPC answer.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ReplyError {
    /// It nests elements deeper than [`MAX_XML_DEPTH`].
    TooDeep,
    /// It is longer than [`MAX_REPLY_BYTES`].
    TooLarge,
    /// It is not well-formed XML or not an XML-RPC `methodResponse`.
    NotXmlRpc(String),
    /// An XML-RPC `<fault>`.
    Fault {
        /// `faultCode`.
        code: i32,
        /// `faultString`.
        text: String,
    },
}

impl std::fmt::Display for ReplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplyError::TooDeep => write!(f, "nested deeper than {MAX_XML_DEPTH} elements"),
            ReplyError::TooLarge => write!(f, "longer than {MAX_REPLY_BYTES} bytes"),
            ReplyError::NotXmlRpc(e) => write!(f, "not XML-RPC ({e})"),
            ReplyError::Fault { code, text } => write!(f, "XML-RPC fault {code}: {text}"),
        }
    }
}

impl std::error::Error for ReplyError {}

/// Reads an XML-RPC reply: the value of its single parameter, or why there is none. Never
/// panics, never recurses deeper than [`MAX_XML_DEPTH`], whatever `body` holds.
///
/// ```
/// let ok = b"<methodResponse><params><param><value><i4>7</i4></value></param></params></methodResponse>";
/// assert_eq!(smsgw_sipgate::read_reply(ok).unwrap().as_i32(), Some(7));
/// let deep = "<value><array><data>".repeat(20_000);
/// let reply = format!("<methodResponse><params><param>{deep}");
/// assert_eq!(
///     smsgw_sipgate::read_reply(reply.as_bytes()),
///     Err(smsgw_sipgate::ReplyError::TooLarge)
/// );
/// ```
pub fn read_reply(body: &[u8]) -> Result<xmlrpc::Value, ReplyError> {
    if body.len() > MAX_REPLY_BYTES {
        return Err(ReplyError::TooLarge);
    }
    check_depth(body)?;
    let call = xmlrpc::Request::new("samurai.SessionInitiate");
    call.call(Fetched(body.to_vec()))
        .map_err(|e| match e.fault() {
            Some(f) => ReplyError::Fault {
                code: f.fault_code,
                text: f.fault_string.clone(),
            },
            None => ReplyError::NotXmlRpc(e.to_string()),
        })
}

/// Streams through `body` counting open elements; stops at the first error or at a depth over
/// the bound.
fn check_depth(body: &[u8]) -> Result<(), ReplyError> {
    use xml::reader::{EventReader, XmlEvent};
    let mut depth = 0usize;
    for event in EventReader::new(body) {
        match event {
            Ok(XmlEvent::StartElement { .. }) => {
                depth += 1;
                if depth > MAX_XML_DEPTH {
                    return Err(ReplyError::TooDeep);
                }
            }
            Ok(XmlEvent::EndElement { .. }) => depth = depth.saturating_sub(1),
            Ok(XmlEvent::EndDocument) => break,
            Ok(_) => {}
            Err(e) => return Err(ReplyError::NotXmlRpc(e.to_string())),
        }
    }
    Ok(())
}

/// Hands an already fetched reply to the `xmlrpc` crate's parser.
struct Fetched(Vec<u8>);

impl xmlrpc::Transport for Fetched {
    type Stream = std::io::Cursor<Vec<u8>>;
    fn transmit(
        self,
        _request: &xmlrpc::Request<'_>,
    ) -> Result<Self::Stream, Box<dyn std::error::Error + Send + Sync>> {
        Ok(std::io::Cursor::new(self.0))
    }
}

/// The first character XML 1.0 cannot carry, if any.
pub(crate) fn invalid_xml_char(s: &str) -> Option<char> {
    s.chars().find(|&c| {
        let u = c as u32;
        !(matches!(c, '\t' | '\n' | '\r')
            || (0x20..=0xD7FF).contains(&u)
            || (0xE000..=0xFFFD).contains(&u)
            || u >= 0x10000)
    })
}

/// The XML-RPC `samurai.SessionInitiate` call for `number` and `text`, as bytes. Carriage returns
/// are written as `&#13;` so that XML parsers do not turn them into line feeds.
pub fn session_initiate_xml(number: &str, text: &str) -> Vec<u8> {
    let mut s = BTreeMap::new();
    s.insert(
        "RemoteUri".to_owned(),
        xmlrpc::Value::String(format!("sip:{number}@sipgate.de")),
    );
    s.insert("TOS".to_owned(), xmlrpc::Value::String("text".into()));
    s.insert("Content".to_owned(), xmlrpc::Value::String(text.to_owned()));
    let req = xmlrpc::Request::new("samurai.SessionInitiate").arg(xmlrpc::Value::Struct(s));
    let mut out = Vec::new();
    req.write_as_xml(&mut out)
        .expect("writing to a Vec cannot fail");
    // The crate writes its own line breaks as \n; any \r comes from a value.
    let mut fixed = Vec::with_capacity(out.len());
    for b in out {
        if b == b'\r' {
            fixed.extend_from_slice(b"&#13;");
        } else {
            fixed.push(b);
        }
    }
    fixed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_characters_xml_cannot_carry() {
        assert_eq!(invalid_xml_char("ok \t\r\n äß 😀 \u{E000}"), None);
        assert_eq!(invalid_xml_char("bell\u{7}"), Some('\u{7}'));
        assert_eq!(invalid_xml_char("\u{FFFE}"), Some('\u{FFFE}'));
        assert_eq!(invalid_xml_char("nul\0"), Some('\0'));
    }

    #[test]
    fn carriage_returns_are_escaped() {
        let xml = String::from_utf8(session_initiate_xml("1", "a\r\nb")).unwrap();
        assert!(xml.contains("a&#13;\nb"), "{xml}");
    }

    #[test]
    fn depth_is_bounded_below_the_size_bound() {
        // 1 400 nested arrays fit in 64 KiB: refused by depth, not by size.
        let open = "<value><array><data>".repeat(1400);
        let close = "</data></array></value>".repeat(1400);
        let reply = format!(
            "<methodResponse><params><param>{open}{close}</param></params></methodResponse>"
        );
        assert!(reply.len() < MAX_REPLY_BYTES);
        assert_eq!(read_reply(reply.as_bytes()), Err(ReplyError::TooDeep));
        let fault = b"<methodResponse><fault><value><struct><member><name>faultCode</name><value><int>4</int></value></member><member><name>faultString</name><value><string>no</string></value></member></struct></value></fault></methodResponse>";
        assert!(matches!(
            read_reply(fault),
            Err(ReplyError::Fault { code: 4, .. })
        ));
    }
}
