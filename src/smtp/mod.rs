//! The SMTP protocol, pure: framing, commands, replies and the Received
//! line — shared by the session (server side) and the upstream client.

pub mod codec;
pub mod command;
pub mod received;
pub mod reply;
pub mod xforward;
