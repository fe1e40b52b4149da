//! Message references: the short id (e.g. `K3F9Q2ZP`) that ties a log line,
//! a Received header, a 5xx reply and a SPAM alert together.
//!
//! A process-wide counter, seeded once from the OS RNG and scrambled by a
//! bijective mix, gives unique, unguessable-looking references without a
//! system call per message.

use ring::rand::{SecureRandom, SystemRandom};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// Crockford-style base32 alphabet without look-alikes (no I, L, O, U).
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

fn counter() -> &'static AtomicU64 {
    static COUNTER: OnceLock<AtomicU64> = OnceLock::new();
    COUNTER.get_or_init(|| {
        let mut seed = [0u8; 8];
        if SystemRandom::new().fill(&mut seed).is_err() {
            // No OS RNG is not worth refusing mail over: the clock will do.
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            seed = nanos.to_le_bytes();
        }
        AtomicU64::new(u64::from_le_bytes(seed))
    })
}

/// A bijection on 40-bit values (odd multiply and xor-shifts modulo 2^40):
/// consecutive counters give unrelated-looking references, never the same.
fn scramble(mut x: u64) -> u64 {
    const MASK: u64 = (1 << 40) - 1;
    x &= MASK;
    x = (x ^ (x >> 19)).wrapping_mul(0x9E37_79B9_7F4A_7C15 | 1) & MASK;
    x = (x ^ (x >> 21)).wrapping_mul(0xC2B2_AE3D_27D4_EB4F | 1) & MASK;
    x ^ (x >> 17)
}

/// A new 8-character reference (40 bits; unique for 2^40 messages per run).
pub fn new_reference() -> String {
    let value = scramble(counter().fetch_add(1, Ordering::Relaxed));
    (0..8)
        .rev()
        .map(|i| ALPHABET[((value >> (i * 5)) & 31) as usize] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_eight_base32_chars_and_differ() {
        let refs: std::collections::HashSet<String> =
            (0..10_000).map(|_| new_reference()).collect();
        assert_eq!(refs.len(), 10_000);
        assert!(refs
            .iter()
            .all(|r| r.len() == 8 && r.bytes().all(|c| ALPHABET.contains(&c))));
    }

    #[test]
    fn scramble_is_injective_on_a_range() {
        let outs: std::collections::HashSet<u64> = (0..100_000u64).map(scramble).collect();
        assert_eq!(outs.len(), 100_000);
    }
}
