//! `config/gateway.example.toml` states the true built-in default of every
//! key it sets: each section of it is compared with the same section
//! holding only its required keys (everything else from serde's defaults).
//! And the shipped `config/gateway.toml` loads, with the mission's checks on.

use smtpgate::config::Config;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Keys without a default, per section.
const REQUIRED: &[(&str, &[&str])] = &[
    ("server", &["hostname", "listen"]),
    ("upstream", &["address"]),
    ("auth", &["passwd_file"]),
    ("metrics", &["listen"]),
    ("dkim", &["keys_dir"]),
    ("tls", &["cert", "key"]),
    ("http", &["listen"]),
];

#[test]
fn the_example_states_every_default_truly() {
    let path = root().join("config/gateway.example.toml");
    let text = std::fs::read_to_string(&path).expect("example");
    let example = Config::from_text(&path, &text).expect("the example validates");
    let table: toml::Table = toml::from_str(&text).expect("toml");
    let mut minimal = toml::Table::new();
    for (section, value) in &table {
        let mut kept = toml::Table::new();
        let required = REQUIRED
            .iter()
            .find(|(s, _)| s == section)
            .map_or(&[][..], |(_, k)| *k);
        if let Some(t) = value.as_table() {
            for key in required {
                if let Some(v) = t.get(*key) {
                    kept.insert(key.to_string(), v.clone());
                }
            }
        }
        minimal.insert(section.clone(), toml::Value::Table(kept));
    }
    let minimal_text = toml::to_string(&minimal).expect("serialise");
    let defaults = Config::from_text(Path::new("defaults.toml"), &minimal_text)
        .unwrap_or_else(|e| panic!("{e}\n{minimal_text}"));
    macro_rules! same {
        ($($field:ident),*) => {$(
            assert_eq!(
                example.$field, defaults.$field,
                "[{}] in gateway.example.toml differs from the built-in defaults",
                stringify!($field)
            );
        )*};
    }
    same!(
        server, upstream, scoring, relay, dns, store, envelope, dnsbl, auth, metrics, outbound,
        dkim, greylist, ratelimit, log, headers, history, http, anomaly
    );
    assert!(example.scores.is_empty(), "[scores] has no default entries");
}

#[test]
fn the_shipped_config_runs_the_mission() {
    let path = root().join("config/gateway.toml");
    let c = Config::load(&path).expect("the shipped config validates");
    assert!(c.envelope.reject_unknown_helo_hostname);
    assert!(c.envelope.reject_unknown_sender_domain);
    assert!(c.envelope.reject_known_bad_recipient_address);
    assert_eq!(
        c.envelope.reject_unverified_sender,
        smtpgate::config::CalloutScope::Local
    );
    assert!(c.outbound.is_some(), "SPF/DKIM/DMARC prediction on");
    assert_eq!(c.dnsbl.client[0].zone, "zen.spamhaus.org");
    assert_eq!(c.dnsbl.sender[0].zone, "dbl.spamhaus.org");
    let g = c.greylist.as_ref().expect("greylisting on");
    assert!(g.enabled && g.skip_mynetworks && g.skip_authenticated);
    assert_eq!(
        c.ratelimit.as_ref().expect("rate limit").messages_per_day,
        500
    );
    assert_eq!(c.scoring.spam_action, smtpgate::config::SpamAction::Bounce);
    assert_eq!(
        c.http.as_ref().map(|h| h.listen.to_string()).as_deref(),
        Some("127.0.0.1:8025"),
        "the API and console on loopback"
    );
    assert!(c.dns.nameservers.is_empty(), "the system resolver");
    assert!(c.anomaly.enabled, "the anomaly hold on");
    assert_eq!(c.anomaly.notify, ["abuse@example.test"]);
}
