//! A Streamable HTTP upstream: `@modelcontextprotocol/server-everything` serving over HTTP on
//! the loopback, reached by URL from the server's upstream pool, called from guest code.

use std::time::{Duration, Instant};

use crate::bridge_support::*;
use crate::mcp_support::*;
use serde_json::json;

/// server-everything over Streamable HTTP on a free loopback port; killed on drop.
struct HttpUpstream {
    child: std::process::Child,
    port: u16,
}

impl Drop for HttpUpstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http_upstream() -> HttpUpstream {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = std::process::Command::new("node")
        .arg(everything())
        .arg("streamableHttp")
        .env("PORT", port.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start server-everything (npm; installed by scripts/test.sh)");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "server-everything did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    HttpUpstream { child, port }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamable_http_upstream_is_called_from_guest_code() {
    let up = http_upstream();
    let url = format!("http://127.0.0.1:{}/mcp", up.port);
    let env = bridge_env(json!({"web": {"type": "http", "url": url, "headers": {"X-Test": "1"}}}));
    let c = env.start().await;
    wait_connected(&c, 1).await;
    let code = "print(await call_mcp_tool('mcp__web__echo', {'message': 'over http'}))\nprint(await call_mcp_tool('mcp__web__get-sum', {'a': 2, 'b': 40}))";
    let r = run(&c, "python", code, &["mcp__web__*"]).await;
    let out = ok_output(&r);
    assert!(out.contains("Echo: over http"), "{out}");
    assert!(out.contains("42"), "{out}");
    assert_eq!(
        sc(&r)["toolCallsMade"],
        json!(["mcp__web__echo", "mcp__web__get-sum"])
    );
}
