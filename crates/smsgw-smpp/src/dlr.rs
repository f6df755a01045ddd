//! Delivery receipts: the text an SMSC puts in a `deliver_sm` receipt (SMPP 3.4 appendix B),
//! `id:IIIIIIIIII sub:SSS dlvrd:DDD submit date:YYMMDDhhmm done date:YYMMDDhhmm stat:DDDDDDD
//! err:E text:...`.

/// The fields of a delivery receipt's text.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReceiptText {
    /// `id:` the message id the SMSC gave in submit_sm_resp.
    pub id: Option<String>,
    /// `stat:` the final state (`DELIVRD`, `EXPIRED`, `DELETED`, `UNDELIV`, `ACCEPTD`,
    /// `UNKNOWN`, `REJECTD`).
    pub stat: Option<String>,
    /// `err:` the network-specific error code.
    pub err: Option<String>,
    /// `submit date:` as written (YYMMDDhhmm or YYMMDDhhmmss).
    pub submit_date: Option<String>,
    /// `done date:` as written.
    pub done_date: Option<String>,
}

/// Parses the text of a delivery receipt. Keys are matched case-insensitively; missing keys stay
/// `None`. Returns `None` when the text has neither `id:` nor `stat:`.
///
/// ```
/// let r = smsgw_smpp::parse_receipt_text(
///     "id:1a2b sub:001 dlvrd:001 submit date:2501011200 done date:2501011201 stat:DELIVRD err:000 text:hi",
/// ).unwrap();
/// assert_eq!(r.id.as_deref(), Some("1a2b"));
/// assert_eq!(r.stat.as_deref(), Some("DELIVRD"));
/// assert_eq!(r.done_date.as_deref(), Some("2501011201"));
/// ```
pub fn parse_receipt_text(text: &str) -> Option<ReceiptText> {
    // The free text after `text:` may contain anything; only look before it.
    let lower = text.to_ascii_lowercase();
    let head_end = lower.find("text:").unwrap_or(text.len());
    let head = &text[..head_end];
    let lower = &lower[..head_end];
    let field = |key: &str| -> Option<String> {
        let mut from = 0;
        while let Some(pos) = lower[from..].find(key) {
            let at = from + pos;
            // `date:` appears in both "submit date:" and "done date:": require a boundary.
            let boundary = at == 0 || lower.as_bytes()[at - 1] == b' ';
            if boundary {
                let rest = &head[at + key.len()..];
                let value: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
                return Some(value);
            }
            from = at + key.len();
        }
        None
    };
    let r = ReceiptText {
        id: field("id:"),
        stat: field("stat:"),
        err: field("err:"),
        submit_date: field("submit date:"),
        done_date: field("done date:"),
    };
    (r.id.is_some() || r.stat.is_some()).then_some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fields() {
        let r = parse_receipt_text(
            "id:0123456789 sub:001 dlvrd:000 submit date:2401311530 done date:2401311531 stat:UNDELIV err:034 text:id:x stat:no",
        )
        .unwrap();
        assert_eq!(r.id.as_deref(), Some("0123456789"));
        assert_eq!(r.stat.as_deref(), Some("UNDELIV"));
        assert_eq!(r.err.as_deref(), Some("034"));
        assert_eq!(r.submit_date.as_deref(), Some("2401311530"));
        assert_eq!(r.done_date.as_deref(), Some("2401311531"));
        assert_eq!(parse_receipt_text("hello there"), None);
        let r = parse_receipt_text("ID:abc STAT:DELIVRD").unwrap();
        assert_eq!((r.id.as_deref(), r.err), (Some("abc"), None));
    }
}
