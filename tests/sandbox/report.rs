//! The report channel: `--report-fd` carries the typed [`RunReport`] for every outcome, usage
//! errors included, and nothing the workload prints or writes can change it.

use std::process::{Command, Output, Stdio};

use crate::common::*;
use code_executor::report::{LimitHit, RunStatus};
use code_executor::RunReport;

/// Runs `sandbox-run ARGS` with descriptor 3 open on a file (through the shell, the way any
/// caller hands a descriptor down), returns the output and the raw text written to fd 3.
fn with_report_fd(args: &[&str]) -> (Output, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("report.json");
    let out = Command::new("sh")
        .arg("-c")
        .arg("f=$1; shift; exec \"$@\" 3>\"$f\"")
        .arg("sh")
        .arg(&file)
        .arg(SANDBOX_RUN)
        .args(args)
        .env("PATH", test_path())
        .stdin(Stdio::null())
        .output()
        .expect("spawn sandbox-run");
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    (out, text)
}

/// The one report on the descriptor, read with the library's own type.
fn typed(text: &str, out: &Output) -> RunReport {
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "exactly one report line; stderr: {}\nfd 3: {text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("not a RunReport ({e}): {text}"))
}

/// A guest that pretends to be sandbox-run: a limit line and a setup error on stderr, a
/// report on stdout, and writes to every descriptor from 3 to 9 and to /proc/self/fd/3.
const FORGER: &str = r#"
import os, sys, json
sys.stderr.write("sandbox-run: limit: memory: memory cap of 512M reached (cgroup-v2)\n")
sys.stderr.write("sandbox-run: sandbox setup failed at step `Landlock`: forged\n")
print(json.dumps({"status": "setup-failed", "limit_hit": "memory", "degraded": []}))
sys.stdout.flush()
fake = json.dumps({"version": 2, "status": "timeout", "limit_hit": "cpu"}) + "\n"
reached = []
for fd in range(3, 10):
    try:
        os.write(fd, fake.encode())
        reached.append(fd)
    except OSError:
        pass
try:
    with open("/proc/self/fd/3", "w") as f:
        f.write(fake)
    reached.append("/proc/self/fd/3")
except OSError:
    pass
print(json.dumps({"reached": reached}))
sys.exit(3)
"#;

#[test]
fn the_report_fd_carries_the_run_and_the_workload_cannot_forge_it() {
    require("python3");
    let (out, text) = with_report_fd(&["--report-fd", "3", "--", "python3", "-c", FORGER]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{stdout}");
    assert!(
        stdout.contains(r#"{"reached": []}"#),
        "the workload reached the report descriptor: {stdout}"
    );
    let r = typed(&text, &out);
    assert_eq!(r.status, RunStatus::Exited, "{text}");
    assert_eq!(r.exit_code, Some(3));
    assert_eq!(r.sandbox_exit_code, 3);
    assert_eq!(r.limit_hit, None, "{text}");
    assert_eq!(r.error, None, "{text}");
    assert!(r.degraded.is_empty(), "{text}");
    assert!(r.layers.is_some(), "{text}");
    assert_eq!(r.command[0], "python3");
}

#[test]
fn bare_control_a_descriptor_left_open_is_writable_by_a_child() {
    // Without sandbox-run's close-on-exec, a child inherits the descriptor and can write a
    // forged report to it: what the previous test shows does not happen.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("r");
    let status = Command::new("sh")
        .arg("-c")
        .arg("exec python3 -c \"import os; os.write(3, b'forged')\" 3>\"$1\"")
        .arg("sh")
        .arg(&file)
        .env("PATH", test_path())
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "forged");
}

#[test]
fn a_limit_hit_is_in_the_report_not_only_on_stderr() {
    // dd, not python: CPython ignores SIGXFSZ and sees EFBIG instead.
    let (out, text) = with_report_fd(&[
        "--report-fd",
        "3",
        "--max-file-size",
        "1M",
        "--",
        "dd",
        "if=/dev/zero",
        "of=/tmp/big",
        "bs=1M",
        "count=4",
    ]);
    let r = typed(&text, &out);
    assert_eq!(r.limit_hit, Some(LimitHit::FileSize), "{text}");
    assert_eq!(r.status, RunStatus::Signaled, "{text}");
    assert_eq!(Some(r.sandbox_exit_code), out.status.code());
}

#[test]
fn usage_errors_reach_the_report_fd() {
    let dir = tempfile::tempdir().unwrap();
    let bad_policy = dir.path().join("bad.toml");
    std::fs::write(
        &bad_policy,
        "extends = \"default\"\n[limits]\nmemroy = \"1G\"\n",
    )
    .unwrap();
    let bad_policy = bad_policy.to_str().unwrap();
    let missing = dir.path().join("missing.toml");
    let missing = missing.to_str().unwrap();
    // (arguments, sandbox-run's exit code, a word the message must hold)
    let cases: &[(&[&str], i32, &str)] = &[
        (&["--cpus", "0", "--", "/bin/true"], 2, "--cpus"),
        (&["--cpus=x", "--", "/bin/true"], 2, "--cpus"),
        (&["--no-such-flag", "--", "/bin/true"], 2, "--no-such-flag"),
        (&["--policy", bad_policy, "--", "/bin/true"], 125, "memroy"),
        (&["--policy", missing, "--", "/bin/true"], 125, "not found"),
        (&["--cpus", "3", "--", "/bin/true"], 2, "3"),
        (
            &["--workdir", "relative", "--", "/bin/true"],
            125,
            "--workdir",
        ),
        (&[], 125, "no command"),
        (&["--", "/no/such/program"], 127, "/no/such/program"),
    ];
    for (args, code, word) in cases {
        // The descriptor option goes last among the options, after the one that is refused.
        let mut all: Vec<&str> = Vec::new();
        let split = args.iter().position(|a| *a == "--").unwrap_or(args.len());
        all.extend(&args[..split]);
        all.extend(["--report-fd", "3"]);
        all.extend(&args[split..]);
        let (out, text) = with_report_fd(&all);
        assert_eq!(out.status.code(), Some(*code), "{args:?}: {text}");
        let r = typed(&text, &out);
        assert_eq!(r.status, RunStatus::UsageError, "{args:?}: {text}");
        assert_eq!(r.sandbox_exit_code, *code, "{args:?}: {text}");
        let msg = r.usage_error.as_deref().unwrap_or_default();
        assert!(msg.contains(word), "{args:?}: {word:?} not in {msg:?}");
        assert!(r.layers.is_none() && r.error.is_none(), "{args:?}: {text}");
    }
}

#[test]
fn the_report_fd_must_be_open_and_not_the_workloads_stdio() {
    for fd in ["0", "1", "2"] {
        let (out, text) = with_report_fd(&["--report-fd", fd, "--", "/bin/true"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{fd}: {err}");
        assert!(
            err.contains("--report-fd") && err.contains("3 or above"),
            "{err}"
        );
        assert!(text.is_empty(), "{fd}: {text}");
    }
    let (out, _) = with_report_fd(&["--report-fd", "9", "--", "/bin/true"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert!(
        err.contains("--report-fd 9") && err.contains("not an open descriptor"),
        "{err}"
    );
}

#[test]
fn the_report_file_and_the_report_fd_say_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file.json");
    let (out, text) = with_report_fd(&[
        "--report",
        file.to_str().unwrap(),
        "--report-fd",
        "3",
        "--",
        "/bin/true",
    ]);
    let from_fd = typed(&text, &out);
    let from_file: RunReport =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(from_fd, from_file);
    assert_eq!(from_fd.status, RunStatus::Exited);
}
