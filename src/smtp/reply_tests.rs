//! Unit tests of the reply texts and their wire form.

use super::*;

fn wire(r: &Reply) -> String {
    let mut v = Vec::new();
    r.write_to(&mut v);
    String::from_utf8(v).unwrap()
}

#[test]
fn one_line_reply_carries_enhanced_code() {
    assert_eq!(wire(&line_too_long()), "500 5.5.2 Error: line too long\r\n");
}

#[test]
fn ehlo_is_multiline_without_enhanced_codes() {
    let r = ehlo("gw.test", vec!["PIPELINING".into(), "8BITMIME".into()]);
    assert_eq!(
        wire(&r),
        "250-gw.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
    );
}

#[test]
fn spam_reply_is_truncated_to_510() {
    let symbols: Vec<(String, String)> = (0..60)
        .map(|i| (format!("SYMBOL_NUMBER_{i}"), "1.00".into()))
        .collect();
    let r = spam_rejected("60.00", "2.00", &symbols, "K3F9Q2ZP");
    let line = wire(&r);
    assert!(line.len() - 2 <= 510, "{}", line.len());
    assert!(line.starts_with(
        "550 5.7.1 SPAM alert: score 60.00 (must be lower 2.00): SYMBOL_NUMBER_0(1.00)"
    ));
    assert!(line.ends_with(" ... ref=K3F9Q2ZP\r\n"), "{line}");
}

#[test]
fn tempfail_turns_a_symbol_reply_transient() {
    let r = for_symbol("reject_non_fqdn_sender", "a@b", Why::Plain, true);
    assert_eq!((r.code, r.enhanced.as_str()), (450, "4.5.2"));
    assert!(r.text().ends_with("(reject_non_fqdn_sender)"));
}
