//! What each command does, one file per phase of the session.

mod auth;
mod data;
mod helo;
mod mail;
mod misc;
mod rcpt;
