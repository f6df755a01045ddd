//! The gateway's parameters: specs, validation and the settings a provider is built from.

use std::time::Duration;

use smsgw_core::secrecy::{ExposeSecret, SecretString};
use smsgw_core::{BuildContext, ConfigErrors, Given, Param, ParamSpec};

/// How the session binds: `transmitter` (send only) or `transceiver` (send and receive delivery
/// receipts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindMode {
    /// bind_transmitter: submit_sm only.
    Transmitter,
    /// bind_transceiver: submit_sm, and deliver_sm (delivery receipts) from the SMSC.
    Transceiver,
}

impl BindMode {
    /// The PDU name, for messages.
    pub fn pdu_name(self) -> &'static str {
        match self {
            BindMode::Transmitter => "bind_transmitter",
            BindMode::Transceiver => "bind_transceiver",
        }
    }
}

/// Longest system_id (SMPP 3.4: 16 octets with the terminating NUL).
pub const MAX_SYSTEM_ID: usize = 15;
/// Longest password (9 octets with NUL).
pub const MAX_PASSWORD: usize = 8;
/// Longest system_type (13 octets with NUL).
pub const MAX_SYSTEM_TYPE: usize = 12;
/// Longest source or destination address (21 octets with NUL).
pub const MAX_ADDRESS: usize = 20;

const SMSC_HOST: Param<String, Given> = Param::text(
    "SMSC_HOST",
    "Host name or IP address of the SMS center (SMSC).",
)
.required();
const SMSC_PORT: Param<u16, Given> = Param::integer(
    "SMSC_PORT",
    "TCP port of the SMSC (2775 is usual).",
    1,
    65535,
)
.required();
const SYSTEM_ID: Param<String> = Param::text(
    "SYSTEM_ID",
    "The system_id the session binds with (at most 15 characters).",
);
const PASSWORD: Param<SecretString> = Param::secret(
    "PASSWORD",
    "The password the session binds with (at most 8 characters).",
);
const S_ADDR: Param<String> = Param::text(
    "S_ADDR",
    "The sender shown to the recipient: source_addr (a number or up to 11 letters with S_ADDR_TON 5; at most 20 characters).",
);
const S_ADDR_TON: Param<u8, Given> = Param::integer(
    "S_ADDR_TON",
    "Type of number of S_ADDR: 0 unknown, 1 international, 2 national, 3 network specific, 4 subscriber, 5 alphanumeric, 6 abbreviated.",
    0,
    6,
)
.default_value("0");
const S_ADDR_NPI: Param<u8, Given> = Param::integer(
    "S_ADDR_NPI",
    "Numbering plan of S_ADDR: 0 unknown, 1 ISDN/E.164, 3 data, 4 telex, 6 land mobile, 8 national, 9 private, 10 ERMES, 14 internet, 18 WAP.",
    0,
    18,
)
.default_value("0");
const D_ADDR_TON: Param<u8, Given> = Param::integer(
    "D_ADDR_TON",
    "Type of number of the recipient's phone number (see S_ADDR_TON); 1 for international numbers without '+'.",
    0,
    6,
)
.default_value("0");
const D_ADDR_NPI: Param<u8, Given> = Param::integer(
    "D_ADDR_NPI",
    "Numbering plan of the recipient's phone number (see S_ADDR_NPI); 1 for E.164.",
    0,
    18,
)
.default_value("0");
const SYSTEM_TYPE: Param<String, Given> = Param::text(
    "SYSTEM_TYPE",
    "The system_type the session binds with (at most 12 characters); empty unless the SMSC operator says otherwise.",
)
.default_value("");
const TLS: Param<bool, Given> = Param::yes_no(
    "TLS",
    "SMPP over TLS (the certificate is checked against the web PKI roots unless CHECK_SSL = no).",
)
.default_value("no");
const CHECK_SSL: Param<bool, Given> = Param::yes_no(
    "CHECK_SSL",
    "Verify the SMSC's TLS certificate and host name; no accepts any certificate (test SMSCs). Only with TLS = yes: CHECK_SSL = no without it is a configuration error.",
)
.default_value("yes");
const WINDOW: Param<usize, Given> = Param::integer(
    "WINDOW",
    "The most submit_sm awaiting their response at once on the session; more sends wait.",
    1,
    1000,
)
.default_value("10");
const THROUGHPUT: Param<u32, Given> = Param::integer(
    "THROUGHPUT",
    "The most submit_sm a second the SMSC operator allows; 0 for no limit.",
    0,
    100_000,
)
.default_value("0");
const ENQUIRE_LINK: Param<Duration, Given> = Param::seconds(
    "ENQUIRE_LINK",
    "Seconds between enquire_link keep-alives on an idle session.",
)
.default_value("30");
const TIMEOUT: Param<Duration, Given> = Param::seconds(
    "TIMEOUT",
    "Seconds to wait for the connection, for each response of the SMSC (bind, submit_sm, enquire_link).",
)
.default_value("5");
const REGISTERED_DELIVERY: Param<bool, Given> = Param::yes_no(
    "REGISTERED_DELIVERY",
    "Ask the SMSC for a delivery receipt of every message (registered_delivery 1); they arrive on BIND = transceiver.",
)
.default_value("no");
const BIND: Param<&str, Given> = Param::choice(
    "BIND",
    "How the session binds: transmitter (send only) or transceiver (also receives delivery receipts).",
    &["transmitter", "transceiver"],
)
.default_value("transmitter");

/// The parameters of the `smpp` provider, with privacyIDEA's names first.
pub static PARAMS: &[ParamSpec] = &[
    SMSC_HOST.spec(),
    SMSC_PORT.spec(),
    SYSTEM_ID.spec(),
    PASSWORD.spec(),
    S_ADDR.spec(),
    S_ADDR_TON.spec(),
    S_ADDR_NPI.spec(),
    D_ADDR_TON.spec(),
    D_ADDR_NPI.spec(),
    SYSTEM_TYPE.spec(),
    TLS.spec(),
    CHECK_SSL.spec(),
    WINDOW.spec(),
    THROUGHPUT.spec(),
    ENQUIRE_LINK.spec(),
    TIMEOUT.spec(),
    REGISTERED_DELIVERY.spec(),
    BIND.spec(),
];

/// Everything a provider needs, checked.
pub struct Settings {
    /// The gateway identifier.
    pub gateway: String,
    /// SMSC_HOST.
    pub host: String,
    /// SMSC_PORT.
    pub port: u16,
    /// TLS.
    pub tls: bool,
    /// CHECK_SSL (only meaningful with `tls`).
    pub check_ssl: bool,
    /// SYSTEM_ID.
    pub system_id: String,
    /// PASSWORD.
    pub password: SecretString,
    /// SYSTEM_TYPE.
    pub system_type: String,
    /// S_ADDR.
    pub source_addr: String,
    /// S_ADDR_TON.
    pub source_ton: u8,
    /// S_ADDR_NPI.
    pub source_npi: u8,
    /// D_ADDR_TON.
    pub dest_ton: u8,
    /// D_ADDR_NPI.
    pub dest_npi: u8,
    /// WINDOW.
    pub window: usize,
    /// THROUGHPUT (0 = no limit).
    pub throughput: u32,
    /// ENQUIRE_LINK.
    pub enquire_link: Duration,
    /// TIMEOUT.
    pub timeout: Duration,
    /// registered_delivery octet.
    pub registered_delivery: u8,
    /// BIND.
    pub bind: BindMode,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("gateway", &self.gateway)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("check_ssl", &self.check_ssl)
            .field("system_id", &self.system_id)
            .field("password", &smsgw_core::CENSORED)
            .field("system_type", &self.system_type)
            .field("source_addr", &self.source_addr)
            .field("source_ton", &self.source_ton)
            .field("source_npi", &self.source_npi)
            .field("dest_ton", &self.dest_ton)
            .field("dest_npi", &self.dest_npi)
            .field("window", &self.window)
            .field("throughput", &self.throughput)
            .field("enquire_link", &self.enquire_link)
            .field("timeout", &self.timeout)
            .field("registered_delivery", &self.registered_delivery)
            .field("bind", &self.bind)
            .finish()
    }
}

/// True when `s` can be an SMPP C-Octet String: printable ASCII or spaces, no NUL.
fn c_octet_ok(s: &str) -> bool {
    s.bytes().all(|b| (0x20..0x7f).contains(&b))
}

impl Settings {
    /// Reads and checks a gateway definition; every problem is reported.
    pub fn from_context(ctx: &BuildContext<'_>) -> Result<Settings, ConfigErrors> {
        let mut errs = ConfigErrors::new();
        let host = ctx.get(&SMSC_HOST).trim().to_owned();
        if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '/' || c == '@') {
            errs.push(ctx.problem(
                "SMSC_HOST",
                format!("'{host}' is not a host name or IP address"),
            ));
        }
        let mut limited = |key: &str, value: &str, max: usize, secret: bool| {
            if value.len() > max {
                errs.push(ctx.problem(
                    key,
                    format!(
                        "is {} characters long; SMPP allows at most {max}",
                        value.len()
                    ),
                ));
            } else if !c_octet_ok(value) {
                let msg = if secret {
                    "must be printable ASCII characters".to_owned()
                } else {
                    format!("'{value}' must be printable ASCII characters")
                };
                errs.push(ctx.problem(key, msg));
            }
        };
        let system_id = ctx.opt(&SYSTEM_ID).unwrap_or_default();
        limited("SYSTEM_ID", &system_id, MAX_SYSTEM_ID, false);
        let password = ctx
            .opt(&PASSWORD)
            .unwrap_or_else(|| SecretString::from(String::new()));
        limited("PASSWORD", password.expose_secret(), MAX_PASSWORD, true);
        let system_type = ctx.get(&SYSTEM_TYPE);
        limited("SYSTEM_TYPE", &system_type, MAX_SYSTEM_TYPE, false);
        let source_addr = ctx.opt(&S_ADDR).unwrap_or_default();
        limited("S_ADDR", &source_addr, MAX_ADDRESS, false);
        let tls = ctx.get(&TLS);
        if tls && !cfg!(feature = "tls") {
            errs.push(ctx.problem(
                "TLS",
                "this build of smsgw-smpp has no TLS support: enable its feature \"tls\"",
            ));
        }
        let check_ssl = ctx.get(&CHECK_SSL);
        if !check_ssl && !tls {
            // Relaxing the certificate check of a connection that has none: TLS was almost
            // certainly forgotten, and the session would go out in plain text unnoticed.
            errs.push(ctx.problem(
                "CHECK_SSL",
                "\"no\" only applies to TLS connections, but TLS is not \"yes\": set TLS = \"yes\" (or remove CHECK_SSL)",
            ));
        }
        let bind = match ctx.get(&BIND) {
            "transceiver" => BindMode::Transceiver,
            _ => BindMode::Transmitter,
        };
        let settings = Settings {
            gateway: ctx.gateway().to_owned(),
            host,
            port: ctx.get(&SMSC_PORT),
            tls,
            check_ssl,
            system_id,
            password,
            system_type,
            source_addr,
            source_ton: ctx.get(&S_ADDR_TON),
            source_npi: ctx.get(&S_ADDR_NPI),
            dest_ton: ctx.get(&D_ADDR_TON),
            dest_npi: ctx.get(&D_ADDR_NPI),
            window: ctx.get(&WINDOW),
            throughput: ctx.get(&THROUGHPUT),
            enquire_link: ctx.get(&ENQUIRE_LINK),
            timeout: ctx.get(&TIMEOUT),
            registered_delivery: u8::from(ctx.get(&REGISTERED_DELIVERY)),
            bind,
        };
        errs.into_result(settings)
    }
}
