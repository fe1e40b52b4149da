//! Zip archives: the names of the files they hold, read from the central
//! directory that the End Of Central Directory record points to (at most
//! 1,000 entries; nothing is decompressed), and whether any entry is
//! encrypted (a password-protected archive).

/// What an archive's directory says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ZipListing {
    /// File names, in directory order.
    pub names: Vec<String>,
    /// True when an entry has the encrypted flag (general purpose bit 0).
    pub encrypted: bool,
}

/// Entries read at most.
const MAX_ENTRIES: usize = 1000;
const EOCD: &[u8] = b"PK\x05\x06";
const CENTRAL: &[u8] = b"PK\x01\x02";

pub(super) fn looks_like_zip(ctype: &str, filename: Option<&str>, data: &[u8]) -> bool {
    data.starts_with(b"PK\x03\x04")
        || ctype.contains("zip")
        || filename.is_some_and(|f| f.to_ascii_lowercase().ends_with(".zip"))
}

fn u16_at(d: &[u8], at: usize) -> Option<usize> {
    Some(u16::from_le_bytes([*d.get(at)?, *d.get(at + 1)?]) as usize)
}

fn u32_at(d: &[u8], at: usize) -> Option<usize> {
    let b = d.get(at..at + 4)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
}

/// The archive's listing, or None when it has no readable directory.
pub fn zip_listing(data: &[u8]) -> Option<ZipListing> {
    // The record is 22 octets plus a comment of at most 65,535.
    let tail_start = data.len().saturating_sub(22 + 65_535);
    let tail = &data[tail_start..];
    let eocd = tail_start + tail.windows(4).rposition(|w| w == EOCD)?;
    let count = u16_at(data, eocd + 10)?;
    let size = u32_at(data, eocd + 12)?;
    // The directory ends where the record starts (robust to a prefix such
    // as a self-extractor stub, whatever its stated offset).
    let mut pos = eocd.checked_sub(size)?;
    let mut listing = ZipListing::default();
    for _ in 0..count.min(MAX_ENTRIES) {
        if data.get(pos..pos + 4)? != CENTRAL {
            break;
        }
        let flags = u16_at(data, pos + 8)?;
        let name_len = u16_at(data, pos + 28)?;
        let extra = u16_at(data, pos + 30)?;
        let comment = u16_at(data, pos + 32)?;
        let name = data.get(pos + 46..pos + 46 + name_len)?;
        listing.encrypted |= flags & 1 == 1;
        listing
            .names
            .push(String::from_utf8_lossy(name).into_owned());
        pos += 46 + name_len + extra + comment;
    }
    Some(listing)
}

/// File names from a zip archive's central directory.
pub fn zip_names(data: &[u8]) -> Vec<String> {
    zip_listing(data).map(|l| l.names).unwrap_or_default()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A stored-only zip of `names` (empty files); `encrypted` sets bit 0.
    pub(crate) fn zip_of(names: &[&str], encrypted: bool) -> Vec<u8> {
        let mut out = b"stub".to_vec();
        let mut central = Vec::new();
        for name in names {
            let offset = out.len() as u32;
            let flags: u16 = encrypted.into();
            out.extend_from_slice(b"PK\x03\x04\x14\x00");
            out.extend_from_slice(&flags.to_le_bytes());
            out.extend_from_slice(&[0u8; 18]);
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(&[0, 0]);
            out.extend_from_slice(name.as_bytes());
            central.extend_from_slice(b"PK\x01\x02\x14\x00\x14\x00");
            central.extend_from_slice(&flags.to_le_bytes());
            central.extend_from_slice(&[0u8; 18]);
            central.extend_from_slice(&(name.len() as u16).to_le_bytes());
            central.extend_from_slice(&[0u8; 12]);
            central.extend_from_slice(&offset.to_le_bytes());
            central.extend_from_slice(name.as_bytes());
        }
        let cd_offset = out.len() as u32;
        out.extend_from_slice(&central);
        out.extend_from_slice(EOCD);
        out.extend_from_slice(&[0u8; 4]);
        out.extend_from_slice(&(names.len() as u16).to_le_bytes());
        out.extend_from_slice(&(names.len() as u16).to_le_bytes());
        out.extend_from_slice(&(central.len() as u32).to_le_bytes());
        out.extend_from_slice(&cd_offset.to_le_bytes());
        out.extend_from_slice(&[0, 0]);
        out
    }

    #[test]
    fn names_and_encryption_from_the_central_directory() {
        let zip = zip_of(&["docs/invoice.pdf", "run.exe"], false);
        assert_eq!(
            zip_listing(&zip),
            Some(ZipListing {
                names: vec!["docs/invoice.pdf".into(), "run.exe".into()],
                encrypted: false
            })
        );
        assert!(zip_listing(&zip_of(&["a.js"], true)).unwrap().encrypted);
    }

    #[test]
    fn signatures_in_data_are_not_entries() {
        // A lone central-directory signature without an EOCD is no entry,
        // and a megabyte of signatures is read in bounded time.
        let mut junk = b"PK\x01\x02".repeat(250_000);
        junk.extend_from_slice(&[0u8; 42]);
        assert_eq!(zip_listing(&junk), None);
        assert!(zip_names(b"PK").is_empty());
    }
}
