//! SMTP AUTH credentials: a dovecot-style passwd-file
//! (`user:{SCHEME}hash[:uid:gid:...]`, or a bare crypt hash as dovecot
//! reads it; schemes in `passwd/scheme.rs`; `#` comments) and the
//! sender_login_maps (TOML: login = ["address", "@domain", ...]). Both are
//! loaded in `App::build`, so SIGHUP reloads them. Verifying a hash is CPU
//! work: callers run [`Credentials::verify`] on a blocking thread.

mod scheme;

use crate::config::{line_col, ConfigError};
use scheme::Hash;
use std::collections::HashMap;
use std::path::Path;

/// The users who may authenticate, and which senders each owns.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    users: HashMap<String, Hash>,
    owners: Option<Owners>,
    /// The costliest entry, checked for unknown users so that the reply
    /// time does not tell which logins exist.
    decoy: Option<Hash>,
}

/// Who may use which sender address.
#[derive(Debug, Clone)]
enum Owners {
    /// Postfix's `smtpd_sender_login_maps` direction: `address login,...`
    /// (`@domain` keys for a whole domain).
    BySender(crate::maps::SenderLogins),
    /// The old TOML form, `login = ["address", "@domain"]` (deprecated).
    ByLogin(HashMap<String, Vec<String>>),
}

fn invalid(path: &Path, text: &str, offset: usize, message: String) -> ConfigError {
    let (line, col) = line_col(text, offset);
    ConfigError::Invalid {
        path: path.display().to_string(),
        line,
        col,
        message,
    }
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })
}

impl Credentials {
    /// Loads the passwd-file and, if given, the sender_login_maps file.
    pub fn load(passwd: &Path, login_maps: Option<&Path>) -> Result<Credentials, ConfigError> {
        let text = read(passwd)?;
        let mut creds = Credentials::parse_passwd(passwd, &text)?;
        if let Some(maps) = login_maps {
            let text = read(maps)?;
            if maps.extension().is_some_and(|e| e == "toml") {
                tracing::warn!(
                    file = %maps.display(),
                    "sender_login_maps in the TOML form (login = [addresses]) is deprecated: \
                     use Postfix's direction, one `address login[,login...]` a line"
                );
                let table: HashMap<String, Vec<String>> = crate::config::parse_toml(maps, &text)?;
                creds.owners = Some(Owners::ByLogin(
                    table
                        .into_iter()
                        .map(|(login, addrs)| {
                            let addrs = addrs.into_iter().map(|a| a.to_ascii_lowercase()).collect();
                            (login.to_ascii_lowercase(), addrs)
                        })
                        .collect(),
                ));
            } else {
                let table = crate::maps::SenderLogins::parse(maps, &text)?;
                creds.owners = Some(Owners::BySender(table));
            }
        }
        Ok(creds)
    }

    /// Parses passwd-file text (errors name `path:line:col`).
    pub fn parse_passwd(path: &Path, text: &str) -> Result<Credentials, ConfigError> {
        let mut users = HashMap::new();
        let mut offset = 0;
        for raw in text.split_inclusive('\n') {
            let line = raw.trim_end_matches(['\r', '\n']);
            let at = offset;
            offset += raw.len();
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            let mut fields = line.splitn(3, ':');
            let user_field = fields.next().unwrap_or("");
            // Offsets come from the raw field, never from its trimmed
            // form: a multi-byte character trimmed away must not shift
            // them off a character boundary.
            let user = user_field.trim_matches(|c: char| c.is_ascii_whitespace());
            let Some(password) = fields.next() else {
                return Err(invalid(path, text, at, "expected user:{SCHEME}hash".into()));
            };
            if user.is_empty() {
                return Err(invalid(path, text, at, "empty user name".into()));
            }
            let password_at = at + user_field.len() + 1;
            let hash = Hash::parse(password)
                .map_err(|why| invalid(path, text, password_at, format!("user {user}: {why}")))?;
            users.insert(user.to_ascii_lowercase(), hash);
        }
        let decoy = users.values().max_by_key(|h| h.cost()).cloned();
        Ok(Credentials {
            users,
            owners: None,
            decoy,
        })
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// True when nobody can log in.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// True when `password` is `user`'s. Slow on purpose (the hash's cost):
    /// run it on a blocking thread.
    pub fn verify(&self, user: &str, password: &str) -> bool {
        let Some(entry) = self.users.get(&user.to_ascii_lowercase()) else {
            if let Some(decoy) = &self.decoy {
                let _ = decoy.check(password);
            }
            return false;
        };
        entry.check(password)
    }

    /// With sender_login_maps: whether `login` may send as `sender`
    /// (an exact address, or `@domain`). Without maps: always.
    pub fn owns(&self, login: &str, sender: &str) -> bool {
        let Some(owners) = &self.owners else {
            return true;
        };
        let owners = match owners {
            Owners::BySender(table) => return table.allows(sender, &login.to_ascii_lowercase()),
            Owners::ByLogin(owners) => owners,
        };
        let sender = sender.to_ascii_lowercase();
        let domain = sender.rsplit_once('@').map_or("", |(_, d)| d);
        owners
            .get(&login.to_ascii_lowercase())
            .is_some_and(|addrs| {
                addrs
                    .iter()
                    .any(|a| *a == sender || a.strip_prefix('@').is_some_and(|d| d == domain))
            })
    }

    /// True when sender_login_maps are configured.
    pub fn has_login_maps(&self) -> bool {
        self.owners.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known vectors, each made by another implementation (see
    /// tests/fixtures/auth/README): openssl passwd -6/-5, htpasswd -B,
    /// the argon2 reference CLI.
    const FILE: &str = "\
# test users
sha512:{SHA512-CRYPT}$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1
sha256:{SHA256-CRYPT}$5$saltsalt$0IyaXrmV7.sGNS6tirgqHLqX/G.FBvgkYA.lpPdS5sA::::
blf:{BLF-CRYPT}$2y$05$1UzNx9erAo6mkUHsw.RP9u0IZ17aLxgVotOSJ.uphaAdUzGBS.s4y
argon:{ARGON2ID}$argon2id$v=19$m=4096,t=2,p=1$c2FsdHNhbHRzYWx0$4Ez6TmL0LNAaYIVQYfmYb5V6rp5vpwWdrxyFMKb1Tp8
plain:{PLAIN}secret
";

    #[test]
    fn every_scheme_verifies_its_known_vector() {
        let c = Credentials::parse_passwd(Path::new("passwd"), FILE).unwrap();
        for user in ["sha512", "sha256", "blf", "argon", "plain", "SHA512"] {
            assert!(c.verify(user, "secret"), "{user}");
            assert!(!c.verify(user, "Secret"), "{user} wrong password");
        }
        assert!(!c.verify("nobody", "secret"));
    }

    #[test]
    fn bad_lines_name_file_and_line() {
        let e =
            Credentials::parse_passwd(Path::new("passwd"), "a:{PLAIN}x\nb:{NTLM}x\n").unwrap_err();
        assert!(e.to_string().starts_with("passwd:2:3: "), "{e}");
        assert!(e.to_string().contains("unsupported scheme NTLM"), "{e}");
        let e = Credentials::parse_passwd(Path::new("passwd"), "a\n").unwrap_err();
        assert!(
            e.to_string()
                .contains("passwd:1:1: expected user:{SCHEME}hash"),
            "{e}"
        );
    }

    #[test]
    fn login_maps_in_postfix_direction_from_a_file() {
        let dir = std::env::temp_dir().join(format!("smtpgate-logins-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (passwd, maps) = (dir.join("passwd"), dir.join("sender_logins"));
        std::fs::write(&passwd, "alice:{PLAIN}x\nbob:{PLAIN}y\n").unwrap();
        std::fs::write(
            &maps,
            "# address  logins\nalice@example.test alice\n@shop.test alice, Bob\n",
        )
        .unwrap();
        let c = Credentials::load(&passwd, Some(&maps)).unwrap();
        assert!(c.has_login_maps());
        assert!(c.owns("Alice", "ALICE@example.test"));
        assert!(
            c.owns("bob", "news@shop.test"),
            "a domain entry, logins any case"
        );
        assert!(!c.owns("bob", "alice@example.test"));
        assert!(!c.owns("alice", "x@sub.shop.test"));
        std::fs::write(&maps, "alice@example.test\n").unwrap();
        let err = Credentials::load(&passwd, Some(&maps))
            .unwrap_err()
            .to_string();
        assert!(
            err.ends_with("sender_logins:1:19: expected `alice@example.test login[,login...]`"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn login_maps_addresses_and_domains() {
        let mut c = Credentials::default();
        assert!(
            c.owns("alice", "anyone@anywhere.test"),
            "no maps: no restriction"
        );
        c.owners = Some(Owners::ByLogin(HashMap::from([(
            "alice".to_string(),
            vec!["alice@example.test".to_string(), "@shop.test".to_string()],
        )])));
        assert!(c.owns("Alice", "ALICE@example.test"));
        assert!(c.owns("alice", "news@shop.test"));
        assert!(!c.owns("alice", "bob@example.test"));
        assert!(!c.owns("alice", "x@sub.shop.test"));
        assert!(!c.owns("bob", "bob@example.test"));
    }
}
