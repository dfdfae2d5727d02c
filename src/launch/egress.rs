//! Network egress for runs that were granted hosts: the proxy process on the host side and the
//! forwarder inside the sandbox's network namespace.
//!
//! The launch helper is single-threaded (it must be, to clone into a new user namespace), so the
//! tokio-based proxy runs in a process of its own, forked before the clone: P. It listens on a
//! Unix socket in a per-run directory that is bound into the sandbox at [`DIR_INSIDE`]. Inside,
//! a small forwarder process forked by the init listens on 127.0.0.1:[`PORT`] (the namespace
//! is new, so the port is always free) and splices each connection to that socket. The workload
//! sees `HTTP_PROXY=http://127.0.0.1:3128`, and Landlock lets it connect to that port only.
//! Every decision of the proxy travels back to the helper as a JSON line for the run report.

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::net::pattern::NetPolicy;
use crate::net::proxy::{ConnectionDecision, EgressProxy};

/// Where the proxy's socket directory appears inside the sandbox.
pub const DIR_INSIDE: &str = "/run/code-executor";
/// The socket's name in that directory.
pub const SOCKET_NAME: &str = "egress.sock";
/// The forwarder's port on the sandbox's own loopback.
pub const PORT: u16 = 3128;
/// The node preload that routes fetch/http/https through the proxy (node 20 ignores HTTP_PROXY).
pub const NODE_PRELOAD_INSIDE: &str = "/etc/code-executor/node-proxy.cjs";

/// The running proxy process of one run.
pub struct ProxyProcess {
    pid: libc::pid_t,
    decisions: OwnedFd,
    dir: PathBuf,
}

impl ProxyProcess {
    /// Forks P, which starts the proxy on `<new dir>/egress.sock`, and waits until it listens.
    /// Call from the single-threaded helper only.
    pub fn start(policy: NetPolicy) -> Result<ProxyProcess, String> {
        sweep_stale_dirs();
        let template = std::env::temp_dir().join(format!(
            "code-executor-egress-{}-XXXXXX",
            std::process::id()
        ));
        let dir = nix::unistd::mkdtemp(&template)
            .map_err(|e| format!("create the proxy's directory: {e}"))?;
        // The sandbox's host uid must traverse it to reach the socket (mode 0666).
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o711))
            .map_err(|e| format!("chmod {}: {e}", dir.display()))?;
        let socket = dir.join(SOCKET_NAME);
        let (ready_r, ready_w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| e.to_string())?;
        let (dec_r, dec_w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| e.to_string())?;
        // SAFETY: fork in the single-threaded helper; the child only builds its own runtime.
        match unsafe { nix::unistd::fork() } {
            Err(e) => Err(format!("fork the proxy process: {e}")),
            Ok(nix::unistd::ForkResult::Child) => {
                drop(ready_r);
                drop(dec_r);
                proxy_main(&socket, policy, ready_w, dec_w)
            }
            Ok(nix::unistd::ForkResult::Parent { child }) => {
                drop(ready_w);
                drop(dec_w);
                let mut b = [0u8; 1];
                let mut f = std::fs::File::from(ready_r);
                let p = ProxyProcess {
                    pid: child.as_raw(),
                    decisions: dec_r,
                    dir,
                };
                match f.read(&mut b) {
                    Ok(1) if b[0] == b'1' => Ok(p),
                    _ => Err(
                        "the egress proxy did not start (is the temp directory writable?)".into(),
                    ),
                }
            }
        }
    }

    /// The host directory to bind at [`DIR_INSIDE`].
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stops the proxy (closing every tunnel) and returns its decisions.
    pub fn finish(self) -> Vec<ConnectionDecision> {
        // SAFETY: kill and reap our own child.
        unsafe {
            libc::kill(self.pid, libc::SIGKILL);
            libc::waitpid(self.pid, std::ptr::null_mut(), 0);
        }
        let mut text = String::new();
        // SAFETY: a dup of our own fd, owned by the File.
        let mut f = unsafe { std::fs::File::from_raw_fd(libc::dup(self.decisions.as_raw_fd())) };
        let _ = f.read_to_string(&mut text);
        let _ = std::fs::remove_dir_all(&self.dir);
        text.lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

/// Removes proxy directories left by helpers that were killed before they could clean up.
fn sweep_stale_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let pid = name
            .to_str()
            .and_then(|n| n.strip_prefix("code-executor-egress-"))
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<i32>().ok());
        if let Some(pid) = pid {
            if crate::cgroup::pid_is_dead(pid) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

fn proxy_main(socket: &Path, policy: NetPolicy, ready: OwnedFd, decisions: OwnedFd) -> ! {
    // SAFETY: prctl with integer arguments: the proxy dies with the helper.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(_) => unsafe { libc::_exit(1) },
    };
    let decisions = std::sync::Mutex::new(std::fs::File::from(decisions));
    rt.block_on(async move {
        let sink = move |d: ConnectionDecision| {
            if let (Ok(mut line), Ok(mut f)) = (serde_json::to_vec(&d), decisions.lock()) {
                line.push(b'\n');
                let _ = std::io::Write::write_all(&mut *f, &line);
            }
        };
        let proxy = match EgressProxy::start(socket, policy, sink) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("sandbox-run: egress proxy: {e}");
                unsafe { libc::_exit(1) }
            }
        };
        let _ = nix::unistd::write(&ready, b"1");
        drop(ready);
        loop {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            let _ = &proxy;
        }
    })
}

/// Inside the namespace (called by the init after `lo` is up): binds 127.0.0.1:PORT and forks
/// the forwarder, which drops every capability and loads the seccomp filter before serving.
pub fn start_forwarder(seccomp: &super::seccomp::Program) -> Result<(), String> {
    let listener = std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, PORT))
        .map_err(|e| format!("bind the egress forwarder on 127.0.0.1:{PORT}: {e}"))?;
    // SAFETY: fork in the single-threaded init.
    match unsafe { nix::unistd::fork() } {
        Err(e) => Err(format!("fork the egress forwarder: {e}")),
        Ok(nix::unistd::ForkResult::Parent { .. }) => Ok(()),
        Ok(nix::unistd::ForkResult::Child) => {
            // SAFETY: prctl with integer arguments.
            unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
            let hardened = super::caps::drop_bounding_and_ambient()
                .and_then(|_| super::caps::clear_and_verify())
                .and_then(|_| {
                    // SAFETY: prctl with integer arguments.
                    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } == 0 {
                        Ok(())
                    } else {
                        Err("no_new_privs".to_string())
                    }
                })
                .and_then(|_| super::seccomp::load(seccomp));
            if hardened.is_err() {
                // SAFETY: _exit in a forked child.
                unsafe { libc::_exit(1) }
            }
            let socket = Path::new(DIR_INSIDE).join(SOCKET_NAME);
            let _ = crate::net::forwarder::run_forwarder(listener, &socket);
            // SAFETY: _exit in a forked child.
            unsafe { libc::_exit(1) }
        }
    }
}
