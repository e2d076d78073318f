//! Tells the service manager how the process is doing: systemd's notify
//! protocol (`Type=notify`), a datagram of `KEY=value` lines sent to the unix
//! socket named by `$NOTIFY_SOCKET` (a path, or `@name` in the abstract
//! namespace).
//!
//! Without `$NOTIFY_SOCKET` (not started by systemd) every call does
//! nothing. A failed send is logged at debug and otherwise ignored: the
//! service manager is told, it never decides whether mesync runs. The
//! protocol is a dozen lines, so it is written here rather than pulled in.

use std::io;
use std::os::unix::net::UnixDatagram;

/// The variable systemd sets for a `Type=notify` service.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// The service is up: the hub listens, or the daemon runs.
pub fn ready(status: &str) {
    notify(&format!(
        "READY=1\nSTATUS={status}\nMAINPID={}",
        std::process::id()
    ));
}

/// The service is shutting down (finishing work in flight).
pub fn stopping() {
    notify("STOPPING=1\nSTATUS=stopping");
}

/// A one-line status for `systemctl status`.
pub fn status(status: &str) {
    notify(&format!("STATUS={status}"));
}

fn notify(state: &str) {
    let Some(socket) = std::env::var_os(NOTIFY_SOCKET) else {
        return;
    };
    let socket = socket.to_string_lossy();
    if let Err(e) = send(&socket, state) {
        tracing::debug!(socket = %socket, "cannot notify the service manager: {e}");
    }
}

/// One datagram, without blocking: a manager that cannot take it now would
/// not make the message more useful later.
fn send(socket: &str, state: &str) -> io::Result<()> {
    let sock = UnixDatagram::unbound()?;
    sock.set_nonblocking(true)?;
    if let Some(name) = socket.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
        sock.send_to_addr(state.as_bytes(), &addr)?;
    } else {
        sock.send_to(state.as_bytes(), socket)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_one_datagram_to_a_path_or_an_abstract_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        send(path.to_str().unwrap(), "READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");

        use std::os::linux::net::SocketAddrExt;
        let name = format!("mesync-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let listener = UnixDatagram::bind_addr(&addr).unwrap();
        send(&format!("@{name}"), "STOPPING=1").unwrap();
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");
    }
}
