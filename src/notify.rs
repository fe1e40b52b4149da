//! sd_notify(3) without libsystemd: datagrams to `$NOTIFY_SOCKET` (a path,
//! or `@name` in the abstract namespace). Without the variable, nothing.
//! A reload is `RELOADING=1` with `MONOTONIC_USEC` and then `READY=1`, so
//! the service manager knows which reload the notifications belong to.

use std::os::unix::net::UnixDatagram;

/// Sends `state` (e.g. `READY=1\nSTATUS=...`) to the service manager.
pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if let Err(e) = send(&path, state) {
        tracing::warn!(error = %e, "sd_notify failed");
    }
}

/// A reload begins: `RELOADING=1` with the `CLOCK_MONOTONIC` time in µs
/// (systemd matches it against the time it asked for the reload). Send
/// `READY=1` when the reload is done, whatever its result.
pub fn reloading(status: &str) {
    notify(&format!(
        "RELOADING=1\nMONOTONIC_USEC={}\nSTATUS={status}",
        monotonic_usec()
    ));
}

/// `CLOCK_MONOTONIC` in microseconds, as systemd reads it (std's `Instant`
/// is the same clock but does not show its value).
pub fn monotonic_usec() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer;
    // CLOCK_MONOTONIC always exists on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    if rc != 0 {
        return 0;
    }
    let secs = u64::try_from(now.tv_sec).unwrap_or(0);
    let micros = u64::try_from(now.tv_nsec).unwrap_or(0) / 1000;
    secs.saturating_mul(1_000_000).saturating_add(micros)
}

fn send(path: &std::ffi::OsStr, state: &str) -> std::io::Result<usize> {
    let socket = UnixDatagram::unbound()?;
    let bytes = std::os::unix::ffi::OsStrExt::as_bytes(path);
    if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        socket.send_to_addr(state.as_bytes(), &addr)
    } else {
        socket.send_to(state.as_bytes(), path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_usec_follows_instant() {
        let before = monotonic_usec();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let after = monotonic_usec();
        assert!(before > 0);
        assert!(after >= before + 20_000, "{before} {after}");
    }
}
