//! smtpgate: an outbound SMTP quality gateway. The modules are listed in
//! layer order (ARCHITECTURE.md): each uses only its own layer and those
//! above it — `tests/architecture.rs` holds the code to that.

// Leaves: plain data and pure functions.
/// A mailbox address and its parsers.
pub mod address;
/// Base64 for DKIM keys and the alert.
pub mod base64;
/// The configuration file, one file per group of sections.
pub mod config;
/// The message parsed once: MIME, HTML, links, archives.
pub mod message;
/// Prometheus counters and histograms, plain labels.
pub mod metrics;
/// The reference that ties logs, replies and alerts together.
pub mod reference;
/// Scores in hundredths, hits, the breakdown.
pub mod score;

// Protocol: SMTP, pure, shared by the session and the upstream client.
/// Codec, command, reply, received.
pub mod smtp;

// Adapters: the world behind traits.
/// The resolver behind the Lookup trait.
pub mod dns;
/// SPF, DKIM, DMARC evaluation and signing.
pub mod mailauth;
/// Postfix-style map files: domains, addresses, networks, sender logins.
pub mod maps;
/// systemd's notify socket.
pub mod notify;
/// The dovecot passwd-file.
pub mod passwd;
/// The PROXY v1/v2 header.
pub mod proxy;
/// Shared state: memory or Redis.
pub mod store;
/// The pooled client to the MTA.
pub mod upstream;

// Policy: who may connect, what a message is worth.
/// The one decision: symbols to an action.
pub mod action;
/// Per-client connection limits.
pub mod admission;
/// The anomaly hold: baselines per identity, holds, and their store keys.
pub mod anomaly;
/// One file per check; View, Phase, Deps.
pub mod checks;
/// The AUTH lockout counted in the store.
pub mod lockout;
/// rules/*.toml: symbols, scores, content rules, composites.
pub mod rules;

// Flow: running the policy and acting on it.
/// Builds everything from the config, swapped whole on reload.
pub mod app;
/// The SPAM alert: originator, merge, send.
pub mod bounce;
/// The headers we add to a passed message.
pub mod delivery;
/// Every transaction's summary, searchable.
pub mod history;
/// The ONE phase runner, for the session and `check`.
pub mod pipeline;
/// A customer domain's readiness: SPF, DKIM, DMARC, MX, FCrDNS, DNSBL.
pub mod readiness;
/// Past transactions re-decided under other scores.
pub mod replay;
/// A transaction's story for `smtpgate why`.
pub mod verdict;

// Top: the server.
/// The command-line tools' bodies.
pub mod cli;
/// The HTTP API and web console.
pub mod http;
/// Listeners, admission, reload, shutdown.
pub mod server;
/// One client connection, one file per phase.
pub mod session;
