//! The symbol contract (DESIGN §2): every symbol the code can emit has a
//! rule entry, and every rule entry is emitted by something — a check, a
//! content rule or a composite.

mod common;

use std::collections::BTreeSet;

#[test]
fn every_emitted_symbol_has_a_rule_and_every_rule_is_emitted() {
    let text = std::fs::read_to_string(common::root().join("config/gateway.example.toml")).unwrap();
    // Every check on: the example states defaults, so switch them on here.
    let mut text = text.replace(
        "rules_dir = \"rules\"",
        &format!("rules_dir = \"{}\"", common::root().join("rules").display()),
    );
    for (off, on) in [
        (
            "reject_unknown_helo_hostname = false",
            "reject_unknown_helo_hostname = true",
        ),
        (
            "reject_unknown_reverse_client_hostname = false",
            "reject_unknown_reverse_client_hostname = true",
        ),
        (
            "reject_unknown_client_hostname = false",
            "reject_unknown_client_hostname = true",
        ),
        (
            "reject_unknown_sender_domain = false",
            "reject_unknown_sender_domain = true",
        ),
        (
            "reject_unverified_sender = \"none\"",
            "reject_unverified_sender = \"local\"",
        ),
        (
            "client = []",
            "client = [{ zone = \"zen.spamhaus.org\", name = \"SPAMHAUS_ZEN\" }]",
        ),
        (
            "sender = []",
            "sender = [{ zone = \"dbl.spamhaus.org\", name = \"SPAMHAUS_DBL\" }]",
        ),
        ("# sender_login_maps = ", "sender_login_maps = "),
        ("[anomaly]\nenabled = false", "[anomaly]\nenabled = true"),
    ] {
        assert!(
            text.contains(off),
            "gateway.example.toml no longer has {off:?}"
        );
        text = text.replace(off, on);
    }
    let app = common::build_app(&text);
    let mut emitted: BTreeSet<String> = BTreeSet::new();
    for check in &app.checks {
        for s in check.symbols() {
            assert!(
                app.symbols.get(s).is_some(),
                "check {} emits {s}, which has no entry in rules/",
                check.name()
            );
            emitted.insert(s.to_string());
        }
    }
    emitted.extend(app.content.symbols().map(str::to_string));
    emitted.extend(app.composites.iter().map(|(s, _)| s.to_string()));
    let defined: BTreeSet<String> = app.symbols.names().map(str::to_string).collect();
    let orphans: Vec<&String> = defined.difference(&emitted).collect();
    assert!(
        orphans.is_empty(),
        "rules/ defines symbols nothing emits: {orphans:?}"
    );
    for name in &defined {
        let def = app.symbols.get(name).unwrap();
        assert!(!def.description.is_empty(), "{name} has no description");
        if def.score.0 > 0 || def.action.is_some() {
            assert!(
                !def.fix.is_empty(),
                "{name} can stop mail but has no fix hint for the sender"
            );
        }
    }
}

#[test]
fn an_unknown_symbol_in_scores_names_file_line_and_symbol() {
    let text = common::config_text(
        "127.0.0.1:1".parse().unwrap(),
        "",
        "[scores]\nSUBJ_ALL_CAPS = 1.0\nSUBJ_ALL_CAP = 2.0\n",
    );
    let line = text
        .lines()
        .position(|l| l.starts_with("SUBJ_ALL_CAP ="))
        .unwrap()
        + 1;
    let config =
        smtpgate::config::Config::from_text(std::path::Path::new("gw.toml"), &text).unwrap();
    let err = match smtpgate::app::App::build(config, None) {
        Ok(_) => panic!("an unknown symbol must be an error"),
        Err(e) => e.to_string(),
    };
    assert!(err.starts_with(&format!("gw.toml:{line}:")), "{err}");
    assert!(
        err.contains("[scores]: unknown symbol SUBJ_ALL_CAP"),
        "{err}"
    );
}
