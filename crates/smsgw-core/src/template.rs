//! The spec's tags `{phone}` and `{otp}` in option and header values.

use std::borrow::Cow;

/// Replaces `{phone}` and `{otp}` in `template` in one pass.
///
/// A value inserted for a tag is data: it is never scanned for tags again (a message containing
/// `{phone}` stays as it is), and escaping for the transport (URL, JSON, XML, mail headers) is the
/// provider's job, done on the result. Any other text in braces passes through unchanged.
///
/// ```
/// use smsgw_core::render;
/// assert_eq!(render("Code {otp} for {phone} {x}", "+4915", "12{phone}"), "Code 12{phone} for +4915 {x}");
/// ```
pub fn render<'a>(template: &'a str, phone: &str, otp: &str) -> Cow<'a, str> {
    if !template.contains('{') {
        return Cow::Borrowed(template);
    }
    let mut out = String::with_capacity(template.len() + phone.len() + otp.len());
    let mut rest = template;
    while let Some(pos) = rest.find('{') {
        out.push_str(&rest[..pos]);
        let tail = &rest[pos..];
        if let Some(after) = tail.strip_prefix("{phone}") {
            out.push_str(phone);
            rest = after;
        } else if let Some(after) = tail.strip_prefix("{otp}") {
            out.push_str(otp);
            rest = after;
        } else {
            out.push('{');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// True when `template` contains a tag.
pub fn has_tag(template: &str) -> bool {
    template.contains("{phone}") || template.contains("{otp}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_all_occurrences_and_keeps_other_braces() {
        assert_eq!(render("{otp}{otp}", "p", "1"), "11");
        assert_eq!(render("{}{ph}{phone", "p", "1"), "{}{ph}{phone");
        assert_eq!(render("{{otp}}", "p", "1"), "{1}");
        assert_eq!(render("plain", "p", "1"), "plain");
        assert_eq!(render("ü{otp}ß", "p", "€"), "ü€ß");
    }

    #[test]
    fn inserted_values_are_not_rescanned() {
        assert_eq!(render("{phone}|{otp}", "{otp}", "{phone}"), "{otp}|{phone}");
    }
}
