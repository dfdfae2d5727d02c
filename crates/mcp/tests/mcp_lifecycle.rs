//! Shutdown end to end: on SIGTERM, SIGINT or stdin EOF, running sandboxes are killed, the
//! server's run directories are removed and the process exits; nothing is left behind.

mod mcp_support;

use std::time::Duration;

use mcp_support::*;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

#[derive(Debug, Clone, Copy)]
enum Stop {
    Term,
    Int,
    StdinEof,
}

async fn stop_during_run(stop: Stop) {
    let env = ServerEnv::new();
    let tmp = env.path().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let env = env.set("TMPDIR", tmp.display().to_string());
    // Raw stdio, so the test controls exactly when the server's stdin closes.
    let mut child = env.spawn_raw();
    let pid = child.id().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for m in [
        json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"0"}}}),
        json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
        json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"executePython","arguments":{"code":"import time\ntime.sleep(120)","timeoutMs":150000}}}),
    ] {
        stdin.write_all(format!("{m}\n").as_bytes()).await.unwrap();
    }
    stdin.flush().await.unwrap();
    let first = tokio::time::timeout(CALL_LIMIT, lines.next_line())
        .await
        .unwrap()
        .unwrap();
    assert!(first
        .unwrap_or_default()
        .contains("code-executor-mcp-server"));
    // The server's private directory exists while it runs.
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 1, "{stop:?}");
    assert!(
        eventually(Duration::from_secs(60), || !children_of(pid).is_empty()).await,
        "{stop:?}: no sandbox started"
    );
    let launchers = children_of(pid);
    let signal = |s| nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), s).unwrap();
    match stop {
        Stop::Term => signal(nix::sys::signal::Signal::SIGTERM),
        Stop::Int => signal(nix::sys::signal::Signal::SIGINT),
        Stop::StdinEof => drop(stdin),
    }
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .unwrap_or_else(|_| panic!("{stop:?}: server still running"))
        .unwrap();
    assert!(status.success(), "{stop:?}: {status:?}");
    assert!(
        eventually(Duration::from_secs(10), || launchers
            .iter()
            .all(|p| !alive(*p)))
        .await,
        "{stop:?}: sandbox-run {launchers:?} left running"
    );
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "{stop:?}: server left files in TMPDIR: {:?}",
        std::fs::read_dir(&tmp)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_kills_sandboxes_and_cleans_up() {
    stop_during_run(Stop::Term).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_kills_sandboxes_and_cleans_up() {
    stop_during_run(Stop::Int).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdin_eof_kills_sandboxes_and_cleans_up() {
    stop_during_run(Stop::StdinEof).await;
}
