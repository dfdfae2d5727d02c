//! `code-executor-egress-proxy SOCKET [PATTERN...]`: the host side of one run's egress.
//!
//! Started by `sandbox-run` (never by hand) for a run that was granted hosts, as a process of
//! its own so that the sandbox crate and its launch helper stay free of an async runtime. It
//! listens on SOCKET (a Unix socket in a per-run directory that is bound into the sandbox),
//! decides every connection against the PATTERNs, and reports:
//! - fd 3: one byte `1` once it listens (then closed), so the launch waits for a ready proxy;
//! - fd 4: every decision as one JSON line, read by `sandbox-run` for the run report.
//!
//! It dies with its parent (PR_SET_PDEATHSIG), so a killed `sandbox-run` leaves no proxy.
//!
//! No `unsafe` here: taking over fds 3 and 4 is `code_executor::sys::adopt_inherited_fd`, so the
//! one call this program makes itself is audited with the rest of the sandbox's.
#![forbid(unsafe_code)]

use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use code_executor::net::pattern::NetPolicy;
use code_executor_egress::{ConnectionDecision, EgressProxy};

/// The descriptors `sandbox-run` hands over (see the module doc).
const READY_FD: i32 = 3;
const DECISIONS_FD: i32 = 4;

fn main() {
    let mut args = std::env::args_os().skip(1);
    let Some(socket) = args.next().map(PathBuf::from) else {
        fail("usage: code-executor-egress-proxy SOCKET [PATTERN...] (started by sandbox-run)");
    };
    let patterns: Vec<String> = args.map(|a| a.to_string_lossy().into_owned()).collect();
    let policy = NetPolicy::parse(&patterns).unwrap_or_else(|e| fail(&format!("patterns: {e}")));
    let (ready, decisions) = match (take_fd(READY_FD), take_fd(DECISIONS_FD)) {
        (Some(r), Some(d)) => (r, d),
        _ => fail(
            "fds 3 (ready) and 4 (decisions) must be open: this program is started by sandbox-run",
        ),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(&format!("start the runtime: {e}")));
    let decisions = Mutex::new(File::from(decisions));
    runtime.block_on(async move {
        let sink = move |d: ConnectionDecision| {
            if let (Ok(mut line), Ok(mut f)) = (serde_json::to_vec(&d), decisions.lock()) {
                line.push(b'\n');
                let _ = f.write_all(&line);
            }
        };
        let proxy = EgressProxy::start(&socket, policy, sink)
            .unwrap_or_else(|e| fail(&format!("listen on {}: {e}", socket.display())));
        let mut ready = File::from(ready);
        let _ = ready.write_all(b"1");
        drop(ready);
        // Serve until sandbox-run kills us at the end of the run (or dies: PDEATHSIG).
        loop {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            let _ = &proxy;
        }
    })
}

/// Takes ownership of an inherited descriptor, if it is open (it becomes close-on-exec, which
/// changes nothing here: this program starts no other).
fn take_fd(fd: i32) -> Option<OwnedFd> {
    code_executor::sys::adopt_inherited_fd(fd).ok()
}

fn fail(msg: &str) -> ! {
    eprintln!("code-executor-egress-proxy: {msg}");
    std::process::exit(1)
}
