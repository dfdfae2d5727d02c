//! Shutdown end to end: on SIGTERM, SIGINT or stdin EOF, running sandboxes are killed, the
//! server's run directories are removed and the process exits; nothing is left behind.

use std::time::Duration;

use crate::mcp_support::*;
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

/// A server killed without a chance to clean up (SIGKILL) leaves its directory in TMPDIR; the
/// next server to start removes it, and never the directory of a server that is alive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_server_removes_the_directories_of_dead_servers_only() {
    let env = ServerEnv::new();
    let tmp = env.path().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let env = env.set("TMPDIR", tmp.display().to_string());
    let dirs_of = |pid: u32| -> Vec<std::path::PathBuf> {
        std::fs::read_dir(&tmp)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                name.starts_with(&format!("code-executor-mcp-{pid}-"))
            })
            .collect()
    };
    let killed = env.start().await;
    let live = env.start().await;
    let [killed_dir] = &dirs_of(killed.pid)[..] else {
        panic!("no directory of the first server in {}", tmp.display());
    };
    let [live_dir] = &dirs_of(live.pid)[..] else {
        panic!("no directory of the live server in {}", tmp.display());
    };
    // A directory without a lock (an older server's) whose pid now belongs to another program
    // (pid reuse): stale. One without a lock whose pid is the live server: kept.
    let mut sleeper = std::process::Command::new("sleep")
        .arg("600")
        .spawn()
        .expect("sleep");
    let reused = tmp.join(format!(
        "code-executor-mcp-{}-00000000000000ab",
        sleeper.id()
    ));
    let lockless_live = tmp.join(format!("code-executor-mcp-{}-00000000000000cd", live.pid));
    std::fs::create_dir_all(reused.join("run-0")).unwrap();
    std::fs::create_dir_all(&lockless_live).unwrap();

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(killed.pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(
        eventually(std::time::Duration::from_secs(30), || !alive(killed.pid)).await,
        "the server survived SIGKILL"
    );
    // Control: nothing removed it; the kill gave the server no chance to.
    assert!(
        killed_dir.exists(),
        "{} vanished by itself",
        killed_dir.display()
    );

    let third = env.start().await;
    assert!(
        !killed_dir.exists(),
        "{} was left behind",
        killed_dir.display()
    );
    assert!(!reused.exists(), "{} was left behind", reused.display());
    assert!(
        live_dir.exists(),
        "the live server's {} was removed",
        live_dir.display()
    );
    assert!(
        lockless_live.exists(),
        "{} was removed",
        lockless_live.display()
    );
    assert_eq!(dirs_of(third.pid).len(), 1);

    let _ = sleeper.kill();
    let _ = sleeper.wait();
    live.service.cancel().await.expect("close");
    third.service.cancel().await.expect("close");
}
