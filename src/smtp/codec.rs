//! Pure SMTP framing: command lines and the DATA stream (RFC 5321 §4.1.1.4,
//! §4.5.2). No I/O here; the session feeds bytes in and acts on what comes out.
//!
//! DATA is strict on purpose: every line must end in CRLF. A bare LF or bare
//! CR anywhere is reported as [`DataError::BareNewline`], so no variant of
//! `\n.\n`, `\r.\n` or `\n.\r\n` can ever end a message (SMTP smuggling).

/// The most a command line may hold before we stop buffering it: the AUTH
/// limit of RFC 4954 §4. Per-verb limits are checked by the session.
pub const MAX_LINE: usize = 12_288;

/// What a command line could not be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineError {
    /// Longer than the limit; the rest of the line is discarded.
    TooLong,
    /// Contains a NUL octet.
    Nul,
}

/// Splits a byte stream into command lines.
#[derive(Debug, Default)]
pub struct LineFramer {
    buf: Vec<u8>,
    /// Discarding the tail of an over-long line until its LF.
    discarding: bool,
}

impl LineFramer {
    /// Adds bytes read from the peer.
    pub fn extend(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The buffer to read into: bytes appended to it are framed next. Room
    /// for `reserve` more bytes is made first.
    pub fn read_buffer(&mut self, reserve: usize) -> &mut Vec<u8> {
        self.buf.reserve(reserve);
        &mut self.buf
    }

    /// Bytes received and not yet framed.
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// Drops everything buffered (after STARTTLS: pipelined plaintext must not
    /// be read as if it came encrypted, CVE-2011-0411).
    pub fn clear(&mut self) {
        self.buf.clear();
        self.discarding = false;
    }

    /// Takes everything buffered, for the DATA decoder.
    pub fn take_buffered(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }

    /// The next complete line without its line ending, `None` when more bytes
    /// are needed. `max` is the longest line accepted (without CRLF).
    pub fn next_line(&mut self, max: usize) -> Option<Result<Vec<u8>, LineError>> {
        loop {
            let newline = memchr::memchr(b'\n', &self.buf);
            if self.discarding {
                match newline {
                    Some(pos) => {
                        self.buf.drain(..=pos);
                        self.discarding = false;
                        continue;
                    }
                    None => {
                        self.buf.clear();
                        return None;
                    }
                }
            }
            return match newline {
                Some(pos) => {
                    let mut line: Vec<u8> = self.buf.drain(..=pos).collect();
                    line.pop();
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    if line.len() > max {
                        Some(Err(LineError::TooLong))
                    } else if line.contains(&0) {
                        Some(Err(LineError::Nul))
                    } else {
                        Some(Ok(line))
                    }
                }
                None if self.buf.len() > max + 1 => {
                    self.buf.clear();
                    self.discarding = true;
                    Some(Err(LineError::TooLong))
                }
                None => None,
            };
        }
    }
}

/// Why a DATA stream was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataError {
    /// A LF without CR, or a CR without LF: the session must end.
    BareNewline,
}

/// Progress after feeding bytes to a [`DataDecoder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataStatus {
    /// All input consumed; the terminating `CRLF.CRLF` not seen yet.
    More,
    /// The message ended; this many input bytes belonged to it (the rest is
    /// the next pipelined command).
    Done(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a line.
    LineStart,
    /// A `.` at the start of a line.
    Dot,
    /// `.` `CR` at the start of a line.
    DotCr,
    /// Inside a line.
    InLine,
    /// A CR inside a line.
    Cr,
}

/// Decodes a DATA stream: removes dot-stuffing, finds the end, enforces the
/// size limit without buffering past it, and notes NUL octets.
#[derive(Debug)]
pub struct DataDecoder {
    state: State,
    limit: usize,
    message: Vec<u8>,
    received: usize,
    has_nul: bool,
}

impl DataDecoder {
    /// A decoder that keeps at most `limit` octets of message.
    pub fn new(limit: usize) -> DataDecoder {
        DataDecoder {
            state: State::LineStart,
            limit,
            message: Vec::with_capacity(limit.min(16 * 1024)),
            received: 0,
            has_nul: false,
        }
    }

    /// True when the message was larger than the limit (it was truncated and
    /// must be refused).
    pub fn oversized(&self) -> bool {
        self.received > self.limit
    }

    /// True when the message contained a NUL octet.
    pub fn has_nul(&self) -> bool {
        self.has_nul
    }

    /// Octets of message seen (after unstuffing), including any past the limit.
    pub fn received(&self) -> usize {
        self.received
    }

    /// The decoded message (unstuffed, CRLF line endings, without the final
    /// `.` line).
    pub fn into_message(self) -> Vec<u8> {
        self.message
    }

    fn keep(&mut self, bytes: &[u8]) {
        self.received += bytes.len();
        let room = self.limit.saturating_sub(self.message.len());
        let kept = &bytes[..bytes.len().min(room)];
        if kept.contains(&0) {
            self.has_nul = true;
        }
        self.message.extend_from_slice(kept);
    }

    /// Feeds bytes from the peer.
    pub fn feed(&mut self, input: &[u8]) -> Result<DataStatus, DataError> {
        let mut i = 0;
        while i < input.len() {
            match self.state {
                State::LineStart => {
                    if input[i] == b'.' {
                        self.state = State::Dot;
                        i += 1;
                    } else {
                        self.state = State::InLine;
                    }
                }
                State::Dot => match input[i] {
                    b'\r' => {
                        self.state = State::DotCr;
                        i += 1;
                    }
                    b'\n' => return Err(DataError::BareNewline),
                    // The leading dot is transparency padding: drop it.
                    _ => self.state = State::InLine,
                },
                State::DotCr => {
                    if input[i] == b'\n' {
                        return Ok(DataStatus::Done(i + 1));
                    }
                    return Err(DataError::BareNewline);
                }
                State::InLine => {
                    let rest = &input[i..];
                    match memchr::memchr2(b'\r', b'\n', rest) {
                        None => {
                            self.keep(rest);
                            i = input.len();
                        }
                        Some(pos) if rest[pos] == b'\n' => {
                            // Keep the line's start as a split feed would
                            // have, so the state never depends on chunking.
                            self.keep(&rest[..pos]);
                            return Err(DataError::BareNewline);
                        }
                        Some(pos) => {
                            self.keep(&rest[..pos]);
                            self.state = State::Cr;
                            i += pos + 1;
                        }
                    }
                }
                State::Cr => {
                    if input[i] != b'\n' {
                        return Err(DataError::BareNewline);
                    }
                    self.keep(b"\r\n");
                    self.state = State::LineStart;
                    i += 1;
                }
            }
        }
        Ok(DataStatus::More)
    }
}

/// Appends `message` to `out` dot-stuffed and terminated by `.CRLF`, ready
/// for the wire. `message` must consist of CRLF-terminated lines (as
/// [`DataDecoder`] produces).
pub fn stuff_into(message: &[u8], out: &mut Vec<u8>) {
    out.reserve(message.len() + 16);
    let mut line_start = true;
    let mut rest = message;
    while !rest.is_empty() {
        if line_start && rest[0] == b'.' {
            out.push(b'.');
        }
        match memchr::memchr(b'\n', rest) {
            Some(pos) => {
                out.extend_from_slice(&rest[..=pos]);
                rest = &rest[pos + 1..];
                line_start = true;
            }
            None => {
                out.extend_from_slice(rest);
                out.extend_from_slice(b"\r\n");
                rest = &[];
            }
        }
    }
    out.extend_from_slice(b".\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_lf_leaves_the_same_state_in_any_chunking() {
        // Found by fuzz/data_framer (fuzz/regressions/data_framer-bare-lf-chunking).
        let mut whole = DataDecoder::new(100);
        assert_eq!(whole.feed(b"line\n"), Err(DataError::BareNewline));
        let mut split = DataDecoder::new(100);
        assert_eq!(split.feed(b"l"), Ok(DataStatus::More));
        assert_eq!(split.feed(b"ine\n"), Err(DataError::BareNewline));
        assert_eq!(whole.received(), split.received());
        assert_eq!(whole.into_message(), split.into_message());
    }

    fn decode(input: &[u8]) -> Result<(Vec<u8>, usize), DataError> {
        let mut d = DataDecoder::new(1 << 20);
        match d.feed(input)? {
            DataStatus::Done(n) => Ok((d.into_message(), n)),
            DataStatus::More => panic!("not finished: {input:?}"),
        }
    }

    #[test]
    fn lines_are_framed_with_crlf_or_lf() {
        let mut f = LineFramer::default();
        f.extend(b"EHLO a\r\nNOOP\nQU");
        assert_eq!(f.next_line(512), Some(Ok(b"EHLO a".to_vec())));
        assert_eq!(f.next_line(512), Some(Ok(b"NOOP".to_vec())));
        assert_eq!(f.next_line(512), None);
        f.extend(b"IT\r\n");
        assert_eq!(f.next_line(512), Some(Ok(b"QUIT".to_vec())));
    }

    #[test]
    fn over_long_line_is_reported_once_and_discarded() {
        let mut f = LineFramer::default();
        f.extend(&vec![b'a'; 600]);
        assert_eq!(f.next_line(512), Some(Err(LineError::TooLong)));
        f.extend(&vec![b'a'; 600]);
        assert_eq!(f.next_line(512), None);
        f.extend(b"aaa\r\nNOOP\r\n");
        assert_eq!(f.next_line(512), Some(Ok(b"NOOP".to_vec())));
    }

    #[test]
    fn complete_long_line_is_too_long() {
        let mut f = LineFramer::default();
        let mut line = vec![b'x'; 513];
        line.extend_from_slice(b"\r\nNOOP\r\n");
        f.extend(&line);
        assert_eq!(f.next_line(512), Some(Err(LineError::TooLong)));
        assert_eq!(f.next_line(512), Some(Ok(b"NOOP".to_vec())));
    }

    #[test]
    fn nul_in_command_is_an_error() {
        let mut f = LineFramer::default();
        f.extend(b"NO\0OP\r\n");
        assert_eq!(f.next_line(512), Some(Err(LineError::Nul)));
    }

    #[test]
    fn data_is_unstuffed_and_ends_at_crlf_dot_crlf() {
        let (msg, used) = decode(b"Subject: x\r\n\r\n..leading dot\r\n.\r\nQUIT\r\n").unwrap();
        assert_eq!(msg, b"Subject: x\r\n\r\n.leading dot\r\n");
        assert_eq!(used, 32);
    }

    #[test]
    fn empty_message() {
        assert_eq!(decode(b".\r\n").unwrap(), (Vec::new(), 3));
    }

    #[test]
    fn eight_bit_bytes_are_kept() {
        let (msg, _) = decode(b"caf\xc3\xa9 \xff\r\n.\r\n").unwrap();
        assert_eq!(msg, b"caf\xc3\xa9 \xff\r\n");
    }

    #[test]
    fn smuggling_variants_never_end_data() {
        for bad in [
            &b"a\r\n\n.\n"[..],
            b"a\n.\r\n",
            b"a\r\n.\n",
            b"a\r.\r\n",
            b"a\r\n.\rX",
            b"a\rb\r\n",
            b"a\n",
        ] {
            let mut d = DataDecoder::new(1000);
            assert_eq!(d.feed(bad), Err(DataError::BareNewline), "{bad:?}");
        }
    }

    #[test]
    fn decoding_is_independent_of_chunking() {
        let input = b"A: b\r\n\r\n..x\r\nline\r\n.\r\n";
        for split in 0..input.len() {
            let mut d = DataDecoder::new(1000);
            let first = d.feed(&input[..split]).unwrap();
            let status = if first == DataStatus::More {
                match d.feed(&input[split..]).unwrap() {
                    DataStatus::Done(n) => DataStatus::Done(split + n),
                    more => more,
                }
            } else {
                first
            };
            assert_eq!(status, DataStatus::Done(input.len()), "split at {split}");
            assert_eq!(d.into_message(), b"A: b\r\n\r\n.x\r\nline\r\n");
        }
    }

    #[test]
    fn size_limit_stops_buffering_but_finds_the_end() {
        let mut d = DataDecoder::new(10);
        let status = d.feed(b"0123456789abcdef\r\nmore\r\n.\r\n").unwrap();
        assert_eq!(status, DataStatus::Done(27));
        assert!(d.oversized());
        assert_eq!(d.received(), 24);
        assert_eq!(d.into_message().len(), 10);
    }

    #[test]
    fn nul_in_data_is_noted() {
        let mut d = DataDecoder::new(100);
        d.feed(b"a\0b\r\n.\r\n").unwrap();
        assert!(d.has_nul());
    }

    #[test]
    fn stuffing_round_trips() {
        let message = b"Subject: x\r\n\r\n.one\r\n..two\r\nthree\r\n";
        let mut wire = Vec::new();
        stuff_into(message, &mut wire);
        assert_eq!(wire, b"Subject: x\r\n\r\n..one\r\n...two\r\nthree\r\n.\r\n");
        let (back, _) = decode(&wire).unwrap();
        assert_eq!(back, message);
    }
}
