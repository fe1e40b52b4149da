//! The passwd-file reader: hostile lines give `file:line:col` errors and
//! never a panic (issue 17), and a reload that fails keeps the running
//! credentials.

mod common;

use common::sink::{Sink, SinkConfig};
use smtpgate::passwd::Credentials;
use std::path::Path;

fn parse(text: &str) -> Result<Credentials, String> {
    Credentials::parse_passwd(Path::new("passwd"), text).map_err(|e| e.to_string())
}

/// The inputs that panicked: a name led by U+3000 (trimmed as whitespace
/// before the offset was computed), and `7e c2 a0 3a` (`~`, U+00A0, `:`).
#[test]
fn multibyte_whitespace_around_the_name_is_an_error_with_its_place() {
    let e = parse("\u{3000}a:x\n").unwrap_err();
    assert!(e.starts_with("passwd:1:"), "{e}");
    let bytes = String::from_utf8(vec![0x7e, 0xc2, 0xa0, 0x3a]).unwrap();
    let e = parse(&bytes).unwrap_err();
    assert!(e.starts_with("passwd:1:"), "{e}");
    let e = parse(&format!("ok:{{PLAIN}}pw\n\u{a0}b:\u{3000}{{PLAIN}}\n")).unwrap_err();
    assert!(e.starts_with("passwd:2:"), "{e}");
}

/// A small deterministic generator (xorshift), so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

#[test]
fn random_unicode_lines_never_panic() {
    let pieces = [
        ":",
        ":",
        "{",
        "}",
        "$",
        "$1$",
        "$5$",
        "$6$",
        "$2y$",
        "{PLAIN}",
        "{CRYPT}",
        "{SSHA}",
        "{MD5-CRYPT}",
        "{SHA512}",
        "{",
        " ",
        "\t",
        "\r",
        "#",
        "a",
        "Z",
        "9",
        "é",
        "\u{3000}",
        "\u{a0}",
        "\u{feff}",
        "\u{2028}",
        "\u{85}",
        "\0",
        "𝄞",
        "=",
        "/",
        "+",
        ".",
        "!",
        "*",
    ];
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    for _ in 0..20_000 {
        let mut text = String::new();
        for _ in 0..1 + rng.next() % 3 {
            for _ in 0..rng.next() % 12 {
                match rng.next() % 8 {
                    0 => text.push(char::from_u32((rng.next() % 0x11_0000) as u32).unwrap_or('?')),
                    _ => text.push_str(rng.pick(&pieces)),
                }
            }
            text.push('\n');
        }
        let outcome = std::panic::catch_unwind(|| parse(&text));
        match outcome {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => assert!(e.starts_with("passwd:"), "{e:?} for {text:?}"),
            Err(_) => panic!("the reader panicked on {text:?}"),
        }
    }
}

/// SIGHUP after such a line was appended used to kill the gateway; now the
/// reload fails with the place and the running users stay.
#[tokio::test]
async fn a_bad_passwd_line_on_reload_keeps_the_running_set() {
    let sink = Sink::start(SinkConfig::default()).await;
    let dir = std::env::temp_dir().join(format!("smtpgate-passwd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("passwd");
    std::fs::write(&file, "alice:{PLAIN}secret\n").unwrap();
    let extra = format!("[auth]\npasswd_file = \"{}\"\n", file.display());
    let text = common::config_text(sink.addr, "", &extra);
    let gw = common::start(&text).await;
    std::fs::write(&file, "alice:{PLAIN}secret\n\u{3000}a:x\n").unwrap();
    let e = gw
        .handle
        .reload_from_text(&text)
        .err()
        .expect("reload refused");
    let e = e.to_string();
    assert!(
        e.starts_with(&format!("{}:2:", file.display())),
        "error names the file and line: {e}"
    );
    let creds = gw.handle.app().credentials.clone().expect("running set");
    assert!(creds.verify("alice", "secret"));
    std::fs::remove_dir_all(&dir).unwrap();
}
