//! Conformance harnesses for the built-in providers: which sink stands in for each, and a gateway
//! definition pointing at it. `smsgw demo` uses the same definitions.

use std::net::SocketAddr;

use smsgw_core::toml;
use smsgw_core::{GatewayDef, Registry};

use crate::conformance::{Harness, Setup};
use crate::{FaultPlan, Recorder, SinkHandle};

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
    fn provider(&self) -> &'static str {
        "http"
    }
    async fn start_sink(&self) -> Box<dyn SinkHandle> {
        start_loopback(self.provider()).await
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
    fn provider(&self) -> &'static str {
        "sipgate"
    }
    async fn start_sink(&self) -> Box<dyn SinkHandle> {
        start_loopback(self.provider()).await
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
    fn provider(&self) -> &'static str {
        "smtp"
    }
    async fn start_sink(&self) -> Box<dyn SinkHandle> {
        start_loopback(self.provider()).await
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
    fn provider(&self) -> &'static str {
        "smpp"
    }
    async fn start_sink(&self) -> Box<dyn SinkHandle> {
        start_loopback(self.provider()).await
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

async fn start_loopback(provider: &str) -> Box<dyn SinkHandle> {
    start_builtin_sink_on(provider, SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap_or_else(|e| panic!("cannot start the {provider} sink: {e}"))
}

/// Starts the sink that stands in for built-in provider `provider` on `addr`.
pub async fn start_builtin_sink_on(
    provider: &str,
    addr: SocketAddr,
) -> std::io::Result<Box<dyn SinkHandle>> {
    Ok(match provider {
        "http" => Box::new(crate::http::HttpSink::start_on(addr).await?),
        "sipgate" => Box::new(crate::sipgate::SipgateSink::start_on(addr).await?),
        "smtp" => Box::new(
            crate::smtp::SmtpSink::builder()
                .credentials(SMTP_CREDENTIALS.0, SMTP_CREDENTIALS.1)
                .start_on(addr)
                .await?,
        ),
        "smpp" => Box::new(crate::smsc::Smsc::start_on(addr).await?),
        other => {
            return Err(std::io::Error::other(format!(
                "no built-in sink for provider '{other}'"
            )));
        }
    })
}

/// Harnesses for every built-in provider compiled into this binary, sorted by provider name.
pub fn builtin() -> Vec<Box<dyn Harness>> {
    let all: Vec<Box<dyn Harness>> = vec![
        Box::new(HttpHarness),
        Box::new(SipgateHarness),
        Box::new(SmtpHarness),
        Box::new(SmppHarness),
    ];
    let mut v: Vec<Box<dyn Harness>> = all
        .into_iter()
        .filter(|h| Registry::global().get(h.provider()).is_ok())
        .collect();
    v.sort_by_key(|h| h.provider());
    v
}
