//! Decoding what the test SMSC receives: the records of binds, submits and PDUs, the framing
//! (with the raw bytes of every PDU), and an independent GSM 03.38 / UCS-2 / UDH decoder.

use rusmpp::decode::DecodeWithLength;
use rusmpp::tokio_codec::{CommandCodec, DecodeError, EncodeError};
use rusmpp::{Command, CommandId};
use serde::Serialize;
use tokio_util::bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

/// The largest PDU accepted.
const MAX_PDU: usize = 64 * 1024;

/// A bind as the SMSC received it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BindRecord {
    /// Connection number (from 1, in accept order).
    pub conn: usize,
    /// `bind_transmitter`, `bind_transceiver` or `bind_receiver`.
    pub command: String,
    /// The bind's sequence number.
    pub sequence: u32,
    /// system_id.
    pub system_id: String,
    /// password (this is a test sink: it records it to let tests check it).
    pub password: String,
    /// system_type.
    pub system_type: String,
    /// interface_version as `0x34`.
    pub interface_version: String,
    /// addr_ton.
    pub addr_ton: u8,
    /// addr_npi.
    pub addr_npi: u8,
    /// address_range.
    pub address_range: String,
    /// The command_status the SMSC answered with.
    pub status: u32,
    /// The whole PDU in hex.
    pub raw_hex: String,
}

/// One information element of a user data header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UdhIe {
    /// The IE identifier (0x00: concatenation with an 8-bit reference, 0x08: 16-bit).
    pub iei: u8,
    /// The IE data in hex.
    pub data_hex: String,
    /// The concatenation reference, for IEI 0x00 and 0x08.
    pub concat_ref: Option<u16>,
    /// How many parts, for IEI 0x00 and 0x08.
    pub total: Option<u8>,
    /// This part's number (from 1), for IEI 0x00 and 0x08.
    pub seq: Option<u8>,
}

/// A user data header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Udh {
    /// The UDH length octet.
    pub udhl: u8,
    /// Its information elements.
    pub ies: Vec<UdhIe>,
}

impl Udh {
    /// The concatenation IE as (reference, total, seq), if there is one.
    pub fn concat(&self) -> Option<(u16, u8, u8)> {
        self.ies
            .iter()
            .find_map(|ie| Some((ie.concat_ref?, ie.total?, ie.seq?)))
    }
}

/// A submit_sm as the SMSC received it, field by field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubmitRecord {
    /// Connection number.
    pub conn: usize,
    /// The PDU's sequence number.
    pub sequence: u32,
    /// service_type.
    pub service_type: String,
    /// source_addr_ton.
    pub source_addr_ton: u8,
    /// source_addr_npi.
    pub source_addr_npi: u8,
    /// source_addr.
    pub source_addr: String,
    /// dest_addr_ton.
    pub dest_addr_ton: u8,
    /// dest_addr_npi.
    pub dest_addr_npi: u8,
    /// destination_addr.
    pub destination_addr: String,
    /// esm_class.
    pub esm_class: u8,
    /// protocol_id.
    pub protocol_id: u8,
    /// priority_flag.
    pub priority_flag: u8,
    /// schedule_delivery_time.
    pub schedule_delivery_time: String,
    /// validity_period.
    pub validity_period: String,
    /// registered_delivery.
    pub registered_delivery: u8,
    /// replace_if_present_flag.
    pub replace_if_present_flag: u8,
    /// data_coding.
    pub data_coding: u8,
    /// sm_default_msg_id.
    pub sm_default_msg_id: u8,
    /// sm_length.
    pub sm_length: u8,
    /// short_message in hex (UDH included).
    pub short_message_hex: String,
    /// Bytes after short_message (TLVs) in hex.
    pub tlvs_hex: String,
    /// The UDH, when esm_class has the UDHI bit (0x40).
    pub udh: Option<Udh>,
    /// This part's text, decoded.
    pub text: String,
    /// How it was decoded: `gsm7-unpacked`, `ucs2`, `latin1`, `ascii` or `binary`.
    pub text_decoding: String,
    /// The command_status the SMSC answered with; `None` when it never answered.
    pub status: Option<u32>,
    /// The message id it answered with, if it accepted the message.
    pub message_id: Option<String>,
    /// The whole PDU in hex.
    pub raw_hex: String,
}

/// Any PDU the SMSC received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PduRecord {
    /// Connection number.
    pub conn: usize,
    /// The command name (`submit_sm`, `enquire_link`, `unbind`, …).
    pub command: String,
    /// command_status.
    pub status: u32,
    /// sequence_number.
    pub sequence: u32,
    /// The whole PDU in hex.
    pub raw_hex: String,
}

/// What the codec writes: a command, or raw bytes (header-only error responses as SMPP 3.4
/// sends them).
pub(super) enum Out {
    Cmd(Box<Command>),
    Raw(Vec<u8>),
    /// Written by the session's writer itself, PDU by PDU (never encoded at once).
    Flood(super::Flood),
}

/// `CommandCodec`, with the raw bytes of every decoded PDU.
pub(super) struct RawCodec(pub(super) CommandCodec);

impl Decoder for RawCodec {
    type Item = (Vec<u8>, Command);
    type Error = DecodeError;

    // Decodes without `CommandCodec::decode`, which logs every PDU (binds with their password)
    // at debug level: the sink must not put the secrets it receives into a test's logs.
    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Self::Item>, Self::Error> {
        if src.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([src[0], src[1], src[2], src[3]]) as usize;
        if !(16..=MAX_PDU).contains(&len) {
            return Err(DecodeError::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("PDU length {len} out of range"),
            )));
        }
        if src.len() < len {
            src.reserve(len - src.len());
            return Ok(None);
        }
        let mut frame = src.split_to(len);
        let raw = frame.to_vec();
        let _ = frame.split_to(4);
        let (command, _) = Command::decode(&mut frame, len - 4).map_err(DecodeError::Decode)?;
        Ok(Some((raw, command)))
    }
}

impl Encoder<Out> for RawCodec {
    type Error = EncodeError;

    fn encode(&mut self, item: Out, dst: &mut BytesMut) -> Result<(), Self::Error> {
        match item {
            Out::Cmd(c) => self.0.encode(&*c, dst),
            Out::Raw(b) => {
                dst.extend_from_slice(&b);
                Ok(())
            }
            Out::Flood(_) => Ok(()),
        }
    }
}

pub(super) fn hex(b: &[u8]) -> String {
    // Table lookup, not format! per byte: this runs for every PDU and bounds the sink's rate.
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(b.len() * 2);
    for &x in b {
        out.push(DIGITS[usize::from(x >> 4)] as char);
        out.push(DIGITS[usize::from(x & 0x0f)] as char);
    }
    out
}

pub(super) fn command_name(id: CommandId) -> String {
    let s = format!("{id:?}");
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// A cursor over a PDU body.
struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn u8(&mut self) -> u8 {
        let v = self.b.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        v
    }
    fn cstr(&mut self) -> String {
        let rest = self.b.get(self.at..).unwrap_or(&[]);
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        let s = String::from_utf8_lossy(&rest[..end]).into_owned();
        self.at += end + 1;
        s
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let rest = self.b.get(self.at..).unwrap_or(&[]);
        let v = rest[..n.min(rest.len())].to_vec();
        self.at += n;
        v
    }
    fn rest(&self) -> &[u8] {
        self.b.get(self.at..).unwrap_or(&[])
    }
}

/// Decodes GSM 03.38 septets, one an octet (unpacked), with the extension table.
pub use smsgw_core::gsm::decode_unpacked as decode_gsm_unpacked;

/// Decodes `short_message` octets by their data_coding: (text, decoding name).
pub fn decode_text(data_coding: u8, b: &[u8]) -> (String, &'static str) {
    match data_coding {
        0x00 => (decode_gsm_unpacked(b), "gsm7-unpacked"),
        0x08 => {
            let units: Vec<u16> = b
                .chunks(2)
                .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))
                .collect();
            (String::from_utf16_lossy(&units), "ucs2")
        }
        0x01 => (String::from_utf8_lossy(b).into_owned(), "ascii"),
        0x03 => (b.iter().map(|&c| c as char).collect(), "latin1"),
        _ => (hex(b), "binary"),
    }
}

/// Parses a UDH at the start of `sm`: (the UDH, the octets after it).
pub fn parse_udh(sm: &[u8]) -> Option<(Udh, &[u8])> {
    let udhl = *sm.first()? as usize;
    let body = sm.get(1..1 + udhl)?;
    let mut ies = Vec::new();
    let mut i = 0;
    while i + 1 < body.len() {
        let iei = body[i];
        let len = body[i + 1] as usize;
        let data = body.get(i + 2..i + 2 + len)?;
        let (concat_ref, total, seq) = match (iei, data) {
            (0x00, [r, t, s]) => (Some(*r as u16), Some(*t), Some(*s)),
            (0x08, [r1, r2, t, s]) => (Some(u16::from_be_bytes([*r1, *r2])), Some(*t), Some(*s)),
            _ => (None, None, None),
        };
        ies.push(UdhIe {
            iei,
            data_hex: hex(data),
            concat_ref,
            total,
            seq,
        });
        i += 2 + len;
    }
    Some((
        Udh {
            udhl: udhl as u8,
            ies,
        },
        &sm[1 + udhl..],
    ))
}

pub(super) fn parse_bind(conn: usize, raw: &[u8], command: &str, status: u32) -> BindRecord {
    let mut r = Reader {
        b: raw.get(16..).unwrap_or(&[]),
        at: 0,
    };
    BindRecord {
        conn,
        command: command.to_owned(),
        sequence: u32::from_be_bytes([raw[12], raw[13], raw[14], raw[15]]),
        system_id: r.cstr(),
        password: r.cstr(),
        system_type: r.cstr(),
        interface_version: format!("0x{:02x}", r.u8()),
        addr_ton: r.u8(),
        addr_npi: r.u8(),
        address_range: r.cstr(),
        status,
        raw_hex: hex(raw),
    }
}

/// Parses a submit_sm from its raw bytes; returns the record and the payload after the UDH.
pub(super) fn parse_submit(conn: usize, raw: &[u8]) -> (SubmitRecord, Vec<u8>) {
    let mut r = Reader {
        b: raw.get(16..).unwrap_or(&[]),
        at: 0,
    };
    let service_type = r.cstr();
    let source_addr_ton = r.u8();
    let source_addr_npi = r.u8();
    let source_addr = r.cstr();
    let dest_addr_ton = r.u8();
    let dest_addr_npi = r.u8();
    let destination_addr = r.cstr();
    let esm_class = r.u8();
    let protocol_id = r.u8();
    let priority_flag = r.u8();
    let schedule_delivery_time = r.cstr();
    let validity_period = r.cstr();
    let registered_delivery = r.u8();
    let replace_if_present_flag = r.u8();
    let data_coding = r.u8();
    let sm_default_msg_id = r.u8();
    let sm_length = r.u8();
    let sm = r.bytes(sm_length as usize);
    let tlvs_hex = hex(r.rest());
    let (udh, payload) = if esm_class & 0x40 != 0 {
        match parse_udh(&sm) {
            Some((u, p)) => (Some(u), p.to_vec()),
            None => (None, sm.clone()),
        }
    } else {
        (None, sm.clone())
    };
    let (text, decoding) = decode_text(data_coding, &payload);
    let rec = SubmitRecord {
        conn,
        sequence: u32::from_be_bytes([raw[12], raw[13], raw[14], raw[15]]),
        service_type,
        source_addr_ton,
        source_addr_npi,
        source_addr,
        dest_addr_ton,
        dest_addr_npi,
        destination_addr,
        esm_class,
        protocol_id,
        priority_flag,
        schedule_delivery_time,
        validity_period,
        registered_delivery,
        replace_if_present_flag,
        data_coding,
        sm_default_msg_id,
        sm_length,
        short_message_hex: hex(&sm),
        tlvs_hex,
        udh,
        text,
        text_decoding: decoding.to_owned(),
        status: None,
        message_id: None,
        raw_hex: hex(raw),
    };
    (rec, payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_gsm_extension_and_udh() {
        let b = [
            0x59, 0x1b, 0x3c, 0x1b, 0x65, 0x00, 0x02, 0x11, 0x1b, 0x28, 0x1b, 0x29,
        ];
        assert_eq!(decode_gsm_unpacked(&b), "Y[€@$_{}");
        let (udh, rest) = parse_udh(&[5, 0, 3, 0xc5, 2, 1, 0x41]).unwrap();
        assert_eq!(udh.concat(), Some((0xc5, 2, 1)));
        assert_eq!(rest, &[0x41]);
        assert_eq!(decode_text(8, &[0xd8, 0x3d, 0xdd, 0x10]).0, "🔐");
        assert_eq!(
            command_name(CommandId::BindTransmitterResp),
            "bind_transmitter_resp"
        );
    }
}
