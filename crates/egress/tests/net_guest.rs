//! node 20 with the proxy prelude, against the real proxy and forwarder: `fetch` and
//! `http`/`https` must go through `HTTP_PROXY`/`HTTPS_PROXY`. The origins (plain HTTP and a TLS
//! server with a throwaway certificate) run inside the same node process on 127.0.0.1; the
//! proxy's decision log proves the requests went through it.

use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::Duration;

use code_executor::net::forwarder;
use code_executor::net::guest::prepend_node_prelude;
use code_executor::net::pattern::NetPolicy;
use code_executor_egress::{EgressProxy, ProxyConfig};

const NODE: &str = "/usr/bin/node";

const USER_CODE: &str = r#"
import http from 'node:http';
import https from 'node:https';
import fs from 'node:fs';

const plain = http.createServer((req, res) => {
  let body = '';
  req.on('data', (c) => { body += c; });
  req.on('end', () => res.end(`plain ${req.method} ${req.url} host=${req.headers.host} conn=${req.headers.connection} body=${body}`));
});
await new Promise((r) => plain.listen(0, '127.0.0.1', r));
const pp = plain.address().port;
const secure = https.createServer(
  { key: fs.readFileSync(process.env.CE_KEY), cert: fs.readFileSync(process.env.CE_CERT) },
  (req, res) => res.end(`tls ${req.url}`),
);
await new Promise((r) => secure.listen(0, '127.0.0.1', r));
const sp = secure.address().port;

const get = (mod, url) => new Promise((resolve, reject) => {
  mod.get(url, (m) => {
    let d = '';
    m.on('data', (c) => { d += c; });
    m.on('end', () => resolve(`${m.statusCode} ${d}`));
  }).on('error', reject);
});
const out = {};
let r = await fetch(`http://127.0.0.1:${pp}/f?x=1`);
out.fetchHttp = `${r.status} ${await r.text()}`;
r = await fetch(`http://127.0.0.1:${pp}/p`, { method: 'POST', body: 'abc' });
out.fetchPost = `${r.status} ${await r.text()}`;
r = await fetch(`https://127.0.0.1:${sp}/s`);
out.fetchHttps = `${r.status} ${await r.text()} url=${r.url}`;
out.httpGet = await get(http, `http://127.0.0.1:${pp}/g`);
out.httpsGet = await get(https, `https://127.0.0.1:${sp}/g`);
r = await fetch(`http://127.0.0.2:${pp}/no`);
out.refusedHttp = `${r.status} ${await r.text()}`;
try {
  await fetch(`https://127.0.0.2:${sp}/no`);
  out.refusedHttps = 'not refused';
} catch (e) {
  out.refusedHttps = String(e.message);
}
out.dataUrl = await (await fetch('data:text/plain,inline')).text();
console.log(JSON.stringify(out));
process.exit(0);
"#;

fn make_cert(dir: &Path) -> bool {
    Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_fetch_and_http_go_through_the_proxy() {
    assert!(
        Path::new(NODE).exists(),
        "{NODE} is not installed: this test needs node 20 (apt-get install nodejs)"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(
        make_cert(dir.path()),
        "openssl cannot make a test certificate: install openssl (apt-get install openssl)"
    );
    let socket = dir.path().join("egress.sock");
    let policy = NetPolicy::parse(["127.0.0.1"]).expect("policy");
    let proxy = EgressProxy::start_with_config(&socket, policy, ProxyConfig::default(), |_| {})
        .expect("proxy");
    let (listener, port) = forwarder::bind_loopback().expect("forwarder");
    let sock = socket.clone();
    thread::spawn(move || forwarder::run_forwarder(listener, &sock));

    let script = dir.path().join("main.mjs");
    std::fs::write(&script, prepend_node_prelude(USER_CODE)).expect("write script");
    let mut cmd = Command::new(NODE);
    cmd.arg(&script)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("CE_KEY", dir.path().join("key.pem"))
        .env("CE_CERT", dir.path().join("cert.pem"))
        .env("NODE_EXTRA_CA_CERTS", dir.path().join("cert.pem"))
        .envs(forwarder::proxy_env(port));
    let output = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "node failed: {stdout}\n{stderr}");
    let out: serde_json::Value = serde_json::from_str(stdout.trim()).expect("json line");
    let field = |k: &str| out[k].as_str().unwrap_or_default().to_string();

    let fetch_http = field("fetchHttp");
    assert!(
        fetch_http.starts_with("200 plain GET /f?x=1 host=127.0.0.1:"),
        "{fetch_http}"
    );
    assert!(
        fetch_http.contains("conn=close"),
        "the proxy's Connection: close: {fetch_http}"
    );
    assert!(
        field("fetchPost").starts_with("200 plain POST /p "),
        "{out}"
    );
    assert!(field("fetchPost").ends_with("body=abc"), "{out}");
    let fetch_https = field("fetchHttps");
    assert!(
        fetch_https.starts_with("200 tls /s url=https://127.0.0.1:"),
        "{fetch_https}"
    );
    assert!(field("httpGet").starts_with("200 plain GET /g "), "{out}");
    assert_eq!(field("httpsGet"), "200 tls /g");
    assert!(field("refusedHttp").starts_with("403 "), "{out}");
    assert!(
        field("refusedHttp").contains("not in this run's network allowlist"),
        "{out}"
    );
    let refused_https = field("refusedHttps");
    assert!(
        refused_https.contains("egress proxy refused CONNECT 127.0.0.2:"),
        "{refused_https}"
    );
    assert!(refused_https.contains("403"), "{refused_https}");
    assert_eq!(field("dataUrl"), "inline");

    // Five allowed requests and two refusals, all seen by the proxy: nothing went around it.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let decisions = proxy.decisions();
    let allowed = decisions.iter().filter(|d| d.allowed).count();
    let refused = decisions.iter().filter(|d| !d.allowed).count();
    assert_eq!((allowed, refused), (5, 2), "{decisions:#?}");
    proxy.shutdown().await;
}
