//! Zip archives: the names of the files they hold.

pub(super) fn looks_like_zip(ctype: &str, filename: Option<&str>, data: &[u8]) -> bool {
    data.starts_with(b"PK\x03\x04")
        || ctype.contains("zip")
        || filename.is_some_and(|f| f.to_ascii_lowercase().ends_with(".zip"))
}

/// File names from a zip archive's central directory (cheap: no
/// decompression); at most 1,000 names.
pub fn zip_names(data: &[u8]) -> Vec<String> {
    const CENTRAL: &[u8] = b"PK\x01\x02";
    let mut names = Vec::new();
    let mut i = 0;
    while names.len() < 1000 {
        let Some(at) = data[i..].windows(4).position(|w| w == CENTRAL) else {
            break;
        };
        let h = i + at;
        if h + 46 > data.len() {
            break;
        }
        let len = u16::from_le_bytes([data[h + 28], data[h + 29]]) as usize;
        let Some(name) = data.get(h + 46..h + 46 + len) else {
            break;
        };
        names.push(String::from_utf8_lossy(name).to_string());
        i = h + 46 + len;
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attachments_and_zip_names() {
        // A minimal zip central directory entry naming "run.exe".
        let mut zip = b"PK\x03\x04".to_vec();
        zip.extend_from_slice(&[0u8; 26]);
        zip.extend_from_slice(b"PK\x01\x02");
        let mut central = [0u8; 42];
        central[24] = 7; // file name length at offset 28 from the signature
        zip.extend_from_slice(&central);
        zip.extend_from_slice(b"run.exe");
        assert_eq!(zip_names(&zip), ["run.exe"]);
    }
}
