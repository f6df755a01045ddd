//! The GSM 03.38 default alphabet and its extension table, in one place: the SMPP provider
//! encodes with it and the test SMSC decodes with it. (smsgw-smpp's tests check every entry
//! against `rusmpp`'s independent encoder, so one table does not hide a wrong entry.)

/// The escape septet that introduces a character of the extension table.
pub const ESCAPE: u8 = 0x1b;

/// The basic alphabet, index = septet value (0x1B is the escape, shown as U+001B).
pub const BASIC: [char; 128] = [
    '@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å', //
    'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', '\u{1b}', 'Æ', 'æ', 'ß', 'É', //
    ' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/', //
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?', //
    '¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O', //
    'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§', //
    '¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', //
    'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à', //
];

/// The extension table: (septet after [`ESCAPE`], character).
pub const EXTENSION: [(u8, char); 10] = [
    (0x0A, '\u{0c}'),
    (0x14, '^'),
    (0x28, '{'),
    (0x29, '}'),
    (0x2F, '\\'),
    (0x3C, '['),
    (0x3D, '~'),
    (0x3E, ']'),
    (0x40, '|'),
    (0x65, '€'),
];

/// The septets of one character (one, or two with the escape) and how many of the two are
/// used, or `None` when the alphabet does not have it.
///
/// ```
/// use smsgw_core::gsm;
/// assert_eq!(gsm::septets('A'), Some(([0x41, 0], 1)));
/// assert_eq!(gsm::septets('€'), Some(([gsm::ESCAPE, 0x65], 2)));
/// assert_eq!(gsm::septets('😀'), None);
/// ```
pub fn septets(c: char) -> Option<([u8; 2], usize)> {
    if c != '\u{1b}'
        && let Some(i) = BASIC.iter().position(|&g| g == c)
    {
        return Some(([i as u8, 0], 1));
    }
    EXTENSION
        .iter()
        .find(|(_, g)| *g == c)
        .map(|(s, _)| ([ESCAPE, *s], 2))
}

/// Decodes septets stored one an octet (unpacked), with the extension table. The top bit of
/// each octet is ignored; an unknown extension falls back to the basic character (GSM 03.38).
///
/// ```
/// assert_eq!(smsgw_core::gsm::decode_unpacked(&[0x41, 0x1b, 0x65, 0x00]), "A€@");
/// ```
pub fn decode_unpacked(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let s = b[i] & 0x7f;
        if s == ESCAPE && i + 1 < b.len() {
            let n = b[i + 1] & 0x7f;
            let ext = EXTENSION.iter().find(|(e, _)| *e == n).map(|(_, c)| *c);
            out.push(ext.unwrap_or(BASIC[n as usize]));
            i += 2;
        } else {
            out.push(BASIC[s as usize]);
            i += 1;
        }
    }
    out
}
