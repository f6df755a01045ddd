//! Properties of the encoders and parsers that take outside input (issue #12): GSM 03.38 and
//! UCS-2 splitting, and delivery-receipt text parsing. The texts are decoded back with the test
//! SMSC's own decoder, written independently of the provider's encoder.

use proptest::prelude::*;
use smsgw_smpp::{DC_GSM, DC_UCS2, ESM_UDHI, encode, fits_gsm, parse_receipt_text};
use smsgw_testkit::smsc::{decode_text, parse_udh};

/// Every character of the GSM 03.38 default alphabet and its extension table (except ESC).
const GSM_CHARS: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà\u{0c}^{}\\[~]|€";

fn gsm_text() -> impl Strategy<Value = String> {
    let chars: Vec<char> = GSM_CHARS.chars().collect();
    // Extension characters (two septets) are weighted up: they are what gets cut wrongly.
    prop::collection::vec(
        prop_oneof![
            3 => prop::sample::select(chars),
            1 => prop::sample::select(vec!['€', '[', ']', '{', '}', '\\', '|', '~', '^']),
        ],
        0..700,
    )
    .prop_map(|v| v.into_iter().collect())
}

fn unicode_text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            2 => any::<char>(),
            1 => prop::sample::select(vec!['🔐', '😀', '𝄞', 'ß', '中', 'a']),
        ],
        1..400,
    )
    .prop_map(|v| v.into_iter().collect())
}

/// Octets a part takes on the air: UCS-2 as is; GSM packed into septets after the UDH
/// (3GPP TS 23.040 §9.2.3.24: the septets start on a septet boundary after the UDH).
fn air_octets(data_coding: u8, udh_len: usize, payload_len: usize) -> usize {
    if data_coding == DC_GSM {
        let udh_septets = (udh_len * 8).div_ceil(7);
        ((udh_septets + payload_len) * 7).div_ceil(8)
    } else {
        udh_len + payload_len
    }
}

fn check_split(text: &str) -> Result<(), TestCaseError> {
    let Ok(enc) = encode(text, 0x42) else {
        // Only a text beyond 255 parts may be refused.
        prop_assert!(text.chars().count() > 255 * 67);
        return Ok(());
    };
    prop_assert_eq!(
        enc.data_coding,
        if fits_gsm(text) { DC_GSM } else { DC_UCS2 }
    );
    let n = enc.parts.len();
    let mut whole = Vec::new();
    for (i, part) in enc.parts.iter().enumerate() {
        let (udh_len, payload) = if n > 1 {
            prop_assert_eq!(enc.esm_class(), ESM_UDHI);
            let (udh, rest) = parse_udh(part).expect("a UDH on every part");
            prop_assert_eq!(udh.concat(), Some((0x42, n as u8, i as u8 + 1)));
            (part.len() - rest.len(), rest)
        } else {
            (0, part.as_slice())
        };
        prop_assert!(
            air_octets(enc.data_coding, udh_len, payload.len()) <= 140,
            "part {} of {} takes {} octets",
            i + 1,
            n,
            air_octets(enc.data_coding, udh_len, payload.len())
        );
        if enc.data_coding == DC_GSM {
            // No escape left at the end of a part (its extension character is in the next).
            prop_assert_ne!(payload.last(), Some(&0x1b));
        } else {
            prop_assert_eq!(payload.len() % 2, 0);
            // No high surrogate at the end of a part.
            if payload.len() >= 2 {
                let last =
                    u16::from_be_bytes([payload[payload.len() - 2], payload[payload.len() - 1]]);
                prop_assert!(!(0xD800..0xDC00).contains(&last), "surrogate pair cut");
            }
            // Each part decodes on its own.
            prop_assert!(
                String::from_utf16(
                    &payload
                        .chunks(2)
                        .map(|c| u16::from_be_bytes([c[0], c[1]]))
                        .collect::<Vec<_>>()
                )
                .is_ok()
            );
        }
        whole.extend_from_slice(payload);
    }
    let (rejoined, _) = decode_text(enc.data_coding, &whole);
    prop_assert_eq!(rejoined, text);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn gsm_split_and_rejoin_is_the_identity(text in gsm_text()) {
        check_split(&text)?;
    }

    #[test]
    fn ucs2_split_and_rejoin_is_the_identity(text in unicode_text()) {
        check_split(&text)?;
    }

    #[test]
    fn receipt_parsing_never_panics(text in any::<String>()) {
        let _ = parse_receipt_text(&text);
    }

    #[test]
    fn receipt_fields_are_found_among_noise(
        id in "[0-9A-Fa-f]{1,20}",
        stat in "(DELIVRD|UNDELIV|EXPIRED|REJECTD)",
        noise in "[ -~]{0,40}",
    ) {
        let text = format!("id:{id} sub:001 dlvrd:001 submit date:2501011200 done date:2501011201 stat:{stat} err:000 text:{noise}");
        let r = parse_receipt_text(&text).unwrap();
        prop_assert_eq!(r.id.as_deref(), Some(id.as_str()));
        prop_assert_eq!(r.stat.as_deref(), Some(stat.as_str()));
        prop_assert_eq!(r.done_date.as_deref(), Some("2501011201"));
    }
}
