//! Conformance harnesses: which sink stands in for a provider's gateway, and a gateway definition
//! pointing at it. Each harness is registered next to its provider with [`register_harness!`]
//! (the built-in ones here, a third party's in its own crate), so that `smsgw demo`, `smsgw sink`,
//! `smsgw conformance` and `cargo xtask conformance` find every provider linked into the binary.
//!
//! ```
//! use smsgw_sinks::harness;
//! // Harnesses of the providers compiled into this binary (none are linked into this doctest).
//! for h in harness::registered() {
//!     println!("{} has a sink", h.provider());
//! }
//! ```

use std::net::SocketAddr;

use smsgw_core::toml;
use smsgw_core::{GatewayDef, Registry};

use crate::conformance::{Harness, Setup};
use crate::{Fault, FaultPlan, Recorder, SinkHandle};

macro_rules! sink_handle {
    ($ty:ty) => {
        impl SinkHandle for $ty {
            fn addr(&self) -> SocketAddr {
                <$ty>::addr(self)
            }
            fn recorder(&self) -> Recorder {
                <$ty>::recorder(self).clone()
            }
            fn faults(&self) -> FaultPlan {
                <$ty>::faults(self).clone()
            }
        }
    };
}

sink_handle!(crate::http::HttpSink);
sink_handle!(crate::sipgate::SipgateSink);
sink_handle!(crate::smtp::SmtpSink);
sink_handle!(crate::smsc::Smsc);

fn gateway(id: &str, provider: &str, options: &[(&str, String)]) -> GatewayDef {
    GatewayDef {
        id: id.into(),
        provider: provider.into(),
        description: Some(format!("{provider} gateway against the local sink")),
        options: options
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
        ..Default::default()
    }
}

/// The `http` provider against [`HttpSink`](crate::http::HttpSink): a form POST with basic auth.
pub struct HttpHarness;

#[async_trait::async_trait]
impl Harness for HttpHarness {
    fn busy_fault(&self) -> Option<Fault> {
        Some(Fault::Reply {
            code: 429,
            text: "Too Many Requests".into(),
        })
    }
    fn provider(&self) -> &'static str {
        "http"
    }
    fn default_port(&self) -> u16 {
        8025
    }
    async fn start_sink_on(&self, addr: SocketAddr) -> std::io::Result<Box<dyn SinkHandle>> {
        Ok(Box::new(crate::http::HttpSink::start_on(addr).await?))
    }
    async fn start_sink(&self) -> Box<dyn SinkHandle> {
        start_loopback(self).await
    }
    fn definition(&self, addr: SocketAddr, timeout_secs: f64) -> Setup {
        Setup::new(gateway(
            "http-sink",
            "http",
            &[
                ("URL", format!("http://{addr}/send")),
                ("HTTP_METHOD", "POST".into()),
                ("USERNAME", "smsgw".into()),
                ("PASSWORD", "http-secret-pw".into()),
                ("TIMEOUT", timeout_secs.to_string()),
                ("to", "{phone}".into()),
                ("text", "{otp}".into()),
            ],
        ))
    }
    fn secrets(&self) -> Vec<String> {
        vec!["http-secret-pw".into()]
    }
}

/// The `sipgate` provider (XML-RPC) against [`SipgateSink`](crate::sipgate::SipgateSink).
pub struct SipgateHarness;

#[async_trait::async_trait]
impl Harness for SipgateHarness {
    fn promises_message_ids(&self) -> bool {
        true
    }
    fn provider(&self) -> &'static str {
        "sipgate"
    }
    fn default_port(&self) -> u16 {
        8026
    }
    async fn start_sink_on(&self, addr: SocketAddr) -> std::io::Result<Box<dyn SinkHandle>> {
        Ok(Box::new(crate::sipgate::SipgateSink::start_on(addr).await?))
    }
    async fn start_sink(&self) -> Box<dyn SinkHandle> {
        start_loopback(self).await
    }
    fn definition(&self, addr: SocketAddr, timeout_secs: f64) -> Setup {
        Setup::new(gateway(
            "sipgate-sink",
            "sipgate",
            &[
                ("URL", format!("http://{addr}/RPC2")),
                ("USERNAME", "smsgw".into()),
                ("PASSWORD", "sipgate-secret-pw".into()),
                ("TIMEOUT", timeout_secs.to_string()),
            ],
        ))
    }
    fn secrets(&self) -> Vec<String> {
        vec!["sipgate-secret-pw".into()]
    }
}

/// The `smtp` provider against [`SmtpSink`](crate::smtp::SmtpSink), with AUTH.
pub struct SmtpHarness;

/// The credentials [`SmtpHarness`]'s sink accepts.
pub const SMTP_CREDENTIALS: (&str, &str) = ("smsgw", "smtp-secret-pw");

#[async_trait::async_trait]
impl Harness for SmtpHarness {
    fn busy_fault(&self) -> Option<Fault> {
        Some(Fault::Reply {
            code: 451,
            text: "4.7.1 Try again later".into(),
        })
    }
    fn promises_message_ids(&self) -> bool {
        true
    }
    fn provider(&self) -> &'static str {
        "smtp"
    }
    fn default_port(&self) -> u16 {
        2525
    }
    async fn start_sink_on(&self, addr: SocketAddr) -> std::io::Result<Box<dyn SinkHandle>> {
        Ok(Box::new(
            crate::smtp::SmtpSink::builder()
                .credentials(SMTP_CREDENTIALS.0, SMTP_CREDENTIALS.1)
                .start_on(addr)
                .await?,
        ))
    }
    async fn start_sink(&self) -> Box<dyn SinkHandle> {
        start_loopback(self).await
    }
    fn definition(&self, addr: SocketAddr, timeout_secs: f64) -> Setup {
        // The `[smtp_servers.sink]` table smsgw-smtp reads.
        let mut server = toml::Table::new();
        server.insert("server".into(), format!("smtp://{addr}").into());
        server.insert("sender".into(), "otp@example.org".into());
        server.insert("timeout".into(), timeout_secs.into());
        server.insert("username".into(), SMTP_CREDENTIALS.0.into());
        server.insert("password".into(), SMTP_CREDENTIALS.1.into());
        server.insert("allow_insecure_auth".into(), true.into());
        let mut servers = toml::Table::new();
        servers.insert("sink".into(), toml::Value::Table(server));
        let mut setup = Setup::new(gateway(
            "smtp-sink",
            "smtp",
            &[
                ("SMTPIDENTIFIER", "sink".into()),
                ("MAILTO", "{phone}@sms.example.net".into()),
                ("SUBJECT", "SMS for {phone}".into()),
                ("BODY", "{otp}".into()),
            ],
        ));
        setup
            .sections
            .insert("smtp_servers".into(), toml::Value::Table(servers));
        setup
    }
    fn secrets(&self) -> Vec<String> {
        vec![SMTP_CREDENTIALS.1.into()]
    }
}

/// The `smpp` provider against the test SMSC [`Smsc`](crate::smsc::Smsc).
pub struct SmppHarness;

#[async_trait::async_trait]
impl Harness for SmppHarness {
    fn busy_fault(&self) -> Option<Fault> {
        // ESME_RTHROTTLED
        Some(Fault::Reply {
            code: 0x58,
            text: String::new(),
        })
    }
    fn promises_message_ids(&self) -> bool {
        true
    }
    fn provider(&self) -> &'static str {
        "smpp"
    }
    fn default_port(&self) -> u16 {
        2775
    }
    async fn start_sink_on(&self, addr: SocketAddr) -> std::io::Result<Box<dyn SinkHandle>> {
        Ok(Box::new(crate::smsc::Smsc::start_on(addr).await?))
    }
    async fn start_sink(&self) -> Box<dyn SinkHandle> {
        start_loopback(self).await
    }
    fn definition(&self, addr: SocketAddr, timeout_secs: f64) -> Setup {
        Setup::new(gateway(
            "smpp-sink",
            "smpp",
            &[
                ("SMSC_HOST", addr.ip().to_string()),
                ("SMSC_PORT", addr.port().to_string()),
                ("SYSTEM_ID", "smsgw".into()),
                ("PASSWORD", "smppsec1".into()),
                ("S_ADDR", "smsgw".into()),
                ("S_ADDR_TON", "5".into()),
                ("D_ADDR_TON", "1".into()),
                ("D_ADDR_NPI", "1".into()),
                ("TIMEOUT", timeout_secs.to_string()),
            ],
        ))
    }
    fn secrets(&self) -> Vec<String> {
        vec!["smppsec1".into()]
    }
    fn enable_delivery_reports(&self, setup: &mut Setup) {
        let o = &mut setup.gateway.options;
        o.insert("BIND".into(), "transceiver".into());
        o.insert("REGISTERED_DELIVERY".into(), "yes".into());
    }
}

fn loopback_any() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

async fn start_loopback(h: &dyn Harness) -> Box<dyn SinkHandle> {
    h.start_sink_on(loopback_any())
        .await
        .unwrap_or_else(|e| panic!("cannot start the {} sink: {e}", h.provider()))
}

crate::register_harness!(HttpHarness);
crate::register_harness!(SipgateHarness);
crate::register_harness!(SmtpHarness);
crate::register_harness!(SmppHarness);

/// A harness submitted with [`register_harness!`](crate::register_harness).
pub struct Registration {
    harness: &'static dyn Harness,
    crate_name: &'static str,
}

impl Registration {
    /// For [`register_harness!`](crate::register_harness): `harness`, registered by crate
    /// `crate_name`.
    pub const fn new(harness: &'static dyn Harness, crate_name: &'static str) -> Self {
        Registration {
            harness,
            crate_name,
        }
    }

    /// The harness.
    pub fn harness(&self) -> &'static dyn Harness {
        self.harness
    }

    /// The crate that registered it.
    pub fn crate_name(&self) -> &'static str {
        self.crate_name
    }
}

inventory::collect!(Registration);

/// Registers a conformance [`Harness`] (a value of a type implementing it, usually a unit
/// struct) next to its provider, so that `smsgw demo`, `smsgw sink` and `smsgw conformance` use
/// it whenever the provider is linked into the binary.
///
/// ```
/// # use std::net::SocketAddr;
/// use smsgw_sinks::conformance::{Harness, Setup};
/// use smsgw_sinks::SinkHandle;
///
/// struct MyHarness;
///
/// #[smsgw_sinks::async_trait]
/// impl Harness for MyHarness {
///     fn provider(&self) -> &'static str { "mine" }
///     async fn start_sink(&self) -> Box<dyn SinkHandle> { todo!("start a loopback sink") }
///     fn definition(&self, _: SocketAddr, _: f64) -> Setup { todo!("a gateway definition") }
/// }
///
/// smsgw_sinks::register_harness!(MyHarness);
///
/// // Registered; `registered()` lists it once a provider named "mine" is linked in too.
/// assert!(smsgw_sinks::harness::all().iter().any(|r| r.harness().provider() == "mine"));
/// ```
#[macro_export]
macro_rules! register_harness {
    ($harness:expr) => {
        $crate::inventory::submit! {
            $crate::harness::Registration::new(&$harness, env!("CARGO_PKG_NAME"))
        }
    };
}

/// Every registered harness, whether or not its provider is linked in, sorted by provider name.
pub fn all() -> Vec<&'static Registration> {
    let mut v: Vec<&'static Registration> = inventory::iter::<Registration>.into_iter().collect();
    v.sort_by_key(|r| (r.harness.provider(), r.crate_name));
    v
}

/// The harnesses of the providers registered in the global provider registry (one per
/// provider; see [`duplicates`] for names registered twice), sorted by provider name.
pub fn registered() -> Vec<&'static dyn Harness> {
    let mut v: Vec<&'static dyn Harness> = all()
        .into_iter()
        .map(|r| r.harness)
        .filter(|h| {
            Registry::global()
                .get(h.provider())
                .is_ok_and(|d| d.name == h.provider())
        })
        .collect();
    v.dedup_by_key(|h| h.provider());
    v
}

/// The harness registered for `provider` (by its registered name), if any.
pub fn find(provider: &str) -> Option<&'static dyn Harness> {
    registered().into_iter().find(|h| h.provider() == provider)
}

/// Provider names with more than one harness, each with the crates that registered one.
pub fn duplicates() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut out: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    for r in all() {
        match out.last_mut() {
            Some((p, crates)) if *p == r.harness.provider() => crates.push(r.crate_name),
            _ => out.push((r.harness.provider(), vec![r.crate_name])),
        }
    }
    out.retain(|(_, c)| c.len() > 1);
    out
}

/// Harnesses of the providers compiled into this binary (the old name of [`registered`]).
pub fn builtin() -> Vec<&'static dyn Harness> {
    registered()
}
