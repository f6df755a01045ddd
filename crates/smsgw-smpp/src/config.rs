//! The gateway's parameters: specs, validation and the settings a provider is built from.

use std::time::Duration;

use smsgw_core::secrecy::SecretString;
use smsgw_core::{BuildContext, ConfigErrors, ParamKind, ParamSpec};

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

const INT_TON: ParamKind = ParamKind::Integer { min: 0, max: 6 };
const INT_NPI: ParamKind = ParamKind::Integer { min: 0, max: 18 };

/// The parameters of the `smpp` provider, with privacyIDEA's names first.
pub static PARAMS: &[ParamSpec] = &[
    ParamSpec::new("SMSC_HOST", "Host name or IP address of the SMS center (SMSC).").required(),
    ParamSpec::new("SMSC_PORT", "TCP port of the SMSC (2775 is usual).")
        .required()
        .kind(ParamKind::Integer { min: 1, max: 65535 }),
    ParamSpec::new(
        "SYSTEM_ID",
        "The system_id the session binds with (at most 15 characters).",
    ),
    ParamSpec::new(
        "PASSWORD",
        "The password the session binds with (at most 8 characters).",
    )
    .secret(),
    ParamSpec::new(
        "S_ADDR",
        "The sender shown to the recipient: source_addr (a number or up to 11 letters with S_ADDR_TON 5; at most 20 characters).",
    ),
    ParamSpec::new(
        "S_ADDR_TON",
        "Type of number of S_ADDR: 0 unknown, 1 international, 2 national, 3 network specific, 4 subscriber, 5 alphanumeric, 6 abbreviated.",
    )
    .kind(INT_TON)
    .default_value("0"),
    ParamSpec::new(
        "S_ADDR_NPI",
        "Numbering plan of S_ADDR: 0 unknown, 1 ISDN/E.164, 3 data, 4 telex, 6 land mobile, 8 national, 9 private, 10 ERMES, 14 internet, 18 WAP.",
    )
    .kind(INT_NPI)
    .default_value("0"),
    ParamSpec::new(
        "D_ADDR_TON",
        "Type of number of the recipient's phone number (see S_ADDR_TON); 1 for international numbers without '+'.",
    )
    .kind(INT_TON)
    .default_value("0"),
    ParamSpec::new(
        "D_ADDR_NPI",
        "Numbering plan of the recipient's phone number (see S_ADDR_NPI); 1 for E.164.",
    )
    .kind(INT_NPI)
    .default_value("0"),
    ParamSpec::new(
        "SYSTEM_TYPE",
        "The system_type the session binds with (at most 12 characters); empty unless the SMSC operator says otherwise.",
    )
    .default_value(""),
    ParamSpec::new(
        "TLS",
        "SMPP over TLS (the certificate is checked against the web PKI roots unless CHECK_SSL = no).",
    )
    .kind(ParamKind::YesNo)
    .default_value("no"),
    ParamSpec::new(
        "CHECK_SSL",
        "Verify the SMSC's TLS certificate and host name; no accepts any certificate (test SMSCs). Only with TLS = yes: CHECK_SSL = no without it is a configuration error.",
    )
    .kind(ParamKind::YesNo)
    .default_value("yes"),
    ParamSpec::new(
        "WINDOW",
        "The most submit_sm awaiting their response at once on the session; more sends wait.",
    )
    .kind(ParamKind::Integer { min: 1, max: 1000 })
    .default_value("10"),
    ParamSpec::new(
        "THROUGHPUT",
        "The most submit_sm a second the SMSC operator allows; 0 for no limit.",
    )
    .kind(ParamKind::Integer { min: 0, max: 100_000 })
    .default_value("0"),
    ParamSpec::new(
        "ENQUIRE_LINK",
        "Seconds between enquire_link keep-alives on an idle session.",
    )
    .kind(ParamKind::Seconds)
    .default_value("30"),
    ParamSpec::new(
        "TIMEOUT",
        "Seconds to wait for the connection, for each response of the SMSC (bind, submit_sm, enquire_link).",
    )
    .kind(ParamKind::Seconds)
    .default_value("5"),
    ParamSpec::new(
        "REGISTERED_DELIVERY",
        "Ask the SMSC for a delivery receipt of every message (registered_delivery 1); they arrive on BIND = transceiver.",
    )
    .kind(ParamKind::YesNo)
    .default_value("no"),
    ParamSpec::new(
        "BIND",
        "How the session binds: transmitter (send only) or transceiver (also receives delivery receipts).",
    )
    .allowed(&["transmitter", "transceiver"])
    .default_value("transmitter"),
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
        let text = |k: &str| ctx.text(k).unwrap_or("").trim().to_owned();
        let host = text("SMSC_HOST");
        if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '/' || c == '@') {
            errs.push(ctx.problem(
                "SMSC_HOST",
                format!("'{host}' is not a host name or IP address"),
            ));
        }
        let port = ctx.integer("SMSC_PORT").unwrap_or(0);
        if !(1..=65535).contains(&port) {
            errs.push(ctx.problem("SMSC_PORT", "must be a port number 1..=65535"));
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
        let system_id = ctx.text("SYSTEM_ID").unwrap_or("").to_owned();
        limited("SYSTEM_ID", &system_id, MAX_SYSTEM_ID, false);
        let password = ctx.text("PASSWORD").unwrap_or("").to_owned();
        limited("PASSWORD", &password, MAX_PASSWORD, true);
        let system_type = ctx.text("SYSTEM_TYPE").unwrap_or("").to_owned();
        limited("SYSTEM_TYPE", &system_type, MAX_SYSTEM_TYPE, false);
        let source_addr = ctx.text("S_ADDR").unwrap_or("").to_owned();
        limited("S_ADDR", &source_addr, MAX_ADDRESS, false);
        let tls = ctx.yes_no("TLS");
        if tls && !cfg!(feature = "tls") {
            errs.push(ctx.problem(
                "TLS",
                "this build of smsgw-smpp has no TLS support: enable its feature \"tls\"",
            ));
        }
        let check_ssl = ctx.yes_no("CHECK_SSL");
        if !check_ssl && !tls {
            // Relaxing the certificate check of a connection that has none: TLS was almost
            // certainly forgotten, and the session would go out in plain text unnoticed.
            errs.push(ctx.problem(
                "CHECK_SSL",
                "\"no\" only applies to TLS connections, but TLS is not \"yes\": set TLS = \"yes\" (or remove CHECK_SSL)",
            ));
        }
        let int = |k: &str, default: i64| ctx.integer(k).unwrap_or(default);
        let bind = match text("BIND").to_ascii_lowercase().as_str() {
            "" | "transmitter" => BindMode::Transmitter,
            "transceiver" => BindMode::Transceiver,
            other => {
                errs.push(ctx.problem(
                    "BIND",
                    format!("'{other}' is not one of transmitter, transceiver"),
                ));
                BindMode::Transmitter
            }
        };
        let settings = Settings {
            gateway: ctx.gateway.to_owned(),
            host,
            port: port.clamp(0, 65535) as u16,
            tls,
            check_ssl,
            system_id,
            password: SecretString::from(password),
            system_type,
            source_addr,
            source_ton: int("S_ADDR_TON", 0).clamp(0, 255) as u8,
            source_npi: int("S_ADDR_NPI", 0).clamp(0, 255) as u8,
            dest_ton: int("D_ADDR_TON", 0).clamp(0, 255) as u8,
            dest_npi: int("D_ADDR_NPI", 0).clamp(0, 255) as u8,
            window: int("WINDOW", 10).clamp(1, 1000) as usize,
            throughput: int("THROUGHPUT", 0).clamp(0, 100_000) as u32,
            enquire_link: ctx
                .seconds("ENQUIRE_LINK")
                .unwrap_or(Duration::from_secs(30)),
            timeout: ctx.seconds("TIMEOUT").unwrap_or(Duration::from_secs(5)),
            registered_delivery: u8::from(ctx.yes_no("REGISTERED_DELIVERY")),
            bind,
        };
        errs.into_result(settings)
    }
}
