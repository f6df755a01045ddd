//! What the smtp provider's test binaries share: a server table and gateway over the test SMTP
//! sink, and the logins they use.
#![allow(dead_code)]

use smsgw_core::{Config, ConfigErrors, Gateway, Gateways, Registry};
use smsgw_testkit::smtp::SmtpSink;

/// The password every test login uses (and that must never be shown).
pub const PASSWORD: &str = "pa55-w0rd-XYZZY";

/// Gateway options that send through server `mail` to one address.
pub const SIMPLE: &str = "SMTPIDENTIFIER = \"mail\"\nMAILTO = \"sms@gw.example.net\"";

/// A `[smtp_servers.mail]` table and one gateway `gw` on it, built.
pub fn gateway(server_toml: &str, options_toml: &str) -> Result<Gateway, ConfigErrors> {
    gateway_on("mail", server_toml, options_toml)
}

/// A `[smtp_servers.<id>]` table and one gateway `gw` on it, built.
pub fn gateway_on(
    id: &str,
    server_toml: &str,
    options_toml: &str,
) -> Result<Gateway, ConfigErrors> {
    let text = format!(
        "[smtp_servers.{id}]\n{server_toml}\n\n[gateways.gw]\nprovider = \"smtp\"\n[gateways.gw.options]\n{options_toml}\n"
    );
    let cfg = Config::from_toml_str(&text)?;
    let gws = Gateways::build(&cfg, Registry::global())?;
    Ok(gws.get("gw").unwrap().clone())
}

/// The server table for `sink` without TLS or login, with a 2-second timeout.
pub fn plain_server(sink: &SmtpSink) -> String {
    server_with_timeout(sink, "2")
}

/// The server table for `sink` without TLS or login, with a half-second timeout.
pub fn fast_server(sink: &SmtpSink) -> String {
    server_with_timeout(sink, "0.5")
}

fn server_with_timeout(sink: &SmtpSink, timeout: &str) -> String {
    format!(
        "server = \"127.0.0.1\"\nport = {}\nsender = \"otp@example.org\"\ntimeout = {timeout}",
        sink.addr().port()
    )
}

/// The server table for `sink` logging in as `user` with `password` after STARTTLS, accepting
/// the sink's self-signed certificate.
pub fn starttls_login(sink: &SmtpSink, user: &str, password: &str) -> String {
    format!(
        "{}\ntls = true\ncheck_ssl = false\nusername = \"{user}\"\npassword = \"{password}\"",
        plain_server(sink)
    )
}

/// The server table for an implicit-TLS (`smtps://`) `sink`, logging in as `u` with
/// [`PASSWORD`].
pub fn smtps_login(sink: &SmtpSink) -> String {
    format!(
        "server = \"{}\"\nsender = \"otp@example.org\"\ncheck_ssl = false\ntimeout = 2\nusername = \"u\"\npassword = \"{PASSWORD}\"",
        sink.url()
    )
}
