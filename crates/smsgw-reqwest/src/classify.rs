//! One table for HTTP statuses, one reading of reqwest's errors.

use std::fmt::Write as _;

use smsgw_core::ErrorKind;

/// How a status the provider did not accept is classified — the one table for every HTTP-based
/// provider:
///
/// | status | kind | why |
/// | --- | --- | --- |
/// | 408, 429, 503 | `not_sent` | the gateway is busy or timed the request out before acting: retry |
/// | other 4xx | `refused` | the request is wrong (credentials, parameters): retrying cannot help |
/// | 501, 505 | `refused` | the gateway does not support the method or HTTP version: it did not act |
/// | anything else (3xx, other 5xx, unexpected 2xx) | `unknown` | the gateway may have sent the SMS |
///
/// ```
/// use smsgw_core::ErrorKind;
/// assert_eq!(smsgw_reqwest::status_kind(429), ErrorKind::NotSent);
/// assert_eq!(smsgw_reqwest::status_kind(501), ErrorKind::Refused);
/// assert_eq!(smsgw_reqwest::status_kind(500), ErrorKind::Unknown);
/// ```
pub fn status_kind(status: u16) -> ErrorKind {
    match status {
        408 | 429 | 503 => ErrorKind::NotSent,
        400..=499 | 501 | 505 => ErrorKind::Refused,
        _ => ErrorKind::Unknown,
    }
}

/// What [`status_kind`] means, in words for an error message.
pub(crate) fn status_words(status: u16) -> &'static str {
    match (status_kind(status), status) {
        (_, 401 | 403 | 407) => "the gateway refused the credentials",
        (ErrorKind::NotSent, _) => "the gateway is busy or asks to retry later",
        (ErrorKind::Refused, _) => "the gateway refused the request",
        _ => "the gateway answered with an unexpected status",
    }
}

/// True when `e`'s chain says the server's certificate was not trusted. reqwest does not expose
/// the rustls error through its source chain, so this reads rustls' message for
/// `Error::InvalidCertificate` ("invalid peer certificate: …").
pub fn is_untrusted_certificate(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.to_string().contains("invalid peer certificate") {
            return true;
        }
        cur = err.source();
    }
    false
}

/// `e` and its sources, joined with `: `.
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let _ = write!(out, ": {s}");
        src = s.source();
    }
    out
}

/// `s` cut to `max` characters, with `…` when cut (for replies quoted in messages and logs).
///
/// ```
/// assert_eq!(smsgw_reqwest::truncate("abcdef", 3), "abc…");
/// assert_eq!(smsgw_reqwest::truncate("äb", 3), "äb");
/// ```
pub fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_owned(),
        Some((i, _)) => format!("{}…", &s[..i]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_status_table() {
        for (code, kind) in [
            (408, ErrorKind::NotSent),
            (503, ErrorKind::NotSent),
            (400, ErrorKind::Refused),
            (404, ErrorKind::Refused),
            (505, ErrorKind::Refused),
            (302, ErrorKind::Unknown),
            (502, ErrorKind::Unknown),
            (204, ErrorKind::Unknown),
        ] {
            assert_eq!(status_kind(code), kind, "{code}");
        }
        assert!(status_words(401).contains("credentials"));
    }
}
