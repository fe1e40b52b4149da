//! A received message parsed once (mail-parser) into what content rules
//! look at: decoded headers, text (HTML converted to text), URLs with their
//! link text, MIME parts, attachment names (also inside zip archives) and
//! MIME problems. Parsing never fails: broken MIME is itself a finding.

mod delivered;
mod html;
mod parse;
mod urls;
mod zip;

pub use delivered::{as_delivered, claims_to_be_ours, strip_fields};
pub use html::html_to_text;
pub use urls::url_host;
pub use zip::{zip_listing, zip_names, ZipListing};

/// MIME nesting analysed at most; deeper parts make the message too complex.
pub const MAX_DEPTH: usize = 20;

/// A URL found in the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// The URL as written.
    pub url: String,
    /// Its host, lowercase, without a trailing dot.
    pub host: String,
    /// For an HTML link, the visible text of the link.
    pub link_text: Option<String>,
}

/// An attachment (or any non-text part with a file name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// The file name, when one was given.
    pub filename: Option<String>,
    /// `type/subtype`, lowercase.
    pub content_type: String,
    /// File names listed inside a zip archive.
    pub archived: Vec<String>,
    /// The archive is password-protected (an encrypted entry).
    pub encrypted: bool,
}

/// An HTML `<form>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Form {
    /// Its `action` URL, as written.
    pub action: String,
    /// It holds a password field.
    pub password: bool,
}

/// The parsed message.
#[derive(Debug, Clone, Default)]
pub struct Parsed {
    /// Every header as (lowercase name, decoded value), in order.
    pub headers: Vec<(String, String)>,
    /// The decoded Subject.
    pub subject: Option<String>,
    /// The first From mailbox: (display name, address).
    pub from: Option<(Option<String>, Option<String>)>,
    /// The Message-ID, without angle brackets.
    pub message_id: Option<String>,
    /// All To and Cc addresses.
    pub to: Vec<String>,
    /// Decoded text/plain parts.
    pub text_parts: Vec<String>,
    /// text/html parts converted to text.
    pub html_text_parts: Vec<String>,
    /// Number of text/plain body parts.
    pub text_part_count: usize,
    /// Number of text/html body parts.
    pub html_part_count: usize,
    /// `<img` tags in HTML parts plus image parts.
    pub image_count: usize,
    /// URLs from text and HTML.
    pub urls: Vec<Url>,
    /// Every part's content type, lowercase.
    pub content_types: Vec<String>,
    /// Attachments.
    pub attachments: Vec<Attachment>,
    /// What is wrong with the MIME structure.
    pub mime_problems: Vec<String>,
    /// HTML forms.
    pub forms: Vec<Form>,
    /// The Reply-To address.
    pub reply_to: Option<String>,
    /// Why the analysis stopped early (nesting too deep, budget spent).
    pub too_complex: Option<String>,
    /// The whole message, in octets.
    pub size: usize,
    /// Offset of the body (after the header block) in the raw message.
    pub body_offset: usize,
}
