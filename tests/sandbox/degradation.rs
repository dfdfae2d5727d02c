//! Degradation, decided and visible: each missing kernel feature is really taken away from
//! `sandbox-run` (a seccomp filter of the test harness, or a user namespace whose limit is 0),
//! and the run is refused with one actionable message, or runs in the named weaker mode and
//! reports exactly what is missing.

use std::process::Command;

use crate::common::*;

const LANDLOCK_SYSCALLS: &str = "444,445,446";
const ENOSYS: &str = "38";

fn without_landlock(args: &[&str]) -> std::process::Output {
    let harness = repo().join("tests/support/deny_syscalls.py");
    Command::new("python3")
        .arg(harness)
        .args([LANDLOCK_SYSCALLS, ENOSYS, "--", SANDBOX_RUN])
        .args(args)
        .env("PATH", test_path())
        .output()
        .expect("run the harness")
}

#[test]
fn without_landlock_the_run_is_refused_with_the_fix() {
    let out = without_landlock(&["--", "/bin/true"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert!(
        err.contains("step `Landlock`") && err.contains("no Landlock"),
        "{err}"
    );
    assert!(
        err.contains("--allow-degraded no-landlock"),
        "the fix names the weaker mode: {err}"
    );
}

#[test]
fn without_landlock_the_named_weaker_mode_runs_and_reports_it() {
    let out = without_landlock(&[
        "--allow-degraded",
        "no-landlock",
        "--report",
        "-",
        "--",
        "/bin/echo",
        "ran",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(stdout.starts_with("ran\n"), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_str(&stdout["ran\n".len()..]).expect("report JSON");
    assert!(
        report["degraded"][0]
            .as_str()
            .unwrap()
            .starts_with("no-landlock"),
        "{report}"
    );
    assert!(
        report["layers"]["landlock"]
            .as_str()
            .unwrap()
            .starts_with("NOT ENFORCED"),
        "{report}"
    );
    assert!(
        err.contains("degraded: no-landlock"),
        "said on stderr too: {err}"
    );
}

#[test]
fn doctor_reports_missing_landlock_and_fails() {
    let out = without_landlock(&["doctor"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("FAIL") && l.contains("Landlock")),
        "{stdout}"
    );
    assert!(stdout.contains("cannot be enforced"), "{stdout}");
}

fn with_max_user_namespaces(limit: &str, args: &[&str]) -> std::process::Output {
    Command::new("python3")
        .arg(repo().join("tests/support/userns.py"))
        .args([limit, "--", SANDBOX_RUN])
        .args(args)
        .output()
        .expect("run the userns harness")
}

#[test]
fn without_user_namespaces_the_run_is_refused_with_the_fix() {
    // Baseline: the same harness with a non-zero limit runs fine, so the refusal below is the
    // missing feature and nothing else.
    let ok = with_max_user_namespaces("100", &["--", "/bin/true"]);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let out = with_max_user_namespaces("0", &["--", "/bin/true"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert!(
        err.contains("step `Namespaces`") && err.contains("max_user_namespaces"),
        "{err}"
    );
    let doctor = with_max_user_namespaces("0", &["doctor"]);
    let text = String::from_utf8_lossy(&doctor.stdout);
    assert_eq!(doctor.status.code(), Some(1), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("FAIL") && l.contains("user namespaces")),
        "{text}"
    );
}

#[test]
fn root_in_a_namespace_without_an_unprivileged_id_is_refused_clearly() {
    // `unshare --map-root-user` maps only uid 0: no unprivileged id to give the workload.
    let script = format!("exec {SANDBOX_RUN} -- /bin/true");
    let out = Command::new("unshare")
        .args(["--user", "--map-root-user", "sh", "-c", &script])
        .output()
        .expect("unshare");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert!(
        err.contains("does not map id 65534") && err.contains("must not run as root"),
        "{err}"
    );
}

// The rlimit fallback when no cgroup is writable is tested as a real unprivileged user in
// tests/sandbox.rs (unprivileged_user_can_run_the_sandbox): its report names `rlimit-data`.
