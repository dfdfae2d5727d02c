//! The host-side egress proxy: the only way out of a sandbox's network namespace.
//!
//! The workload reaches it through the in-namespace [`forwarder`](code_executor::net::forwarder) and a Unix
//! socket bind-mounted into the sandbox. It speaks the two proxy dialects every HTTP client
//! knows: `CONNECT host:port` (then bytes pass through untouched; TLS is not inspected) and
//! plain HTTP in absolute form (`GET http://host/path HTTP/1.1`), rewritten to origin form.
//!
//! Each connection is decided once, *after* resolution, on addresses: the name is resolved here,
//! every address must pass [`NetPolicy`], and the proxy connects to a vetted address itself, so
//! a second resolution (DNS rebinding) has nothing to act on. Every decision goes to the caller's
//! sink (audit log, run report) and is kept for [`EgressProxy::decisions`].
//!
//! Plain HTTP forwarding handles one request per client connection: the proxy adds
//! `Connection: close`, and once the head is forwarded the connection is a byte pipe to the same
//! vetted origin (anything the client sends afterwards can only reach that origin).
#![deny(unsafe_code)]

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use code_executor::net::pattern::{Host, NetPolicy};
pub use code_executor::net::ConnectionDecision;

/// Tunables; the defaults suit production, tests shorten the timeouts.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// How long a client has to send its complete request head; then it gets 408 and is
    /// dropped, so a silent or trickling client cannot hold a connection slot.
    pub header_timeout: Duration,
    /// Largest request line plus headers accepted (431 beyond).
    pub max_head_bytes: usize,
    /// Most client connections served at once (tunnels included); more get 503.
    pub max_connections: usize,
    /// Limit on resolving a name.
    pub resolve_timeout: Duration,
    /// Limit on connecting to one upstream address.
    pub connect_timeout: Duration,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            header_timeout: Duration::from_secs(10),
            max_head_bytes: 16 * 1024,
            max_connections: 256,
            resolve_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// The proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// No Tokio runtime to run on.
    #[error("egress proxy: must be started from within a Tokio runtime")]
    NoRuntime,
    /// Something already exists at the socket path.
    #[error(
        "egress proxy: {} already exists; use a fresh per-run directory for the proxy socket",
        path.display()
    )]
    SocketExists {
        /// The socket path.
        path: PathBuf,
    },
    /// Binding the Unix socket failed.
    #[error("egress proxy: cannot listen on {}: {source}", path.display())]
    Bind {
        /// The socket path.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// Making the socket connectable for the sandbox's uid failed.
    #[error("egress proxy: cannot make {} connectable (mode 0666): {source}", path.display())]
    Permissions {
        /// The socket path.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A zero connection limit would refuse everything; that is what an empty policy is for.
    #[error("egress proxy: max_connections must be between 1 and {}", u32::MAX)]
    BadLimit,
}

type Sink = dyn Fn(ConnectionDecision) + Send + Sync;

/// What every connection task shares.
struct Shared {
    policy: NetPolicy,
    config: ProxyConfig,
    sink: Box<Sink>,
    decisions: Mutex<Vec<ConnectionDecision>>,
}

impl Shared {
    fn record(&self, decision: ConnectionDecision) {
        tracing::debug!(?decision, "egress decision");
        lock(&self.decisions).push(decision.clone());
        (self.sink)(decision);
    }
}

/// A poisoned lock only means a sink panicked mid-push; the list itself is still usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A running egress proxy. Dropping it stops accepting and closes every connection; call
/// [`EgressProxy::shutdown`] to also wait for that and remove the socket file.
pub struct EgressProxy {
    socket_path: PathBuf,
    shared: Arc<Shared>,
    cancel: CancellationToken,
    slots: Arc<Semaphore>,
    max_connections: u32,
    accept_task: Mutex<Option<JoinHandle<()>>>,
}

impl EgressProxy {
    /// Starts the proxy with the default [`ProxyConfig`]; see [`EgressProxy::start_with_config`].
    pub fn start(
        socket_path: &Path,
        policy: NetPolicy,
        sink: impl Fn(ConnectionDecision) + Send + Sync + 'static,
    ) -> Result<EgressProxy, ProxyError> {
        Self::start_with_config(socket_path, policy, ProxyConfig::default(), sink)
    }

    /// Starts listening on `socket_path` (mode 0666, so the sandbox's unprivileged uid can
    /// connect; the caller controls access through the directory it lives in). Must be called
    /// within a Tokio runtime; the proxy runs on it until shut down or dropped.
    ///
    /// `sink` is called on a runtime worker thread for every decision, as it is made: keep it
    /// quick (append to a log, send on a channel). An established tunnel has no idle timeout;
    /// the run's end ([`EgressProxy::shutdown`]) closes it.
    pub fn start_with_config(
        socket_path: &Path,
        policy: NetPolicy,
        config: ProxyConfig,
        sink: impl Fn(ConnectionDecision) + Send + Sync + 'static,
    ) -> Result<EgressProxy, ProxyError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| ProxyError::NoRuntime)?;
        let max_connections = u32::try_from(config.max_connections)
            .ok()
            .filter(|n| *n > 0)
            .ok_or(ProxyError::BadLimit)?;
        if socket_path.symlink_metadata().is_ok() {
            return Err(ProxyError::SocketExists {
                path: socket_path.to_path_buf(),
            });
        }
        let listener = {
            let _guard = runtime.enter();
            UnixListener::bind(socket_path).map_err(|source| ProxyError::Bind {
                path: socket_path.to_path_buf(),
                source,
            })?
        };
        std::fs::set_permissions(socket_path, std::fs::Permissions::from_mode(0o666)).map_err(
            |source| ProxyError::Permissions {
                path: socket_path.to_path_buf(),
                source,
            },
        )?;
        let shared = Arc::new(Shared {
            policy,
            config,
            sink: Box::new(sink),
            decisions: Mutex::new(Vec::new()),
        });
        let cancel = CancellationToken::new();
        let slots = Arc::new(Semaphore::new(max_connections as usize));
        let accept_task = runtime.spawn(accept_loop(
            listener,
            Arc::clone(&shared),
            cancel.clone(),
            Arc::clone(&slots),
        ));
        Ok(EgressProxy {
            socket_path: socket_path.to_path_buf(),
            shared,
            cancel,
            slots,
            max_connections,
            accept_task: Mutex::new(Some(accept_task)),
        })
    }

    /// The socket path the proxy listens on.
    pub fn socket_path(&self) -> &Path {
        &self.socket_path
    }

    /// Every decision so far, in order (a copy; the proxy keeps recording).
    pub fn decisions(&self) -> Vec<ConnectionDecision> {
        lock(&self.shared.decisions).clone()
    }

    /// Takes the decisions recorded so far, leaving the list empty (for the run report at the
    /// end of a run, after [`EgressProxy::shutdown`]).
    pub fn take_decisions(&self) -> Vec<ConnectionDecision> {
        std::mem::take(&mut *lock(&self.shared.decisions))
    }

    /// The run ended: stop accepting, close every connection and tunnel at once, wait until they
    /// are closed, and remove the socket file. Idempotent.
    pub async fn shutdown(&self) {
        self.cancel.cancel();
        let accept_task = lock(&self.accept_task).take();
        if let Some(task) = accept_task {
            // A join error only says the task panicked; it is gone either way.
            let _ = task.await;
        }
        // Every connection task holds a slot until its sockets are dropped.
        if let Ok(all) = self.slots.acquire_many(self.max_connections).await {
            drop(all);
        }
        if let Err(e) = std::fs::remove_file(&self.socket_path) {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!(path = %self.socket_path.display(), error = %e,
                    "egress proxy: cannot remove the socket file");
            }
        }
    }
}

impl Drop for EgressProxy {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn accept_loop(
    listener: UnixListener,
    shared: Arc<Shared>,
    cancel: CancellationToken,
    slots: Arc<Semaphore>,
) {
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let client = match accepted {
            Ok((client, _)) => client,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning; the client retries.
                tracing::warn!(error = %e, "egress proxy: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            // Best effort, without a task: the client learns why before the close.
            let _ = client.try_write(&response(
                503,
                "Service Unavailable",
                "too many concurrent connections through the egress proxy; retry later",
            ));
            continue;
        };
        let shared = Arc::clone(&shared);
        let cancel = cancel.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = serve(client, &shared) => {}
            }
            drop(slot);
        });
    }
}

/// Builds a complete short response that closes the connection.
fn response(status: u16, phrase: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status} {phrase}\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}\n",
        body.len() + 1
    )
    .into_bytes()
}

/// Sends a response and closes; errors only mean the client is already gone.
async fn reply(client: &mut UnixStream, status: u16, phrase: &str, body: &str) {
    let _ = client.write_all(&response(status, phrase, body)).await;
    let _ = client.shutdown().await;
}

enum HeadError {
    /// The client closed before sending a complete head.
    Closed,
    TooLarge,
    Io,
}

/// Reads up to and including the blank line that ends the head. Returns the head and whatever
/// the client already sent after it (a request body or the first bytes of a TLS handshake).
async fn read_head(client: &mut UnixStream, max: usize) -> Result<(Vec<u8>, Vec<u8>), HeadError> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        let n = client.read(&mut chunk).await.map_err(|_| HeadError::Io)?;
        if n == 0 {
            return Err(HeadError::Closed);
        }
        let search_from = buf.len().saturating_sub(3);
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = find(&buf[search_from..], b"\r\n\r\n") {
            let end = search_from + i + 4;
            if end > max {
                return Err(HeadError::TooLarge);
            }
            let rest = buf.split_off(end);
            return Ok((buf, rest));
        }
        if buf.len() >= max {
            return Err(HeadError::TooLarge);
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A parsed proxy request.
#[derive(Debug)]
struct Request {
    host: String,
    port: u16,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Connect,
    /// Plain HTTP: the rewritten head to send upstream.
    Forward {
        head: Vec<u8>,
    },
}

/// Headers that describe the client↔proxy hop and must not be forwarded.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "proxy-connection",
    "keep-alive",
    "proxy-authorization",
    "proxy-authenticate",
    "te",
    "trailer",
    "upgrade",
];

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Parses a request head; the error is the 400 body.
fn parse_request(head: &[u8]) -> Result<Request, String> {
    let text = &head[..head.len() - 4];
    let mut lines = text
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let request_line = lines.next().unwrap_or_default();
    let request_line = std::str::from_utf8(request_line)
        .ok()
        .filter(|l| l.is_ascii())
        .ok_or("the request line is not ASCII")?;
    let parts: Vec<&str> = request_line.split(' ').collect();
    let [method, target, version] = parts[..] else {
        return Err(format!(
            "malformed request line `{}`; expected `METHOD TARGET HTTP/1.1`",
            request_line.escape_debug()
        ));
    };
    if !is_token(method) {
        return Err(format!("malformed method `{}`", method.escape_debug()));
    }
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(format!(
            "unsupported protocol version `{}`",
            version.escape_debug()
        ));
    }
    let mut headers: Vec<(&str, &[u8])> = Vec::new();
    for line in lines {
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or("a header line has no `:`")?;
        let name = std::str::from_utf8(&line[..colon])
            .ok()
            .filter(|n| is_token(n))
            .ok_or("a header name is malformed")?;
        headers.push((name, &line[colon + 1..]));
    }
    if method.eq_ignore_ascii_case("CONNECT") {
        let (host, port) = split_authority(target)?;
        let port = port.ok_or_else(|| format!("CONNECT target `{target}` has no port"))?;
        return Ok(Request {
            host: host.to_string(),
            port,
            kind: Kind::Connect,
        });
    }
    let scheme_end = target.find("://").unwrap_or(0);
    let scheme = &target[..scheme_end];
    if !scheme.eq_ignore_ascii_case("http") {
        return Err(if scheme.eq_ignore_ascii_case("https") {
            "https URLs must go through CONNECT (set HTTPS_PROXY)".to_string()
        } else {
            format!(
                "`{}` is not an absolute http:// URL; this is a forward proxy",
                target.escape_debug()
            )
        });
    }
    let rest = &target[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let mut path = rest[authority_end..]
        .split('#')
        .next()
        .unwrap_or_default()
        .to_string();
    if !path.starts_with('/') {
        path.insert(0, '/');
    }
    if authority.contains('@') {
        return Err("user info in the URL is not supported".to_string());
    }
    let (host, port) = split_authority(authority)?;
    let connection_tokens: Vec<String> = headers
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("connection"))
        .flat_map(|(_, value)| {
            String::from_utf8_lossy(value)
                .split(',')
                .map(|t| t.trim().to_ascii_lowercase())
                .collect::<Vec<_>>()
        })
        .collect();
    let mut out = Vec::with_capacity(head.len() + 64);
    out.extend_from_slice(format!("{method} {path} {version}\r\nHost: {authority}\r\n").as_bytes());
    for (name, value) in &headers {
        let lower = name.to_ascii_lowercase();
        if lower == "host"
            || HOP_BY_HOP.contains(&lower.as_str())
            || connection_tokens.contains(&lower)
        {
            continue;
        }
        out.extend_from_slice(name.as_bytes());
        out.push(b':');
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"Connection: close\r\n\r\n");
    Ok(Request {
        host: host.to_string(),
        port: port.unwrap_or(80),
        kind: Kind::Forward { head: out },
    })
}

/// Splits `host[:port]` / `[v6][:port]`.
fn split_authority(authority: &str) -> Result<(&str, Option<u16>), String> {
    let bad_port = |p: &str| {
        format!(
            "port `{}` is not a number from 1 to 65535",
            p.escape_debug()
        )
    };
    let parse_port = |p: &str| -> Result<u16, String> {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad_port(p));
        }
        p.parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| bad_port(p))
    };
    if authority.starts_with('[') {
        let end = authority
            .find(']')
            .ok_or_else(|| format!("`{}`: `[` without `]`", authority.escape_debug()))?;
        let (host, rest) = authority.split_at(end + 1);
        return match rest {
            "" => Ok((host, None)),
            _ => match rest.strip_prefix(':') {
                Some(p) => Ok((host, Some(parse_port(p)?))),
                None => Err(format!("`{}`: junk after `]`", authority.escape_debug())),
            },
        };
    }
    match authority.rsplit_once(':') {
        Some((host, _)) if host.contains(':') => Err(format!(
            "`{}`: IPv6 addresses must be in brackets",
            authority.escape_debug()
        )),
        Some((host, p)) => Ok((host, Some(parse_port(p)?))),
        None => Ok((authority, None)),
    }
}

/// Serves one client connection from head to close.
async fn serve(mut client: UnixStream, shared: &Shared) {
    let config = &shared.config;
    let read = tokio::time::timeout(
        config.header_timeout,
        read_head(&mut client, config.max_head_bytes),
    )
    .await;
    let (head, early) = match read {
        Err(_elapsed) => {
            let body = "no complete request head within the time limit";
            return reply(&mut client, 408, "Request Timeout", body).await;
        }
        Ok(Err(HeadError::TooLarge)) => {
            let body = format!(
                "request line and headers exceed {} bytes",
                config.max_head_bytes
            );
            return reply(&mut client, 431, "Request Header Fields Too Large", &body).await;
        }
        Ok(Err(HeadError::Closed | HeadError::Io)) => return,
        Ok(Ok(head)) => head,
    };
    let request = match parse_request(&head) {
        Ok(request) => request,
        Err(why) => return reply(&mut client, 400, "Bad Request", &why).await,
    };
    let host = match Host::parse(&request.host) {
        Ok(host) => host,
        Err(e) => return reply(&mut client, 400, "Bad Request", &e.to_string()).await,
    };
    let port = request.port;
    let decision = |address, allowed, reason: String| ConnectionDecision {
        host: host.to_string(),
        port,
        address,
        allowed,
        reason,
    };
    let refuse = |address, reason: String| {
        shared.record(decision(address, false, reason.clone()));
        reason
    };
    let admission = match shared.policy.admit(&host, port) {
        Ok(admission) => admission,
        Err(refusal) => {
            let why = refuse(None, refusal.to_string());
            return reply(&mut client, 403, "Forbidden", &why).await;
        }
    };
    let addrs = match resolve(&host, port, config.resolve_timeout).await {
        Ok(addrs) => addrs,
        Err(why) => {
            let why = refuse(None, why);
            return reply(&mut client, 502, "Bad Gateway", &why).await;
        }
    };
    for addr in &addrs {
        if let Err(refusal) = admission.check_addr(*addr) {
            let why = refuse(Some(*addr), refusal.to_string());
            return reply(&mut client, 403, "Forbidden", &why).await;
        }
    }
    let allowed_by = format!("allowed by pattern `{}`", admission.pattern());
    let (mut upstream, addr) = match connect(&addrs, port, config.connect_timeout).await {
        Ok(connected) => connected,
        Err(why) => {
            let why = format!("{allowed_by}, but {why}");
            shared.record(decision(addrs.first().copied(), true, why.clone()));
            return reply(&mut client, 502, "Bad Gateway", &why).await;
        }
    };
    shared.record(decision(Some(addr), true, allowed_by));
    let prologue = match request.kind {
        Kind::Connect => {
            let established = b"HTTP/1.1 200 Connection Established\r\n\r\n";
            if client.write_all(established).await.is_err() {
                return;
            }
            early
        }
        Kind::Forward { mut head } => {
            head.extend_from_slice(&early);
            head
        }
    };
    if upstream.write_all(&prologue).await.is_err() {
        return;
    }
    // Half-closes propagate: EOF from one side becomes shutdown(Write) on the other.
    let _ =
        tokio::io::copy_bidirectional_with_sizes(&mut client, &mut upstream, 64 * 1024, 64 * 1024)
            .await;
}

/// Resolves on the host (never inside the sandbox); the error is the refusal reason.
async fn resolve(host: &Host, port: u16, limit: Duration) -> Result<Vec<IpAddr>, String> {
    let name = match host {
        Host::Ip(ip) => return Ok(vec![*ip]),
        Host::Name(name) => name,
    };
    let looked_up = tokio::time::timeout(limit, tokio::net::lookup_host((name.as_str(), port)))
        .await
        .map_err(|_| format!("resolving `{name}` took longer than {limit:?}"))?
        .map_err(|e| format!("cannot resolve `{name}`: {e}"))?;
    let mut addrs: Vec<IpAddr> = Vec::new();
    for sa in looked_up {
        let ip = sa.ip().to_canonical();
        if !addrs.contains(&ip) {
            addrs.push(ip);
        }
    }
    if addrs.is_empty() {
        return Err(format!("`{name}` resolved to no address"));
    }
    Ok(addrs)
}

/// Connects to the first vetted address that answers.
async fn connect(
    addrs: &[IpAddr],
    port: u16,
    limit: Duration,
) -> Result<(TcpStream, IpAddr), String> {
    let mut last = String::from("no address to connect to");
    for addr in addrs {
        match tokio::time::timeout(limit, TcpStream::connect(SocketAddr::new(*addr, port))).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                return Ok((stream, *addr));
            }
            Ok(Err(e)) => last = format!("connecting to {addr} port {port} failed: {e}"),
            Err(_) => last = format!("connecting to {addr} port {port} timed out after {limit:?}"),
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forward_head(req: &str) -> String {
        match parse_request(req.as_bytes()) {
            Ok(Request {
                kind: Kind::Forward { head },
                ..
            }) => String::from_utf8(head).unwrap_or_default(),
            other => panic!("{req:?} → {other:?}"),
        }
    }

    #[test]
    fn rewrites_absolute_form_to_origin_form() {
        let head = forward_head(
            "GET http://example.com:8080/a/b?c=d#frag HTTP/1.1\r\nHost: evil\r\n\
             Proxy-Connection: keep-alive\r\nConnection: keep-alive, X-Secret\r\n\
             X-Secret: 1\r\nAccept: */*\r\n\r\n",
        );
        assert_eq!(
            head,
            "GET /a/b?c=d HTTP/1.1\r\nHost: example.com:8080\r\nAccept: */*\r\n\
             Connection: close\r\n\r\n"
        );
        let head = forward_head("GET http://example.com?q HTTP/1.0\r\n\r\n");
        assert!(
            head.starts_with("GET /?q HTTP/1.0\r\nHost: example.com\r\n"),
            "{head}"
        );
    }

    #[test]
    fn parses_targets() {
        let cases: &[(&str, Option<(&str, u16)>)] = &[
            (
                "CONNECT api.github.com:443 HTTP/1.1\r\n\r\n",
                Some(("api.github.com", 443)),
            ),
            ("CONNECT [::1]:443 HTTP/1.1\r\n\r\n", Some(("[::1]", 443))),
            ("GET http://[::1]/ HTTP/1.1\r\n\r\n", Some(("[::1]", 80))),
            (
                "GET HTTP://a.example:81/ HTTP/1.1\r\n\r\n",
                Some(("a.example", 81)),
            ),
            ("CONNECT api.github.com HTTP/1.1\r\n\r\n", None),
            ("CONNECT ::1:443 HTTP/1.1\r\n\r\n", None),
            ("CONNECT a:0 HTTP/1.1\r\n\r\n", None),
            ("CONNECT a:65536 HTTP/1.1\r\n\r\n", None),
            ("GET / HTTP/1.1\r\n\r\n", None),
            ("GET https://a.example/ HTTP/1.1\r\n\r\n", None),
            ("GET http://user@a.example/ HTTP/1.1\r\n\r\n", None),
            ("GET http://a.example/ HTTP/2\r\n\r\n", None),
            ("GET  http://a.example/ HTTP/1.1\r\n\r\n", None),
            ("GET http://a.example/ HTTP/1.1\r\nbad header\r\n\r\n", None),
            ("\u{1}\u{2}\r\n\r\n", None),
        ];
        for (req, want) in cases {
            let got = parse_request(req.as_bytes()).map(|r| (r.host, r.port));
            match want {
                Some((h, p)) => assert_eq!(got, Ok((h.to_string(), *p)), "{req:?}"),
                None => assert!(got.is_err(), "{req:?} accepted: {got:?}"),
            }
        }
    }
}
