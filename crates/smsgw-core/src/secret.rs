//! Which values are secret, and how they are shown: `__CENSORED__`.

/// What a secret value is replaced by in `Debug` output, logs, errors and exported configuration
/// (privacyIDEA's marker, so that an export from either tool reads the same).
pub const CENSORED: &str = "__CENSORED__";

/// Fragments of option and header names whose values are treated as secret.
const SECRET_FRAGMENTS: &[&str] = &[
    "pass",
    "pwd",
    "secret",
    "token",
    "key",
    "auth",
    "cookie",
    "credential",
];

/// True when an option or header named `key` holds a secret: `PASSWORD`, `SECRET`, tokens,
/// API keys, `Authorization` and `Cookie` headers, and free options such as `password` or `pass`
/// that gateways like Clickatell and GTX use for their credentials (case-insensitive).
///
/// ```
/// use smsgw_core::is_secret_key;
/// assert!(is_secret_key("PASSWORD") && is_secret_key("Authorization") && is_secret_key("api_key"));
/// assert!(!is_secret_key("URL") && !is_secret_key("to"));
/// ```
pub fn is_secret_key(key: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    SECRET_FRAGMENTS.iter().any(|f| lower.contains(f))
}

/// `url` with the password of its user-info part (`https://user:pass@host/`) censored.
/// Text that is not a URL comes back unchanged.
pub fn censor_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some(CENSORED));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

/// `url` without user-info at all: for logs and error messages.
pub fn url_without_credentials(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        Err(_) => "<invalid URL>".to_owned(),
    }
}

/// A JSON object in a string (the `PARAMETER` option) with secret-looking keys censored.
/// Anything that is not a JSON object is censored whole when `key` itself is secret.
pub fn censor_json_object(text: &str) -> Option<String> {
    let mut value: serde_json::Value = serde_json::from_str(text).ok()?;
    let obj = value.as_object_mut()?;
    for (k, v) in obj.iter_mut() {
        if is_secret_key(k) {
            *v = serde_json::Value::String(CENSORED.into());
        }
    }
    Some(value.to_string())
}

/// The value of option or header `key` as it may be shown to a person.
pub fn censor_value(key: &str, value: &str, secret_by_spec: bool) -> String {
    if secret_by_spec || is_secret_key(key) {
        return CENSORED.to_owned();
    }
    if key.eq_ignore_ascii_case("URL") || key.to_ascii_uppercase().ends_with("PROXY") {
        return censor_url(value);
    }
    if key == "PARAMETER"
        && let Some(c) = censor_json_object(value)
    {
        return c;
    }
    value.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn censors() {
        assert_eq!(censor_value("PASSWORD", "x", false), CENSORED);
        assert_eq!(censor_value("SYSTEM_ID", "x", true), CENSORED);
        assert_eq!(
            censor_value("URL", "http://bob:pa55@h/x", false),
            "http://bob:__CENSORED__@h/x"
        );
        assert_eq!(
            censor_value("HTTPS_PROXY", "http://u:p@proxy:3128", false),
            "http://u:__CENSORED__@proxy:3128/"
        );
        assert_eq!(
            censor_value("PARAMETER", r#"{"id":"1","password":"p"}"#, false),
            r#"{"id":"1","password":"__CENSORED__"}"#
        );
        assert_eq!(url_without_credentials("http://bob:pa55@h/x"), "http://h/x");
    }
}
