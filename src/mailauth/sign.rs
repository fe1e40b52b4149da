//! DKIM signing (RFC 6376) with the `[dkim]` keys: loading
//! `<selector>._domainkey.<domain>.pem` files, the TXT record each key
//! needs published (a DER SubjectPublicKeyInfo for RSA), and the signatures
//! made while evaluating a message, kept so delivery signs it once.

use crate::base64::encode as base64;
use crate::config::{Config, ConfigError};
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{DkimSigner, Done};
use mail_auth::AuthenticatedMessage;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivateKeyDer;
use std::collections::hash_map::RandomState;
use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// A signing key from `[dkim].keys_dir`.
pub(super) struct DkimKey {
    pub(super) domain: String,
    pub(super) selector: String,
    /// The TXT record to publish at `<selector>._domainkey.<domain>`.
    pub(super) record: String,
    signer: KeySigner,
}

enum KeySigner {
    Rsa(DkimSigner<RsaKey<Sha256>, Done>),
    Ed25519(DkimSigner<Ed25519Key, Done>),
}

/// The `[dkim]` keys, and the signatures made while evaluating messages
/// that delivery has not taken yet (so a message is signed once: RSA
/// signing is the most expensive thing smtpgate does).
pub(super) struct Signer {
    keys: Vec<DkimKey>,
    pending: Mutex<VecDeque<(u64, String)>>,
    hasher: RandomState,
    pub(super) made: AtomicU64,
}

/// Signatures kept for delivery; older ones (messages refused after
/// evaluation) are dropped first.
const PENDING_SIGNATURES: usize = 256;

impl Signer {
    /// Loads every `<selector>._domainkey.<domain>.pem` in `dir`.
    pub(super) fn load(
        config: &Config,
        dir: &Path,
        headers: &[String],
    ) -> Result<Signer, ConfigError> {
        let error = |message: String| config.source.error_at_key("dkim", "keys_dir", message);
        let entries = std::fs::read_dir(dir)
            .map_err(|e| error(format!("dkim.keys_dir: cannot read {}: {e}", dir.display())))?;
        let mut keys = Vec::new();
        for entry in entries {
            let path = entry
                .map_err(|e| error(format!("dkim.keys_dir: {}: {e}", dir.display())))?
                .path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let Some(stem) = name.strip_suffix(".pem") else {
                continue;
            };
            let Some((selector, domain)) = stem.split_once("._domainkey.") else {
                return Err(error(format!(
                    "dkim.keys_dir: {}: expected a name like s1._domainkey.example.com.pem",
                    path.display()
                )));
            };
            let pem = std::fs::read(&path).map_err(|e| {
                error(format!(
                    "dkim.keys_dir: cannot read {}: {e}",
                    path.display()
                ))
            })?;
            let key = DkimKey::from_pem(&pem, domain, selector, headers)
                .map_err(|why| error(format!("dkim.keys_dir: {}: {why}", path.display())))?;
            keys.push(key);
        }
        if keys.is_empty() {
            return Err(error(format!(
                "dkim.keys_dir: no <selector>._domainkey.<domain>.pem file in {}",
                dir.display()
            )));
        }
        // Deterministic choice when a domain has several selectors.
        keys.sort_by(|a, b| (&a.domain, &a.selector).cmp(&(&b.domain, &b.selector)));
        Ok(Signer {
            keys,
            pending: Mutex::new(VecDeque::new()),
            hasher: RandomState::new(),
            made: AtomicU64::new(0),
        })
    }

    /// The key for `domain`: its own, else the closest parent domain's
    /// (relaxed alignment still holds).
    pub(super) fn key_for(&self, domain: &str) -> Option<&DkimKey> {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let mut candidate = domain.as_str();
        loop {
            if let Some(key) = self.keys.iter().find(|k| k.domain == candidate) {
                return Some(key);
            }
            let (_, parent) = candidate.split_once('.')?;
            if !parent.contains('.') {
                return None;
            }
            candidate = parent;
        }
    }

    fn digest(&self, message: &[u8]) -> u64 {
        self.hasher.hash_one(message)
    }

    /// Signs `message` (as it will be delivered) and keeps the signature
    /// for [`Signer::take_or_sign`].
    pub(super) fn sign_and_keep(&self, message: &[u8]) -> Option<(&DkimKey, String)> {
        let (key, header) = self.sign(message)?;
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if pending.len() >= PENDING_SIGNATURES {
            pending.pop_front();
        }
        pending.push_back((self.digest(message), header.clone()));
        Some((key, header))
    }

    /// The signature made for `message` during its evaluation, else a new
    /// one.
    pub(super) fn take_or_sign(&self, message: &[u8]) -> Option<String> {
        let digest = self.digest(message);
        {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(i) = pending.iter().position(|(d, _)| *d == digest) {
                return pending.remove(i).map(|(_, header)| header);
            }
        }
        self.sign(message).map(|(_, header)| header)
    }

    /// Signs `message` with the key of its From domain.
    fn sign(&self, message: &[u8]) -> Option<(&DkimKey, String)> {
        let parsed = AuthenticatedMessage::parse(message)?;
        let from = parsed.from.first()?;
        let (_, domain) = from.rsplit_once('@')?;
        let key = self.key_for(domain)?;
        self.made.fetch_add(1, Ordering::Relaxed);
        let signature = match &key.signer {
            KeySigner::Rsa(s) => s.sign(message),
            KeySigner::Ed25519(s) => s.sign(message),
        };
        match signature {
            Ok(sig) => Some((key, sig.to_header())),
            Err(e) => {
                tracing::warn!(domain = %key.domain, selector = %key.selector, error = %e, "DKIM signing failed; sending unsigned");
                None
            }
        }
    }
}

impl DkimKey {
    fn from_pem(
        pem: &[u8],
        domain: &str,
        selector: &str,
        headers: &[String],
    ) -> Result<DkimKey, String> {
        let der = PrivateKeyDer::from_pem_slice(pem)
            .map_err(|e| format!("not a PEM private key: {e}"))?;
        let domain = domain.to_ascii_lowercase();
        let (signer, record) = match &der {
            PrivateKeyDer::Pkcs1(_) => rsa_signer(der.clone_key(), &domain, selector, headers)?,
            PrivateKeyDer::Pkcs8(pkcs8) => {
                match Ed25519Key::from_pkcs8_maybe_unchecked_der(pkcs8.secret_pkcs8_der()) {
                    Ok(key) => {
                        let record = format!("v=DKIM1; k=ed25519; p={}", base64(&key.public_key()));
                        let signer = DkimSigner::from_key(key)
                            .domain(domain.clone())
                            .selector(selector)
                            .headers(headers.iter().cloned());
                        (KeySigner::Ed25519(signer), record)
                    }
                    Err(_) => rsa_signer(der.clone_key(), &domain, selector, headers)?,
                }
            }
            _ => return Err("expected an RSA or Ed25519 private key".into()),
        };
        Ok(DkimKey {
            domain,
            selector: selector.to_string(),
            record,
            signer,
        })
    }
}

fn rsa_signer(
    der: PrivateKeyDer<'static>,
    domain: &str,
    selector: &str,
    headers: &[String],
) -> Result<(KeySigner, String), String> {
    let key = RsaKey::<Sha256>::from_key_der(der).map_err(|e| format!("bad RSA key: {e}"))?;
    let record = format!("v=DKIM1; k=rsa; p={}", base64(&rsa_spki(&key.public_key())));
    let signer = DkimSigner::from_key(key)
        .domain(domain.to_string())
        .selector(selector)
        .headers(headers.iter().cloned());
    Ok((KeySigner::Rsa(signer), record))
}

/// Wraps a PKCS#1 RSAPublicKey in a SubjectPublicKeyInfo, the form DKIM
/// records publish (RFC 6376 §3.6.1).
fn rsa_spki(pkcs1: &[u8]) -> Vec<u8> {
    const ALGORITHM: &[u8] = &[
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let mut bit_string = vec![0u8];
    bit_string.extend_from_slice(pkcs1);
    let mut body = ALGORITHM.to_vec();
    body.extend(der_tlv(0x03, &bit_string));
    der_tlv(0x30, &body)
}

fn der_tlv(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = value.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(value);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), expected);
        }
    }

    #[test]
    fn der_lengths_use_long_form_past_127() {
        assert_eq!(der_tlv(0x04, &[1, 2]), [0x04, 2, 1, 2]);
        let long = der_tlv(0x04, &[0; 300]);
        assert_eq!(&long[..4], &[0x04, 0x82, 0x01, 0x2c]);
        assert_eq!(long.len(), 304);
    }
}
