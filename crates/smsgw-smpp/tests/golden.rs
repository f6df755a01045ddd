//! privacyIDEA's SMPP golden cases: the bind and every submit_sm must match what privacyIDEA
//! (smpplib) put on the wire, field for field and byte for byte, except sequence numbers and the
//! concatenation reference.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use smsgw_core::Message;
use smsgw_testkit::smsc::Smsc;

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// Raw PDU hex with the sequence number zeroed, and for a UDH part the reference zeroed.
fn normalize(raw_hex: &str, ref_at: Option<usize>) -> String {
    let mut b: Vec<u8> = (0..raw_hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&raw_hex[i..i + 2], 16).unwrap())
        .collect();
    b[12..16].fill(0);
    if let Some(at) = ref_at {
        b[at] = 0;
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Where the UDH's concatenation reference is in a raw submit_sm: 16 + the length of the
/// fields before short_message + 1 (sm_length) + 3 (UDHL, IEI, IEDL).
fn reference_offset(raw_hex: &str, sm_len: usize) -> usize {
    raw_hex.len() / 2 - sm_len + 3
}

async fn run_case(name: &str) {
    let dir = golden_dir();
    let case: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join(format!("{name}.case.json"))).unwrap(),
    )
    .unwrap();
    let lines: Vec<Value> = std::fs::read_to_string(dir.join(format!("{name}.jsonl")))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let smsc = Smsc::start().await.unwrap();
    let opts: Vec<(String, String)> = case["options"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            let v = v
                .as_str()
                .unwrap()
                .replace("{SINK_HOST}", "127.0.0.1")
                .replace("{SINK_PORT}", &smsc.addr().port().to_string());
            (k.clone(), v)
        })
        .collect();
    let gw = common::build(case["providermodule"].as_str().unwrap(), &opts).unwrap();
    let sample = &case["sample"];
    let message = sample["message"].as_str().unwrap();
    let receipt = gw
        .send(&Message::new(sample["phone"].as_str().unwrap(), message))
        .await
        .unwrap();

    let pdus: Vec<&Value> = lines.iter().filter(|l| l["event"] == "pdu").collect();
    let binds: Vec<&&Value> = pdus
        .iter()
        .filter(|p| p["command"] == "bind_transmitter")
        .collect();
    let submits: Vec<&&Value> = pdus
        .iter()
        .filter(|p| p["command"] == "submit_sm")
        .collect();
    assert_eq!(binds.len(), 1);
    assert_eq!(receipt.parts as usize, submits.len());

    // The bind, field for field and byte for byte.
    let bind = &smsc.binds()[0];
    let gf = &binds[0]["fields"];
    assert_eq!(bind.command, "bind_transmitter");
    assert_eq!(bind.system_id, gf["system_id"]);
    assert_eq!(bind.password, gf["password"]);
    assert_eq!(bind.system_type, gf["system_type"]);
    assert_eq!(bind.interface_version, gf["interface_version"]);
    assert_eq!(bind.addr_ton, gf["addr_ton"]);
    assert_eq!(bind.addr_npi, gf["addr_npi"]);
    assert_eq!(bind.address_range, gf["address_range"]);
    assert_eq!(
        normalize(&bind.raw_hex, None),
        normalize(binds[0]["raw_hex"].as_str().unwrap(), None),
        "{name}: bind bytes"
    );

    // Every submit_sm.
    let ours = smsc.submits();
    assert_eq!(ours.len(), submits.len(), "{name}: number of submit_sm");
    for (i, (s, g)) in ours.iter().zip(&submits).enumerate() {
        let f = &g["fields"];
        let ctx = format!("{name} part {}", i + 1);
        assert_eq!(s.service_type, f["service_type"], "{ctx}");
        assert_eq!(s.source_addr_ton, f["source_addr_ton"], "{ctx}");
        assert_eq!(s.source_addr_npi, f["source_addr_npi"], "{ctx}");
        assert_eq!(s.source_addr, f["source_addr"], "{ctx}");
        assert_eq!(s.dest_addr_ton, f["dest_addr_ton"], "{ctx}");
        assert_eq!(s.dest_addr_npi, f["dest_addr_npi"], "{ctx}");
        assert_eq!(s.destination_addr, f["destination_addr"], "{ctx}");
        assert_eq!(s.esm_class, f["esm_class"], "{ctx}");
        assert_eq!(s.protocol_id, f["protocol_id"], "{ctx}");
        assert_eq!(s.priority_flag, f["priority_flag"], "{ctx}");
        assert_eq!(
            s.schedule_delivery_time, f["schedule_delivery_time"],
            "{ctx}"
        );
        assert_eq!(s.validity_period, f["validity_period"], "{ctx}");
        assert_eq!(s.registered_delivery, f["registered_delivery"], "{ctx}");
        assert_eq!(
            s.replace_if_present_flag, f["replace_if_present_flag"],
            "{ctx}"
        );
        assert_eq!(s.data_coding, f["data_coding"], "{ctx}");
        assert_eq!(s.sm_default_msg_id, f["sm_default_msg_id"], "{ctx}");
        assert_eq!(s.sm_length, f["sm_length"], "{ctx}");
        assert_eq!(s.text, f["text"], "{ctx}");
        assert_eq!(s.text_decoding, f["text_decoding"], "{ctx}");
        assert!(s.tlvs_hex.is_empty(), "{ctx}: no TLVs");
        let golden_udh = f.get("udh");
        assert_eq!(s.udh.is_some(), golden_udh.is_some(), "{ctx}: UDH");
        let ref_at = if let (Some(u), Some(gu)) = (&s.udh, golden_udh) {
            let gie = &gu["ies"][0];
            assert_eq!(u.udhl, gu["udhl"], "{ctx}");
            assert_eq!(u.ies.len(), gu["ies"].as_array().unwrap().len(), "{ctx}");
            assert_eq!(format!("0x{:02x}", u.ies[0].iei), gie["iei"], "{ctx}");
            let (_, total, seq) = u.concat().unwrap();
            assert_eq!(total, gie["total"], "{ctx}");
            assert_eq!(seq, gie["seq"], "{ctx}");
            Some(reference_offset(&s.raw_hex, s.sm_length as usize))
        } else {
            None
        };
        let mut sm_ours = s.short_message_hex.clone();
        let mut sm_golden = f["short_message_hex"].as_str().unwrap().to_owned();
        if ref_at.is_some() {
            sm_ours.replace_range(6..8, "00");
            sm_golden.replace_range(6..8, "00");
        }
        assert_eq!(sm_ours, sm_golden, "{ctx}: short_message");
        assert_eq!(
            normalize(&s.raw_hex, ref_at),
            normalize(g["raw_hex"].as_str().unwrap(), ref_at),
            "{ctx}: raw bytes"
        );
    }
    // The sink reassembles the whole text.
    let got = smsc.recorder().wait_for(1, Duration::from_secs(1)).await;
    assert_eq!(got[0].text, message);
    assert_eq!(
        got[0].recipient,
        lines[0]["phone"].as_str().unwrap().trim_start_matches('+')
    );
}

#[tokio::test]
async fn golden_smpp_basic() {
    run_case("smpp_basic").await;
}

#[tokio::test]
async fn golden_smpp_long_gsm() {
    run_case("smpp_long_gsm").await;
}

#[tokio::test]
async fn golden_smpp_unicode() {
    run_case("smpp_unicode").await;
}

#[test]
fn golden_copies_match_the_shared_originals() {
    smsgw_testkit::golden::assert_copies_current(Path::new(env!("CARGO_MANIFEST_DIR")));
}
