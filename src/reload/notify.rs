//! The systemd notification protocol (`sd_notify`): a `Type=notify` service
//! tells systemd when it is ready, when it reloads and when it stops, by
//! datagrams of `KEY=VALUE` lines to the Unix socket named in
//! `$NOTIFY_SOCKET`. Without that variable (not under systemd) nothing is
//! sent. The protocol is a few lines; a library for it would be larger than
//! this file.
//!
//! `sipc run` sends `READY=1` once its sockets are bound and its config
//! serves; each reload sends `RELOADING=1` (with `MONOTONIC_USEC`, as
//! systemd 253's `Type=notify-reload` wants) before it starts and `READY=1`
//! when it ends, whether the new config serves or the old one keeps
//! serving; SIGTERM sends `STOPPING=1`. `STATUS=` says which generation
//! serves, for `systemctl status`.

use std::os::unix::net::UnixDatagram;
use std::sync::OnceLock;

fn socket() -> Option<&'static (UnixDatagram, std::os::unix::net::SocketAddr)> {
    static SOCKET: OnceLock<Option<(UnixDatagram, std::os::unix::net::SocketAddr)>> =
        OnceLock::new();
    SOCKET
        .get_or_init(|| {
            let name = std::env::var_os("NOTIFY_SOCKET")?;
            let bytes = name.as_encoded_bytes();
            let addr = match bytes.strip_prefix(b"@") {
                // An abstract socket (Linux).
                Some(abstract_name) => {
                    use std::os::linux::net::SocketAddrExt as _;
                    std::os::unix::net::SocketAddr::from_abstract_name(abstract_name).ok()?
                }
                None => std::os::unix::net::SocketAddr::from_pathname(&name).ok()?,
            };
            let sock = UnixDatagram::unbound().ok()?;
            Some((sock, addr))
        })
        .as_ref()
}

/// Sends `state` (`KEY=VALUE` lines) to systemd, if it listens. A failure
/// is logged once per call and otherwise ignored: the proxy serves without
/// its service manager's attention.
pub fn notify(state: &str) {
    let Some((sock, addr)) = socket() else { return };
    if let Err(e) = sock.send_to_addr(state.as_bytes(), addr) {
        tracing::debug!("sd_notify: {e}");
    }
}

/// `CLOCK_MONOTONIC` in microseconds, for `MONOTONIC_USEC`.
pub fn monotonic_usec() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map_or(0, |t| t.tv_sec() as u64 * 1_000_000 + t.tv_nsec() as u64 / 1000)
}

/// Whether `$NOTIFY_SOCKET` names somewhere to notify.
pub fn enabled() -> bool {
    socket().is_some()
}
