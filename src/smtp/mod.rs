//! The SMTP server side: framing, commands, replies and the session.

pub mod codec;
pub mod command;
pub mod phases;
pub mod received;
pub mod reply;
pub mod session;
pub mod stream;
