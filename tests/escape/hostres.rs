//! Host resources (issue 11, item 2) and the sandbox's own processes (item 4): probes/hostres.py
//! tries to use up each per-user or system-wide counter from inside the sandbox and holds what
//! it got; while it holds, the test checks that the user who started the sandbox (root here,
//! like CI) still has their quota. The same group run bare shows that the attempt works outside,
//! so no bound is asserted vacuously.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use crate::support::*;

/// A probe group that holds what it took until its stdin closes.
struct Holding {
    child: Child,
    lines: Vec<String>,
}

impl Holding {
    /// Starts `cmd` and reads its output until the `holding` line (or its end).
    fn start(mut cmd: Command) -> Holding {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the probe");
        let mut lines = Vec::new();
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        while out.read_line(&mut line).unwrap_or(0) > 0 {
            let held = line.contains("\"holding\"");
            lines.push(std::mem::take(&mut line));
            if held {
                break;
            }
        }
        Holding { child, lines }
    }

    /// Lets the probe go and returns its results and stderr.
    fn finish(mut self) -> (Results, String) {
        drop(self.child.stdin.take());
        let out = self.child.wait_with_output().expect("wait for the probe");
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(
            self.lines.iter().any(|l| l.contains("\"holding\"")),
            "the probe never reached its hold: {}\n{stderr}",
            self.lines.concat()
        );
        (parse(self.lines.concat().as_bytes()), stderr)
    }
}

fn in_sandbox(opts: &[&str], group: &str, args: &[&str]) -> Command {
    let py = probe("hostres.py");
    let mut guest = vec!["python3", py.as_str(), "sandbox", group];
    guest.extend_from_slice(args);
    sandbox_cmd(opts, &guest)
}

fn bare(group: &str, args: &[&str]) -> Command {
    let mut c = Command::new(runtime("python3"));
    c.arg(probe("hostres.py")).args(["bare", group]).args(args);
    c
}

/// Runs a group that does not hold, in the sandbox and bare.
fn once(group: &str, opts: &[&str], args: &[&str]) -> (Results, Results) {
    let s = in_sandbox(opts, group, args).output().expect("sandbox-run");
    assert!(s.status.success(), "sandboxed {group}: {}", show(&s));
    let b = bare(group, args).output().expect("bare probe");
    assert!(b.status.success(), "bare {group}: {}", show(&b));
    (parse(&s.stdout), parse(&b.stdout))
}

fn count(r: &Results, a: &str) -> u64 {
    ret(r, a)
        .as_u64()
        .unwrap_or_else(|| panic!("{a}: no count in {:?}", r.get(a)))
}

/// The pending-signal count of the calling user, from this process's SigQ line.
fn sigq() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("SigQ:"))
        .expect("SigQ");
    let (n, max) = line.trim().split_once('/').expect("n/max");
    (n.parse().expect("n"), max.parse().expect("max"))
}

const SIGPENDING_BOUND: u64 = 256;
/// Signals the rest of this machine may queue for root while a test holds (other tests run
/// in parallel): far below what an unbounded run takes (the probe's cap, 3000).
const SLACK: u64 = 200;

/// The two tests that queue signals bare (the baselines fill the probe's cap, 3000, as root)
/// hold this while they run: otherwise one's baseline lands in the other's reading of the
/// starting user's count, and the check measures the test suite instead of the sandbox.
static ROOTS_SIGNAL_QUOTA: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn signal_quota() -> std::sync::MutexGuard<'static, ()> {
    ROOTS_SIGNAL_QUOTA
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[test]
fn queued_signals_are_bounded_and_the_starting_user_keeps_their_quota() {
    let _quota = signal_quota();
    let (before, max) = sigq();
    let run = Holding::start(in_sandbox(&[], "sigpending", &[]));
    let (during, _) = sigq();
    let (s, err) = run.finish();
    let n = count(&s, "sigpending:queued");
    assert!(
        n <= SIGPENDING_BOUND && errno(&s, "sigpending:queued").as_deref() == Some("EAGAIN"),
        "ESCAPE: the run queued {n} signals (bound {SIGPENDING_BOUND}): {:?}\n{err}",
        s.get("sigpending:queued")
    );
    assert!(
        during <= before + SIGPENDING_BOUND + SLACK,
        "the starting user's pending signals went from {before} to {during} of {max} while the run held {n}"
    );
    let b = Holding::start(bare("sigpending", &[]));
    let (b, _) = b.finish();
    assert_eq!(
        count(&b, "sigpending:queued"),
        3000,
        "baseline: bare, the probe queues up to its cap: {:?}",
        b.get("sigpending:queued")
    );
}

#[test]
fn posix_timers_are_bounded_like_signals() {
    let _quota = signal_quota();
    let run = Holding::start(in_sandbox(&[], "timers", &[]));
    let (s, err) = run.finish();
    let n = count(&s, "timers:created");
    assert!(
        n <= SIGPENDING_BOUND && errno(&s, "timers:created").as_deref() == Some("EAGAIN"),
        "ESCAPE: the run created {n} POSIX timers (bound {SIGPENDING_BOUND}): {:?}\n{err}",
        s.get("timers:created")
    );
    let (b, _) = Holding::start(bare("timers", &[])).finish();
    assert_eq!(count(&b, "timers:created"), 3000, "baseline: {b:?}");
}

/// Opens (and removes) `n` POSIX message queues of 10 x 8 KiB as this process's user.
fn host_can_open_queues(n: usize) -> Result<(), String> {
    use nix::mqueue::{mq_close, mq_open, mq_unlink, MQ_OFlag, MqAttr};
    use nix::sys::stat::Mode;
    let mut made = Vec::new();
    let mut result = Ok(());
    for i in 0..n {
        let name =
            std::ffi::CString::new(format!("/ce-host-{}-{i}", std::process::id())).expect("no NUL");
        let attr = MqAttr::new(0, 10, 8192, 0);
        let flags = MQ_OFlag::O_CREAT | MQ_OFlag::O_EXCL | MQ_OFlag::O_RDWR;
        match mq_open(
            name.as_c_str(),
            flags,
            Mode::from_bits_truncate(0o600),
            Some(&attr),
        ) {
            Ok(q) => made.push((q, name)),
            Err(e) => {
                result = Err(format!("queue {i} of {n}: {e}"));
                break;
            }
        }
    }
    for (q, name) in made {
        let _ = mq_close(q);
        let _ = mq_unlink(name.as_c_str());
    }
    result
}

#[test]
fn message_queues_are_bounded_and_the_starting_user_can_still_open_theirs() {
    let run = Holding::start(in_sandbox(&[], "mqueue", &[]));
    // 800 KiB per user by default: with the run holding at most 128 KiB, five default-sized
    // queues (~410 KiB) still fit.
    let host = host_can_open_queues(5);
    let (s, err) = run.finish();
    // EACCES where Landlock is in force (it fences creation in the queue file system too),
    // EMFILE at RLIMIT_MSGQUEUE otherwise.
    let n = count(&s, "mqueue:queues");
    let e = errno(&s, "mqueue:queues");
    assert!(
        n <= 1 && matches!(e.as_deref(), Some("EMFILE") | Some("EACCES")),
        "ESCAPE: the run opened {n} message queues of 82 KiB (bound 128 KiB): {:?}\n{err}",
        s.get("mqueue:queues")
    );
    host.unwrap_or_else(|e| panic!("the starting user lost their queue quota to the run: {e}"));
    let (b, _) = Holding::start(bare("mqueue", &[])).finish();
    assert!(
        count(&b, "mqueue:queues") >= 5,
        "baseline: bare, the probe opens several queues: {b:?}"
    );
}

#[test]
fn inotify_is_bounded_by_the_runs_namespace_and_the_starting_user_keeps_theirs() {
    let run = Holding::start(in_sandbox(&[], "inotify", &[]));
    // While the run holds what it could get, this user opens ten more instances.
    let host: Vec<_> = (0..10)
        .map(|_| nix::sys::inotify::Inotify::init(nix::sys::inotify::InitFlags::IN_CLOEXEC))
        .collect();
    let failed: Vec<String> = host
        .iter()
        .filter_map(|r| r.as_ref().err().map(|e| e.to_string()))
        .collect();
    drop(host);
    let (s, err) = run.finish();
    let inst = count(&s, "inotify:instances");
    assert!(
        inst <= 8 && errno(&s, "inotify:instances").as_deref() == Some("EMFILE"),
        "ESCAPE: the run opened {inst} inotify instances (bound 8): {:?}\n{err}",
        s.get("inotify:instances")
    );
    let watches = count(&s, "inotify:watches");
    assert!(
        watches <= 1024 && errno(&s, "inotify:watches").as_deref() == Some("ENOSPC"),
        "ESCAPE: the run added {watches} inotify watches (bound 1024): {:?}",
        s.get("inotify:watches")
    );
    assert!(
        failed.is_empty(),
        "the starting user could not open inotify instances while the run held its own: {failed:?}"
    );
    // Bare: more than the bound of both (the cap of instances stays well under the host's 128).
    let dir = tempfile::tempdir().expect("tempdir");
    let (b, _) = Holding::start(bare("inotify", &[dir.path().to_str().expect("utf-8")])).finish();
    assert!(count(&b, "inotify:instances") > 8, "baseline: {b:?}");
    assert!(count(&b, "inotify:watches") > 1024, "baseline: {b:?}");
}

#[test]
fn the_runs_user_namespace_quotas_are_set() {
    let (s, b) = once("userns", &[], &[]);
    for (name, want) in [
        ("userns:max_inotify_instances", 8),
        ("userns:max_inotify_watches", 1024),
        ("userns:max_user_namespaces", 0),
        ("userns:max_fanotify_groups", 0),
    ] {
        assert_eq!(
            ret(&s, name).as_u64(),
            Some(want),
            "{name}: {:?}",
            s.get(name)
        );
        assert_ne!(
            ret(&b, name).as_u64(),
            Some(want),
            "baseline {name}: {:?}",
            b.get(name)
        );
    }
}

#[test]
fn sysv_ipc_and_legacy_aio_are_enosys() {
    let aio_before = std::fs::read_to_string("/proc/sys/fs/aio-nr").expect("aio-nr");
    let (s, b) = once("sysv", &[], &[]);
    for a in ["sysv:shmget", "sysv:semget", "sysv:msgget"] {
        assert_errno(
            &s,
            a,
            "ENOSYS",
            "seccomp: SysV IPC memory escapes the run's bounds",
        );
        assert!(
            ret(&b, a).is_number(),
            "baseline: bare {a} works: {:?}",
            b.get(a)
        );
    }
    let (s, b) = once("aio", &[], &[]);
    assert_errno(
        &s,
        "aio:io_setup",
        "ENOSYS",
        "seccomp: legacy AIO draws on a system-wide pool (fs.aio-max-nr)",
    );
    assert!(ret(&b, "aio:io_setup").is_number(), "baseline: {b:?}");
    let aio_after = std::fs::read_to_string("/proc/sys/fs/aio-nr").expect("aio-nr");
    assert_eq!(aio_before, aio_after, "the system's AIO count changed");
}

#[test]
fn locked_memory_and_scheduling_priority_are_not_raised() {
    let (s, b) = once("memlock", &[], &[]);
    let e = errno(&s, "memlock:1MiB");
    assert!(
        matches!(e.as_deref(), Some("ENOMEM") | Some("EPERM")),
        "ESCAPE: the run locked 1 MiB (RLIMIT_MEMLOCK is 64 KiB): {:?}",
        s.get("memlock:1MiB")
    );
    assert!(ret(&b, "memlock:1MiB").is_number(), "baseline: {b:?}");

    let (s, b) = once("priority", &[], &[]);
    assert_errno(&s, "priority:nice_minus_1", "EACCES", "RLIMIT_NICE 0");
    assert_errno(&s, "priority:sched_fifo", "EPERM", "RLIMIT_RTPRIO 0");
    assert!(
        ret(&b, "priority:nice_minus_1").is_number(),
        "baseline: {b:?}"
    );
    assert!(
        ret(&b, "priority:sched_fifo").is_number(),
        "baseline: {b:?}"
    );
}

#[test]
fn the_kernel_command_line_boot_id_and_kernel_tables_read_empty() {
    let (s, b) = once("hostinfo", &[], &[]);
    for file in [
        "/proc/cmdline",
        "/proc/sys/kernel/random/boot_id",
        "/proc/kallsyms",
        "/proc/timer_list",
        "/proc/keys",
        "/proc/key-users",
    ] {
        let a = format!("hostinfo:{file}");
        assert_eq!(
            ret(&s, &a).as_u64(),
            Some(0),
            "ESCAPE: {file} shows the host inside: {:?}",
            s.get(&a)
        );
    }
    for file in [
        "/proc/cmdline",
        "/proc/sys/kernel/random/boot_id",
        "/proc/kallsyms",
    ] {
        let a = format!("hostinfo:{file}");
        assert!(
            ret(&b, &a).as_u64().unwrap_or(0) > 0,
            "baseline: bare {file} has content: {:?}",
            b.get(&a)
        );
    }
}

#[test]
fn nothing_of_the_directories_on_the_way_to_the_interpreter_shows() {
    let (s, b) = once("hostinfo", &[], &[]);
    let prefix = ret(&s, "hostinfo:prefix")
        .as_str()
        .unwrap_or_default()
        .to_string();
    let beside = ret(&s, "hostinfo:beside_the_way");
    assert_eq!(
        beside.as_object().map(|o| o.len()),
        Some(0),
        "ESCAPE: directories on the way to {prefix} show host entries: {beside}"
    );
    // Bare, where the interpreter lives below a home directory (here /root/.pyenv), that home
    // holds more than the way to it. On a machine whose python is /usr's, there is nothing to
    // compare: the sandboxed side still holds.
    if prefix.starts_with("/root/") || prefix.starts_with("/home/") {
        let bare_beside = ret(&b, "hostinfo:beside_the_way");
        assert!(
            bare_beside.as_object().is_some_and(|o| !o.is_empty()),
            "baseline: bare, the home on the way to {prefix} has other entries: {bare_beside}"
        );
    }
}

/// Mode bits of every file the setid group made in `dir`: (name, mode).
fn modes(dir: &std::path::Path) -> Vec<(String, u32)> {
    use std::os::unix::fs::MetadataExt;
    let mut v: Vec<(String, u32)> = std::fs::read_dir(dir)
        .expect("read the grant")
        .flatten()
        .map(|e| {
            let m = e.path().symlink_metadata().expect("stat");
            (e.file_name().to_string_lossy().to_string(), m.mode())
        })
        .collect();
    v.sort();
    v
}

#[test]
fn no_setuid_setgid_bit_or_device_node_reaches_a_writable_grant() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The sandbox's host uid (nobody, for a root-started run) must be able to write there.
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .expect("chmod");
    let grant = dir.path().to_str().expect("utf-8");
    let out = in_sandbox(
        &[
            "--allow-write",
            grant,
            "--allow-degraded",
            "unbounded-writes",
        ],
        "setid",
        &[grant],
    )
    .output()
    .expect("sandbox-run");
    assert!(out.status.success(), "sandboxed setid: {}", show(&out));
    let s = parse(&out.stdout);
    for a in [
        "setid:chmod_4755",
        "setid:chmod_2755",
        "setid:fchmod_6755",
        "setid:fchmodat_4755",
        "setid:open_creat_4755",
        "setid:openat_creat_2755",
        "setid:mknod_reg_4755",
        "setid:mknod_chr_null",
        "setid:mknod_blk",
        "setid:chmod_dir_2775",
    ] {
        assert_errno(&s, a, "EPERM", "seccomp: no set-id bit, no device node");
    }
    assert!(
        ret(&s, "setid:chmod_0755").is_number(),
        "ordinary modes stay allowed: {s:?}"
    );
    assert!(
        ret(&s, "setid:mkfifo").is_number(),
        "FIFOs stay allowed: {s:?}"
    );
    for (name, mode) in modes(dir.path()) {
        let kind = mode & libc::S_IFMT;
        assert!(
            mode & (libc::S_ISUID | libc::S_ISGID) == 0
                && kind != libc::S_IFCHR
                && kind != libc::S_IFBLK,
            "ESCAPE: {name} in the grant has mode {mode:o} on the host"
        );
    }

    // Bare, as root: the same calls leave set-id files and device nodes behind.
    let bare_dir = tempfile::tempdir().expect("tempdir");
    let b = bare("setid", &[bare_dir.path().to_str().expect("utf-8")])
        .output()
        .expect("bare");
    assert!(b.status.success(), "bare setid: {}", show(&b));
    let found = modes(bare_dir.path());
    assert!(
        found
            .iter()
            .any(|(_, m)| m & libc::S_ISUID != 0 && m & libc::S_IFMT == libc::S_IFREG),
        "baseline: bare leaves a setuid file: {found:?}"
    );
    assert!(
        found.iter().any(|(_, m)| m & libc::S_IFMT == libc::S_IFCHR),
        "baseline: bare makes a device node: {found:?}"
    );
}

#[test]
fn the_workload_cannot_name_or_act_on_the_sandboxs_own_processes() {
    // With a network grant, so that the egress forwarder runs beside the init.
    let out = in_sandbox(&["--allow-net", "example.invalid"], "helpers", &[])
        .output()
        .expect("sandbox-run");
    assert!(out.status.success(), "sandboxed helpers: {}", show(&out));
    let s = parse(&out.stdout);
    let visible = ret(&s, "helpers:visible")
        .as_object()
        .unwrap_or_else(|| panic!("no pid list: {s:?}"))
        .clone();
    assert_eq!(
        visible.get("1").and_then(Value::as_str),
        Some("sandbox-reaper"),
        "PID 1 of the workload's namespace is the reaper: {visible:?}"
    );
    assert_eq!(
        visible.len(),
        2,
        "ESCAPE: the workload can name processes besides the reaper and itself (the init, the forwarder): {visible:?}"
    );
    let acted = ret(&s, "helpers:acted")
        .as_object()
        .unwrap_or_else(|| panic!("no action list: {s:?}"))
        .clone();
    assert_eq!(
        acted.keys().collect::<Vec<_>>(),
        vec!["1"],
        "the only other process is the reaper: {acted:?}"
    );
    // Lowering the reaper's priority is allowed (it only slows the run's own reaping); its
    // limits are not.
    assert_eq!(
        acted["1"][0], "prlimit:EPERM",
        "ESCAPE: prlimit on the reaper: {acted:?}"
    );
    assert_errno(&s, "helpers:kill_1", "EPERM", "Landlock signal scope");
}

/// The forwarder keeps serving after the workload tried everything above: a request through
/// it for a host the run was not granted gets the proxy's refusal, not a dead socket.
#[test]
fn the_forwarder_serves_after_the_workload_tried_to_reach_it() {
    let script = format!(
        "import runpy, sys, socket\nsys.argv = ['hostres.py', 'sandbox', 'helpers']\nrunpy.run_path('{}', run_name='__main__')\ns = socket.create_connection(('127.0.0.1', 3128), timeout=5)\ns.sendall(b'GET http://denied.invalid/ HTTP/1.1\\r\\nHost: denied.invalid\\r\\n\\r\\n')\nprint('PROXY', s.recv(64).split(b'\\r\\n')[0].decode())",
        probe("hostres.py")
    );
    let out = sandbox_cmd(
        &["--allow-net", "example.invalid"],
        &["python3", "-c", &script],
    )
    .output()
    .expect("sandbox-run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", show(&out));
    let status = stdout
        .lines()
        .find_map(|l| l.strip_prefix("PROXY "))
        .unwrap_or_else(|| panic!("no answer through the forwarder: {}", show(&out)));
    assert!(
        status.starts_with("HTTP/1.1 4"),
        "the proxy refuses an ungranted host through a live forwarder: {status}"
    );
}
