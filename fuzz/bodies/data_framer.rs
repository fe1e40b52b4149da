//! The DATA decoder ends a message only at CRLF.CRLF, and any chunking of
//! the same bytes gives the same result: message, status, error.
//!
//! The body of the cargo-fuzz target `data_framer` (fuzz/fuzz_targets/data_framer.rs) and of
//! its brief run in `cargo test` (tests/fuzz_smoke.rs).

use smtpgate::smtp::codec::{DataDecoder, DataError, DataStatus};

#[derive(Debug, PartialEq)]
struct Outcome {
    /// Ok(Some(n)): ended after n input octets; Ok(None): needs more.
    end: Result<Option<usize>, DataError>,
    message: Vec<u8>,
    oversized: bool,
    has_nul: bool,
    received: usize,
}

fn decode(input: &[u8], limit: usize, cuts: &[usize]) -> Outcome {
    let mut d = DataDecoder::new(limit);
    let mut start = 0;
    let mut end = Ok(None);
    for &cut in cuts.iter().chain(std::iter::once(&input.len())) {
        let cut = cut.clamp(start, input.len());
        match d.feed(&input[start..cut]) {
            Ok(DataStatus::More) => start = cut,
            Ok(DataStatus::Done(n)) => {
                end = Ok(Some(start + n));
                break;
            }
            Err(e) => {
                end = Err(e);
                break;
            }
        }
    }
    Outcome {
        end,
        oversized: d.oversized(),
        has_nul: d.has_nul(),
        received: d.received(),
        message: d.into_message(),
    }
}

/// One input.
pub fn run(data: &[u8]) {
    if data.len() < 3 {
        return;
    }
    let limit = usize::from(data[0]) * 4;
    let cuts: Vec<usize> = data[1..3].iter().map(|&b| usize::from(b)).collect();
    let input = &data[3..];
    let whole = decode(input, limit, &[]);
    let mut sorted = cuts.clone();
    sorted.sort();
    assert_eq!(
        whole,
        decode(input, limit, &sorted),
        "chunked at {sorted:?}"
    );
    let bytewise: Vec<usize> = (1..input.len()).collect();
    assert_eq!(whole, decode(input, limit, &bytewise), "fed byte by byte");
    if let Ok(Some(n)) = whole.end {
        // The DATA command's CRLF precedes the stream.
        let mut seen = b"\r\n".to_vec();
        seen.extend_from_slice(&input[..n]);
        assert!(seen.ends_with(b"\r\n.\r\n"), "ended without CRLF.CRLF");
        assert!(!seen[..seen.len() - 3].windows(5).any(|w| w == b"\r\n.\r\n"));
    }
    if !whole.oversized {
        assert!(whole.message.len() <= limit);
    }
}
