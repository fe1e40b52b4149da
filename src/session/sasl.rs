//! AUTH (RFC 4954): PLAIN and LOGIN, with or without an initial response,
//! offered only over TLS (or on a listener marked `trusted_cleartext`).
//! Failures are counted per client IP in the Store; past
//! `auth.max_failures` the address is locked out for `auth.lockout`, even
//! with the right password. Hashes are checked on a blocking thread.

use crate::base64;
use crate::lockout::{Attempt, Lockout};
use crate::session::stream::Stream;
use crate::session::{Flow, Session};
use crate::smtp::reply;

/// What the client sent to log in.
struct Login {
    user: String,
    password: String,
}

impl Session {
    /// True when AUTH may be offered on this connection now.
    pub(crate) fn auth_offered(&self) -> bool {
        self.app.credentials.is_some()
            && (matches!(self.stream, Stream::Tls(_)) || self.trusted_cleartext)
    }

    /// AUTH mechanism [initial-response].
    pub(crate) async fn auth(&mut self, mechanism: String, initial: Option<String>) -> Flow {
        if self.helo.is_none() {
            return self.protocol_error(reply::bad_sequence("send EHLO first"));
        }
        if self.login.is_some() {
            return self.protocol_error(reply::bad_sequence("already authenticated"));
        }
        if self.txn.is_some() {
            return self.protocol_error(reply::bad_sequence(
                "AUTH not allowed during a mail transaction",
            ));
        }
        if self.app.config.auth.is_none() {
            return self.protocol_error(reply::auth_mechanism(&mechanism));
        }
        if !self.auth_offered() {
            return self.reply_ok(reply::auth_needs_tls());
        }
        if mechanism != "PLAIN" && mechanism != "LOGIN" {
            return self.protocol_error(reply::auth_mechanism(&mechanism));
        }
        let ip = self.peer.ip();
        let app = self.app.clone();
        let Some(lockout) = app.lockout(ip) else {
            return self.protocol_error(reply::auth_mechanism(&mechanism));
        };
        match self.locked(&lockout).await {
            Ok(false) => {}
            Ok(true) => return self.locked_out(),
            Err(flow) => return flow,
        }
        let login = match self.read_login(&mechanism, initial).await {
            Ok(Some(login)) => login,
            Ok(None) => return Flow::Continue,
            Err(flow) => return flow,
        };
        // The lockout may have begun while this client typed: asked again.
        match self.locked(&lockout).await {
            Ok(false) => {}
            Ok(true) => return self.locked_out(),
            Err(flow) => return flow,
        }
        let attempt = match lockout.reserve().await {
            Ok(Attempt::Allowed(n)) => n,
            Ok(Attempt::LockedOut) => return self.locked_out(),
            Err(e) => {
                tracing::warn!(client = %ip, error = %e, "AUTH: store unavailable");
                return self.reply_ok(reply::auth_tempfail());
            }
        };
        let Some(credentials) = app.credentials.clone() else {
            return self.reply_ok(reply::auth_tempfail());
        };
        // One identity however the client spells it (rate limits, logs,
        // Received, the alert): the passwd-file's, lowercase.
        let user = login.user.to_ascii_lowercase();
        let verified =
            tokio::task::spawn_blocking(move || credentials.verify(&login.user, &login.password))
                .await;
        match verified {
            Ok(true) => {
                lockout.succeeded().await;
                tracing::info!(client = %ip, login = %user, "authenticated");
                crate::metrics::auth("ok");
                self.login = Some(user);
                self.reply_ok(reply::auth_ok())
            }
            Ok(false) => {
                tracing::info!(client = %ip, login = %user, failures = attempt, "authentication failed");
                crate::metrics::auth("failed");
                if !lockout.failed(attempt).await {
                    return self.protocol_error(reply::auth_failed());
                }
                crate::metrics::auth("lockout");
                self.queue(&reply::auth_failed());
                self.queue(&reply::auth_locked(&self.app.config.server.hostname));
                Flow::Close
            }
            Err(e) => {
                tracing::error!(client = %ip, error = %e, "AUTH: verifier failed");
                self.reply_ok(reply::auth_tempfail())
            }
        }
    }

    /// Whether the client is locked out; a store failure answers 454.
    async fn locked(&mut self, lockout: &Lockout<'_>) -> Result<bool, Flow> {
        match lockout.locked().await {
            Ok(found) => Ok(found),
            Err(e) => {
                tracing::warn!(client = %self.peer.ip(), error = %e, "AUTH: store unavailable");
                Err(self.reply_ok(reply::auth_tempfail()))
            }
        }
    }

    fn locked_out(&mut self) -> Flow {
        self.queue(&reply::auth_locked(&self.app.config.server.hostname));
        Flow::Close
    }

    /// Runs the PLAIN or LOGIN exchange. `Ok(None)`: the client cancelled
    /// or sent something undecodable (already answered).
    async fn read_login(
        &mut self,
        mechanism: &str,
        initial: Option<String>,
    ) -> Result<Option<Login>, Flow> {
        if mechanism == "PLAIN" {
            let response = match initial {
                Some(r) if r != "=" => r,
                Some(_) => String::new(),
                None => {
                    self.queue(&reply::auth_challenge(""));
                    match self.response().await? {
                        Some(r) => r,
                        None => return Ok(None),
                    }
                }
            };
            let Some(decoded) = base64::decode(&response) else {
                self.queue(&reply::auth_malformed());
                return Ok(None);
            };
            // authzid NUL authcid NUL passwd
            let mut parts = decoded.split(|&b| b == 0);
            let (Some(authz), Some(user), Some(password), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                self.queue(&reply::auth_malformed());
                return Ok(None);
            };
            let (Ok(authz), Ok(user), Ok(password)) = (
                std::str::from_utf8(authz),
                std::str::from_utf8(user),
                std::str::from_utf8(password),
            ) else {
                self.queue(&reply::auth_malformed());
                return Ok(None);
            };
            if !authz.is_empty() && !authz.eq_ignore_ascii_case(user) {
                // Acting as another user is not offered.
                return Ok(Some(Login {
                    user: user.to_string(),
                    password: String::new(),
                }));
            }
            return Ok(Some(Login {
                user: user.to_string(),
                password: password.to_string(),
            }));
        }
        // LOGIN: "Username:" then "Password:", each base64.
        let user = match initial {
            Some(r) => r,
            None => {
                self.queue(&reply::auth_challenge("VXNlcm5hbWU6"));
                match self.response().await? {
                    Some(r) => r,
                    None => return Ok(None),
                }
            }
        };
        self.queue(&reply::auth_challenge("UGFzc3dvcmQ6"));
        let Some(password) = self.response().await? else {
            return Ok(None);
        };
        let decode = |s: &str| base64::decode(s).and_then(|v| String::from_utf8(v).ok());
        match (decode(&user), decode(&password)) {
            (Some(user), Some(password)) => Ok(Some(Login { user, password })),
            _ => {
                self.queue(&reply::auth_malformed());
                Ok(None)
            }
        }
    }

    /// One client response line; `*` cancels (answered here, `None`).
    async fn response(&mut self) -> Result<Option<String>, Flow> {
        let line = self.auth_line().await?;
        let text = String::from_utf8_lossy(&line).trim().to_string();
        if text == "*" {
            self.queue(&reply::auth_cancelled());
            return Ok(None);
        }
        Ok(Some(text))
    }
}
