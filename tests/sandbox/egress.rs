//! Network egress through the host-side proxy, end to end: real deno, node and python in the
//! real sandbox, a real HTTP server on the host's loopback.

use std::io::{Read, Write};
use std::net::TcpListener;

use crate::common::*;

/// A tiny HTTP server on the host's loopback that answers every request with `body`.
fn http_server(body: &'static str) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut s = s;
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    port
}

fn fetch_args(runtime: &str, url: &str) -> Vec<String> {
    match runtime {
        "python3-requests" => vec!["python3".into(), "-c".into(), format!("import requests\nr = requests.get('{url}', timeout=10)\nprint(r.text if r.status_code == 200 else 'status %d' % r.status_code)")],
        "python3" => vec!["python3".into(), "-c".into(), format!("import urllib.request\nprint(urllib.request.urlopen('{url}').read().decode())")],
        "node" => vec!["node".into(), "--input-type=module".into(), "-e".into(), format!("const r = await fetch('{url}'); console.log(r.status === 200 ? await r.text() : 'status ' + r.status)")],
        _ => vec!["deno".into(), "eval".into(), format!("const r = await fetch('{url}'); console.log(r.status === 200 ? await r.text() : 'status ' + r.status)")],
    }
}

fn run_with(allow: &[&str], cmd: Vec<String>) -> Run {
    let mut args: Vec<String> = Vec::new();
    for a in allow {
        args.push("--allow-net".into());
        args.push(a.to_string());
    }
    args.push("--".into());
    args.extend(cmd);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    sandbox(&refs)
}

fn reaches_explicitly_allowed_loopback(runtime: &str) {
    require(runtime.strip_suffix("-requests").unwrap_or(runtime));
    let port = http_server("hello through the proxy");
    let url = format!("http://127.0.0.1:{port}/x");
    let run = run_with(&[&format!("127.0.0.1:{port}")], fetch_args(runtime, &url));
    assert_eq!(run.code, 0, "{runtime}: {}\n{}", run.stdout, run.stderr);
    assert_eq!(run.stdout.trim(), "hello through the proxy");
    let d = &run.report["network"][0];
    assert_eq!(d["allowed"], true, "{}", run.report["network"]);
    assert_eq!(d["address"], "127.0.0.1");
    // The same server, not allowed: refused by the proxy, and the report says why.
    let run = run_with(&["example.com"], fetch_args(runtime, &url));
    assert!(
        run.code != 0 || run.stdout.contains("status 403"),
        "{runtime}: {}",
        run.stdout
    );
    let d = &run.report["network"][0];
    assert_eq!(d["allowed"], false, "{}", run.report["network"]);
    assert!(
        d["reason"]
            .as_str()
            .unwrap()
            .contains("not in this run's network allowlist"),
        "{d}"
    );
}

#[test]
fn python_urllib_through_the_proxy() {
    reaches_explicitly_allowed_loopback("python3");
}

#[test]
fn python_requests_through_the_proxy() {
    let probe = std::process::Command::new("python3")
        .args(["-c", "import requests"])
        .status()
        .unwrap();
    assert!(
        probe.success(),
        "python requests is missing: pip install requests"
    );
    reaches_explicitly_allowed_loopback("python3-requests");
}

#[test]
fn node_fetch_through_the_proxy() {
    reaches_explicitly_allowed_loopback("node");
}

#[test]
fn deno_fetch_through_the_proxy() {
    reaches_explicitly_allowed_loopback("deno");
}

#[test]
fn a_name_resolving_to_loopback_is_refused_under_a_wildcard() {
    require("python3");
    let port = http_server("must not be reached");
    let run = run_with(
        &["*"],
        fetch_args("python3", &format!("http://localhost:{port}/")),
    );
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("403"), "{}", run.stderr);
    let d = &run.report["network"][0];
    assert_eq!(d["allowed"], false);
    assert_eq!(d["host"], "localhost");
    assert!(d["reason"].as_str().unwrap().contains("loopback"), "{d}");
}

#[test]
fn raw_tcp_bypassing_the_proxy_and_dns_fail() {
    require("python3");
    let port = http_server("x");
    let code = format!(
        "import socket, errno\ntry:\n    socket.create_connection(('127.0.0.1', {port}), timeout=3)\n    print('raw connected')\nexcept OSError as e:\n    print('raw', errno.errorcode[e.errno])\ntry:\n    socket.getaddrinfo('example.com', 80)\n    print('dns resolved')\nexcept OSError as e:\n    print('dns failed')"
    );
    let run = run_with(
        &[&format!("127.0.0.1:{port}")],
        vec!["python3".into(), "-c".into(), code],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("raw EACCES") || run.stdout.contains("raw ECONNREFUSED"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("dns failed"), "{}", run.stdout);
}

#[test]
fn a_run_without_net_has_no_proxy_at_all() {
    require("python3");
    let code = "import os, socket\nprint('env', sorted(k for k in os.environ if 'proxy' in k.lower()))\nprint('dir', os.path.exists('/run/code-executor'))\ntry:\n    socket.create_connection(('127.0.0.1', 3128), timeout=2)\n    print('port open')\nexcept OSError:\n    print('port closed')";
    let run = sandbox(&["--", "python3", "-c", code]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("env []"), "{}", run.stdout);
    assert!(run.stdout.contains("dir False"));
    assert!(run.stdout.contains("port closed"));
    assert_eq!(run.report["network"], serde_json::json!([]));
}

#[test]
fn malformed_patterns_are_refused_by_name() {
    each_bad_value_is_named(
        "--allow-net",
        &[
            "http://x.com",
            "*foo.com",
            "a.*.com",
            "x.com:0",
            "x.com:70000",
            "",
        ],
        125,
    );
}

#[test]
fn cloud_metadata_is_never_reachable() {
    let run = sandbox(&["--allow-net", "169.254.169.254", "--", "/bin/true"]);
    assert_eq!(
        run.code, 125,
        "naming the metadata address is refused: {}",
        run.stderr
    );
    assert!(run.stderr.contains("metadata"), "{}", run.stderr);
}
