//! An example third-party provider for smsgw: `linegw`, a gateway that takes one JSON object per
//! line over TCP.
//!
//! The wire protocol (one connection per message):
//! client → `{"token": "...", "to": "+49...", "text": "..."}\n`;
//! gateway → `OK <id>\n`, `ERR <code> <reason>\n` (refused) or `BUSY\n` (not sent, retry later).
//!
//! Depending on this crate is all it takes: it registers itself with smsgw's registry.
//!
//! ```
//! use smsgw_provider_example as _; // link the crate in, or the linker drops its registration
//! assert!(smsgw_core::Registry::global().get("linegw").is_ok());
//! ```
#![deny(missing_docs)]

#[cfg(feature = "harness")]
pub mod harness;

use std::sync::Arc;
use std::time::Duration;

use smsgw_core::secrecy::{ExposeSecret, SecretString};
use smsgw_core::{
    BuildContext, Capabilities, ConfigErrors, ErrorKind, Message, ParamKind, ParamSpec, Provider,
    ProviderDescriptor, Receipt, SendError, async_trait, register_provider,
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const PARAMS: &[ParamSpec] = &[
    ParamSpec::new("HOST", "The gateway's host name or address.").required(),
    ParamSpec::new("PORT", "The gateway's TCP port.")
        .required()
        .kind(ParamKind::Integer { min: 1, max: 65535 }),
    ParamSpec::new("TOKEN", "The access token the gateway issued.")
        .required()
        .secret(),
    ParamSpec::new("TIMEOUT", "Seconds one send may take as a whole.")
        .kind(ParamKind::Seconds)
        .default_value("5"),
];

register_provider!(ProviderDescriptor {
    name: "linegw",
    aliases: &["example.LineGateway"],
    description: "Example third-party provider: JSON lines over TCP.",
    params: PARAMS,
    free_options: false,
    headers: false,
    capabilities: Capabilities::none().long_messages().verbatim_phone(),
    factory: build,
});

/// A configured `linegw` gateway.
pub struct LineGateway {
    gateway: String,
    host: String,
    port: u16,
    token: SecretString,
    timeout: Duration,
}

impl std::fmt::Debug for LineGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // SecretString's Debug is redacted; listed here to show that on purpose.
        f.debug_struct("LineGateway")
            .field("gateway", &self.gateway)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("token", &self.token)
            .field("timeout", &self.timeout)
            .finish()
    }
}

fn build(ctx: &BuildContext<'_>) -> Result<Arc<dyn Provider>, ConfigErrors> {
    // The core has checked presence and kinds; only rules of our own remain.
    let mut errs = ConfigErrors::new();
    let host = ctx.get("HOST").unwrap_or_default().trim().to_owned();
    if host.contains(['/', ' ']) {
        errs.push(ctx.problem("HOST", format!("'{host}' is not a host name")));
    }
    errs.into_result(Arc::new(LineGateway {
        gateway: ctx.gateway.to_owned(),
        host,
        port: ctx.integer("PORT").unwrap_or(0) as u16,
        token: SecretString::from(ctx.get("TOKEN").unwrap_or_default().to_owned()),
        timeout: ctx.seconds("TIMEOUT").unwrap_or(Duration::from_secs(5)),
    }) as Arc<dyn Provider>)
}

impl LineGateway {
    fn err(&self, kind: ErrorKind, msg: impl Into<String>) -> SendError {
        SendError::new(kind, &self.gateway, msg)
    }

    async fn exchange(&self, message: &Message, written: &mut bool) -> Result<Receipt, SendError> {
        let stream = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| self.err(ErrorKind::NotSent, format!("cannot connect: {e}")))?;
        let (rd, mut wr) = stream.into_split();
        let line = serde_json::json!({
            "token": self.token.expose_secret(),
            "to": message.phone,
            "text": message.text,
        })
        .to_string()
            + "\n";
        *written = true;
        wr.write_all(line.as_bytes()).await.map_err(|e| {
            self.err(
                ErrorKind::Unknown,
                format!("connection lost while sending: {e}"),
            )
        })?;
        let mut reply = String::new();
        BufReader::new(rd)
            .read_line(&mut reply)
            .await
            .map_err(|e| {
                self.err(
                    ErrorKind::Unknown,
                    format!("connection lost before the reply: {e}"),
                )
            })?;
        let reply = reply.trim_end();
        if let Some(id) = reply.strip_prefix("OK ") {
            Ok(Receipt::new(&self.gateway, "linegw").with_id(id))
        } else if reply == "BUSY" {
            Err(self
                .err(ErrorKind::NotSent, "the gateway is busy")
                .with_code("BUSY"))
        } else if let Some(rest) = reply.strip_prefix("ERR ") {
            let (code, why) = rest.split_once(' ').unwrap_or((rest, ""));
            Err(self
                .err(ErrorKind::Refused, format!("refused: {why}"))
                .with_code(code))
        } else if reply.is_empty() {
            Err(self.err(
                ErrorKind::Unknown,
                "the gateway closed the connection without a reply",
            ))
        } else {
            Err(self.err(ErrorKind::Unknown, "the gateway's reply is not understood"))
        }
    }
}

#[async_trait]
impl Provider for LineGateway {
    async fn send(&self, message: &Message) -> Result<Receipt, SendError> {
        let mut written = false;
        match tokio::time::timeout(self.timeout, self.exchange(message, &mut written)).await {
            Ok(r) => r,
            Err(_) if written => Err(self.err(
                ErrorKind::Unknown,
                format!(
                    "no reply within {:?}: the message may have been sent",
                    self.timeout
                ),
            )),
            Err(_) => Err(self.err(
                ErrorKind::NotSent,
                format!("could not connect within {:?}", self.timeout),
            )),
        }
    }
}
