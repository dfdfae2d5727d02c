//! The sandbox's behaviour, end to end: every test starts the real `sandbox-run` and runs a real
//! probe inside with python3, node or deno. At this level: the reference project's Docker
//! security checks, translated. In modules: the CPU share (`cpu`), taken-away kernel features
//! (`degradation`), network egress (`egress`), shared paths by descriptor (`grants`), the report
//! channel (`report`) and the write bound (`write_bound`). One binary, so the crate is linked
//! once; the escape suite is the other (tests/escape.rs).
#![forbid(unsafe_code)]

mod common;

#[path = "sandbox/cpu.rs"]
mod cpu;
#[path = "sandbox/degradation.rs"]
mod degradation;
#[path = "sandbox/egress.rs"]
mod egress;
#[path = "sandbox/grants.rs"]
mod grants;
#[path = "sandbox/report.rs"]
mod report;
#[path = "sandbox/write_bound.rs"]
mod write_bound;

use std::io::Write;
use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

fn chmod(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn assert_denied(run: &Run, name: &str, errno: &str) {
    let p = run.probe(name);
    assert_eq!(p["ok"], false, "{name} must fail inside the sandbox: {p}");
    assert_eq!(p["errno"], errno, "{name}: {p}");
}

/// Host-side fixtures the probe looks for: a secret in the home directory, a file in the
/// host's /tmp, a listener on the host's loopback, and a symlink planted in a writable dir.
struct Fixtures {
    _home: tempfile::TempDir,
    secret: std::path::PathBuf,
    host_tmp: tempfile::NamedTempFile,
    listener: TcpListener,
    shared: tempfile::TempDir,
}

fn fixtures() -> Fixtures {
    let home = tempfile::Builder::new()
        .prefix("home-")
        .tempdir_in("/root")
        .expect("tempdir in /root");
    let secret = home.path().join(".secret-token");
    std::fs::write(&secret, "TOP-SECRET").unwrap();
    let mut host_tmp = tempfile::NamedTempFile::new_in("/tmp").unwrap();
    host_tmp.write_all(b"host tmp").unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let shared = tempfile::tempdir().unwrap();
    chmod(shared.path(), 0o777);
    std::os::unix::fs::symlink(&secret, shared.path().join("planted")).unwrap();
    Fixtures {
        _home: home,
        secret,
        host_tmp,
        listener,
        shared,
    }
}

fn run_boundary(runtime: &str, file: &str) -> (Run, Fixtures) {
    let f = fixtures();
    let envs = [
        format!("SECRET_PATH={}", f.secret.display()),
        format!("HOST_TMP_MARKER={}", f.host_tmp.path().display()),
        format!("HOST_PORT={}", f.listener.local_addr().unwrap().port()),
        format!("PLANTED_LINK={}/planted", f.shared.path().display()),
    ];
    let shared = f.shared.path().to_str().unwrap().to_string();
    // The shared directory is a temp dir on the host's /tmp, which has no project quotas here:
    // its writes cannot be bounded in total, so the run must accept `unbounded-writes`
    // (tests/sandbox/write_bound.rs covers the refusal and the bound).
    let mut extra = vec![
        "--allow-write",
        shared.as_str(),
        "--allow-degraded",
        "unbounded-writes",
    ];
    for e in &envs {
        extra.push("--env");
        extra.push(e);
    }
    let run = probe(runtime, file, &extra);
    assert_eq!(run.code, 0, "probe failed: {}\n{}", run.stdout, run.stderr);
    (run, f)
}

#[test]
fn python_boundary() {
    let (run, _f) = run_boundary("python3", "boundary.py");
    let id = run.probe("identity");
    assert_eq!(id["uid"], 1000);
    assert_eq!(id["gid"], 1000);
    let st = run.probe("status");
    for k in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(st[k], "0000000000000000", "{k}");
    }
    assert_eq!(st["NoNewPrivs"], "1");
    assert_eq!(st["Seccomp"], "2");
    // uid 0 does not even exist in the sandbox's user namespace.
    let su = run.probe("setuid0");
    assert_eq!(su["ok"], false, "{su}");
    assert!(su["errno"] == "EINVAL" || su["errno"] == "EPERM", "{su}");
    for p in [
        "/probe-file",
        "/usr/probe-file",
        "/etc/probe-file",
        "/etc/passwd",
    ] {
        assert_denied(&run, &format!("write {p}"), "EROFS");
    }
    assert_eq!(run.probe("write /workspace")["ok"], true);
    assert_eq!(run.probe("write /tmp")["ok"], true);
    // The home directory's secrets, the host's /tmp and a symlink out of a shared dir: unseen.
    assert_denied(&run, "read SECRET_PATH", "ENOENT");
    assert_denied(&run, "read HOST_TMP_MARKER", "ENOENT");
    assert_denied(&run, "read PLANTED_LINK", "ENOENT");
    assert_eq!(run.probe("home")["exists"], false);
    // Only lo; no route out, no DNS, and the host's loopback is another network.
    assert_eq!(run.probe("interfaces")["names"], serde_json::json!(["lo"]));
    // With Landlock TCP rules (ABI 4+) the connect is refused before routing (EACCES);
    // without them the empty network namespace answers.
    let tcp_fenced = run.report["layers"]["landlock"]
        .as_str()
        .unwrap_or("")
        .contains("tcp rules: true");
    let (out_errno, lo_errno) = if tcp_fenced {
        ("EACCES", "EACCES")
    } else {
        ("ENETUNREACH", "ECONNREFUSED")
    };
    assert_denied(&run, "tcp outside", out_errno);
    let dns = run.probe("dns");
    assert_eq!(dns["ok"], false, "{dns}");
    assert_denied(&run, "host loopback", lo_errno);
    // seccomp (the escape suite covers every denied syscall; these are the reference's).
    for name in [
        "ptrace",
        "bpf",
        "perf_event_open",
        "userfaultfd",
        "unshare user",
        "mount",
        "chroot",
        "keyctl",
        "io_uring_setup",
        "socket vsock",
        "socket vsock 64-bit",
        "socket netlink",
        "ioctl TIOCSTI",
        "ioctl TIOCSTI 64-bit",
        "clone newuser",
    ] {
        assert_denied(&run, name, "EPERM");
    }
    assert_denied(&run, "clone3", "ENOSYS");
    assert_eq!(
        run.probe("socket inet")["ok"],
        true,
        "AF_INET sockets stay allowed"
    );
    assert_eq!(
        run.probe("fds")["fds"],
        serde_json::json!([0, 1, 2, 3]),
        "only stdio (+ the listing's own fd)"
    );
    let keys = run.probe("env")["keys"].clone();
    let keys: Vec<&str> = keys
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    for k in &keys {
        assert!(
            [
                "HOME",
                "LANG",
                "PATH",
                "TMPDIR",
                "PYTHONDONTWRITEBYTECODE",
                "PYTHONNOUSERSITE",
                "PYTHONUNBUFFERED",
                "SECRET_PATH",
                "HOST_TMP_MARKER",
                "HOST_PORT",
                "PLANTED_LINK",
                "PWD",
                "LC_CTYPE"
            ]
            .contains(k),
            "unexpected variable {k} in the sandbox's environment"
        );
    }
    // The report names each layer's enforcement.
    let layers = &run.report["layers"];
    assert!(
        layers["landlock"].as_str().unwrap().starts_with("enforced"),
        "{layers}"
    );
    assert_eq!(
        layers["host_uid"], 65534,
        "root maps to an unprivileged host uid"
    );
    // Nothing is degraded but the write bound of the shared temp dir, which the run accepted
    // (the host's /tmp has no project quotas here).
    let degraded = run.report["degraded"].as_array().unwrap();
    assert!(
        degraded
            .iter()
            .all(|d| d.as_str().unwrap().starts_with("unbounded-writes:")),
        "{degraded:?}"
    );
}

fn js_boundary(runtime: &str) {
    let (run, _f) = run_boundary(runtime, "boundary.mjs");
    let id = run.probe("identity");
    assert_eq!(id["uid"], 1000);
    for p in ["/probe-file", "/usr/probe-file", "/etc/probe-file"] {
        let r = run.probe(&format!("write {p}"));
        assert_eq!(r["ok"], false, "{r}");
        assert!(
            r["errno"] == "EROFS"
                || r["errno"] == "PermissionDenied"
                || r["errno"] == "ReadOnlyFileSystem",
            "{r}"
        );
    }
    assert_eq!(run.probe("write /workspace")["ok"], true);
    assert_eq!(run.probe("write /tmp")["ok"], true);
    assert_eq!(run.probe("read SECRET_PATH")["ok"], false);
    for name in ["tcp outside", "host loopback", "fetch outside"] {
        assert_eq!(run.probe(name)["ok"], false, "{name}: {}", run.probe(name));
    }
}

#[test]
fn node_boundary() {
    js_boundary("node");
}

#[test]
fn deno_boundary() {
    js_boundary("deno");
}

fn memory_bomb(runtime: &str, code: &str) {
    require(runtime);
    let args: Vec<&str> = match runtime {
        "deno" => vec![
            "--memory",
            "256M",
            "--timeout",
            "30",
            "--",
            "deno",
            "eval",
            code,
        ],
        "node" => vec![
            "--memory",
            "256M",
            "--timeout",
            "30",
            "--",
            "node",
            "-e",
            code,
        ],
        _ => vec![
            "--memory",
            "128M",
            "--timeout",
            "30",
            "--",
            "python3",
            "-c",
            code,
        ],
    };
    let run = sandbox(&args);
    assert_ne!(
        run.code, 0,
        "{runtime}: allocating far past the cap must fail"
    );
    assert_eq!(
        run.report["limit_hit"], "memory",
        "{runtime}: report {}\nstderr {}",
        run.report, run.stderr
    );
    assert!(
        run.stderr.contains("sandbox-run: limit: memory"),
        "{}",
        run.stderr
    );
}

#[test]
fn memory_cap_python() {
    memory_bomb(
        "python3",
        "b = []\nwhile True: b.append(bytearray(16 << 20))",
    );
}

#[test]
fn memory_cap_node() {
    memory_bomb(
        "node",
        "const a = []; while (true) a.push(new Array(1 << 20).fill(1.5));",
    );
}

#[test]
fn memory_cap_deno() {
    memory_bomb(
        "deno",
        "const a = []; while (true) a.push(new Array(1 << 20).fill(1.5));",
    );
}

#[test]
fn cpu_time_limit_kills_busy_loop() {
    require("python3");
    let run = sandbox(&[
        "--cpu-time",
        "1",
        "--timeout",
        "20",
        "--",
        "python3",
        "-c",
        "while True: pass",
    ]);
    assert_eq!(run.report["limit_hit"], "cpu", "{}", run.report);
    assert_eq!(run.code, 128 + libc::SIGXCPU, "{}", run.stderr);
    assert!(run.stderr.contains("limit: cpu"));
}

#[test]
fn nproc_cap_holds() {
    require("python3");
    let code = "import os,time\nn=0\nfor i in range(60):\n    try:\n        if os.fork()==0:\n            time.sleep(2); os._exit(0)\n        n+=1\n    except OSError as e:\n        print('fork failed', e.errno); break\nprint('forked', n)";
    let run = sandbox(&["--timeout", "20", "--", "python3", "-c", code]);
    assert!(
        run.stdout.contains("fork failed 11"),
        "EAGAIN expected: {}",
        run.stdout
    );
    let n: u32 = run
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("forked "))
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(n < 25, "at most 25 tasks: forked {n}");
}

#[test]
fn fork_bomb_is_contained_and_others_still_run() {
    require("python3");
    let bomb = std::thread::spawn(|| {
        sandbox(&[
            "--timeout",
            "4",
            "--",
            "python3",
            "-c",
            "import os\nwhile True:\n    try: os.fork()\n    except OSError: pass",
        ])
    });
    std::thread::sleep(Duration::from_millis(800));
    let other = sandbox(&["--", "python3", "-c", "print('still fine')"]);
    assert_eq!(other.code, 0, "{}", other.stderr);
    assert_eq!(other.stdout.trim(), "still fine");
    let b = bomb.join().unwrap();
    assert_eq!(b.code, 124, "the bomb ends at its timeout: {}", b.stderr);
}

#[test]
fn file_size_bomb_stops() {
    require("python3");
    let run = sandbox(&[
        "--max-file-size",
        "1M",
        "--",
        "python3",
        "-c",
        "open('/tmp/big','wb').write(b'x' * (4 << 20))",
    ]);
    // Python ignores SIGXFSZ, so the write fails with EFBIG.
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("File too large"), "{}", run.stderr);
    let run = sandbox(&[
        "--max-file-size",
        "1M",
        "--",
        "/bin/sh",
        "-c",
        "exec head -c 4000000 /dev/zero > /tmp/big",
    ]);
    assert_eq!(run.report["limit_hit"], "file-size", "{}", run.report);
    assert_eq!(run.code, 128 + libc::SIGXFSZ);
}

#[test]
fn tmp_is_size_capped() {
    require("python3");
    let run = sandbox(&[
        "--tmp-size",
        "4M",
        "--",
        "python3",
        "-c",
        "open('/tmp/fill','wb').write(b'x' * (8 << 20))",
    ]);
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.contains("No space left on device"),
        "{}",
        run.stderr
    );
}

#[test]
fn allowed_paths_work_others_do_not() {
    require("python3");
    let ro = tempfile::tempdir().unwrap();
    let rw = tempfile::tempdir().unwrap();
    let hidden = tempfile::tempdir().unwrap();
    // Root's temp dirs are 0700: the sandbox's unprivileged host uid is refused up front.
    let run = sandbox(&[
        "--allow-write",
        rw.path().to_str().unwrap(),
        "--",
        "/bin/true",
    ]);
    assert_eq!(run.code, 125);
    assert!(
        run.stderr.contains("cannot write it") && run.stderr.contains("chmod o+rwx"),
        "{}",
        run.stderr
    );
    chmod(ro.path(), 0o755);
    chmod(rw.path(), 0o777);
    std::fs::write(ro.path().join("in.txt"), "input").unwrap();
    std::fs::write(hidden.path().join("h.txt"), "hidden").unwrap();
    let code = format!(
        "import os\nprint(open('{ro}/in.txt').read())\nopen('{rw}/out.txt','w').write('written')\ntry:\n    open('{ro}/x','w')\nexcept OSError as e: print('ro', e.errno)\nprint('hidden', os.path.exists('{hidden}'))",
        ro = ro.path().display(),
        rw = rw.path().display(),
        hidden = hidden.path().display()
    );
    let run = sandbox(&[
        "--allow-read",
        ro.path().to_str().unwrap(),
        "--allow-write",
        rw.path().to_str().unwrap(),
        // A temp dir on the host's /tmp: no project quota, see tests/sandbox/write_bound.rs.
        "--allow-degraded",
        "unbounded-writes",
        "--",
        "python3",
        "-c",
        &code,
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("input"));
    assert!(
        run.stdout.contains("ro 30"),
        "EROFS on the read-only share: {}",
        run.stdout
    );
    assert!(run.stdout.contains("hidden False"));
    assert_eq!(
        std::fs::read_to_string(rw.path().join("out.txt")).unwrap(),
        "written"
    );
}

#[test]
fn workdir_defaults_to_shared_cwd() {
    require("python3");
    let d = tempfile::tempdir().unwrap();
    chmod(d.path(), 0o755);
    std::fs::write(d.path().join("script.py"), "import os; print(os.getcwd())").unwrap();
    let run = sandbox_in(
        &[
            "--allow-read",
            d.path().to_str().unwrap(),
            "--",
            "python3",
            "script.py",
        ],
        Some(d.path()),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout.trim(),
        d.path().canonicalize().unwrap().to_str().unwrap()
    );
    let run = sandbox(&["--", "/bin/pwd"]);
    assert_eq!(run.stdout.trim(), "/workspace");
}

#[test]
fn timeout_kills_the_whole_tree_setsid_daemon_included() {
    require("python3");
    let marker = format!("{}", 900 + std::process::id() % 97);
    let code = format!(
        "import os,time\nif os.fork()==0:\n    os.setsid()\n    if os.fork()==0:\n        os.execv('/bin/sleep', ['sleep', '{marker}.123'])\n    os._exit(0)\ntime.sleep(60)"
    );
    let start = Instant::now();
    let run = sandbox(&["--timeout", "1.5", "--", "python3", "-c", &code]);
    assert_eq!(run.code, 124, "{}", run.stderr);
    assert_eq!(run.report["status"], "timeout");
    assert!(run.stderr.contains("limit: timeout"));
    assert!(start.elapsed() < Duration::from_secs(20));
    let left: Vec<String> = host_processes_of(65534)
        .into_iter()
        .filter(|p| p.contains(&format!("{marker}.123")))
        .collect();
    assert!(left.is_empty(), "survivors: {left:?}");
}

#[test]
fn workload_host_uid_is_unprivileged() {
    // Observe the sandboxed process from the host: its real uid must not be 0.
    let marker = "777.4321";
    let t = std::thread::spawn(move || sandbox(&["--timeout", "10", "--", "/bin/sleep", marker]));
    let deadline = Instant::now() + Duration::from_secs(8);
    let mut seen = Vec::new();
    while Instant::now() < deadline && seen.is_empty() {
        seen = host_processes_of(65534)
            .into_iter()
            .filter(|p| p.contains(marker))
            .collect();
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!seen.is_empty(), "the workload runs as host uid 65534");
    let root_owned: Vec<String> = host_processes_of(0)
        .into_iter()
        .filter(|p| p.contains(marker) && !p.contains("sandbox-run"))
        .collect();
    assert!(
        root_owned.is_empty(),
        "no part of the workload runs as host root: {root_owned:?}"
    );
    // Let it finish; the result is not the point here.
    let _ = t.join();
}

#[test]
fn setuid_binaries_gain_nothing() {
    let su = Path::new("/usr/bin/su");
    assert!(
        su.exists(),
        "this test expects the setuid /usr/bin/su of the host"
    );
    let run = sandbox(&["--", "/bin/sh", "-c", "ls -l /usr/bin/su; grep -E ' /usr ' /proc/self/mountinfo; /usr/bin/su -c id root </dev/null; echo su=$?; id -u"]);
    assert!(
        run.stdout.contains("nosuid"),
        "/usr is mounted nosuid: {}",
        run.stdout
    );
    assert!(
        !run.stdout.lines().any(|l| l.trim() == "0"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("su=1") || run.stdout.contains("su=126"),
        "{}\n{}",
        run.stdout,
        run.stderr
    );
}

#[test]
fn bad_input_gives_clear_errors() {
    let run = sandbox(&["--policy", "nosuch", "--", "/bin/true"]);
    assert_eq!(run.code, 125);
    assert!(
        run.stderr.contains("policy \"nosuch\" not found"),
        "{}",
        run.stderr
    );

    let d = tempfile::tempdir().unwrap();
    let bad = d.path().join("bad.toml");
    std::fs::write(&bad, "extends = \"default\"\n[limits\nmemory = 1\n").unwrap();
    let run = sandbox(&["--policy", bad.to_str().unwrap(), "--", "/bin/true"]);
    assert_eq!(run.code, 125);
    assert!(
        run.stderr.contains(&format!("{}:2:", bad.display())),
        "{}",
        run.stderr
    );

    let unk = d.path().join("unknown.toml");
    std::fs::write(&unk, "extends = \"default\"\n[limits]\nmemroy = \"1G\"\n").unwrap();
    let run = sandbox(&["--policy", unk.to_str().unwrap(), "--", "/bin/true"]);
    assert_eq!(run.code, 125);
    assert!(
        run.stderr.contains("unknown.toml:3:") && run.stderr.contains("memroy"),
        "{}",
        run.stderr
    );

    let run = sandbox(&["--allow-read", "/no/such/path", "--", "/bin/true"]);
    assert_eq!(run.code, 125);
    assert!(
        run.stderr.contains("--allow-read /no/such/path"),
        "{}",
        run.stderr
    );

    let run = sandbox(&["--memory", "12X", "--", "/bin/true"]);
    assert_eq!(run.code, 2, "clap usage errors exit 2");
    assert!(
        run.stderr.contains("--memory") && run.stderr.contains("not a size"),
        "{}",
        run.stderr
    );

    let run = sandbox(&["--nproc", "many", "--", "/bin/true"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("--nproc"), "{}", run.stderr);

    let run = sandbox(&["--", "no-such-command-xyz"]);
    assert_eq!(run.code, 127);
    assert!(run.stderr.contains("command not found"), "{}", run.stderr);

    let plain = d.path().join("plain");
    std::fs::write(&plain, "data").unwrap();
    let run = sandbox(&["--", plain.to_str().unwrap()]);
    assert_eq!(run.code, 126, "{}", run.stderr);

    let run = sandbox(&["--allow-read", "/", "--", "/bin/true"]);
    assert_eq!(run.code, 125);
    assert!(
        run.stderr.contains("refusing to show the whole host"),
        "{}",
        run.stderr
    );

    let run = sandbox(&["--"]);
    assert_eq!(run.code, 125);
    assert!(run.stderr.contains("no command given"), "{}", run.stderr);
}

#[test]
fn exit_codes_and_signals() {
    let run = sandbox(&["--", "/bin/sh", "-c", "exit 7"]);
    assert_eq!(run.code, 7);
    assert_eq!(run.report["status"], "exited");
    assert_eq!(run.report["exit_code"], 7);
    let run = sandbox(&["--", "/bin/sh", "-c", "kill -TERM $$"]);
    assert_eq!(run.code, 128 + 15);
    assert_eq!(run.report["signal"], 15);
    assert_eq!(run.report["status"], "signaled");
}

#[test]
fn unprivileged_user_can_run_the_sandbox() {
    let exists = std::process::Command::new("id")
        .arg("ce-test")
        .output()
        .unwrap()
        .status
        .success();
    if !exists {
        let st = std::process::Command::new("useradd")
            .args(["--system", "--no-create-home", "ce-test"])
            .status()
            .unwrap();
        assert!(
            st.success(),
            "useradd ce-test failed (the test runs as root in CI)"
        );
    }
    let out = std::process::Command::new("setpriv")
        .args([
            "--reuid",
            "ce-test",
            "--regid",
            "ce-test",
            "--clear-groups",
            "--reset-env",
            SANDBOX_RUN,
            "--report",
            "-",
            "--",
            "/usr/bin/node",
            "-e",
            "console.log('uid', process.getuid())",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("uid 1000"), "{stdout}");
    assert!(
        stdout.contains("\"mechanism\": \"rlimit-data\""),
        "an unprivileged user has no cgroup; the report says so: {stdout}"
    );
}

#[test]
fn explain_lists_every_layer() {
    let run = sandbox(&["--explain", "--", "python3", "-c", "pass"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    for word in [
        "namespaces",
        "capabilities",
        "no_new_privs",
        "rlimits",
        "memory",
        "landlock",
        "seccomp",
        "/tmp",
        "/workspace",
        "/proc",
    ] {
        assert!(
            run.stdout.contains(word),
            "--explain lacks {word}:\n{}",
            run.stdout
        );
    }
}

#[test]
fn doctor_passes_here() {
    let out = std::process::Command::new(SANDBOX_RUN)
        .arg("doctor")
        .env("PATH", test_path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("trial run") && text.contains("fully enforced"),
        "{text}"
    );
}

#[test]
fn killing_sandbox_run_kills_the_whole_run() {
    // The kernel clears the parent-death signal at a uid change; this failed before the init
    // re-armed it after its own.
    let marker = format!("{}.777", 400 + std::process::id() % 97);
    let mut child = std::process::Command::new(SANDBOX_RUN)
        .args([
            "--timeout",
            "60",
            "--",
            "/bin/sh",
            "-c",
            &format!("/bin/sleep {marker} & /bin/sleep {marker}"),
        ])
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while host_processes_of(65534)
        .iter()
        .filter(|p| p.contains(&marker))
        .count()
        < 2
    {
        assert!(Instant::now() < deadline, "the workload never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left: Vec<String> = host_processes_of(65534)
            .into_iter()
            .filter(|p| p.contains(&marker) || p.contains("sandbox-run --timeout 60"))
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "survivors after SIGKILL of sandbox-run: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn die_with_parent_ends_the_run_when_its_starter_dies() {
    let marker = format!("{}.4242", 300 + std::process::id() % 97);
    // sh starts sandbox-run in the background, then is killed: sandbox-run must follow.
    let script =
        format!("{SANDBOX_RUN} --die-with-parent --timeout 60 -- /bin/sleep {marker} & sleep 30");
    let mut sh = std::process::Command::new("/bin/sh")
        .args(["-c", &script])
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !host_processes_of(65534).iter().any(|p| p.contains(&marker)) {
        assert!(Instant::now() < deadline, "the workload never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    sh.kill().unwrap();
    sh.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left: Vec<String> = host_processes_of(65534)
            .into_iter()
            .chain(host_processes_of(0))
            .filter(|p| p.contains(&marker))
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "survivors after the starter died: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn cgroups_left_by_killed_runs_are_swept_by_the_next_run() {
    // A run whose sandbox-run was SIGKILLed cannot remove its cgroup; the next launch does,
    // and never touches the cgroup of a live helper.
    let parent = Path::new("/sys/fs/cgroup/memory/code-executor");
    assert!(
        parent.exists() || std::fs::create_dir(parent).is_ok(),
        "this test needs the v1 memory cgroup (root)"
    );
    let mut dead = std::process::Command::new("/bin/true").spawn().unwrap();
    let dead_pid = dead.id();
    dead.wait().unwrap();
    let stale = parent.join(format!("run-{dead_pid}-1"));
    let live = parent.join(format!("run-{}-1", std::process::id()));
    std::fs::create_dir(&stale).unwrap();
    std::fs::create_dir(&live).unwrap();
    let run = sandbox(&["--", "/bin/true"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let stale_left = stale.exists();
    let live_left = live.exists();
    let _ = std::fs::remove_dir(&live);
    let _ = std::fs::remove_dir(&stale);
    assert!(!stale_left, "the stale cgroup of a dead helper is removed");
    assert!(live_left, "the cgroup of a live helper is left alone");
}

#[test]
fn the_library_refuses_to_launch_from_a_threaded_process() {
    // Creating a user namespace and forking are only sound single-threaded; the test harness
    // is multi-threaded, so calling the library directly here must be refused, not attempted.
    let _keep = std::thread::spawn(|| std::thread::sleep(Duration::from_secs(2)));
    let policy = code_executor::Policy::builtin("default").expect("built-in policy");
    let sandbox = code_executor::Sandbox::new(policy);
    let report = sandbox.command("/bin/true").status().expect("a report");
    assert_eq!(report.sandbox_exit_code, 125, "{report:?}");
    let err = report.error.expect("a setup error");
    assert!(err.reason.contains("single-threaded"), "{err}");
}

/// SECURITY.md proves each promise by naming a test. A renamed or deleted test would leave the
/// promise standing with nothing behind it, so every name it gives (`module::test`, or a
/// `prefix_*` family) must be a test function, or a test made by the escape suite's macro
/// (`name => ...`), somewhere in the workspace.
#[test]
fn every_test_security_md_names_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("SECURITY.md")).expect("SECURITY.md");
    let mut sources = String::new();
    for dir in ["src", "crates", "tests"] {
        read_rust_files(&root.join(dir), &mut sources);
    }
    let defined = |name: &str| {
        let name = name.trim_end_matches('*');
        let family = doc.contains(&format!("{name}*"));
        sources.lines().map(str::trim_start).any(|l| {
            // `fn name(` after any qualifiers, or a macro-made test at the line's start.
            let rest = l.find("fn ").map_or(l, |i| &l[i + 3..]);
            rest.starts_with(name)
                && (family
                    || rest[name.len()..].starts_with('(')
                    || rest[name.len()..].starts_with(" =>"))
        })
    };
    let mut named = 0;
    let mut missing = Vec::new();
    for span in doc.split('`').skip(1).step_by(2) {
        let is_test_name = span.contains("::")
            && span
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_:*".contains(c));
        if !is_test_name {
            continue;
        }
        let last = span.rsplit("::").next().unwrap_or_default();
        if last.is_empty() || last == "*" {
            continue; // a whole module (`write_bound::*`)
        }
        named += 1;
        if !defined(last) {
            missing.push(span.to_string());
        }
    }
    assert!(named > 100, "only {named} test names found in SECURITY.md");
    assert!(
        missing.is_empty(),
        "SECURITY.md names tests that do not exist: {missing:?}"
    );
}

fn read_rust_files(dir: &Path, out: &mut String) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            read_rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push_str(&std::fs::read_to_string(&p).unwrap_or_default());
            out.push('\n');
        }
    }
}
