//! SPF (RFC 7208), DKIM (RFC 6376) and DMARC (RFC 7489) for the egress path,
//! DKIM signing and the Authentication-Results header (RFC 8601). The only
//! importer of `mail_auth`: the rest of smtpgate sees plain values.
//!
//! Recipients judge a message from the upstream MTA's egress IPs, not from
//! the customer's address, so SPF is evaluated for each `[outbound]
//! egress_ips` address (the client IP when empty) and DMARC from the worst of
//! those results plus the DKIM signatures present — including the one
//! smtpgate will add when `[dkim]` holds a key for the From domain.

mod cache;
mod dmarc_walk;
mod evaluate;
mod outcome;
mod overlay;
mod published;
mod results;
mod sign;
mod spf_record;
mod spf_syntax;
mod spf_walk;

pub use evaluate::{Authenticator, Envelope};
pub use outcome::{
    mechanism, DkimEvaluation, DkimOutcome, DmarcEvaluation, DmarcOutcome, DmarcPolicy, Evaluation,
    SpfEvaluation, SpfOutcome,
};
pub use published::{spf_record, SigningKey};
pub use results::authentication_results;
