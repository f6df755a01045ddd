//! Properties of SMTP header encoding (issue #12): whatever the subject, no line is over 998
//! octets, and it decodes back.

use proptest::prelude::*;

fn decode(encoded: &str) -> Option<String> {
    let mail = format!("Subject: {encoded}\r\n\r\nbody\r\n");
    mail_parser::MessageParser::default()
        .parse(mail.as_bytes())
        .and_then(|m| m.subject().map(str::to_owned))
}

proptest! {
    #[test]
    fn subject_lines_are_bounded_and_decode_back(
        words in proptest::collection::vec("[a-zA-Z0-9äöü€😀]{0,1500}", 1..4),
    ) {
        let subject = words.join(" ");
        let encoded = smsgw_smtp::encode_subject(&subject);
        for line in format!("Subject: {encoded}").split("\r\n") {
            prop_assert!(line.len() <= 998, "a line of {} octets", line.len());
        }
        if subject.split(' ').any(|w| w.len() > 900) {
            prop_assert_eq!(decode(&encoded).unwrap_or_default(), subject);
        }
    }
}
