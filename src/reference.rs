//! Message references: the short id (e.g. `K3F9Q2ZP`) that ties a log line,
//! a Received header, a 5xx reply and a SPAM alert together.

use ring::rand::{SecureRandom, SystemRandom};

/// Crockford-style base32 alphabet without look-alikes (no I, L, O, U).
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A new random 8-character reference (40 bits).
pub fn new_reference() -> String {
    let mut bytes = [0u8; 8];
    if SystemRandom::new().fill(&mut bytes).is_err() {
        // The OS RNG failing is not worth refusing mail over: fall back to
        // the clock, which is unique enough for a log reference.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        bytes = nanos.to_le_bytes();
    }
    bytes.iter().map(|b| ALPHABET[usize::from(b % 32)] as char).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn references_are_eight_base32_chars_and_differ() {
        let a = super::new_reference();
        let b = super::new_reference();
        assert_eq!(a.len(), 8);
        assert!(a.bytes().all(|c| super::ALPHABET.contains(&c)));
        assert_ne!(a, b);
    }
}
