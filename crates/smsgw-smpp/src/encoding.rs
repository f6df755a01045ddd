//! Text encoding and splitting: the GSM 03.38 default alphabet (unpacked, one septet an octet,
//! with the extension table's escapes) or UCS-2/UTF-16 big endian, and concatenated parts with
//! an 8-bit-reference UDH.
//!
//! This is done here rather than with `rusmpp`'s `extra` encoders because those reject
//! characters outside the basic multilingual plane (emoji), and because the bytes must match
//! what privacyIDEA (smpplib) puts on the wire exactly.

use smsgw_core::gsm::septets as gsm_septets;

/// `data_coding` for the GSM 03.38 default alphabet.
pub const DC_GSM: u8 = 0x00;
/// `data_coding` for UCS-2 (sent as UTF-16 big endian, surrogate pairs included).
pub const DC_UCS2: u8 = 0x08;
/// `esm_class` bit that says the short message starts with a user data header.
pub const ESM_UDHI: u8 = 0x40;

/// Septets in one GSM message without a UDH.
pub const GSM_SINGLE: usize = 160;
/// Septets in one part of a concatenated GSM message (160 − 7 for the 6-octet UDH).
pub const GSM_PART: usize = 153;
/// UTF-16 units in one UCS-2 message without a UDH.
pub const UCS2_SINGLE: usize = 70;
/// UTF-16 units in one part of a concatenated UCS-2 message ((140 − 6) / 2).
pub const UCS2_PART: usize = 67;
/// The most parts a concatenated message can have (the UDH counts them in one octet).
pub const MAX_PARTS: usize = 255;

/// True when every character of `text` is in the GSM 03.38 default alphabet or its extension.
pub fn fits_gsm(text: &str) -> bool {
    text.chars().all(|c| gsm_septets(c).is_some())
}

/// One character encoded: its octets (GSM septets or UTF-16BE) and its size in units
/// (septets or UTF-16 units).
struct Unit {
    bytes: [u8; 4],
    len: usize,
    units: usize,
}

/// The encoded message: one or more `short_message` payloads with their `data_coding` and
/// `esm_class`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// `data_coding`: [`DC_GSM`] or [`DC_UCS2`].
    pub data_coding: u8,
    /// The `short_message` of every part, UDH included for concatenated parts.
    pub parts: Vec<Vec<u8>>,
}

impl Encoded {
    /// `esm_class` of every part: 0x00 for a single message, 0x40 (UDHI) for concatenated parts.
    pub fn esm_class(&self) -> u8 {
        if self.parts.len() > 1 { ESM_UDHI } else { 0 }
    }
}

/// Why a text cannot be sent as SMS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooLong {
    /// How many parts it would need.
    pub parts: usize,
}

/// Encodes `text` as GSM 03.38 when it fits the alphabet, else UTF-16BE, and splits it into
/// concatenated parts when it does not fit one SMS, with UDH `05 00 03 <reference> <total> <n>`.
/// An escape pair and a surrogate pair are never split between parts.
pub fn encode(text: &str, reference: u8) -> Result<Encoded, TooLong> {
    let gsm = fits_gsm(text);
    let units: Vec<Unit> = text
        .chars()
        .map(|c| {
            if gsm {
                let (s, n) = gsm_septets(c).expect("checked by fits_gsm");
                Unit {
                    bytes: [s[0], s[1], 0, 0],
                    len: n,
                    units: n,
                }
            } else {
                let mut buf = [0u16; 2];
                let u16s = c.encode_utf16(&mut buf);
                let mut bytes = [0u8; 4];
                for (i, u) in u16s.iter().enumerate() {
                    bytes[2 * i..2 * i + 2].copy_from_slice(&u.to_be_bytes());
                }
                Unit {
                    bytes,
                    len: 2 * u16s.len(),
                    units: u16s.len(),
                }
            }
        })
        .collect();
    let (single, per_part, data_coding) = if gsm {
        (GSM_SINGLE, GSM_PART, DC_GSM)
    } else {
        (UCS2_SINGLE, UCS2_PART, DC_UCS2)
    };
    let total: usize = units.iter().map(|u| u.units).sum();
    if total <= single {
        let mut sm = Vec::with_capacity(total * 2);
        for u in &units {
            sm.extend_from_slice(&u.bytes[..u.len]);
        }
        return Ok(Encoded {
            data_coding,
            parts: vec![sm],
        });
    }
    // Split without breaking a character (escape pair, surrogate pair).
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    let mut cur: Vec<u8> = Vec::new();
    let mut cur_units = 0;
    for u in &units {
        if cur_units + u.units > per_part {
            chunks.push(std::mem::take(&mut cur));
            cur_units = 0;
        }
        cur.extend_from_slice(&u.bytes[..u.len]);
        cur_units += u.units;
    }
    if !cur.is_empty() {
        chunks.push(cur);
    }
    if chunks.len() > MAX_PARTS {
        return Err(TooLong {
            parts: chunks.len(),
        });
    }
    let n = chunks.len() as u8;
    let parts = chunks
        .into_iter()
        .enumerate()
        .map(|(i, chunk)| {
            let mut sm = Vec::with_capacity(6 + chunk.len());
            sm.extend_from_slice(&[0x05, 0x00, 0x03, reference, n, i as u8 + 1]);
            sm.extend_from_slice(&chunk);
            sm
        })
        .collect();
    Ok(Encoded { data_coding, parts })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The core's one GSM table, checked entry by entry against rusmpp's independent encoder.
    #[test]
    fn gsm_table_agrees_with_rusmpp() {
        use rusmpp::extra::encoding::gsm7bit::Gsm7BitUnpacked;
        use smsgw_core::gsm::{BASIC, ESCAPE, EXTENSION};
        let theirs = Gsm7BitUnpacked::new();
        for (i, c) in BASIC
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != ESCAPE as usize)
        {
            assert_eq!(
                theirs.encode_to_vec(&c.to_string()).unwrap(),
                [i as u8],
                "{c:?}"
            );
            assert_eq!(smsgw_core::gsm::decode_unpacked(&[i as u8]), c.to_string());
        }
        for (s, c) in EXTENSION {
            assert_eq!(
                smsgw_core::gsm::decode_unpacked(&[ESCAPE, s]),
                c.to_string()
            );
            if c == '\u{0c}' {
                continue; // rusmpp's table lacks the page break (0x1B 0x0A) that GSM 03.38 has
            }
            assert_eq!(
                theirs.encode_to_vec(&c.to_string()).unwrap(),
                [ESCAPE, s],
                "{c:?}"
            );
        }
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn gsm_extension_escapes() {
        let e = encode("Your code: 123456 [ok] {x} ~ 5€", 0).unwrap();
        assert_eq!(e.data_coding, DC_GSM);
        assert_eq!(e.esm_class(), 0);
        assert_eq!(
            hex(&e.parts[0]),
            "596f757220636f64653a20313233343536201b3c6f6b1b3e201b28781b29201b3d20351b65"
        );
        let e = encode("^\\|\u{0c}@$_", 0).unwrap();
        assert_eq!(hex(&e.parts[0]), "1b141b2f1b401b0a000211");
    }

    #[test]
    fn gsm_160_is_one_part_161_two() {
        assert_eq!(encode(&"a".repeat(160), 1).unwrap().parts.len(), 1);
        let e = encode(&"a".repeat(161), 7).unwrap();
        assert_eq!(e.parts.len(), 2);
        assert_eq!(e.esm_class(), 0x40);
        assert_eq!(e.parts[0].len(), 6 + 153);
        assert_eq!(&e.parts[0][..6], &[5, 0, 3, 7, 2, 1]);
        assert_eq!(&e.parts[1][..6], &[5, 0, 3, 7, 2, 2]);
        assert_eq!(e.parts[1].len(), 6 + 8);
    }

    #[test]
    fn escape_pair_never_split() {
        // 152 plain characters, then '€' (2 septets): it does not fit the first part's 153.
        let text = format!("{}€{}", "a".repeat(152), "b".repeat(10));
        let e = encode(&text, 1).unwrap();
        assert_eq!(e.parts[0].len(), 6 + 152);
        assert_eq!(&e.parts[1][6..8], &[0x1b, 0x65]);
    }

    #[test]
    fn ucs2_and_surrogates() {
        let e = encode("Привет 🔐", 0).unwrap();
        assert_eq!(e.data_coding, DC_UCS2);
        assert!(hex(&e.parts[0]).ends_with("0020d83ddd10"));
        assert_eq!(encode(&"ж".repeat(70), 0).unwrap().parts.len(), 1);
        assert_eq!(encode(&"ж".repeat(71), 0).unwrap().parts.len(), 2);
        // 66 units, then an emoji (2 units): it does not fit the first part's 67.
        let text = format!("{}🔐{}", "ж".repeat(66), "ж".repeat(10));
        let e = encode(&text, 3).unwrap();
        assert_eq!(e.parts[0].len(), 6 + 132);
        assert_eq!(&e.parts[1][6..10], &[0xd8, 0x3d, 0xdd, 0x10]);
    }

    #[test]
    fn too_long() {
        assert!(encode(&"ж".repeat(67 * 255), 0).is_ok());
        assert_eq!(
            encode(&"ж".repeat(67 * 255 + 1), 0),
            Err(TooLong { parts: 256 })
        );
    }
}
