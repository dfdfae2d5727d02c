//! Terminal injection, setuid binaries, daemons, kill(-1) and killing sandbox-run itself.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

fn wait_gone(marker: &str, within: Duration) -> Vec<i32> {
    let t = Instant::now();
    loop {
        let left = procs_named(marker);
        if left.is_empty() || t.elapsed() > within {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// TIOCSTI on a terminal the sandbox inherits (sandbox-run started on a pty slave).
#[test]
fn tiocsti_on_inherited_terminal_denied() {
    let mut args = vec![sandbox_run().to_string()];
    args.extend(
        sandbox_cmd(&[], &["python3", &probe("escape.py"), "sandbox", "tty"])
            .get_args()
            .map(|a| a.to_string_lossy().into_owned()),
    );
    let out = Command::new(runtime("python3"))
        .arg(probe("pty_harness.py"))
        .args(&args)
        .env("PATH", path_env())
        .current_dir("/")
        .output()
        .unwrap();
    let r = parse(&out.stdout);
    assert_eq!(
        ret(&r, "tty:isatty"),
        true,
        "the guest got the pty: {}",
        show(&out)
    );
    assert_errno(&r, "tty:TIOCSTI", "EPERM", "seccomp TIOCSTI rule");
    assert_errno(
        &r,
        "tty:TIOCSTI_hi",
        "EPERM",
        "seccomp TIOCSTI rule, 32-bit compare",
    );
    // The workload is in its own session: the caller's terminal cannot become its controlling tty.
    assert_errno(
        &r,
        "tty:TIOCSCTTY",
        "EPERM",
        "the pty is the controlling tty of the caller's session",
    );
    // Baseline: the same probe bare on a pty. This host has dev.tty.legacy_tiocsti=1, so root's
    // TIOCSTI succeeds; with legacy_tiocsti=0 the kernel itself answers EIO for non-CAP_SYS_ADMIN.
    let bare = Command::new(runtime("python3"))
        .arg(probe("pty_harness.py"))
        .arg(runtime("python3"))
        .args([&probe("escape.py"), "bare", "tty"])
        .output()
        .unwrap();
    let b = parse(&bare.stdout);
    let legacy = std::fs::read_to_string("/proc/sys/dev/tty/legacy_tiocsti").unwrap_or_default();
    if legacy.trim() == "0" {
        eprintln!("note: dev.tty.legacy_tiocsti=0 on this host");
    }
    assert_eq!(
        ret(&b, "tty:TIOCSTI"),
        0,
        "baseline: bare root injects into its pty: {}",
        show(&bare)
    );
}

/// A setuid-root binary (/usr/bin/passwd, visible through the /usr bind) gains nothing.
#[test]
fn setuid_binary_gains_no_root() {
    let prog = ["/usr/bin/passwd", "/usr/bin/su", "/usr/bin/chfn"]
        .into_iter()
        .find(|p| {
            std::fs::metadata(p)
                .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o4000 != 0)
                .unwrap_or(false)
        })
        .expect("no setuid-root binary among /usr/bin/passwd, su, chfn: install `passwd`");
    let out = sandbox_cmd(
        &[],
        &["python3", &probe("escape.py"), "sandbox", "setuid", prog],
    )
    .output()
    .unwrap();
    let r = parse(&out.stdout);
    assert_eq!(
        ret(&r, "setuid:euids"),
        &serde_json::json!(["1000"]),
        "{prog} ran with another euid inside: {}",
        show(&out)
    );
    assert_eq!(ret(&r, "setuid:nnp"), "1");
    // Baseline: bare, as host uid 65534 (what the sandbox maps to), the same exec gets euid 0.
    let py = if std::path::Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3".into()
    } else {
        runtime("python3").display().to_string()
    };
    let bare = Command::new("setpriv")
        .args([
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            &py,
            &probe("escape.py"),
            "bare",
            "setuid",
            prog,
        ])
        .output()
        .unwrap();
    let b = parse(&bare.stdout);
    assert_eq!(
        ret(&b, "setuid:euids"),
        &serde_json::json!(["0"]),
        "baseline: bare {prog} runs as euid 0: {}",
        show(&bare)
    );
}

fn daemon(how: &str) {
    let marker = unique("dmn");
    let out = sandbox_cmd(
        &["--timeout", "1.5"],
        &[
            "python3",
            &probe("escape.py"),
            "sandbox",
            "daemon",
            &marker,
            how,
        ],
    )
    .output()
    .unwrap();
    let r = parse(&out.stdout);
    assert_eq!(ret(&r, "daemon:started"), true, "{}", show(&out));
    let want = if how == "wait" { 124 } else { 0 };
    assert_eq!(out.status.code(), Some(want), "{}", show(&out));
    let left = wait_gone(&marker, Duration::from_secs(2));
    assert!(
        left.is_empty(),
        "ESCAPE: a setsid double-forked daemon survived the run: pids {left:?}"
    );
}

#[test]
fn setsid_daemon_killed_at_timeout() {
    daemon("wait");
}

#[test]
fn setsid_daemon_killed_when_workload_exits() {
    daemon("exit");
    // Baseline: bare, the same daemon outlives its parent.
    let marker = unique("dmb");
    let out = Command::new(runtime("python3"))
        .args([&probe("escape.py"), "bare", "daemon", &marker, "exit"])
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    assert!(out.status.success());
    std::thread::sleep(Duration::from_millis(200));
    let alive = procs_named(&marker);
    for p in &alive {
        // Best effort: it may be gone already.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*p),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    assert_eq!(
        alive.len(),
        1,
        "baseline: bare, the daemon survives its parent"
    );
}

#[test]
fn kill_minus_one_stays_inside() {
    // A host process of uid 65534, the uid the sandbox runs as on the host.
    let mut sentinel = Command::new("setpriv")
        .args([
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            "sleep",
            "30",
        ])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    // Baseline: uid 65534 may signal it bare (kill -0).
    let ok = Command::new("setpriv")
        .args([
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            "kill",
            "-0",
            &sentinel.id().to_string(),
        ])
        .status()
        .unwrap();
    assert!(
        ok.success(),
        "baseline: host uid 65534 can signal the sentinel"
    );
    let out = sandbox_cmd(&[], &["python3", &probe("escape.py"), "sandbox", "killall"])
        .output()
        .unwrap();
    let r = parse(&out.stdout);
    assert!(
        errno(&r, "kill:minus_one").is_none(),
        "kill(-1) itself succeeds inside: {}",
        show(&out)
    );
    assert_eq!(
        ret(&r, "kill:minus_one_child"),
        9,
        "it killed the sandbox's own child"
    );
    assert!(out.status.success(), "{}", show(&out));
    let alive = sentinel.try_wait().unwrap().is_none();
    let _ = sentinel.kill();
    let _ = sentinel.wait();
    assert!(
        alive,
        "ESCAPE: kill(-1) inside the sandbox killed a host process of uid 65534"
    );
}

#[test]
fn sigkill_of_sandbox_run_leaves_nothing() {
    let marker = unique("hld");
    let mut child = sandbox_cmd(
        &["--timeout", "30"],
        &["python3", &probe("escape.py"), "sandbox", "hold", &marker],
    )
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("hold:ready"), "{line}");
    let t = Instant::now();
    let mut before = procs_named(&marker);
    while before.len() < 4 && t.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(20));
        before = procs_named(&marker);
    }
    assert_eq!(
        before.len(),
        4,
        "baseline: the workload and its 3 setsid children run on the host"
    );
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();
    let left = wait_gone(&marker, Duration::from_secs(3));
    for p in &left {
        // Best effort: it may be gone already.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*p),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    assert!(
        left.is_empty(),
        "ESCAPE: processes survived SIGKILL of sandbox-run: {left:?} (the sandbox init is reparented to the host's init and keeps running without the wall-clock timeout: PR_SET_PDEATHSIG is set before setresuid, which clears it)"
    );
}
