//! Property tests of the XML-RPC reply reader: it never panics, and nesting is bounded whatever
//! the gateway (or anything answering in its place) sends.

use proptest::prelude::*;
use smsgw_sipgate::{MAX_XML_DEPTH, ReplyError, read_reply};

/// A reply whose value is `depth` arrays around an `<i4>`; its element depth is 5 + 3 × depth.
fn nested(depth: usize, close: bool) -> String {
    let mut s = String::from("<methodResponse><params><param>");
    s += &"<value><array><data>".repeat(depth);
    s += "<value><i4>1</i4></value>";
    if close {
        s += &"</data></array></value>".repeat(depth);
        s += "</param></params></methodResponse>";
    }
    s
}

const SUCCESS: &str = "<?xml version=\"1.0\"?><methodResponse><params><param><value><struct><member><name>StatusCode</name><value><i4>200</i4></value></member><member><name>SessionID</name><value><string>abc</string></value></member></struct></value></param></params></methodResponse>";

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn never_panics_on_bytes(body in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let _ = read_reply(&body);
    }

    #[test]
    fn never_panics_on_mangled_replies(cut in 0..SUCCESS.len(), insert in "[<>/a-z&;#0-9 ]{0,40}") {
        let mut s = SUCCESS.as_bytes()[..cut].to_vec();
        s.extend_from_slice(insert.as_bytes());
        s.extend_from_slice(&SUCCESS.as_bytes()[cut..]);
        let _ = read_reply(&s);
    }

    #[test]
    fn depth_is_bounded(depth in 0usize..2000, close in any::<bool>()) {
        let reply = nested(depth, close);
        let element_depth = 5 + 3 * depth;
        let got = read_reply(reply.as_bytes());
        if element_depth > MAX_XML_DEPTH {
            let bounded = matches!(got, Err(ReplyError::TooDeep | ReplyError::TooLarge));
            prop_assert!(bounded, "depth {depth}: {got:?}");
        } else if close {
            prop_assert!(got.is_ok(), "depth {depth}: {got:?}");
        } else {
            prop_assert!(got.is_err());
        }
    }
}
