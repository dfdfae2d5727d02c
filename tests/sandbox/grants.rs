//! Grants by descriptor: a shared host path is opened once, checked on the descriptor and
//! mounted from it, so swapping a directory for a symlink during the launch never shows a host
//! path outside what was granted; and objects the caller opened itself can be passed by
//! descriptor (`--grant-read-fd`, `--grant-write-fd`). Real `sandbox-run`, real kernel.

use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use nix::fcntl::{renameat2, RenameFlags, AT_FDCWD};

use crate::common::SANDBOX_RUN;

/// A world-readable temporary directory: the sandbox runs as host uid 65534 when root starts it.
fn open_tempdir() -> tempfile::TempDir {
    let t = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    t
}

/// Swaps two names (a directory and a symlink to an outside directory) atomically, as fast as
/// it can, until dropped.
struct Racer {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<u64>>,
}

impl Racer {
    fn start(a: &Path, b: &Path) -> Racer {
        let a = CString::new(a.as_os_str().as_bytes()).expect("path");
        let b = CString::new(b.as_os_str().as_bytes()).expect("path");
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut swaps = 0;
            while !s.load(Ordering::Relaxed) {
                // RENAME_EXCHANGE swaps the two atomically.
                renameat2(
                    AT_FDCWD,
                    a.as_c_str(),
                    AT_FDCWD,
                    b.as_c_str(),
                    RenameFlags::RENAME_EXCHANGE,
                )
                .expect("renameat2");
                swaps += 1;
            }
            swaps
        });
        Racer {
            stop,
            handle: Some(handle),
        }
    }

    fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.take().expect("running").join().expect("racer")
    }
}

impl Drop for Racer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// `sandbox-run --allow-read ROOT/sub/inner -- cat ROOT/sub/inner/marker`, hundreds of times,
/// while `sub` is swapped with a symlink to a directory whose `inner/marker` says OUTSIDE. Each
/// run either shows the real directory or shows nothing there (or is refused); none ever shows
/// the outside directory at the granted path. (Before grants by descriptor, the init re-opened
/// the checked path by name, following the swapped-in `sub`; the library-level bare control in
/// src/grant.rs shows that this race is won by the swapper within a few thousand tries.)
#[test]
fn a_symlink_swapped_in_during_the_launch_never_shows_the_outside() {
    let t = open_tempdir();
    let root = t.path().join("root");
    let outside = t.path().join("outside");
    for (dir, text) in [(&root, "INSIDE"), (&outside, "OUTSIDE")] {
        let inner = if dir == &root {
            dir.join("sub/inner")
        } else {
            dir.join("inner")
        };
        std::fs::create_dir_all(&inner).expect("mkdir");
        std::fs::write(inner.join("marker"), text).expect("marker");
        for d in [dir.as_path(), inner.parent().expect("parent"), &inner] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
    }
    std::os::unix::fs::symlink(&outside, root.join("sub.link")).expect("symlink");
    let granted = root.join("sub/inner");
    let marker = granted.join("marker");

    let racer = Racer::start(&root.join("sub"), &root.join("sub.link"));
    let (mut inside, mut refused, mut absent) = (0, 0, 0);
    for _ in 0..300 {
        let out = Command::new(SANDBOX_RUN)
            .arg("--allow-read")
            .arg(&granted)
            .args(["--", "/usr/bin/cat"])
            .arg(&marker)
            .stdin(Stdio::null())
            .output()
            .expect("spawn sandbox-run");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stdout.contains("OUTSIDE"),
            "the outside directory was shown at the granted path; stderr: {stderr}"
        );
        if stdout.contains("INSIDE") {
            inside += 1;
        } else if stderr.contains("changed while it was being") {
            refused += 1;
        } else {
            // canonicalize saw the swap: the path named the other side, shown at its own
            // (different) path, so nothing is at the granted path inside.
            absent += 1;
        }
    }
    let swaps = racer.stop();
    eprintln!("300 runs under {swaps} swaps: {inside} inside, {refused} refused, {absent} absent");
    assert!(inside > 0, "no run ever shared the real directory");
    assert!(swaps > 1000, "the racer barely ran ({swaps} swaps)");
}

/// Runs `c` to its end with each `(fd, at)` open in it at number `at` (the library's own
/// spawn for descriptors at fixed numbers, which the MCP server uses too), output captured.
fn output_inheriting(mut c: Command, pairs: &[(&OwnedFd, i32)]) -> Output {
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let pairs: Vec<_> = pairs.iter().map(|(f, at)| (f.as_fd(), *at)).collect();
    code_executor::sys::spawn_with_fds(c, &pairs, None)
        .expect("spawn sandbox-run")
        .wait_with_output()
        .expect("wait for sandbox-run")
}

/// Runs sandbox-run with `fd` inherited at number `at`, plus `args`.
fn run_with_fd(fd: &OwnedFd, at: i32, args: &[&str]) -> Output {
    let mut c = Command::new(SANDBOX_RUN);
    c.args(args).stdin(Stdio::null());
    output_inheriting(c, &[(fd, at)])
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The shell's descriptors, as the workload sees them: only 0, 1 and 2. The listing goes
/// through a file redirected inside a subshell: in `ls | tr` the shell holds the pipe's read end
/// while `ls` runs (listed as 3, sometimes), and a redirection of a plain command makes dash
/// park its stdout at 10.
const LIST_FDS: &str = "(ls /proc/$$/fd > /tmp/fds); tr '\\n' ' ' < /tmp/fds; echo";

#[test]
fn a_descriptor_grant_shows_exactly_that_object_read_only() {
    let t = open_tempdir();
    let dir = t.path().join("data");
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    std::fs::write(dir.join("marker"), "GRANTED").expect("marker");
    let fd = OwnedFd::from(std::fs::File::open(&dir).expect("open"));
    // The name goes away: only the descriptor knows the object now.
    let moved = t.path().join("renamed");
    std::fs::rename(&dir, &moved).expect("rename");
    std::os::unix::fs::symlink("/etc", &dir).expect("symlink");

    let script = format!(
        "cat /data/marker; echo; {LIST_FDS}; echo x > /data/new && echo WROTE || echo DENIED"
    );
    let out = run_with_fd(
        &fd,
        5,
        &["--grant-read-fd", "5:/data", "--", "/bin/sh", "-c", &script],
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "GRANTED", "{stdout}");
    assert_eq!(
        lines[1].trim(),
        "0 1 2",
        "descriptors reached the workload: {stdout}"
    );
    assert_eq!(lines[2], "DENIED", "{stdout}");
    assert!(!moved.join("new").exists());
}

#[test]
fn a_descriptor_grant_can_be_writable_and_can_be_a_file() {
    let t = open_tempdir();
    let dir = t.path().join("out");
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let file = t.path().join("config.txt");
    std::fs::write(&file, "CONFIG").expect("file");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let dir_fd = OwnedFd::from(std::fs::File::open(&dir).expect("open"));
    let file_fd = OwnedFd::from(std::fs::File::open(&file).expect("open"));

    let script = format!("cat /etc/app.txt; echo; echo hi > /out/new && echo WROTE; {LIST_FDS}");
    let mut c = Command::new(SANDBOX_RUN);
    // The directory is on /tmp, without project quotas here: a writable grant needs the
    // named weaker mode (tests/sandbox/write_bound.rs tests the refusal).
    c.args([
        "--allow-degraded=unbounded-writes",
        "--grant-write-fd",
        "6:/out",
        "--grant-read-fd",
        "7:/workspace/app.txt",
        "--",
        "/bin/sh",
        "-c",
        &script,
    ])
    .stdin(Stdio::null());
    let out = output_inheriting(c, &[(&dir_fd, 6), (&file_fd, 7)]);
    let (stdout, stderr) = text(&out);
    // /etc/app.txt is not granted: cat fails there, which proves a grant's inside path is
    // where it appears, and nowhere else.
    assert!(
        stdout.contains("WROTE"),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("new")).expect("written"),
        "hi\n"
    );
    assert!(stdout.lines().any(|l| l.trim() == "0 1 2"), "{stdout}");

    let out = run_with_fd(
        &file_fd,
        7,
        &[
            "--grant-read-fd",
            "7:/workspace/app.txt",
            "--",
            "/bin/cat",
            "/workspace/app.txt",
        ],
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(stdout, "CONFIG", "stderr: {stderr}");
}

#[test]
fn bad_descriptor_grants_are_refused_by_flag_and_number() {
    let out = Command::new(SANDBOX_RUN)
        .args(["--grant-read-fd", "77:/data", "--", "/bin/true"])
        .stdin(Stdio::null())
        .output()
        .expect("spawn");
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(125), "{stderr}");
    assert!(stderr.contains("--grant-read-fd 77"), "{stderr}");

    let out = Command::new(SANDBOX_RUN)
        .args(["--grant-write-fd", "2:/data", "--", "/bin/true"])
        .stdin(Stdio::null())
        .output()
        .expect("spawn");
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(125), "{stderr}");
    assert!(stderr.contains("--grant-write-fd 2"), "{stderr}");

    // The checks of --allow-read apply to the object: procfs is refused whatever it is called,
    // and a grant cannot be placed inside another bind (its mount point would be made there).
    let proc_fd = OwnedFd::from(std::fs::File::open("/proc/self").expect("open /proc/self"));
    let out = run_with_fd(
        &proc_fd,
        5,
        &["--grant-read-fd", "5:/data", "--", "/bin/true"],
    );
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(125), "{stderr}");
    assert!(stderr.contains("/proc is the sandbox's own"), "{stderr}");

    let t = open_tempdir();
    let fd = OwnedFd::from(std::fs::File::open(t.path()).expect("open"));
    let out = run_with_fd(
        &fd,
        5,
        &["--grant-read-fd", "5:/usr/data", "--", "/bin/true"],
    );
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(125), "{stderr}");
    assert!(stderr.contains("lies inside /usr"), "{stderr}");
}

/// The path the user typed is followed once (their intent); a path that is absent is refused by
/// name before anything runs.
#[test]
fn allow_read_through_a_symlink_shows_the_real_path() {
    let t = open_tempdir();
    let real: PathBuf = t.path().join("real");
    std::fs::create_dir(&real).expect("mkdir");
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::write(real.join("f"), "REAL").expect("write");
    std::os::unix::fs::symlink(&real, t.path().join("link")).expect("symlink");
    let out = Command::new(SANDBOX_RUN)
        .arg("--allow-read")
        .arg(t.path().join("link"))
        .args(["--", "/bin/cat"])
        .arg(real.join("f"))
        .stdin(Stdio::null())
        .output()
        .expect("spawn");
    let (stdout, stderr) = text(&out);
    assert_eq!(stdout, "REAL", "stderr: {stderr}");
}
