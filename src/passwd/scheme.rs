//! The password schemes of a dovecot passwd-file: `{SCHEME}` names, the
//! crypt formats told apart by prefix (dovecot's default scheme for a line
//! without `{SCHEME}` is CRYPT), the salted and plain digests, MD5-crypt.
//! A stored value is checked once, when the file loads; verification is
//! constant-time in the compared bytes.

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use md5::{Digest, Md5};
use ring::digest;

/// A digest algorithm of the `{SHA*}` / `{SSHA*}` / `{PLAIN-MD5}` schemes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Algo {
    Md5,
    Sha1,
    Sha256,
    Sha512,
}

impl Algo {
    fn len(self) -> usize {
        match self {
            Algo::Md5 => 16,
            Algo::Sha1 => 20,
            Algo::Sha256 => 32,
            Algo::Sha512 => 64,
        }
    }

    fn hash(self, parts: &[&[u8]]) -> Vec<u8> {
        let ring_algo = match self {
            Algo::Md5 => {
                let mut h = Md5::new();
                parts.iter().for_each(|p| h.update(p));
                return h.finalize().to_vec();
            }
            Algo::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
            Algo::Sha256 => &digest::SHA256,
            Algo::Sha512 => &digest::SHA512,
        };
        let mut ctx = digest::Context::new(ring_algo);
        parts.iter().for_each(|p| ctx.update(p));
        ctx.finish().as_ref().to_vec()
    }
}

/// A crypt(3) format, told apart by its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Crypt {
    Md5,
    Sha256,
    Sha512,
    Blowfish,
    Argon2id,
}

/// A stored password, ready to be checked.
#[derive(Debug, Clone)]
pub(super) enum Hash {
    /// `{PLAIN}` / `{CLEARTEXT}`.
    Plain(String),
    /// A crypt string (`$1$`, `$5$`, `$6$`, `$2y$`, `$argon2id$`).
    Crypt(Crypt, String),
    /// `{SHA*}`, `{PLAIN-MD5}` (no salt) or `{SSHA*}` (salt after the digest).
    Digest {
        algo: Algo,
        salted: bool,
        raw: Vec<u8>,
    },
    /// A disabled account (`!...` or `*...` in place of a crypt hash):
    /// no password matches.
    Locked,
}

impl Hash {
    /// Reads the password field: `{SCHEME}value`, or a bare crypt value.
    /// The error says what was expected; the caller adds the place.
    pub(super) fn parse(field: &str) -> Result<Hash, String> {
        let Some(rest) = field.strip_prefix('{') else {
            return crypt(field);
        };
        let (name, value) = rest
            .split_once('}')
            .ok_or_else(|| "unclosed {SCHEME}".to_string())?;
        let upper = name.to_ascii_uppercase();
        let (base, encoding) = match upper.rsplit_once('.') {
            Some((base, enc @ ("HEX" | "B64" | "BASE64"))) => (base, Some(enc == "HEX")),
            _ => (upper.as_str(), None),
        };
        let digest = |algo, salted| decode_digest(algo, salted, value, encoding);
        match base {
            "PLAIN" | "CLEARTEXT" => Ok(Hash::Plain(value.to_string())),
            "CRYPT" => crypt(value),
            "MD5-CRYPT" => crypt_as(value, Crypt::Md5, "$1$"),
            "SHA256-CRYPT" => crypt_as(value, Crypt::Sha256, "$5$"),
            "SHA512-CRYPT" => crypt_as(value, Crypt::Sha512, "$6$"),
            "BLF-CRYPT" => crypt_as(value, Crypt::Blowfish, "$2"),
            "ARGON2ID" => crypt_as(value, Crypt::Argon2id, "$argon2id$"),
            // Dovecot's MD5 is MD5-crypt when it looks like it, else PLAIN-MD5.
            "MD5" if value.starts_with("$1$") => crypt_as(value, Crypt::Md5, "$1$"),
            "MD5" | "PLAIN-MD5" | "LDAP-MD5" => digest(Algo::Md5, false),
            "SHA" | "SHA1" => digest(Algo::Sha1, false),
            "SHA256" => digest(Algo::Sha256, false),
            "SHA512" => digest(Algo::Sha512, false),
            "SSHA" => digest(Algo::Sha1, true),
            "SSHA256" => digest(Algo::Sha256, true),
            "SSHA512" => digest(Algo::Sha512, true),
            _ => Err(format!(
                "unsupported scheme {name}: expected CRYPT, MD5-CRYPT, SHA256-CRYPT, SHA512-CRYPT, BLF-CRYPT, ARGON2ID, SSHA512, SSHA256, SSHA, SHA512, SHA256, SHA, PLAIN-MD5 or PLAIN"
            )),
        }
    }

    /// Rough order of verification cost (the costliest entry is the decoy).
    pub(super) fn cost(&self) -> u8 {
        match self {
            Hash::Plain(_) | Hash::Digest { .. } | Hash::Locked => 0,
            Hash::Crypt(Crypt::Md5 | Crypt::Sha256, _) => 1,
            Hash::Crypt(Crypt::Sha512, _) => 2,
            Hash::Crypt(Crypt::Blowfish, _) => 3,
            Hash::Crypt(Crypt::Argon2id, _) => 4,
        }
    }

    /// True when `password` matches.
    pub(super) fn check(&self, password: &str) -> bool {
        let pw = password.as_bytes();
        match self {
            Hash::Plain(p) => constant_time_eq(p.as_bytes(), pw),
            Hash::Crypt(Crypt::Md5, h) => constant_time_eq(
                md5_crypt(pw, md5_salt(h).as_bytes()).as_bytes(),
                h.as_bytes(),
            ),
            Hash::Crypt(Crypt::Sha512, h) => sha_crypt::sha512_check(password, h).is_ok(),
            Hash::Crypt(Crypt::Sha256, h) => sha_crypt::sha256_check(password, h).is_ok(),
            Hash::Crypt(Crypt::Blowfish, h) => bcrypt::verify(password, h).unwrap_or(false),
            Hash::Crypt(Crypt::Argon2id, h) => PasswordHash::new(h)
                .is_ok_and(|h| argon2::Argon2::default().verify_password(pw, &h).is_ok()),
            Hash::Digest { algo, salted, raw } => {
                let (expected, salt) = raw.split_at(algo.len());
                let salt = if *salted { salt } else { &[] };
                constant_time_eq(&algo.hash(&[pw, salt]), expected)
            }
            Hash::Locked => false,
        }
    }
}

/// A bare crypt value: the format from its prefix, as crypt(3) does.
fn crypt(value: &str) -> Result<Hash, String> {
    if value.starts_with(['!', '*']) {
        return Ok(Hash::Locked);
    }
    let kind = match value {
        v if v.starts_with("$1$") => Crypt::Md5,
        v if v.starts_with("$5$") => Crypt::Sha256,
        v if v.starts_with("$6$") => Crypt::Sha512,
        v if ["$2a$", "$2b$", "$2x$", "$2y$"]
            .iter()
            .any(|p| v.starts_with(p)) =>
        {
            Crypt::Blowfish
        }
        v if v.starts_with("$argon2id$") => Crypt::Argon2id,
        "" => return Err("empty password: expected {SCHEME}hash or a crypt hash".into()),
        _ => return Err(
            "unsupported crypt hash: expected $1$, $5$, $6$, $2y$/$2b$/$2a$ or a {SCHEME} prefix"
                .into(),
        ),
    };
    crypt_as(value, kind, "$")
}

/// A crypt value that must have `prefix` (and, for `$1$`, a well-formed
/// salt and hash).
fn crypt_as(value: &str, kind: Crypt, prefix: &str) -> Result<Hash, String> {
    if !value.starts_with(prefix) {
        return Err(format!("expected a hash starting with {prefix}"));
    }
    if kind == Crypt::Md5 {
        let hash = value.rsplit('$').next().unwrap_or("");
        let well_formed = value.matches('$').count() == 3
            && md5_salt(value).len() + 4 + hash.len() == value.len()
            && hash.len() == 22
            && hash.bytes().all(|b| CRYPT64.contains(&b));
        if !well_formed {
            return Err("malformed MD5-crypt hash: expected $1$salt$ and 22 characters".into());
        }
    }
    Ok(Hash::Crypt(kind, value.to_string()))
}

/// The raw digest (and salt) of a `{SHA*}` value: base64, or hex when told
/// (`.HEX`) or when it has exactly the hex length of an unsalted digest.
fn decode_digest(algo: Algo, salted: bool, value: &str, hex: Option<bool>) -> Result<Hash, String> {
    let looks_hex = !salted && value.len() == 2 * algo.len();
    let raw = if hex.unwrap_or(looks_hex) {
        decode_hex(value).ok_or("expected hexadecimal digits")?
    } else {
        crate::base64::decode(value).ok_or("expected base64")?
    };
    let ok = if salted {
        raw.len() > algo.len()
    } else {
        raw.len() == algo.len()
    };
    if !ok {
        let want = if salted { "more than" } else { "exactly" };
        return Err(format!(
            "the decoded value has {} bytes: expected {want} {} (the digest{})",
            raw.len(),
            algo.len(),
            if salted { ", then the salt" } else { "" }
        ));
    }
    Ok(Hash::Digest { algo, salted, raw })
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect()
}

const CRYPT64: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The salt of `$1$salt$hash` (at most 8 characters, as crypt(3) reads it).
fn md5_salt(hash: &str) -> &str {
    let rest = hash.strip_prefix("$1$").unwrap_or("");
    let salt = rest.split('$').next().unwrap_or("");
    salt.get(..8).unwrap_or(salt)
}

/// Poul-Henning Kamp's MD5-crypt (FreeBSD, glibc `$1$`).
fn md5_crypt(pw: &[u8], salt: &[u8]) -> String {
    let alt = Algo::Md5.hash(&[pw, salt, pw]);
    let mut ctx = Md5::new();
    ctx.update(pw);
    ctx.update(b"$1$");
    ctx.update(salt);
    for chunk in pw.chunks(16) {
        ctx.update(&alt[..chunk.len()]);
    }
    let mut i = pw.len();
    while i > 0 {
        ctx.update(if i & 1 == 1 { &[0u8][..] } else { &pw[..1] });
        i >>= 1;
    }
    let mut f = ctx.finalize().to_vec();
    for round in 0..1000 {
        let mut ctx = Md5::new();
        ctx.update(if round & 1 == 1 { pw } else { &f[..] });
        if round % 3 != 0 {
            ctx.update(salt);
        }
        if round % 7 != 0 {
            ctx.update(pw);
        }
        ctx.update(if round & 1 == 1 { &f[..] } else { pw });
        f = ctx.finalize().to_vec();
    }
    let mut out = format!("$1${}$", String::from_utf8_lossy(salt));
    let mut put = |mut v: u32, n: usize| {
        for _ in 0..n {
            out.push(CRYPT64[(v & 0x3f) as usize] as char);
            v >>= 6;
        }
    };
    for (a, b, c) in [(0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)] {
        put(
            (u32::from(f[a]) << 16) | (u32::from(f[b]) << 8) | u32::from(f[c]),
            4,
        );
    }
    put(u32::from(f[11]), 2);
    out
}

/// Equal length and bytes, in time independent of where they differ.
pub(super) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_crypt_matches_openssl() {
        // openssl passwd -1 -salt saltsalt secret
        let h = "$1$saltsalt$9xy1btjgzLYfb7hivXtC//";
        assert_eq!(md5_crypt(b"secret", md5_salt(h).as_bytes()), h);
        // openssl passwd -1 -salt ab ''  (empty password, short salt)
        assert_eq!(md5_crypt(b"", b"ab"), "$1$ab$rn6aQS/o7141mj179E/zA.");
        // openssl passwd -1 -salt ab xxxx...x (40: more than one 16-byte block)
        let long = [b'x'; 40];
        assert_eq!(md5_crypt(&long, b"ab"), "$1$ab$jtRvJqDWXi2dyYBnMmGYN/");
    }
}
