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
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::net::ConnectionDecision;
use crate::sys;

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
    child: std::process::Child,
    decisions: OwnedFd,
    dir: PathBuf,
}

/// The proxy's program, installed beside `sandbox-run`.
pub const PROXY_PROGRAM: &str = "code-executor-egress-proxy";

impl ProxyProcess {
    /// Starts P (the `code-executor-egress-proxy` program) on `<new dir>/egress.sock` with the
    /// run's host patterns, and waits until it listens. P is a program of its own, exec'd, so
    /// that this crate needs no async runtime; it dies with this process (PDEATHSIG).
    pub fn start(patterns: &[String]) -> Result<ProxyProcess, String> {
        sweep_stale_dirs();
        let program = proxy_program()?;
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
        let mut cmd = std::process::Command::new(&program);
        cmd.arg(&socket)
            .args(patterns)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null());
        // Its interface: fd 3 says "listening", fd 4 carries the decisions; it dies with us.
        let child = sys::spawn_with_fds(
            cmd,
            &[(ready_w.as_fd(), 3), (dec_w.as_fd(), 4)],
            Some(libc::SIGKILL),
        )
        .map_err(|e| format!("start {}: {e}", program.display()))?;
        drop(ready_w);
        drop(dec_w);
        let mut p = ProxyProcess {
            child,
            decisions: dec_r,
            dir,
        };
        let mut b = [0u8; 1];
        match std::fs::File::from(ready_r).read(&mut b) {
            Ok(1) if b[0] == b'1' => Ok(p),
            _ => {
                let _ = p.child.kill();
                let _ = p.child.wait();
                let _ = std::fs::remove_dir_all(&p.dir);
                Err(format!(
                    "{} did not start listening (its error is above; is the temp directory writable?)",
                    program.display()
                ))
            }
        }
    }

    /// The host directory to bind at [`DIR_INSIDE`].
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stops the proxy (closing every tunnel) and returns its decisions.
    pub fn finish(mut self) -> Vec<ConnectionDecision> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut text = String::new();
        let _ = std::fs::File::from(self.decisions).read_to_string(&mut text);
        let _ = std::fs::remove_dir_all(&self.dir);
        text.lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

/// Where the proxy program is: beside the running executable (an installed `sandbox-run`), one
/// directory up (a cargo test binary in `target/<profile>/deps`), else on PATH.
fn proxy_program() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("locate this executable: {e}"))?;
    let beside = exe.parent().map(|d| d.join(PROXY_PROGRAM));
    let above = exe
        .parent()
        .filter(|d| d.ends_with("deps"))
        .and_then(Path::parent)
        .map(|d| d.join(PROXY_PROGRAM));
    let on_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(PROXY_PROGRAM))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    beside
        .into_iter()
        .chain(above)
        .chain(on_path)
        .find(|p| p.is_file())
        .ok_or_else(|| {
            format!(
                "{PROXY_PROGRAM} was not found beside {} nor on PATH; install it with sandbox-run \
                 (`cargo build --workspace` builds both into the same directory)",
                exe.display()
            )
        })
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

/// Inside the namespace (called by the init after `lo` is up): binds 127.0.0.1:PORT and forks
/// the forwarder, which drops every capability and loads the seccomp filter before serving.
/// Returns once the forwarder is hardened, or with the reason it could not be: a forwarder that
/// failed would otherwise show up later as a bare "connection refused" in the workload.
pub fn start_forwarder(seccomp: &super::seccomp::Program) -> Result<(), String> {
    let listener = std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, PORT))
        .map_err(|e| format!("bind the egress forwarder on 127.0.0.1:{PORT}: {e}"))?;
    let (done_r, done_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| format!("pipe for the egress forwarder: {e}"))?;
    match sys::fork() {
        Err(e) => Err(format!("fork the egress forwarder: {e}")),
        Ok(nix::unistd::ForkResult::Parent { .. }) => {
            drop(done_w);
            drop(listener);
            // EOF with nothing written: hardened and serving. Text: why it is not.
            let mut why = String::new();
            let _ = std::fs::File::from(done_r).read_to_string(&mut why);
            if why.is_empty() {
                Ok(())
            } else {
                Err(format!("the egress forwarder could not be hardened: {why}"))
            }
        }
        Ok(nix::unistd::ForkResult::Child) => {
            drop(done_r);
            let hardened = sys::set_pdeathsig(libc::SIGKILL)
                .map_err(|e| format!("parent-death signal: {e}"))
                .and_then(|_| super::caps::drop_bounding_and_ambient())
                .and_then(|_| super::caps::clear_and_verify())
                .and_then(|_| sys::set_no_new_privs().map_err(|e| format!("no_new_privs: {e}")))
                .and_then(|_| super::seccomp::load(seccomp).map_err(|e| format!("seccomp: {e}")));
            if let Err(why) = hardened {
                let _ = nix::unistd::write(&done_w, why.as_bytes());
                sys::exit_immediately(1)
            }
            drop(done_w);
            let socket = Path::new(DIR_INSIDE).join(SOCKET_NAME);
            let _ = crate::net::forwarder::run_forwarder(listener, &socket);
            sys::exit_immediately(1)
        }
    }
}
