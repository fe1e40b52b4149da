//! The bodies of the command-line tools (`main.rs` holds the argument
//! parsing and one dispatch line each); `check` also builds what the HTTP
//! API answers for `POST /api/check`, so both print the same JSON.

pub mod check;
pub mod history;
pub mod hold;
pub mod readiness;
pub mod replay;

use crate::app::App;
use std::path::Path;
use std::process::ExitCode;

/// `method path` (no body) on the running gateway's `[http] listen` (with
/// the token of `token_file` when there is one): the status and the body.
/// For the tools that read or change state the memory store keeps inside
/// the running gateway.
pub fn remote(app: &App, method: &str, path: &str) -> Result<(u16, Vec<u8>), String> {
    use std::io::{Read, Write};
    let Some(http) = &app.config.http else {
        return Err(
            "store.backend is \"memory\" and [http] is not configured: the history \
                    lives inside the running gateway only; set [http] listen or use a Redis store"
                .into(),
        );
    };
    let token = http.token()?;
    let mut conn =
        std::net::TcpStream::connect_timeout(&http.listen, std::time::Duration::from_secs(5))
            .map_err(|e| format!("the running gateway's API at {}: {e}", http.listen))?;
    let _ = conn.set_read_timeout(Some(std::time::Duration::from_secs(30)));
    let auth = token.map_or_else(String::new, |t| format!("Authorization: Bearer {t}\r\n"));
    conn.write_all(
        format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n",
            http.listen
        )
        .as_bytes(),
    )
    .map_err(|e| format!("{}: {e}", http.listen))?;
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer)
        .map_err(|e| format!("{}: {e}", http.listen))?;
    let end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("{}: not an HTTP answer", http.listen))?;
    let head = String::from_utf8_lossy(&answer[..end]);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("{}: not an HTTP answer", http.listen))?;
    let mut body = answer[end + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = unchunk(&body);
    }
    Ok((status, body))
}

/// A JSON answer of the running gateway's API: `None` on 404; a failure is
/// said and gives exit status 75 (2 when the API is not configured, or
/// the request is refused as a usage error: 400, 409).
pub fn remote_json<T: serde::de::DeserializeOwned>(
    app: &App,
    method: &str,
    path: &str,
) -> Result<Option<T>, ExitCode> {
    match remote(app, method, path) {
        Ok((200, body)) => serde_json::from_slice(&body).map(Some).map_err(|e| {
            eprintln!("the gateway's API answered {path} with unexpected JSON: {e}");
            ExitCode::from(75)
        }),
        Ok((404, _)) => Ok(None),
        Ok((status, body)) => {
            let error = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_string))
                .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
            eprintln!("the gateway's API answered {method} {path} with {status}: {error}");
            Err(ExitCode::from(if matches!(status, 400 | 409) {
                2
            } else {
                75
            }))
        }
        Err(e) => {
            eprintln!("{e}");
            Err(ExitCode::from(if app.config.http.is_none() {
                2
            } else {
                75
            }))
        }
    }
}

fn unchunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(nl) = data.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&data[..nl]).trim(), 16).unwrap_or(0);
        if size == 0 || data.len() < nl + 2 + size {
            break;
        }
        out.extend_from_slice(&data[nl + 2..nl + 2 + size]);
        data = &data[(nl + 4 + size).min(data.len())..];
    }
    out
}

/// Percent-encodes a query value.
pub fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The App of `path` with a runtime, whatever the store.
pub fn app_and_runtime(path: &Path) -> Result<(App, tokio::runtime::Runtime), ExitCode> {
    let app = App::load(path, None).map_err(|e| {
        eprintln!("{e}");
        ExitCode::from(2)
    })?;
    let runtime = small_runtime().ok_or(ExitCode::FAILURE)?;
    Ok((app, runtime))
}

/// A one-thread runtime for a command-line tool.
pub fn small_runtime() -> Option<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| eprintln!("cannot start the runtime: {e}"))
        .ok()
}

/// The App of `path` with its runtime, for a tool that reads the shared
/// store; with the memory store the state lives inside the running gateway
/// only, which is said (exit status 2).
pub fn shared_store_app(
    path: &Path,
    what: &str,
) -> Result<(App, tokio::runtime::Runtime), ExitCode> {
    let app = App::load(path, None).map_err(|e| {
        eprintln!("{e}");
        ExitCode::from(2)
    })?;
    if app.store.backend() == "memory" {
        eprintln!(
            "{}: store.backend is \"memory\": {what} inside the running gateway only; \
             use store.backend = \"redis\" to reach it from the command line",
            path.display()
        );
        return Err(ExitCode::from(2));
    }
    let runtime = small_runtime().ok_or(ExitCode::FAILURE)?;
    Ok((app, runtime))
}
