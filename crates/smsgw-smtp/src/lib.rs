//! smsgw provider `smtp`: SMS through an email-to-SMS gateway.
//!
//! A gateway of this provider sends one mail per SMS through a centrally defined SMTP server
//! (`[smtp_servers.<id>]`, named by the gateway's `SMTPIDENTIFIER`), to the address in `MAILTO`,
//! with `SUBJECT` and `BODY`. The tags `{phone}` and `{otp}` work in all three. It is
//! privacyIDEA's `SmtpSMSProvider`, on lettre's async SMTP client (lettre speaks the protocol;
//! the provider opens the sockets and pools the connections).
//!
//! - **The mail:** From = the server's `sender`, To = `MAILTO`, `Subject`, `Date`, `Message-ID`,
//!   `MIME-Version` and a UTF-8 `text/plain` body. Non-ASCII subjects are RFC 2047 encoded; the
//!   body is 7bit, quoted-printable or base64, whichever fits. The envelope has exactly one
//!   recipient: the `MAILTO` address. A phone number or text containing CR/LF can never add a
//!   header or a recipient (an address that does not parse as exactly one mailbox is an error).
//! - **Connections** are pooled per SMTP server definition and shared by every gateway that names
//!   the same server (a process-wide map); they are opened on the first send, never when the
//!   gateway is built, and reused between sends. Sockets are opened with `TCP_NODELAY`, so a
//!   mail on a pooled connection takes about a millisecond on loopback, not the ~40 ms that
//!   Nagle's algorithm and the server's delayed ACK would add.
//! - **Timeouts:** the server's `timeout` (default 10 s) bounds each send as a whole, not only
//!   the connect.
//! - **Credentials** are only sent over TLS (`tls = true` for STARTTLS, or `smtps://`), unless
//!   the server definition sets `allow_insecure_auth = true`.
//!
//! ```
//! use smsgw_core::{Config, Gateways, Registry};
//! use smsgw_smtp as _; // links the provider (and its registration) in
//!
//! let cfg = Config::from_toml_str(r#"
//!     [smtp_servers.mail-gw]
//!     server = "smtp://mail.example.org:587"
//!     tls = true
//!     sender = "otp@example.org"
//!     username = "otp"
//!     password = "s3cret"
//!
//!     [gateways.mail-sms]
//!     provider = "smtp"
//!     [gateways.mail-sms.options]
//!     SMTPIDENTIFIER = "mail-gw"
//!     MAILTO = "{phone}@sms.example.net"
//!     SUBJECT = "SMS for {phone}"
//!     BODY = "Your code: {otp}"
//!     REGEXP = "/\\+//"
//! "#).unwrap();
//! // Building touches no network; connections open on the first send.
//! let gateways = Gateways::build(&cfg, Registry::global()).unwrap();
//! assert!(!format!("{gateways:?}").contains("s3cret"));
//! ```
#![deny(missing_docs)]

mod bounded;
mod mail;
mod pool;
mod provider;
mod server;

use smsgw_core::{Capabilities, Given, Param, ParamSpec, ProviderDescriptor, SectionDescriptor};

pub use bounded::{MAX_READ_BETWEEN_WRITES, MAX_REPLY_LINE};
pub use mail::encode_subject;
pub use provider::SmtpProvider;
pub use server::{DEFAULT_TIMEOUT_SECS, SECTION, SmtpServer, SmtpServers};

/// The provider's name in configuration files.
pub const NAME: &str = "smtp";

/// privacyIDEA's module path for this provider, accepted as an alias.
pub const PRIVACYIDEA_MODULE: &str = "privacyidea.lib.smsprovider.SmtpSMSProvider.SmtpSMSProvider";

const SMTPIDENTIFIER: Param<String, Given> = Param::text(
    "SMTPIDENTIFIER",
    "The id of the central SMTP server definition ([smtp_servers.<id>]) to send through.",
)
.aliases(&["SMTPIDENTIFIED"])
.required();
const MAILTO: Param<String, Given> = Param::text(
    "MAILTO",
    "The address the mail goes to, usually the email-to-SMS gateway's; tags {phone} and {otp} allowed.",
)
.required();
const SUBJECT: Param<String, Given> = Param::text(
    "SUBJECT",
    "The subject of the mail; tags {phone} and {otp} allowed.",
)
.default_value("{phone}");
const BODY: Param<String, Given> = Param::text(
    "BODY",
    "The text of the mail; tags {phone} and {otp} allowed.",
)
.default_value("{otp}");

/// The gateway parameters, with privacyIDEA's names.
pub const PARAMS: &[ParamSpec] = &[
    SMTPIDENTIFIER.spec(),
    MAILTO.spec(),
    SUBJECT.spec(),
    BODY.spec(),
];

smsgw_core::register_provider!(
    ProviderDescriptor::new(
        NAME,
        "Email-to-SMS: one mail per SMS through a central SMTP server",
        provider::build,
    )
    .aliases(&[PRIVACYIDEA_MODULE, "SmtpSMSProvider"])
    .params(PARAMS)
    .capabilities(Capabilities::none().long_messages().verbatim_phone())
);

smsgw_core::register_section!(SectionDescriptor::typed::<SmtpServers>(
    "Central SMTP servers the smtp provider's gateways send through (SMTPIDENTIFIER)."
));
