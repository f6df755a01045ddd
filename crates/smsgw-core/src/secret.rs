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

/// `url` as it may be shown: the password of its user-info part (`https://user:pass@host/`)
/// and the values of secret query parameters (`?password=…`, `&api_key=…`) censored.
///
/// Works on text that does not parse as a URL too (a port out of range, a bad character), so
/// that the message saying what is wrong with a URL never shows its password. Text without
/// anything to censor comes back unchanged.
///
/// ```
/// use smsgw_core::censor_url;
/// assert_eq!(censor_url("http://bob:pa55@h:99999/x?token=t1&to=1"),
///            "http://bob:__CENSORED__@h:99999/x?token=__CENSORED__&to=1");
/// assert_eq!(censor_url("https://h/send?to=1"), "https://h/send?to=1");
/// ```
pub fn censor_url(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(i) => url.split_at(i + 3),
        None => ("", url),
    };
    // User-info ends at the last '@' before the query: a password may hold '/' (unencoded), and
    // censoring too much (a path with '@') is the safe mistake.
    let query_start = rest.find(['?', '#']).unwrap_or(rest.len());
    let mut out = String::with_capacity(url.len());
    out.push_str(scheme);
    let tail = match rest[..query_start].rfind('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            match userinfo.split_once(':') {
                Some((user, _)) => {
                    out.push_str(user);
                    out.push(':');
                    out.push_str(CENSORED);
                }
                None => out.push_str(userinfo),
            }
            &rest[at..]
        }
        None => rest,
    };
    let (before_fragment, fragment) = match tail.find('#') {
        Some(i) => tail.split_at(i),
        None => (tail, ""),
    };
    match before_fragment.split_once('?') {
        Some((path, query)) => {
            out.push_str(path);
            out.push('?');
            let pairs: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((k, _)) if is_secret_key(&percent_decode(k)) => {
                        format!("{k}={CENSORED}")
                    }
                    _ => pair.to_owned(),
                })
                .collect();
            out.push_str(&pairs.join("&"));
        }
        None => out.push_str(before_fragment),
    }
    out.push_str(fragment);
    out
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("k={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
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

/// The value of option or header `key` as it may be shown to a person: secret keys censored
/// whole, URLs (any value with `://`, and proxies) with their password and secret query
/// parameters censored.
pub fn censor_value(key: &str, value: &str, secret_by_spec: bool) -> String {
    if secret_by_spec || is_secret_key(key) {
        return CENSORED.to_owned();
    }
    if value.contains("://") || key.to_ascii_uppercase().ends_with("PROXY") {
        return censor_url(value);
    }
    if key == "PARAMETER"
        && let Some(c) = censor_json_object(value)
    {
        return c;
    }
    value.to_owned()
}

/// A TOML value (a section's table) as it may be shown: values under secret keys censored
/// whole, strings censored as by [`censor_value`], recursively.
pub fn censor_toml(value: &toml::Value) -> toml::Value {
    fn walk(key: &str, v: &toml::Value) -> toml::Value {
        match v {
            toml::Value::Table(t) => {
                toml::Value::Table(t.iter().map(|(k, v)| (k.clone(), walk(k, v))).collect())
            }
            toml::Value::Array(a) => toml::Value::Array(a.iter().map(|v| walk(key, v)).collect()),
            _ if is_secret_key(key) => toml::Value::String(CENSORED.into()),
            toml::Value::String(s) => toml::Value::String(censor_value(key, s, false)),
            other => other.clone(),
        }
    }
    walk("", value)
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
            "http://u:__CENSORED__@proxy:3128"
        );
        assert_eq!(
            censor_value("PROXY", "u:p@proxy:99999", false),
            "u:__CENSORED__@proxy:99999"
        );
        assert_eq!(
            censor_value("URL", "https://h/?Password=x&a=b#f", false),
            "https://h/?Password=__CENSORED__&a=b#f"
        );
        assert_eq!(
            censor_value("PARAMETER", r#"{"id":"1","password":"p"}"#, false),
            r#"{"id":"1","password":"__CENSORED__"}"#
        );
        assert_eq!(url_without_credentials("http://bob:pa55@h/x"), "http://h/x");
        let t: toml::Value =
            toml::from_str("[a]\npassword = \"p1\"\nserver = \"smtp://u:p2@h\"\nport = 1\n")
                .unwrap();
        let shown = censor_toml(&t).to_string();
        assert!(
            !shown.contains("p1") && !shown.contains("p2") && shown.contains("port"),
            "{shown}"
        );
    }
}
