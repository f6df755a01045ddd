//! smsgw provider `smpp`: SMS centers (SMSC) over SMPP 3.4, with one persistent session per
//! gateway.
//!
//! Where privacyIDEA connects, binds, submits and disconnects for every message, this provider
//! keeps one bound session per gateway: opened on the first send, shared by all sends, kept alive
//! with enquire_link, re-established with back-off when the SMSC drops it, and unbound on
//! [`Provider::shutdown`](smsgw_core::Provider::shutdown). At most `WINDOW` submit_sm await their
//! response at once, and `THROUGHPUT` caps the submits a second.
//!
//! Texts are sent in the GSM 03.38 default alphabet (data_coding 0, unpacked, with the extension
//! table's escapes) when they fit it, otherwise as UTF-16 big endian (data_coding 8, emoji as
//! surrogate pairs). Long texts become concatenated parts (153 GSM characters or 67 UTF-16 units
//! a part) with a UDH and esm_class 0x40; see [`encode`].
//!
//! `TLS = "yes"` speaks SMPP over TLS (rustls on aws-lc-rs), the SMSC's certificate checked
//! against the web PKI roots unless `CHECK_SSL = "no"`, which accepts any certificate (test
//! SMSCs); an untrusted certificate fails the send as a configuration error before anything is
//! written.
//!
//! With `BIND = "transceiver"` and `REGISTERED_DELIVERY = "yes"`, delivery receipts are
//! acknowledged, parsed and broadcast through
//! [`Provider::delivery_reports`](smsgw_core::Provider::delivery_reports).
//!
//! ```
//! use smsgw_core::{Config, Gateways, Registry};
//! use smsgw_smpp as _; // links the provider (and its registration) in
//!
//! let config = Config::from_toml_str(r#"
//!     [gateways.smsc]
//!     provider = "smpp"
//!     [gateways.smsc.options]
//!     SMSC_HOST = "smsc.example.org"
//!     SMSC_PORT = "2775"
//!     SYSTEM_ID = "otp"
//!     PASSWORD = "secret12"
//!     S_ADDR = "privacyIDEA"
//!     S_ADDR_TON = "5"
//!     WINDOW = "20"
//! "#).unwrap();
//! // Building touches no network: the session opens on the first send.
//! let gateways = Gateways::build(&config, Registry::global()).unwrap();
//! assert_eq!(gateways.get("smsc").unwrap().descriptor().name, "smpp");
//! assert!(!format!("{gateways:?}").contains("secret12"));
//! ```
#![deny(missing_docs)]

mod config;
mod dlr;
mod encoding;
mod provider;
mod session;
mod status;
#[cfg(feature = "tls")]
mod tls;

use std::sync::Arc;

use smsgw_core::{BuildContext, Capabilities, ConfigErrors, Provider, ProviderDescriptor};

pub use config::{BindMode, PARAMS};
pub use dlr::{ReceiptText, parse_receipt_text};
pub use encoding::{
    DC_GSM, DC_UCS2, ESM_UDHI, Encoded, GSM_PART, GSM_SINGLE, MAX_PARTS, TooLong, UCS2_PART,
    UCS2_SINGLE, encode, fits_gsm,
};
pub use provider::{MAX_THROTTLE_RETRIES, SmppProvider};
pub use status::{
    ESME_RINVPASWD, ESME_RINVSYSID, ESME_RINVSYSTYP, ESME_RMSGQFUL, ESME_RTHROTTLED, status_name,
};

/// The provider's name in configurations.
pub const NAME: &str = "smpp";
/// privacyIDEA's module path, accepted as the provider name.
pub const PRIVACYIDEA_MODULE: &str = "privacyidea.lib.smsprovider.SmppSMSProvider.SmppSMSProvider";

fn factory(ctx: &BuildContext<'_>) -> Result<Arc<dyn Provider>, ConfigErrors> {
    let settings = config::Settings::from_context(ctx)?;
    Ok(Arc::new(SmppProvider::new(settings)))
}

smsgw_core::register_provider!(
    ProviderDescriptor::new(
        NAME,
        "SMS centers over SMPP 3.4, one persistent session per gateway",
        factory,
    )
    .aliases(&[PRIVACYIDEA_MODULE])
    .params(PARAMS)
    .capabilities(
        Capabilities::none()
            .long_messages()
            .delivery_reports()
            .verbatim_phone()
    )
);
