//! A real SMTP sink in-process: the upstream MTA in tests. It speaks ESMTP
//! over TCP on 127.0.0.1:0, records every command and every message, and can
//! be told to misbehave (reject recipients, fail DATA, drop, go silent).
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// How the sink answers.
#[derive(Clone, Debug, Default)]
pub struct SinkConfig {
    /// Full reply lines for particular recipients (address without <>).
    pub rcpt_replies: HashMap<String, String>,
    /// The reply to the end of DATA (default `250 2.0.0 Ok: queued as Q000001`).
    pub data_reply: Option<String>,
    /// Close the connection once this many DATA bytes have arrived.
    pub drop_after_data_bytes: Option<usize>,
    /// Never answer the end of DATA (the connection stays open).
    pub silent_after_data: bool,
    /// Stop reading once 354 is sent (the connection stays open).
    pub stall_after_354: bool,
    /// Accept connections but never send the greeting.
    pub silent_greeting: bool,
    /// Offer CHUNKING (RFC 3030) and accept BDAT.
    pub chunking: bool,
    /// Offer XFORWARD (Postfix's attributes) and accept it.
    pub xforward: bool,
    /// Do not offer SMTPUTF8.
    pub without_smtputf8: bool,
    /// Do not offer 8BITMIME (a 7-bit MTA).
    pub without_8bitmime: bool,
    /// After a message, answer every later command of the connection with
    /// 421 (an MTA that timed it out while idle; it closes at QUIT).
    pub bye_after_message: bool,
}

/// A message the sink accepted.
#[derive(Clone, Debug)]
pub struct SinkMessage {
    /// The reverse path, without angle brackets.
    pub mail_from: String,
    /// MAIL parameters as sent (after the reverse path).
    pub mail_params: String,
    /// Accepted recipients, without angle brackets.
    pub rcpts: Vec<String>,
    /// The content, dot-unstuffed, ending with the last CRLF before `.`.
    pub data: Vec<u8>,
}

#[derive(Default)]
struct State {
    messages: Vec<SinkMessage>,
    commands: Vec<String>,
    connections: usize,
}

/// The running sink.
pub struct Sink {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Sink {
    /// Starts listening on 127.0.0.1:0.
    pub async fn start(cfg: SinkConfig) -> Sink {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("sink bind");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let cfg = Arc::new(cfg);
        let st = state.clone();
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    break;
                };
                st.lock().unwrap().connections += 1;
                conns.spawn(serve(stream, cfg.clone(), st.clone()));
            }
        });
        Sink { addr, state, task }
    }

    /// Messages accepted so far.
    pub fn messages(&self) -> Vec<SinkMessage> {
        self.state.lock().unwrap().messages.clone()
    }

    /// Every command line received, in order, over all connections.
    pub fn commands(&self) -> Vec<String> {
        self.state.lock().unwrap().commands.clone()
    }

    /// The XFORWARD command lines received, in order.
    pub fn xforward_lines(&self) -> Vec<String> {
        self.commands()
            .into_iter()
            .filter(|c| c.to_ascii_uppercase().starts_with("XFORWARD "))
            .collect()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.state.lock().unwrap().connections
    }

    /// Waits until at least `n` messages arrived (bounded by `limit`);
    /// panics if they did not.
    pub async fn wait_for_messages(&self, n: usize, limit: Duration) -> Vec<SinkMessage> {
        let start = Instant::now();
        loop {
            let msgs = self.messages();
            if msgs.len() >= n {
                return msgs;
            }
            assert!(
                start.elapsed() < limit,
                "sink got {} messages, expected {n}",
                msgs.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn strip_brackets(s: &str) -> String {
    s.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_string()
}

/// Splits `FROM:<addr> PARAMS` into the address and the parameters.
fn path_and_params(arg: &str) -> (String, String) {
    let arg = arg.trim();
    match arg.find('>') {
        Some(end) => (
            strip_brackets(&arg[..=end]),
            arg[end + 1..].trim().to_string(),
        ),
        None => {
            let mut it = arg.splitn(2, ' ');
            (
                strip_brackets(it.next().unwrap_or("")),
                it.next().unwrap_or("").trim().to_string(),
            )
        }
    }
}

async fn serve(stream: TcpStream, cfg: Arc<SinkConfig>, state: Arc<Mutex<State>>) {
    let _ = stream.set_nodelay(true);
    if cfg.silent_greeting {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        return;
    }
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::new(rd);
    if wr
        .write_all(b"220 sink.example.test ESMTP test sink\r\n")
        .await
        .is_err()
    {
        return;
    }
    let mut from: Option<(String, String)> = None;
    let mut rcpts: Vec<String> = Vec::new();
    let mut line = Vec::new();
    let mut delivered = false;
    loop {
        line.clear();
        match rd.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line)
            .trim_end_matches(['\r', '\n'])
            .to_string();
        state.lock().unwrap().commands.push(text.clone());
        if cfg.bye_after_message && delivered {
            let bye = wr
                .write_all(b"421 4.4.2 sink.example.test Error: timeout exceeded\r\n")
                .await;
            if bye.is_err() || text.eq_ignore_ascii_case("QUIT") {
                return;
            }
            continue;
        }
        let upper = text.to_ascii_uppercase();
        let reply: String = if upper.starts_with("EHLO") {
            let chunking = if cfg.chunking { "250-CHUNKING\r\n" } else { "" };
            let xforward = if cfg.xforward {
                "250-XFORWARD NAME ADDR PROTO HELO SOURCE PORT IDENT\r\n"
            } else {
                ""
            };
            let eightbit = if cfg.without_8bitmime {
                ""
            } else {
                "250-8BITMIME\r\n"
            };
            let utf8 = if cfg.without_smtputf8 {
                ""
            } else {
                "250-SMTPUTF8\r\n"
            };
            format!("250-sink.example.test\r\n250-PIPELINING\r\n250-SIZE 52428800\r\n{chunking}{xforward}{eightbit}{utf8}250 ENHANCEDSTATUSCODES")
        } else if cfg.chunking && upper.starts_with("BDAT ") && upper.ends_with(" LAST") {
            let len: usize = upper[5..upper.len() - 5].trim().parse().unwrap_or(0);
            let mut data = vec![0u8; len];
            if tokio::io::AsyncReadExt::read_exact(&mut rd, &mut data)
                .await
                .is_err()
            {
                return;
            }
            let reply = cfg
                .data_reply
                .clone()
                .unwrap_or_else(|| "250 2.0.0 Ok: queued as Q000001".into());
            if reply.starts_with('2') && !rcpts.is_empty() {
                let (mail_from, mail_params) = from.take().unwrap_or_default();
                state.lock().unwrap().messages.push(SinkMessage {
                    mail_from,
                    mail_params,
                    rcpts: std::mem::take(&mut rcpts),
                    data,
                });
                delivered = true;
            }
            from = None;
            rcpts.clear();
            reply
        } else if upper.starts_with("HELO") {
            "250 sink.example.test".into()
        } else if upper.starts_with("MAIL FROM:")
            && cfg.without_smtputf8
            && upper.contains("SMTPUTF8")
        {
            "555 5.5.4 Unsupported option: SMTPUTF8".into()
        } else if upper.starts_with("MAIL FROM:") {
            from = Some(path_and_params(&text[10..]));
            rcpts.clear();
            "250 2.1.0 Ok".into()
        } else if upper.starts_with("RCPT TO:") {
            let (addr, _) = path_and_params(&text[8..]);
            if from.is_none() {
                "503 5.5.1 Error: need MAIL command".into()
            } else if let Some(r) = cfg.rcpt_replies.get(&addr) {
                r.clone()
            } else {
                rcpts.push(addr);
                "250 2.1.5 Ok".into()
            }
        } else if upper == "DATA" {
            if rcpts.is_empty() {
                "554 5.5.1 Error: no valid recipients".into()
            } else {
                if wr
                    .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    .await
                    .is_err()
                {
                    return;
                }
                if cfg.stall_after_354 {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    return;
                }
                let Some(data) = read_data(&mut rd, cfg.drop_after_data_bytes).await else {
                    return;
                };
                if cfg.silent_after_data {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    return;
                }
                let reply = cfg
                    .data_reply
                    .clone()
                    .unwrap_or_else(|| "250 2.0.0 Ok: queued as Q000001".into());
                if reply.starts_with('2') {
                    let (mail_from, mail_params) = from.take().unwrap_or_default();
                    state.lock().unwrap().messages.push(SinkMessage {
                        mail_from,
                        mail_params,
                        rcpts: std::mem::take(&mut rcpts),
                        data,
                    });
                    delivered = true;
                }
                from = None;
                rcpts.clear();
                reply
            }
        } else if upper == "RSET" || (cfg.xforward && upper.starts_with("XFORWARD ")) {
            from = None;
            rcpts.clear();
            "250 2.0.0 Ok".into()
        } else if upper == "NOOP" {
            "250 2.0.0 Ok".into()
        } else if upper == "QUIT" {
            let _ = wr.write_all(b"221 2.0.0 Bye\r\n").await;
            return;
        } else {
            "502 5.5.2 Error: command not recognized".into()
        };
        let mut out = reply.into_bytes();
        out.extend_from_slice(b"\r\n");
        if wr.write_all(&out).await.is_err() {
            return;
        }
    }
}

/// Reads DATA up to the `.` line; unstuffs. `None` when the connection
/// ends or is to be dropped.
async fn read_data<R: tokio::io::AsyncBufRead + Unpin>(
    rd: &mut R,
    drop_after: Option<usize>,
) -> Option<Vec<u8>> {
    let mut data = Vec::new();
    let mut line = Vec::new();
    let mut total = 0usize;
    loop {
        line.clear();
        let n = rd.read_until(b'\n', &mut line).await.ok()?;
        if n == 0 {
            return None;
        }
        total += n;
        if let Some(limit) = drop_after {
            if total > limit {
                return None;
            }
        }
        if line == b".\r\n" {
            return Some(data);
        }
        let body = if line.starts_with(b".") {
            &line[1..]
        } else {
            &line[..]
        };
        data.extend_from_slice(body);
    }
}
