//! smtpgate: an outbound SMTP quality gateway. The module tree follows the
//! data flow of DESIGN.md: a listener accepts a connection, a session speaks
//! SMTP, checks find symbols, rules weigh them, one decision acts, and the
//! upstream MTA receives what passed.

pub mod action;
pub mod app;
pub mod base64;
pub mod bounce;
pub mod checks;
pub mod config;
pub mod dns;
pub mod mailauth;
pub mod message;
pub mod metrics;
pub mod notify;
pub mod passwd;
pub mod pipeline;
pub mod proxy;
pub mod reference;
pub mod rules;
pub mod score;
pub mod server;
pub mod smtp;
pub mod store;
pub mod upstream;
pub mod verdict;
