//! One bound SMPP session: connect, bind (written by hand so the password never passes through
//! `rusmpp`'s debug logging), then the connection tasks of [`crate::connection`].

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use rusmpp::encode::{Encode, Length};
use rusmpp::pdus::{BindTransceiver, BindTransmitter};
use rusmpp::types::COctetString;
use rusmpp::values::{InterfaceVersion, Npi, Ton};
use rusmpp::{Command, CommandId, CommandStatus, Pdu};
use smsgw_core::secrecy::ExposeSecret;
use smsgw_core::{ErrorKind, SendError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::oneshot;

use crate::config::{BindMode, Settings};
use crate::connection::{self, Conn, ConnSettings, Frame, Inbound, MAX_PDU, WriteOutcome};
use crate::status::{ESME_RINVPASWD, ESME_RINVSYSID, ESME_RINVSYSTYP, status_name};

/// The sequence number of the hand-written bind: the largest valid one (SMPP 3.4 allows
/// 0x00000001..=0x7FFFFFFF); the session's own numbers start at 1 and wrap before it.
pub(crate) const BIND_SEQUENCE: u32 = 0x7FFF_FFFF;

/// Why a PDU could not be handed to the connection.
pub(crate) enum WriteError {
    /// It was never written: the connection was already closed (or its queue stayed full).
    NotWritten,
    /// Writing failed part-way: the SMSC may have read it.
    MaybeWritten(String),
}

/// A bound session.
pub(crate) struct Session {
    /// A number for logs.
    pub id: u64,
    conn: Arc<Conn>,
    timeout: Duration,
}

impl Session {
    /// True while the session can take submits.
    pub fn is_alive(&self) -> bool {
        self.conn.is_alive()
    }

    /// Registers for the response, then writes the request; returns the sequence number and the
    /// response to wait on once the request is flushed to the socket.
    pub async fn request(
        &self,
        pdu: impl Into<Pdu>,
    ) -> Result<(u32, oneshot::Receiver<Command>), WriteError> {
        let seq = self.conn.next_sequence();
        let waiting = self.conn.pending.lock().unwrap().wait(seq);
        let Some(rx) = waiting else {
            return Err(WriteError::NotWritten);
        };
        match self.conn.write(seq, pdu, self.timeout).await {
            WriteOutcome::Done => Ok((seq, rx)),
            WriteOutcome::NotWritten => {
                self.abandon(seq);
                self.conn.mark_dead();
                Err(WriteError::NotWritten)
            }
            WriteOutcome::MaybeWritten(e) => {
                self.abandon(seq);
                self.conn.mark_dead();
                Err(WriteError::MaybeWritten(e))
            }
        }
    }

    /// The request waiting for `seq` gave up.
    pub fn abandon(&self, seq: u32) {
        self.conn.pending.lock().unwrap().abandon(seq);
    }

    /// Unbinds and closes the connection, each step bounded by the timeout; the connection is
    /// closed at the end whatever the SMSC does.
    pub async fn unbind(&self) {
        let t = self.timeout;
        if self.conn.is_alive() {
            self.conn.mark_dead();
            match self.request(Pdu::Unbind).await {
                Ok((seq, rx)) => {
                    if matches!(tokio::time::timeout(t, rx).await, Ok(Ok(_))) {
                        tracing::debug!(session = self.id, "unbound");
                    } else {
                        self.abandon(seq);
                        tracing::debug!(session = self.id, "no unbind_resp in time");
                    }
                }
                Err(_) => tracing::debug!(session = self.id, "unbind not written"),
            }
        }
        self.conn.close();
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Nobody unbound it: close now (the tasks end, the socket closes).
        self.conn.close();
    }
}

fn err(settings: &Settings, kind: ErrorKind, msg: impl Into<String>) -> SendError {
    SendError::new(kind, &settings.gateway, msg)
}

/// Connects, binds and starts the session. Every step is bounded by `settings.timeout`.
pub(crate) async fn open(
    settings: &Settings,
    id: u64,
    inbound: Arc<dyn Inbound>,
) -> Result<Session, SendError> {
    let t = settings.timeout;
    let target = format!("{}:{}", settings.host, settings.port);
    let tcp = match tokio::time::timeout(
        t,
        tokio::net::TcpStream::connect((settings.host.as_str(), settings.port)),
    )
    .await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            return Err(err(
                settings,
                ErrorKind::NotSent,
                format!("cannot connect to the SMSC at {target}: {e}"),
            ));
        }
        Err(_) => {
            return Err(err(
                settings,
                ErrorKind::NotSent,
                format!("connecting to the SMSC at {target} timed out after {t:?}"),
            ));
        }
    };
    let _ = tcp.set_nodelay(true);
    if settings.tls {
        #[cfg(feature = "tls")]
        {
            let tls = tokio::time::timeout(
                t,
                crate::tls::connect(tcp, &settings.host, settings.check_ssl),
            )
            .await
            .map_err(|_| {
                err(
                    settings,
                    ErrorKind::NotSent,
                    format!("TLS handshake with {target} timed out after {t:?}"),
                )
            })?
            .map_err(|e| match e {
                // Nothing was written (the bind never left), and a retry meets the same
                // certificate: the gateway definition (or the SMSC's certificate) must change.
                crate::tls::TlsError::Untrusted(why) => err(
                    settings,
                    ErrorKind::Config,
                    format!(
                        "the TLS certificate of the SMSC at {target} was not trusted ({why}); \
                         nothing was sent. Fix the SMSC's certificate or SMSC_HOST, or set \
                         CHECK_SSL = \"no\" for a test SMSC"
                    ),
                )
                .with_code("untrusted_certificate"),
                crate::tls::TlsError::Other(why) => err(
                    settings,
                    ErrorKind::NotSent,
                    format!("TLS handshake with {target} failed: {why}"),
                ),
            })?;
            return start(settings, id, tls, inbound).await;
        }
        #[cfg(not(feature = "tls"))]
        return Err(err(
            settings,
            ErrorKind::Config,
            "TLS = yes, but this build has no TLS support (feature \"tls\" of smsgw-smpp)",
        ));
    }
    start(settings, id, tcp, inbound).await
}

fn bind_command(settings: &Settings) -> Result<Command, SendError> {
    let bad = |what: &str| {
        err(
            settings,
            ErrorKind::Config,
            format!("{what} does not fit an SMPP bind"),
        )
    };
    let system_id = COctetString::from_str(&settings.system_id).map_err(|_| bad("SYSTEM_ID"))?;
    let password =
        COctetString::from_str(settings.password.expose_secret()).map_err(|_| bad("PASSWORD"))?;
    let system_type =
        COctetString::from_str(&settings.system_type).map_err(|_| bad("SYSTEM_TYPE"))?;
    // The bind PDUs are distinct types with the same fields (rusmpp keeps its common one private).
    macro_rules! bind_pdu {
        ($pdu:ident) => {
            $pdu::new(
                system_id,
                password,
                system_type,
                InterfaceVersion::Smpp3_4,
                Ton::Unknown,
                Npi::Unknown,
                COctetString::empty(),
            )
            .into()
        };
    }
    let pdu: Pdu = match settings.bind {
        BindMode::Transmitter => bind_pdu!(BindTransmitter),
        BindMode::Transceiver => bind_pdu!(BindTransceiver),
    };
    Ok(Command::new(CommandStatus::EsmeRok, BIND_SEQUENCE, pdu))
}

/// Encodes a command as it goes on the wire (length prefix included), without logging it.
fn encode_command(cmd: &Command) -> Vec<u8> {
    let len = 4 + cmd.length();
    let mut buf = vec![0u8; len];
    buf[..4].copy_from_slice(&(len as u32).to_be_bytes());
    cmd.encode(&mut buf[4..]);
    buf
}

/// The message of the error [`read_command`] gives when the bytes are a TLS record.
const TLS_RECORD: &str = "a TLS record, not an SMPP PDU";

fn looks_like_tls(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::InvalidData && e.to_string() == TLS_RECORD
}

/// Reads one PDU from a raw stream.
async fn read_command<S: AsyncRead + Unpin>(stream: &mut S) -> std::io::Result<Command> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).await?;
    // A TLS record header (content type 0x14..=0x17, version 3.x) read as a PDU length would be
    // hundreds of megabytes: no SMPP PDU starts like that.
    if (0x14..=0x17).contains(&len[0]) && len[1] == 0x03 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            TLS_RECORD,
        ));
    }
    let len = u32::from_be_bytes(len) as usize;
    if !(16..=MAX_PDU).contains(&len) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("PDU length {len} out of range"),
        ));
    }
    let mut body = vec![0u8; len - 4];
    stream.read_exact(&mut body).await?;
    match connection::decode_frame(&body) {
        Frame::Whole(c) => Ok(c),
        // E.g. a bind_resp whose system_id is longer than SMPP's 16 octets (lenient SMSCs send
        // them): the field is informational, the header says all the bind needs.
        Frame::Header(c, why) => {
            tracing::info!(command = ?c.id(), error = %why, "PDU body not decoded; its header is used");
            Ok(c)
        }
    }
}

async fn bind<S: AsyncRead + AsyncWrite + Unpin>(
    settings: &Settings,
    stream: &mut S,
) -> Result<(), SendError> {
    let cmd = bind_command(settings)?;
    let seq = cmd.sequence_number();
    let expected = match settings.bind {
        BindMode::Transmitter => CommandId::BindTransmitterResp,
        BindMode::Transceiver => CommandId::BindTransceiverResp,
    };
    let bytes = encode_command(&cmd);
    drop(cmd);
    let what = settings.bind.pdu_name();
    let lost = |e: std::io::Error| {
        err(
            settings,
            ErrorKind::NotSent,
            format!("the SMSC closed the connection during {what}: {e}"),
        )
    };
    stream.write_all(&bytes).await.map_err(lost)?;
    stream.flush().await.map_err(lost)?;
    // The SMSC may send other PDUs (e.g. enquire_link) first; skip a few.
    for _ in 0..8 {
        let resp = read_command(stream).await.map_err(|e| {
            if looks_like_tls(&e) {
                // A TLS SMSC answers the plain bind with an alert; a retry meets the same.
                err(
                    settings,
                    ErrorKind::Config,
                    format!(
                        "the SMSC at {}:{} answered {what} with TLS, not SMPP; no message was \
                         sent. It expects TLS = \"yes\"",
                        settings.host, settings.port
                    ),
                )
                .with_code("tls_expected")
            } else {
                lost(e)
            }
        })?;
        if resp.sequence_number() != seq && resp.id() != CommandId::GenericNack {
            continue;
        }
        let status = u32::from(resp.status());
        if status == 0 && resp.id() == expected {
            return Ok(());
        }
        let name = status_name(status);
        let kind = match status {
            ESME_RINVPASWD | ESME_RINVSYSID | ESME_RINVSYSTYP => ErrorKind::Config,
            _ => ErrorKind::NotSent,
        };
        let msg = if status == 0 {
            format!("the SMSC answered {what} with {:?}", resp.id())
        } else {
            format!(
                "the SMSC refused {what} (system_id '{}'): {name} (0x{status:08X})",
                settings.system_id
            )
        };
        return Err(err(settings, kind, msg).with_code(name));
    }
    Err(err(
        settings,
        ErrorKind::NotSent,
        format!("the SMSC did not answer {what}"),
    ))
}

async fn start<S>(
    settings: &Settings,
    id: u64,
    mut stream: S,
    inbound: Arc<dyn Inbound>,
) -> Result<Session, SendError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let t = settings.timeout;
    tokio::time::timeout(t, bind(settings, &mut stream))
        .await
        .map_err(|_| {
            err(
                settings,
                ErrorKind::NotSent,
                format!(
                    "the SMSC did not answer {} within {t:?}",
                    settings.bind.pdu_name()
                ),
            )
        })??;
    let conn = connection::start(
        stream,
        ConnSettings {
            id,
            timeout: t,
            enquire_link: settings.enquire_link,
        },
        inbound,
    );
    tracing::info!(
        session = id,
        smsc = %format!("{}:{}", settings.host, settings.port),
        bind = settings.bind.pdu_name(),
        "SMPP session bound"
    );
    Ok(Session {
        id,
        conn,
        timeout: t,
    })
}
