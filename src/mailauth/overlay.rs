//! Answers of one evaluation laid over the shared TXT cache: what smtpgate
//! found before mail-auth looked (a broken SPF record, a DMARC name above
//! the author domain that failed) and must not leak into other messages'
//! evaluations. mail-auth asks the cache before the resolver, so an answer
//! here is what it sees at exactly the point of its evaluation that asks
//! for the name; the names asked that carry a note are remembered, so the
//! caller can tell which one decided the result.

use super::cache::{asked_name, NameCache};
use mail_auth::{ResolverCache, Txt};
use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Instant;

/// Per-evaluation TXT answers and notes over a [`NameCache`].
pub(super) struct Overlay<'a> {
    base: &'a NameCache<Txt>,
    answers: HashMap<String, Txt>,
    notes: HashMap<String, String>,
    asked: Mutex<Vec<String>>,
}

/// Overlay keys: lower case, no trailing dot.
fn key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl<'a> Overlay<'a> {
    /// Nothing laid over `base` yet.
    pub(super) fn new(base: &'a NameCache<Txt>) -> Overlay<'a> {
        Overlay {
            base,
            answers: HashMap::new(),
            notes: HashMap::new(),
            asked: Mutex::new(Vec::new()),
        }
    }

    /// `name` answers `txt` in this evaluation.
    pub(super) fn answer(&mut self, name: &str, txt: Txt) {
        self.answers.insert(key(name), txt);
    }

    /// What to say when `name` is asked for (and decides the result).
    pub(super) fn note(&mut self, name: &str, note: String) {
        self.notes.insert(key(name), note);
    }

    /// The note of the last name mail-auth asked for that has one.
    pub(super) fn last_note(&self) -> Option<String> {
        let asked = self.asked.lock().unwrap_or_else(|e| e.into_inner());
        asked.last().and_then(|n| self.notes.get(n)).cloned()
    }
}

impl ResolverCache<Box<str>, Txt> for Overlay<'_> {
    fn get<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if let Some(asked) = asked_name(name).map(|n| key(&n)) {
            if self.notes.contains_key(&asked) {
                self.asked
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(asked.clone());
            }
            if let Some(txt) = self.answers.get(&asked) {
                return Some(txt.clone());
            }
        }
        self.base.get(name)
    }

    fn remove<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.base.remove(name)
    }

    fn insert(&self, key: Box<str>, value: Txt, valid_until: Instant) {
        self.base.insert(key, value, valid_until);
    }
}
