//! The server's private host directory, `<TMPDIR>/code-executor-mcp-<pid>-<random>`, with one
//! subdirectory per run (its report and its bridge socket), and the sweep of the directories
//! that servers which are gone left behind.
//!
//! A server removes its directory at shutdown, but one that is killed (SIGKILL, OOM, a crash)
//! cannot. The next server to start removes such a directory when its owner is gone, and never
//! one whose owner is alive. The owner is known by a lock: each server holds an exclusive
//! `flock` on `<dir>/server.lock` for its lifetime, which the kernel releases when the
//! process dies however it dies, so a lock that can be taken means the owner is gone, even
//! if its pid has been reused since. A directory without a lock file (a server just starting,
//! or one of an older version) is judged by the pid in its name: kept while that pid is a
//! live `code-executor-mcp`, removed when the pid is gone or now belongs to another program.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::fcntl::{Flock, FlockArg};

/// Name prefix of a server's directory; the pid and 16 hex digits follow.
pub const DIR_PREFIX: &str = "code-executor-mcp-";
/// The lock its owner holds while it lives.
const LOCK_NAME: &str = "server.lock";
/// The executable name of a server, for directories without a lock file.
const SERVER_EXE: &str = "code-executor-mcp";

/// Could not set up the server's private directory.
#[derive(Debug, thiserror::Error)]
#[error("cannot create the server's run directory {path}: {source}; check TMPDIR")]
pub struct StartError {
    path: PathBuf,
    source: io::Error,
}

/// What a run directory is for; part of its name.
#[derive(Debug, Clone, Copy)]
pub enum RunKind {
    /// A run launched for a request.
    Run,
    /// A sandbox launched ahead of time (see `warm`).
    Warm,
}

/// This server's directory. The lock inside is held as long as this value lives.
pub struct ServerDir {
    path: PathBuf,
    counter: AtomicU64,
    _lock: Flock<File>,
}

impl ServerDir {
    /// Create `<temp_dir>/code-executor-mcp-<pid>-<random>` (mode 0700) and take its lock.
    pub fn create(temp_dir: &Path) -> Result<ServerDir, StartError> {
        let mut rnd = [0u8; 8];
        // Without randomness the name is still unique per pid; collisions only fail loudly.
        let _ = getrandom::fill(&mut rnd);
        let name = format!("{DIR_PREFIX}{}-{}", std::process::id(), hex::encode(rnd));
        let path = temp_dir.join(name);
        let err = |source| StartError {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(&path).map_err(err)?;
        let file = File::create(path.join(LOCK_NAME)).map_err(err)?;
        let lock = Flock::lock(file, FlockArg::LockExclusiveNonblock)
            .map_err(|(_, errno)| err(io::Error::from(errno)))?;
        Ok(ServerDir {
            path,
            counter: AtomicU64::new(0),
            _lock: lock,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A new, empty directory for one run, removed when the returned guard is dropped.
    pub fn new_run_dir(&self, kind: RunKind) -> io::Result<RunDir> {
        let n = self.counter.fetch_add(1, Ordering::SeqCst);
        let prefix = match kind {
            RunKind::Run => "run",
            RunKind::Warm => "warm",
        };
        let path = self.path.join(format!("{prefix}-{n}"));
        std::fs::create_dir_all(&path).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot create {}: {e}", path.display()))
        })?;
        Ok(RunDir(Some(path)))
    }

    /// Remove the directory and everything in it (at shutdown).
    pub fn remove(&self) {
        if let Err(e) = std::fs::remove_dir_all(&self.path) {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::error!("shutdown: cannot remove {}: {e}", self.path.display());
            }
        }
    }
}

/// A run's host directory, removed when dropped, however the run ends.
pub struct RunDir(Option<PathBuf>);

impl RunDir {
    /// Take charge of a directory made earlier (a warm sandbox's, when a run takes it).
    pub fn adopt(path: PathBuf) -> RunDir {
        RunDir(Some(path))
    }

    pub fn path(&self) -> &Path {
        self.0.as_deref().unwrap_or(Path::new(""))
    }

    /// The path, no longer removed on drop: its new owner removes it.
    pub fn into_path(mut self) -> PathBuf {
        self.0.take().unwrap_or_default()
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_dir_all(p);
        }
    }
}

/// Remove the directories in `temp_dir` of servers that are gone (see the module docs).
/// Returns the directories removed. Errors are logged, never fatal: a leftover directory
/// costs disk space, not safety.
pub fn sweep_stale(temp_dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(temp_dir) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(owner_pid) else {
            continue;
        };
        let path = entry.path();
        // Only real directories: a symlink named like ours is not followed.
        let is_dir = std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir());
        if !is_dir || pid == std::process::id() || !owner_is_gone(&path, pid) {
            continue;
        }
        match std::fs::remove_dir_all(&path) {
            Ok(()) => removed.push(path),
            Err(e) => tracing::warn!(
                "cannot remove {}, left by a server that is gone: {e}",
                path.display()
            ),
        }
    }
    removed
}

/// The pid in a directory name `code-executor-mcp-<pid>-<16 hex digits>`.
fn owner_pid(name: &str) -> Option<u32> {
    let (pid, rand) = name.strip_prefix(DIR_PREFIX)?.split_once('-')?;
    let hex_ok = rand.len() == 16 && rand.chars().all(|c| c.is_ascii_hexdigit());
    hex_ok.then(|| pid.parse().ok()).flatten()
}

/// Whether the server that made `dir` is gone. The lock decides when there is one; otherwise
/// the pid. When in doubt (a process we may not inspect), the owner counts as alive.
fn owner_is_gone(dir: &Path, pid: u32) -> bool {
    match File::open(dir.join(LOCK_NAME)) {
        Ok(file) => match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            // Taken: nobody holds it, so its owner is dead. It is released when dropped, and
            // the directory goes right after.
            Ok(_lock) => true,
            Err(_) => false,
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => !pid_is_a_server(pid),
        Err(_) => false,
    }
}

/// True when `pid` is alive and runs `code-executor-mcp`, or may and cannot be inspected.
fn pid_is_a_server(pid: u32) -> bool {
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let exe_name = |p: &Path| {
        let name = p.file_name()?.to_str()?;
        // A binary replaced while running (a rebuild) reads as "name (deleted)".
        Some(name.trim_end_matches(" (deleted)").to_string())
    };
    if let Ok(exe) = std::fs::read_link(proc_dir.join("exe")) {
        return exe_name(&exe).is_some_and(|n| n == SERVER_EXE);
    }
    // No exe link readable: a zombie, a kernel thread, another user's process, or no process.
    match std::fs::read(proc_dir.join("cmdline")) {
        Ok(cmdline) => {
            let argv0 = cmdline.split(|b| *b == 0).next().unwrap_or_default();
            let argv0 = Path::new(std::str::from_utf8(argv0).unwrap_or_default());
            exe_name(argv0).is_some_and(|n| n == SERVER_EXE)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(_) => proc_dir.exists(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_names_are_recognised() {
        assert_eq!(owner_pid("code-executor-mcp-42-0123456789abcdef"), Some(42));
        assert_eq!(owner_pid("code-executor-mcp-42-0123"), None);
        assert_eq!(owner_pid("code-executor-mcp-x-0123456789abcdef"), None);
        assert_eq!(owner_pid("other-42-0123456789abcdef"), None);
    }

    #[test]
    fn live_lock_holders_keep_their_directory_and_dead_ones_lose_it() {
        let tmp = tempfile::tempdir().unwrap();
        let live = ServerDir::create(tmp.path()).unwrap();
        // A dead server's directory: a lock file nobody holds, and a pid in its name that is
        // alive (ours' parent) but is no server, so the lock must be what decides.
        let dead = tmp.path().join(format!("{DIR_PREFIX}1-00000000000000aa"));
        std::fs::create_dir_all(dead.join("run-0")).unwrap();
        File::create(dead.join(LOCK_NAME)).unwrap();
        // An older server's directory without a lock, pid 1 (init, not a server): stale.
        let old = tmp.path().join(format!("{DIR_PREFIX}1-00000000000000bb"));
        std::fs::create_dir_all(&old).unwrap();
        // Not ours at all.
        let other = tmp.path().join("code-executor-mcp-notes");
        std::fs::create_dir_all(&other).unwrap();
        let removed = sweep_stale(tmp.path());
        assert_eq!(removed.len(), 2, "{removed:?}");
        assert!(!dead.exists() && !old.exists());
        assert!(live.path().exists() && other.exists());
    }
}
