//! The passwd-file reader: every scheme dovecot files hold, checked against
//! vectors made by other implementations (issue 16); hostile lines give
//! `file:line:col` errors and never a panic, and a reload that fails keeps
//! the running credentials (issue 17).

mod common;

use common::sink::{Sink, SinkConfig};
use smtpgate::passwd::Credentials;
use std::path::Path;

fn parse(text: &str) -> Result<Credentials, String> {
    Credentials::parse_passwd(Path::new("passwd"), text).map_err(|e| e.to_string())
}

/// (passwd line, the command that made it); every password is "secret".
const VECTORS: &[(&str, &str)] = &[
    ("md5crypt:{MD5-CRYPT}$1$V8MYtxoJ$LsTSHDCpJK4wcid4YvpHm/", "doveadm pw -s MD5-CRYPT -p secret"),
    ("md5:{MD5}$1$uMInfkM2$rYtgkuhcD/DvbvO5YJ7RG1", "doveadm pw -s MD5 -p secret"),
    ("crypt1:{CRYPT}$1$saltsalt$9xy1btjgzLYfb7hivXtC//", "openssl passwd -1 -salt saltsalt secret"),
    ("crypt5:{CRYPT}$5$H1yVEYZLzSr.ZHfE$.uoM34e2OxdlCIKumxyl3RmQXDjqlWDBaLTAfRU4.FA", "doveadm pw -s SHA256-CRYPT -p secret"),
    ("crypt6:{CRYPT}$6$LaXYECuw5khxg4Tg$aZwyWPK/1XqmueWUxGC7n2uGJVnvbnhTeDqxLL.tNwe2E7MpPbrYZGj9dwEGUbNq7BTeuC3GIdYv6OOlRJhPS1", "doveadm pw -s SHA512-CRYPT -p secret"),
    ("crypt2y:{CRYPT}$2y$05$NxY1CQqUVMxXT7y4w6ZB2.N//vtWqElJKMm8Wq7YEm50PjUfcmyG.", "doveadm pw -s CRYPT -p secret"),
    ("crypt2b:{CRYPT}$2b$05$/lcVpNX36gYd3xtmhOKSeO/1I21QaJdKhezYfqCREaLCPPC0NNqhS", "doveadm pw -s BLF-CRYPT -p secret, $2y$ written as $2b$ (same algorithm)"),
    ("bare1:$1$saltsalt$9xy1btjgzLYfb7hivXtC//", "openssl passwd -1 -salt saltsalt secret"),
    ("bare6:$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1::::", "openssl passwd -6 -salt saltsalt secret"),
    ("bare2y:$2y$05$/lcVpNX36gYd3xtmhOKSeO/1I21QaJdKhezYfqCREaLCPPC0NNqhS", "doveadm pw -s BLF-CRYPT -p secret"),
    ("ssha512:{SSHA512}AAjWivcDZNOTZ7T68iTtfFlUbsCrKwAuF5m0DoyL5rXHhSXMl4V6OOcJIbNYE00N36E6WBr3MBeYU/FQle2MUg4YIFs=", "doveadm pw -s SSHA512 -p secret"),
    ("ssha512py:{SSHA512}aCu7JRc+kLsuEmFs1zTY+AiP7DSGnjjG+dH28Dp+E5usqoAixeTPihKqZmkWal4mUfp63tqvCAkFV1LKTDFH6XNhbHRzYWx0", "python3: b64encode(sha512(b'secret'+b'saltsalt').digest()+b'saltsalt')"),
    ("ssha512hex:{SSHA512.HEX}d7921194048b15d93dcdfe75085821471c6dffba60f73364e0026abacb2343ad0589ce8173f823f486e785869f7407738b89c39e58605ff0874a26abb2affd9c1104342c", "doveadm pw -s SSHA512.HEX -p secret"),
    ("ssha256:{SSHA256}9ewQpsxSVjncFA+FPOtPVbjbEa4Litcg1Qapc6bLRcJf0eSe", "doveadm pw -s SSHA256 -p secret"),
    ("ssha256py:{SSHA256}oBmrdHcA6OZEkkCLeXh71YAerbvhXz1qqwjrPsXmEtNzYWx0c2FsdA==", "python3: b64encode(sha256(b'secret'+b'saltsalt').digest()+b'saltsalt')"),
    ("ssha:{SSHA}C2wYGTPsUGy8eZKGw/D++BPnNGAtcc7R", "doveadm pw -s SSHA -p secret"),
    ("sshahex:{SSHA.HEX}1c0bf052b09980d0a60d0f22db1414433f3ed410eb142d4f", "doveadm pw -s SSHA.HEX -p secret"),
    ("sha512:{SHA512}vSsar3708Jvp9Szi2NWZZ02Bqp1qRCFpbcTZPdBhnWgs5WtNZKnvCXdhztmeD2cmW192CF5bDufKRpayrW/isg==", "doveadm pw -s SHA512 -p secret"),
    ("sha256:{SHA256}K7gNU3sdo+OL0wNhqoVWhr3g6s1xYv72ol/pe/Unols=", "doveadm pw -s SHA256 -p secret"),
    ("sha256hex:{SHA256}2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b", "python3: sha256(b'secret').hexdigest() (doveadm pw -t verifies it)"),
    ("sha256hex2:{SHA256.HEX}2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b", "doveadm pw -s SHA256.HEX -p secret"),
    ("sha:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=", "doveadm pw -s SHA -p secret"),
    ("plainmd5:{PLAIN-MD5}5ebe2294ecd0e0f08eab7690d2a6ee69", "doveadm pw -s PLAIN-MD5 -p secret"),
    ("ldapmd5:{LDAP-MD5}Xr4ilOzQ4PCOq3aQ0qbuaQ==", "doveadm pw -s LDAP-MD5 -p secret"),
    ("argon:{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$UkUPLa2mIaIC74tBzaSVBA$bQTFwVjzabskeG327kF1O1xNyaCMzYwj/CS1+kPAv7A", "doveadm pw -s ARGON2ID -p secret"),
];

#[test]
fn every_scheme_verifies_vectors_made_elsewhere() {
    let text: String = VECTORS
        .iter()
        .map(|(line, _)| format!("{line}\n"))
        .collect();
    let creds = parse(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(creds.len(), VECTORS.len());
    for (line, made_by) in VECTORS {
        let user = line.split(':').next().unwrap();
        assert!(creds.verify(user, "secret"), "{user} ({made_by})");
        assert!(!creds.verify(user, "secreT"), "{user}: wrong password");
        assert!(!creds.verify(user, ""), "{user}: empty password");
    }
}

#[test]
fn locked_accounts_load_and_never_match() {
    let creds = parse("a:!$6$saltsalt$TVLlQ\nb:*\nc:{CRYPT}!x\n").unwrap();
    for user in ["a", "b", "c"] {
        assert!(!creds.verify(user, "secret"), "{user}");
        assert!(!creds.verify(user, ""), "{user}");
    }
}

#[test]
fn unusable_values_name_their_place_and_what_was_expected() {
    let cases = [
        ("a:secret\n", "passwd:1:3: user a: unsupported crypt hash"),
        ("a:\n", "passwd:1:3: user a: empty password"),
        (
            "a:$y$j9T$salt$hash\n",
            "passwd:1:3: user a: unsupported crypt hash",
        ),
        (
            "a:{MD5-CRYPT}$6$x\n",
            "passwd:1:3: user a: expected a hash starting with $1$",
        ),
        (
            "a:{MD5-CRYPT}$1$salt$short\n",
            "passwd:1:3: user a: malformed MD5-crypt hash",
        ),
        (
            "a:{SHA256}c2VjcmV0\n",
            "passwd:1:3: user a: the decoded value has 6 bytes: expected exactly 32",
        ),
        ("a:{SSHA512}!!!!\n", "passwd:1:3: user a: expected base64"),
        (
            "a:{SHA.HEX}zz\n",
            "passwd:1:3: user a: expected hexadecimal digits",
        ),
        (
            "a:{SSHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\n",
            "passwd:1:3: user a: the decoded value has 20 bytes: expected more than 20",
        ),
        (
            "ok:{PLAIN}x\n  bob :{NTLM}x\n",
            "passwd:2:8: user bob: unsupported scheme NTLM",
        ),
    ];
    for (text, want) in cases {
        let e = parse(text).unwrap_err();
        assert!(e.starts_with(want), "{text:?}: {e}");
    }
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
    let e = parse("ok:{PLAIN}pw\n\u{a0}b:\u{3000}{PLAIN}\n").unwrap_err();
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
        .expect_err("reload refused");
    let e = e.to_string();
    assert!(
        e.starts_with(&format!("{}:2:", file.display())),
        "error names the file and line: {e}"
    );
    let creds = gw.handle.app().credentials.clone().expect("running set");
    assert!(creds.verify("alice", "secret"));
    std::fs::remove_dir_all(&dir).unwrap();
}
