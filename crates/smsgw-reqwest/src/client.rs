//! The reqwest client of one gateway: timeouts, certificate checks, proxies, no Referer, no
//! automatic redirects (the gateway follows them itself, see [`crate::Redirects`]).

use std::time::Duration;

use smsgw_core::CENSORED;
use smsgw_core::secrecy::{ExposeSecret, SecretString};

/// The `User-Agent` of every request.
pub const USER_AGENT: &str = concat!("smsgw/", env!("CARGO_PKG_VERSION"));

/// Which requests a proxy serves. Named after privacyIDEA's options, which the error messages name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxyScope {
    /// `http://` URLs (`HTTP_PROXY`).
    Http,
    /// `https://` URLs (`HTTPS_PROXY`).
    Https,
    /// Every URL (`PROXY`); ignored when a proxy for [`ProxyScope::Http`] or
    /// [`ProxyScope::Https`] is set.
    All,
}

impl ProxyScope {
    /// The option that holds this proxy in privacyIDEA's configuration.
    pub fn option(self) -> &'static str {
        match self {
            ProxyScope::Http => "HTTP_PROXY",
            ProxyScope::Https => "HTTPS_PROXY",
            ProxyScope::All => "PROXY",
        }
    }
}

/// `text` with everything between `://` and the last `@` censored: works on text that does not
/// parse as a URL (a port out of range), where a URL parser cannot find the password.
pub(crate) fn censor_userinfo(text: &str) -> String {
    match (text.find("://"), text.rfind('@')) {
        (Some(s), Some(at)) if at > s + 3 => {
            format!("{}{CENSORED}{}", &text[..s + 3], &text[at..])
        }
        _ => text.to_owned(),
    }
}

/// What a gateway's client is built from.
#[derive(Default)]
pub(crate) struct ClientSettings {
    pub timeout: Duration,
    pub check_ssl: Option<bool>,
    pub proxies: Vec<(ProxyScope, SecretString)>,
}

impl ClientSettings {
    pub(crate) fn build(&self) -> Result<reqwest::Client, String> {
        let verify = self.check_ssl.unwrap_or(true);
        let mut b = reqwest::Client::builder()
            .connect_timeout(self.timeout.mul_f64(0.9))
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(USER_AGENT)
            // A Referer would carry the full query (credentials, the code) to a redirect target.
            .referer(false)
            .redirect(reqwest::redirect::Policy::none())
            .tls_danger_accept_invalid_certs(!verify)
            .tls_danger_accept_invalid_hostnames(!verify);
        if !self.proxies.is_empty() {
            // The gateway's own proxy settings replace the environment's (HTTP_PROXY, HTTPS_PROXY,
            // NO_PROXY): a gateway behaves the same wherever it runs.
            b = b.no_proxy();
            let scoped = self.proxies.iter().any(|(s, _)| *s != ProxyScope::All);
            for (scope, url) in &self.proxies {
                let url = url.expose_secret();
                let proxy = match scope {
                    ProxyScope::Http => reqwest::Proxy::http(url),
                    ProxyScope::Https => reqwest::Proxy::https(url),
                    ProxyScope::All if scoped => continue,
                    ProxyScope::All => reqwest::Proxy::all(url),
                };
                let proxy =
                    proxy.map_err(|_| format!("{} is not a usable proxy URL", scope.option()))?;
                b = b.proxy(proxy);
            }
        }
        b.build()
            .map_err(|e| format!("cannot set up the HTTP client: {}", e.without_url()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_censored_even_where_no_url_parses() {
        let shown = censor_userinfo("http://u:s3cret@h:99999");
        assert!(
            !shown.contains("s3cret") && shown.contains(CENSORED),
            "{shown}"
        );
        assert_eq!(censor_userinfo("no at"), "no at");
    }
}
