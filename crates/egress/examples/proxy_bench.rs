//! Throughput of a download through the egress proxy against the same download direct.
//!
//! Run through `scripts/bench-proxy.sh`, or `cargo run --example proxy_bench -- [MB]`.
//! Everything is on loopback: a plain HTTP server on 127.0.0.1 serving MB megabytes
//! (1 MB = 10^6 bytes, default 100), the proxy on a Unix socket in a temp dir, and for the
//! full sandbox path the in-namespace forwarder (here on the host) in front of it.

use std::error::Error;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::thread;
use std::time::Instant;

use code_executor::net::forwarder;
use code_executor::net::pattern::NetPolicy;
use code_executor_egress::EgressProxy;

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// One way of downloading, returning MB/s.
type Run<'a> = Box<dyn Fn() -> Result<f64> + 'a>;

/// Serves `bytes` bytes of body to every request, one request per connection.
fn server(bytes: u64) -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let port = listener.local_addr()?.port();
    thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            thread::spawn(move || {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match conn.read(&mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let chunk = vec![b'x'; 1 << 20];
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\nContent-Length: {bytes}\r\nConnection: close\r\n\r\n"
                );
                let mut left = bytes;
                while left > 0 {
                    let n = left.min(chunk.len() as u64) as usize;
                    if conn.write_all(&chunk[..n]).is_err() {
                        return;
                    }
                    left -= n as u64;
                }
            });
        }
    });
    Ok(port)
}

/// Sends `request`, optionally expecting a CONNECT reply first, and counts the body bytes.
fn download(mut conn: impl Read + Write, request: &str, expect: u64) -> Result<f64> {
    let started = Instant::now();
    conn.write_all(request.as_bytes())?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut total: u64 = 0;
    loop {
        let n = conn.read(&mut buf)?;
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    let secs = started.elapsed().as_secs_f64();
    if total < expect {
        return Err(format!("short download: {total} of {expect} bytes").into());
    }
    Ok(expect as f64 / 1e6 / secs)
}

fn main() -> Result<()> {
    let mb: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(100);
    let bytes = mb * 1_000_000;
    let port = server(bytes)?;
    let runtime = tokio::runtime::Runtime::new()?;
    let dir = tempfile::tempdir()?;
    let socket = dir.path().join("egress.sock");
    let policy = NetPolicy::parse([format!("127.0.0.1:{port}")])?;
    let proxy = {
        let _guard = runtime.enter();
        EgressProxy::start(&socket, policy, |_| {})?
    };
    let (listener, fwd_port) = forwarder::bind_loopback()?;
    let sock = socket.clone();
    thread::spawn(move || forwarder::run_forwarder(listener, &sock));

    let get_origin = format!("GET /big HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    let get_absolute = format!("GET http://127.0.0.1:{port}/big HTTP/1.1\r\n\r\n");
    let connect = format!("CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n{get_origin}");
    let runs: [(&str, Run); 4] = [
        (
            "direct (TCP to the server)",
            Box::new(|| {
                download(
                    TcpStream::connect((Ipv4Addr::LOCALHOST, port))?,
                    &get_origin,
                    bytes,
                )
            }),
        ),
        (
            "proxy, CONNECT tunnel (Unix socket)",
            Box::new(|| download(UnixStream::connect(&socket)?, &connect, bytes)),
        ),
        (
            "proxy, plain HTTP forward (Unix socket)",
            Box::new(|| download(UnixStream::connect(&socket)?, &get_absolute, bytes)),
        ),
        (
            "forwarder + proxy, CONNECT (sandbox path)",
            Box::new(|| {
                download(
                    TcpStream::connect((Ipv4Addr::LOCALHOST, fwd_port))?,
                    &connect,
                    bytes,
                )
            }),
        ),
    ];
    let build = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    println!("{mb} MB (10^6 bytes) over loopback, {build} build, best of 3:");
    for (name, run) in &runs {
        let mut best: f64 = 0.0;
        for _ in 0..3 {
            best = best.max(run()?);
        }
        println!("  {name:<44} {best:>9.1} MB/s");
    }
    runtime.block_on(proxy.shutdown());
    Ok(())
}
