//! The egress proxy and forwarder against real sockets: a Unix socket in a temp dir, a plain
//! HTTP server on 127.0.0.1, real clients. Loopback only; nothing leaves the machine.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use code_executor::net::forwarder;
use code_executor::net::pattern::NetPolicy;
use code_executor_egress::{ConnectionDecision, EgressProxy, ProxyConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

const LIMIT: Duration = Duration::from_secs(20);

/// A tiny HTTP/1.1 server on 127.0.0.1: one thread per connection, one request each. The body
/// describes the request it received, so tests can see what the proxy forwarded.
fn http_server() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind http server");
    let port = listener.local_addr().expect("local addr").port();
    thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            thread::spawn(move || serve_one(conn));
        }
    });
    port
}

fn serve_one(mut conn: TcpStream) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match conn.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let length = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    if conn.read_exact(&mut body).is_err() {
        return;
    }
    let reply = format!(
        "upstream saw:\n{}body={}",
        head.replace("\r\n", "\n"),
        String::from_utf8_lossy(&body)
    );
    let _ = write!(
        conn,
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
        reply.len()
    );
}

struct Fixture {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    proxy: EgressProxy,
    sunk: Arc<Mutex<Vec<ConnectionDecision>>>,
}

fn start(patterns: &[String], config: ProxyConfig) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("egress.sock");
    let policy = NetPolicy::parse(patterns).expect("policy");
    let sunk = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&sunk);
    let proxy = EgressProxy::start_with_config(&socket, policy, config, move |d| {
        sink.lock().expect("sink lock").push(d)
    })
    .expect("proxy starts");
    Fixture {
        _dir: dir,
        socket,
        proxy,
        sunk,
    }
}

fn quick() -> ProxyConfig {
    ProxyConfig {
        header_timeout: Duration::from_millis(300),
        ..ProxyConfig::default()
    }
}

/// Sends `request` and reads until the proxy closes.
async fn exchange(socket: &Path, request: &[u8]) -> String {
    tokio::time::timeout(LIMIT, async {
        let mut conn = UnixStream::connect(socket).await.expect("connect proxy");
        conn.write_all(request).await.expect("send");
        let mut out = Vec::new();
        let _ = conn.read_to_end(&mut out).await;
        String::from_utf8_lossy(&out).into_owned()
    })
    .await
    .expect("proxy answered in time")
}

/// Reads one response head (up to the blank line) byte by byte, leaving the rest unread.
async fn read_head(conn: &mut UnixStream) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let b = conn.read_u8().await.expect("head byte");
        head.push(b);
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// Opens a CONNECT tunnel and returns it once the proxy said 200.
async fn tunnel(socket: &Path, target: &str) -> UnixStream {
    let mut conn = UnixStream::connect(socket).await.expect("connect proxy");
    let req = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n");
    conn.write_all(req.as_bytes()).await.expect("send CONNECT");
    let head = read_head(&mut conn).await;
    assert!(head.starts_with("HTTP/1.1 200"), "CONNECT {target}: {head}");
    conn
}

async fn get_through(mut conn: UnixStream, port: u16, path: &str) -> String {
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    conn.write_all(req.as_bytes()).await.expect("send GET");
    let mut out = Vec::new();
    conn.read_to_end(&mut out).await.expect("read response");
    String::from_utf8_lossy(&out).into_owned()
}

fn loopback() -> IpAddr {
    IpAddr::V4(Ipv4Addr::LOCALHOST)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_tunnel_reaches_explicitly_allowed_private_address() {
    let port = http_server();
    let f = start(&[format!("127.0.0.1:{port}")], quick());
    let conn = tunnel(&f.socket, &format!("127.0.0.1:{port}")).await;
    let resp = tokio::time::timeout(LIMIT, get_through(conn, port, "/tunnelled"))
        .await
        .expect("in time");
    assert!(resp.starts_with("HTTP/1.1 200 OK"), "{resp}");
    assert!(resp.contains("GET /tunnelled HTTP/1.1"), "{resp}");
    let decisions = f.proxy.decisions();
    assert_eq!(decisions.len(), 1, "{decisions:?}");
    let d = &decisions[0];
    assert!(d.allowed, "{d:?}");
    assert_eq!(
        (d.host.as_str(), d.port, d.address),
        ("127.0.0.1", port, Some(loopback()))
    );
    assert!(d.reason.contains(&format!("127.0.0.1:{port}")), "{d:?}");
    assert_eq!(
        *f.sunk.lock().expect("lock"),
        decisions,
        "sink saw the same decisions"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_passes_bytes_sent_with_the_head() {
    let port = http_server();
    let f = start(&[format!("127.0.0.1:{port}")], quick());
    let req =
        format!("CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\nGET /eager HTTP/1.1\r\nHost: x\r\n\r\n");
    let resp = exchange(&f.socket, req.as_bytes()).await;
    assert!(
        resp.starts_with("HTTP/1.1 200 Connection Established\r\n\r\nHTTP/1.1 200 OK"),
        "{resp}"
    );
    assert!(resp.contains("GET /eager HTTP/1.1"), "{resp}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_is_rewritten_to_origin_form() {
    let port = http_server();
    let f = start(&[format!("127.0.0.1:{port}")], quick());
    let req = format!(
        "POST http://127.0.0.1:{port}/submit?x=1 HTTP/1.1\r\nHost: elsewhere.example\r\n\
         Proxy-Connection: keep-alive\r\nContent-Length: 5\r\n\r\nhello"
    );
    let resp = exchange(&f.socket, req.as_bytes()).await;
    assert!(resp.starts_with("HTTP/1.1 200 OK"), "{resp}");
    assert!(resp.contains("POST /submit?x=1 HTTP/1.1\n"), "{resp}");
    assert!(
        resp.contains(&format!("Host: 127.0.0.1:{port}\n")),
        "{resp}"
    );
    assert!(resp.contains("Connection: close\n"), "{resp}");
    assert!(
        !resp.to_ascii_lowercase().contains("proxy-connection"),
        "{resp}"
    );
    assert!(!resp.contains("elsewhere.example"), "{resp}");
    assert!(resp.ends_with("body=hello"), "{resp}");
    assert!(f.proxy.decisions()[0].allowed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_outside_the_allowlist_get_403_and_a_refusal_record() {
    let port = http_server();
    let f = start(&[format!("127.0.0.1:{port}")], quick());
    let other_port = if port == 65535 { port - 1 } else { port + 1 };
    let cases = [
        format!("CONNECT 127.0.0.1:{other_port} HTTP/1.1\r\n\r\n"),
        format!("GET http://127.0.0.2:{port}/ HTTP/1.1\r\n\r\n"),
        "CONNECT api.github.com:443 HTTP/1.1\r\n\r\n".to_string(),
        format!("CONNECT localhost:{port} HTTP/1.1\r\n\r\n"),
    ];
    for req in &cases {
        let resp = exchange(&f.socket, req.as_bytes()).await;
        assert!(
            resp.starts_with("HTTP/1.1 403 Forbidden"),
            "{req:?} → {resp}"
        );
        assert!(
            resp.contains("not in this run's network allowlist"),
            "{resp}"
        );
    }
    let decisions = f.proxy.decisions();
    assert_eq!(decisions.len(), cases.len());
    assert!(
        decisions.iter().all(|d| !d.allowed && d.address.is_none()),
        "{decisions:?}"
    );
    assert_eq!(decisions[2].host, "api.github.com");
    assert_eq!(decisions[3].host, "localhost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcard_never_reaches_loopback_in_any_spelling() {
    let port = http_server();
    let f = start(&["*".to_string()], quick());
    for host in [
        "127.0.0.1",
        "localhost",
        "0x7f.1",
        "2130706433",
        "[::ffff:127.0.0.1]",
        "127.0.0.1.",
    ] {
        let req = format!("GET http://{host}:{port}/ HTTP/1.1\r\n\r\n");
        let resp = exchange(&f.socket, req.as_bytes()).await;
        assert!(resp.starts_with("HTTP/1.1 403"), "{host} → {resp}");
        assert!(resp.contains("loopback"), "{host} → {resp}");
    }
    let decisions = f.proxy.decisions();
    assert_eq!(decisions.len(), 6);
    for d in &decisions {
        assert!(!d.allowed, "{d:?}");
        let addr = d.address.expect("refused after resolution");
        assert!(addr.is_loopback(), "{d:?}");
    }
    // Cloud metadata names are refused before any resolution.
    let resp = exchange(
        &f.socket,
        b"CONNECT metadata.google.internal:80 HTTP/1.1\r\n\r\n",
    )
    .await;
    assert!(
        resp.starts_with("HTTP/1.1 403") && resp.contains("cloud metadata"),
        "{resp}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn localhost_is_reachable_only_when_named() {
    let port = http_server();
    // Named as `localhost`: every address it resolves to (127.0.0.1, maybe ::1) is allowed,
    // and the proxy connects to whichever answers (the server listens on 127.0.0.1 only).
    let f = start(&[format!("localhost:{port}")], quick());
    let conn = tunnel(&f.socket, &format!("localhost:{port}")).await;
    let resp = get_through(conn, port, "/named").await;
    assert!(resp.contains("GET /named"), "{resp}");
    let d = &f.proxy.decisions()[0];
    assert!(d.allowed && d.address == Some(loopback()), "{d:?}");
    // Naming localhost does not name 127.0.0.1.
    let resp = exchange(
        &f.socket,
        format!("CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n").as_bytes(),
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 403"), "{resp}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_gets_400_and_the_proxy_keeps_serving() {
    let port = http_server();
    let f = start(&[format!("127.0.0.1:{port}")], quick());
    let garbage: [&[u8]; 6] = [
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
        b"HELLO\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET https://127.0.0.1/ HTTP/1.1\r\n\r\n",
        b"CONNECT 127.0.0.1 junk:80 HTTP/1.1\r\n\r\n",
        b"CONNECT 127.0.0.1:0 HTTP/1.1\r\n\r\n",
    ];
    for g in garbage {
        let resp = exchange(&f.socket, g).await;
        assert!(
            resp.starts_with("HTTP/1.1 400 Bad Request"),
            "{g:?} → {resp}"
        );
    }
    let big = format!(
        "GET http://127.0.0.1:{port}/ HTTP/1.1\r\nX: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    let resp = exchange(&f.socket, big.as_bytes()).await;
    assert!(resp.starts_with("HTTP/1.1 431"), "{resp}");
    let resp = exchange(
        &f.socket,
        format!("GET http://127.0.0.1:{port}/after HTTP/1.1\r\n\r\n").as_bytes(),
    )
    .await;
    assert!(resp.contains("GET /after"), "{resp}");
    assert!(
        f.proxy.decisions().len() == 1,
        "garbage is not a connection decision"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_is_dropped_after_the_header_timeout() {
    let f = start(&["*".to_string()], quick());
    let started = std::time::Instant::now();
    let mut conn = UnixStream::connect(&f.socket).await.expect("connect");
    conn.write_all(b"GET http://127.0.0.1/ HTTP/1.1\r\n")
        .await
        .expect("partial head");
    let mut out = Vec::new();
    tokio::time::timeout(LIMIT, conn.read_to_end(&mut out))
        .await
        .expect("dropped in time")
        .expect("read");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250),
        "dropped too early: {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(5),
        "dropped too late: {waited:?}"
    );
    assert!(
        String::from_utf8_lossy(&out).starts_with("HTTP/1.1 408"),
        "{out:?}"
    );
    // A client that sends nothing at all is dropped the same way.
    let mut mute = UnixStream::connect(&f.socket).await.expect("connect");
    let mut out = Vec::new();
    tokio::time::timeout(LIMIT, mute.read_to_end(&mut out))
        .await
        .expect("dropped in time")
        .expect("read");
    assert!(
        String::from_utf8_lossy(&out).starts_with("HTTP/1.1 408"),
        "{out:?}"
    );
    assert!(f.proxy.decisions().is_empty(), "no request, no decision");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_hundred_concurrent_tunnels_all_work() {
    let port = http_server();
    let f = start(&[format!("127.0.0.1:{port}")], ProxyConfig::default());
    let mut tunnels = Vec::new();
    for _ in 0..100 {
        tunnels.push(tunnel(&f.socket, &format!("127.0.0.1:{port}")).await);
    }
    // All 100 are open at once; now use them concurrently.
    let tasks: Vec<_> = tunnels
        .into_iter()
        .enumerate()
        .map(|(i, conn)| {
            tokio::spawn(async move { get_through(conn, port, &format!("/t{i}")).await })
        })
        .collect();
    for (i, task) in tasks.into_iter().enumerate() {
        let resp = tokio::time::timeout(LIMIT, task)
            .await
            .expect("in time")
            .expect("task");
        assert!(
            resp.contains(&format!("GET /t{i} HTTP/1.1")),
            "tunnel {i}: {resp}"
        );
    }
    assert_eq!(
        f.proxy.decisions().iter().filter(|d| d.allowed).count(),
        100
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_get_503() {
    let f = start(
        &["*".to_string()],
        ProxyConfig {
            max_connections: 2,
            header_timeout: Duration::from_secs(10),
            ..ProxyConfig::default()
        },
    );
    let _a = UnixStream::connect(&f.socket).await.expect("first");
    let _b = UnixStream::connect(&f.socket).await.expect("second");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let resp = exchange(&f.socket, b"").await;
    assert!(resp.starts_with("HTTP/1.1 503"), "{resp}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_open_tunnels_and_the_listener() {
    let port = http_server();
    let f = start(&[format!("127.0.0.1:{port}")], quick());
    let mode = std::fs::metadata(&f.socket)
        .expect("socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o666, "socket mode {mode:o}");
    // The upstream waits for a request that never comes, so only shutdown can end these.
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(tunnel(&f.socket, &format!("127.0.0.1:{port}")).await);
    }
    tokio::time::timeout(LIMIT, f.proxy.shutdown())
        .await
        .expect("shutdown in time");
    for mut conn in open {
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(LIMIT, conn.read(&mut buf))
            .await
            .expect("EOF in time")
            .unwrap_or(0);
        assert_eq!(n, 0, "tunnel still delivering after shutdown");
    }
    assert!(!f.socket.exists(), "socket file removed");
    assert!(
        UnixStream::connect(&f.socket).await.is_err(),
        "listener closed"
    );
    f.proxy.shutdown().await; // idempotent
    let taken = f.proxy.take_decisions();
    assert_eq!(taken.len(), 3);
    assert!(f.proxy.decisions().is_empty());
    let json = serde_json::to_value(&taken[0]).expect("serialise");
    assert_eq!(json["address"], "127.0.0.1");
    assert_eq!(json["allowed"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_refuses_an_existing_socket_path() {
    let f = start(&[], quick());
    let err = EgressProxy::start(&f.socket, NetPolicy::deny_all(), |_| {})
        .err()
        .expect("second proxy on the same path");
    assert!(err.to_string().contains("already exists"), "{err}");
}

/// TCP client → forwarder (its own thread, blocking poll) → proxy Unix socket → HTTP server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarder_carries_both_dialects_end_to_end() {
    let port = http_server();
    let f = start(&[format!("127.0.0.1:{port}")], quick());
    let (listener, fwd_port) = forwarder::bind_loopback().expect("bind forwarder");
    let socket = f.socket.clone();
    thread::spawn(move || forwarder::run_forwarder(listener, &socket));
    let results = tokio::task::spawn_blocking(move || {
        let talk = |req: String| {
            let mut tcp =
                TcpStream::connect((Ipv4Addr::LOCALHOST, fwd_port)).expect("connect forwarder");
            tcp.set_read_timeout(Some(LIMIT)).expect("timeout");
            tcp.write_all(req.as_bytes()).expect("send");
            let mut out = String::new();
            tcp.read_to_string(&mut out).expect("read");
            out
        };
        let plain = talk(format!(
            "GET http://127.0.0.1:{port}/plain HTTP/1.1\r\n\r\n"
        ));
        let tunnelled = talk(format!(
            "CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\nGET /tunnel HTTP/1.1\r\nHost: x\r\n\r\n"
        ));
        let refused = talk("CONNECT 10.0.0.1:80 HTTP/1.1\r\n\r\n".to_string());
        (plain, tunnelled, refused)
    })
    .await
    .expect("client thread");
    let (plain, tunnelled, refused) = results;
    assert!(
        plain.starts_with("HTTP/1.1 200 OK") && plain.contains("GET /plain HTTP/1.1"),
        "{plain}"
    );
    assert!(
        tunnelled.contains("200 Connection Established") && tunnelled.contains("GET /tunnel"),
        "{tunnelled}"
    );
    assert!(refused.starts_with("HTTP/1.1 403"), "{refused}");
}
