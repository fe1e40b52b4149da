//! The upstream reply reader never panics, and what it returns is a
//! well-formed reply, whether the bytes come whole or in two pieces.
#![no_main]
use libfuzzer_sys::fuzz_target;
use smtpgate::smtp::codec::LineFramer;
use smtpgate::smtp::reply::Reply;
use smtpgate::upstream::ReplyReader;

/// Every reply in `chunks`, then whether reading stopped on an error.
fn run(chunks: &[&[u8]]) -> (Vec<Reply>, bool) {
    let mut framer = LineFramer::default();
    let mut reader = ReplyReader::default();
    let mut replies = Vec::new();
    for chunk in chunks {
        framer.extend(chunk);
        loop {
            match reader.take(&mut framer) {
                Ok(Some(reply)) => replies.push(reply),
                Ok(None) => break,
                Err(_) => return (replies, true),
            }
        }
    }
    (replies, false)
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, input)) = data.split_first() else {
        return;
    };
    let split = usize::from(split).min(input.len());
    let (whole, failed) = run(&[input]);
    for r in &whole {
        assert!((200..600).contains(&r.code) && !r.lines.is_empty() && r.lines.len() <= 100);
        // 3xx has no enhanced class (RFC 3463); default_enhanced gives 5.0.0.
        if r.code / 100 != 3 {
            assert!(r
                .enhanced
                .starts_with(char::from(b'0' + (r.code / 100) as u8)));
        }
    }
    let (parts, failed_parts) = run(&[&input[..split], &input[split..]]);
    if !failed && !failed_parts {
        assert_eq!(whole, parts);
    }
});
