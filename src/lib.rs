//! smtpgate: an outbound SMTP quality gateway. The modules are listed in
//! layer order (ARCHITECTURE.md): each uses only its own layer and those
//! above it — `tests/architecture.rs` holds the code to that.

// leaves: plain data and pure functions
pub mod address; // a mailbox address and its parser
pub mod base64;
pub mod config; // the configuration file: one file per group of sections
pub mod message; // the message parsed once: MIME, HTML, links, archives
pub mod metrics; // Prometheus counters and histograms, plain labels
pub mod reference; // the reference that ties logs, replies and alerts
pub mod score; // scores in hundredths, hits, the breakdown // base64 for DKIM keys and the alert

// protocol: SMTP, pure, shared by the session and the upstream client
pub mod smtp; // codec, command, reply, received

// adapters: the world behind traits
pub mod auth; // SPF, DKIM, DMARC evaluation and signing
pub mod dns; // the resolver behind the Lookup trait
pub mod maps; // Postfix-style map files: domains, addresses, networks, sender logins
pub mod notify;
pub mod passwd; // the dovecot passwd-file
pub mod proxy; // the PROXY v1/v2 header
pub mod store; // shared state: memory or Redis
pub mod upstream; // the pooled client to the MTA // systemd's notify socket

// policy: what a message is worth
pub mod action; // the one decision: symbols to an action
pub mod checks; // one file per check; View, Phase, Deps
pub mod lockout;
pub mod rules; // rules/*.toml: symbols, scores, content rules, composites // the AUTH lockout counted in the store

// flow: running the policy and acting on it
pub mod app;
pub mod bounce; // the SPAM alert: originator, merge, send
pub mod delivery; // the headers we add to a passed message
pub mod pipeline; // the ONE phase runner, for the session and `check`
pub mod verdict; // a stopped message's story for `smtpgate why` // builds everything from the config, swapped on reload

// top: the server
pub mod server;
pub mod session; // one client connection, one file per phase // listeners, admission, reload, shutdown
