//! The in-namespace half of egress: TCP on 127.0.0.1 spliced to the host proxy's Unix socket.
//!
//! A sandboxed run has only `lo`, so its clients cannot reach the host proxy over TCP. The
//! sandbox's init forks a small process that runs [`run_forwarder`] inside the network
//! namespace: it accepts on `127.0.0.1:PORT` (what `HTTP_PROXY` points at, see [`proxy_env`])
//! and splices every connection to a fresh connection to the proxy's Unix socket, which is
//! bind-mounted into the sandbox. It makes no decisions; the proxy does.
//!
//! Why blocking `poll(2)` and no tokio: it runs in a process forked from the single-threaded
//! init, where a runtime's threads would be a liability, and it only moves bytes.

use std::convert::Infallible;
use std::io::{self, Read};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::Path;

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::MsgFlags;

/// Most connections spliced at once; more wait in the listen backlog until one closes.
pub const MAX_CONNECTIONS: usize = 128;

/// Bytes buffered per direction per connection: 128 connections use at most 8 MiB.
const BUFFER_BYTES: usize = 32 * 1024;

/// The forwarder stopped; only a broken listener or `poll` stops it.
#[derive(Debug, thiserror::Error)]
pub enum ForwarderError {
    /// The listener could not be made non-blocking.
    #[error("egress forwarder: cannot make the 127.0.0.1 listener non-blocking: {0}")]
    Listener(io::Error),
    /// `poll(2)` failed for a reason other than a signal.
    #[error("egress forwarder: poll(2) failed: {0}; connections through the proxy stop here")]
    Poll(Errno),
}

/// Binds the forwarder's listener on 127.0.0.1 with an ephemeral port, returning the port for
/// [`proxy_env`]. Call it inside the sandbox's network namespace, after `lo` is up.
pub fn bind_loopback() -> io::Result<(TcpListener, u16)> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let port = listener.local_addr()?.port();
    Ok((listener, port))
}

/// The environment that points clients at the forwarder: both spellings, since curl and python
/// read the lower-case ones and deno the upper-case ones. `NO_PROXY` is left unset on purpose:
/// everything, loopback included, goes through the proxy (the sandbox's own loopback has
/// nothing of the host's on it anyway).
pub fn proxy_env(port: u16) -> Vec<(&'static str, String)> {
    let url = format!("http://127.0.0.1:{port}");
    ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"]
        .into_iter()
        .map(|name| (name, url.clone()))
        .collect()
}

/// Runs the forwarder with [`MAX_CONNECTIONS`]; see [`run_forwarder_with_limit`].
pub fn run_forwarder(
    listener: TcpListener,
    unix_socket_path: &Path,
) -> Result<Infallible, ForwarderError> {
    run_forwarder_with_limit(listener, unix_socket_path, MAX_CONNECTIONS)
}

/// One direction of a connection: bytes read from one socket, waiting to be written to the
/// other.
struct Pipe {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    /// The source sent EOF.
    eof: bool,
    /// EOF was passed on with `shutdown(Write)` on the destination.
    shut: bool,
}

impl Pipe {
    fn new() -> Pipe {
        Pipe {
            buf: vec![0; BUFFER_BYTES].into_boxed_slice(),
            start: 0,
            end: 0,
            eof: false,
            shut: false,
        }
    }

    fn wants_read(&self) -> bool {
        !self.eof && self.end < self.buf.len()
    }

    fn has_data(&self) -> bool {
        self.start < self.end
    }

    /// Reads what is available; `Err` means the connection is broken.
    fn fill(&mut self, from: &mut impl Read) -> Result<(), ()> {
        match from.read(&mut self.buf[self.end..]) {
            Ok(0) => self.eof = true,
            Ok(n) => self.end += n,
            Err(e) if would_block(&e) => {}
            Err(_) => return Err(()),
        }
        Ok(())
    }

    /// Writes what is buffered; `Err` means the connection is broken.
    fn drain(&mut self, to: &impl AsFd) -> Result<(), ()> {
        // MSG_NOSIGNAL: a peer that went away must not kill the forwarder with SIGPIPE.
        match crate::sys::send(
            to.as_fd(),
            &self.buf[self.start..self.end],
            MsgFlags::MSG_NOSIGNAL,
        ) {
            Ok(n) => self.start += n,
            Err(Errno::EAGAIN | Errno::EINTR) => {}
            Err(_) => return Err(()),
        }
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        Ok(())
    }
}

fn would_block(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

/// One spliced connection.
struct Splice {
    tcp: TcpStream,
    unix: UnixStream,
    /// TCP → Unix (the request side).
    up: Pipe,
    /// Unix → TCP (the response side).
    down: Pipe,
    broken: bool,
}

impl Splice {
    fn tcp_events(&self) -> PollFlags {
        let mut events = PollFlags::empty();
        if self.up.wants_read() {
            events |= PollFlags::POLLIN;
        }
        if self.down.has_data() {
            events |= PollFlags::POLLOUT;
        }
        events
    }

    fn unix_events(&self) -> PollFlags {
        let mut events = PollFlags::empty();
        if self.down.wants_read() {
            events |= PollFlags::POLLIN;
        }
        if self.up.has_data() {
            events |= PollFlags::POLLOUT;
        }
        events
    }

    /// Does the I/O that `poll` reported ready for; `None` means that side was not polled.
    fn step(&mut self, tcp: Option<PollFlags>, unix: Option<PollFlags>) {
        let readable = PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR;
        let writable = PollFlags::POLLOUT | PollFlags::POLLHUP | PollFlags::POLLERR;
        let ready = |r: Option<PollFlags>, mask: PollFlags| r.is_some_and(|r| r.intersects(mask));
        let mut ok = Ok(());
        if ready(tcp, readable) && self.up.wants_read() {
            ok = ok.and(self.up.fill(&mut self.tcp));
        }
        if ready(unix, readable) && self.down.wants_read() {
            ok = ok.and(self.down.fill(&mut self.unix));
        }
        // Try to pass on fresh data at once rather than after another poll round.
        if self.up.has_data() && (ready(unix, writable) || ready(tcp, readable)) {
            ok = ok.and(self.up.drain(&self.unix));
        }
        if self.down.has_data() && (ready(tcp, writable) || ready(unix, readable)) {
            ok = ok.and(self.down.drain(&self.tcp));
        }
        if ok.is_err() {
            self.broken = true;
            return;
        }
        // Half-close: once one side's EOF is flushed, tell the other side, and keep the other
        // direction open (a client may shut its write side and still read the response).
        if self.up.eof && !self.up.has_data() && !self.up.shut {
            self.up.shut = true;
            let _ = self.unix.shutdown(std::net::Shutdown::Write);
        }
        if self.down.eof && !self.down.has_data() && !self.down.shut {
            self.down.shut = true;
            let _ = self.tcp.shutdown(std::net::Shutdown::Write);
        }
    }

    fn finished(&self) -> bool {
        self.broken || (self.up.shut && self.down.shut)
    }
}

/// Accepts on `listener` forever, splicing each connection to a new connection to
/// `unix_socket_path`, at most `max_connections` at a time. Returns only on a fatal error.
///
/// A connection whose Unix side cannot be opened (the proxy is gone) is closed at once, which
/// the client sees as a reset or EOF. The Unix connect is blocking: the proxy accepts promptly,
/// and a stuck proxy means no egress anyway.
pub fn run_forwarder_with_limit(
    listener: TcpListener,
    unix_socket_path: &Path,
    max_connections: usize,
) -> Result<Infallible, ForwarderError> {
    listener
        .set_nonblocking(true)
        .map_err(ForwarderError::Listener)?;
    let max_connections = max_connections.max(1);
    let mut splices: Vec<Splice> = Vec::new();
    loop {
        // Only descriptors with something to wait for are polled: an idle one that hung up
        // would otherwise wake poll forever.
        let mut slots: Vec<(usize, bool)> = Vec::with_capacity(2 * splices.len());
        let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(1 + 2 * splices.len());
        let accepting = splices.len() < max_connections;
        fds.push(PollFd::new(
            listener.as_fd(),
            if accepting {
                PollFlags::POLLIN
            } else {
                PollFlags::empty()
            },
        ));
        for (i, s) in splices.iter().enumerate() {
            let tcp = s.tcp_events();
            if !tcp.is_empty() {
                fds.push(PollFd::new(s.tcp.as_fd(), tcp));
                slots.push((i, true));
            }
            let unix = s.unix_events();
            if !unix.is_empty() {
                fds.push(PollFd::new(s.unix.as_fd(), unix));
                slots.push((i, false));
            }
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(ForwarderError::Poll(e)),
        }
        let listener_ready = fds[0]
            .revents()
            .is_some_and(|r| r.contains(PollFlags::POLLIN));
        let mut ready: Vec<(Option<PollFlags>, Option<PollFlags>)> =
            vec![(None, None); splices.len()];
        for ((i, is_tcp), fd) in slots.iter().zip(&fds[1..]) {
            let revents = fd.revents().filter(|r| !r.is_empty());
            if *is_tcp {
                ready[*i].0 = revents;
            } else {
                ready[*i].1 = revents;
            }
        }
        drop(fds);
        for (s, (tcp, unix)) in splices.iter_mut().zip(ready) {
            if tcp.is_some() || unix.is_some() {
                s.step(tcp, unix);
            }
        }
        splices.retain(|s| !s.finished());
        if listener_ready {
            accept_ready(&listener, unix_socket_path, &mut splices, max_connections);
        }
    }
}

fn accept_ready(
    listener: &TcpListener,
    unix_socket_path: &Path,
    splices: &mut Vec<Splice>,
    max_connections: usize,
) {
    while splices.len() < max_connections {
        let tcp = match listener.accept() {
            Ok((tcp, _)) => tcp,
            // WouldBlock: drained. Anything else (EMFILE, ECONNABORTED): retry on the next poll.
            Err(_) => return,
        };
        // The proxy is gone only when the run is ending: drop the client, it sees a reset.
        let Ok(unix) = UnixStream::connect(unix_socket_path) else {
            continue;
        };
        if tcp.set_nonblocking(true).is_err() || unix.set_nonblocking(true).is_err() {
            continue;
        }
        let _ = tcp.set_nodelay(true);
        splices.push(Splice {
            tcp,
            unix,
            up: Pipe::new(),
            down: Pipe::new(),
            broken: false,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::net::UnixListener;
    use std::thread;

    /// A Unix server that echoes until EOF, then says "bye" and closes,
    /// which exercises half-close in both directions.
    #[test]
    fn splices_both_directions_with_half_close() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("proxy.sock");
        let unix_listener = UnixListener::bind(&path).expect("bind unix");
        thread::spawn(move || {
            for conn in unix_listener.incoming() {
                let Ok(mut conn) = conn else { return };
                thread::spawn(move || {
                    let mut got = Vec::new();
                    let _ = conn.read_to_end(&mut got);
                    let _ = conn.write_all(&got);
                    let _ = conn.write_all(b"bye");
                });
            }
        });
        let (listener, port) = bind_loopback().expect("bind tcp");
        let path2 = path.clone();
        thread::spawn(move || run_forwarder(listener, &path2));
        let payload: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let mut clients = Vec::new();
        for _ in 0..4 {
            let payload = payload.clone();
            clients.push(thread::spawn(move || {
                let mut tcp = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("connect");
                let writer = {
                    let mut tcp = tcp.try_clone().expect("clone");
                    let payload = payload.clone();
                    thread::spawn(move || {
                        tcp.write_all(&payload).expect("write");
                        tcp.shutdown(std::net::Shutdown::Write).expect("shutdown");
                    })
                };
                let mut back = Vec::new();
                tcp.read_to_end(&mut back).expect("read");
                writer.join().expect("writer");
                assert_eq!(back.len(), payload.len() + 3);
                assert!(back[..payload.len()] == payload[..], "payload corrupted");
                assert_eq!(&back[payload.len()..], b"bye");
            }));
        }
        for c in clients {
            c.join().expect("client");
        }
    }

    #[test]
    fn proxy_env_points_at_loopback() {
        let env = proxy_env(4321);
        assert!(env.contains(&("HTTPS_PROXY", "http://127.0.0.1:4321".to_string())));
        assert!(env.contains(&("http_proxy", "http://127.0.0.1:4321".to_string())));
    }
}
