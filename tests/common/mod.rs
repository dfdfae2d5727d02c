//! Shared helpers of the integration tests: they start the real `sandbox-run` binary and run
//! real interpreters in the real sandbox. Nothing here mocks the kernel.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const SANDBOX_RUN: &str = env!("CARGO_BIN_EXE_sandbox-run");

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// PATH for the tests: the host's, plus the project's own .deps (where scripts/test.sh installs
/// deno from npm).
pub fn test_path() -> String {
    let deps = repo().join(".deps/node_modules/.bin");
    format!(
        "{}:{}",
        std::env::var("PATH").unwrap_or_default(),
        deps.display()
    )
}

fn which(cmd: &str) -> Option<PathBuf> {
    std::env::split_paths(&test_path())
        .map(|d| d.join(cmd))
        .find(|p| p.is_file())
}

/// Fails (never skips) when a runtime is missing, saying how to install it.
pub fn require(cmd: &str) {
    if which(cmd).is_none() {
        panic!(
            "{cmd} is not installed: run scripts/test.sh (it installs deno with `npm install --prefix .deps deno`), or put {cmd} on PATH"
        );
    }
}

/// The result of one sandboxed run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub report: serde_json::Value,
}

impl Run {
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
    /// The probe result named `name` (probes print one JSON object per line: {"name", ...}).
    pub fn probe(&self, name: &str) -> serde_json::Value {
        self.json_lines()
            .into_iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| {
                panic!(
                    "probe {name} missing; stdout:\n{}\nstderr:\n{}",
                    self.stdout, self.stderr
                )
            })
    }
}

/// Runs `sandbox-run FLAG=VALUE -- /bin/true` for each bad value: each must exit with `code`
/// and a message that names both the flag and the value it refused (`=` so that a value such as
/// `-1` is not taken for an option).
pub fn each_bad_value_is_named(flag: &str, bad_values: &[&str], code: i32) {
    for bad in bad_values {
        let arg = format!("{flag}={bad}");
        let run = sandbox(&[&arg, "--", "/bin/true"]);
        assert_eq!(run.code, code, "{arg:?}: {}", run.stderr);
        assert!(
            run.stderr.contains(flag) && run.stderr.contains(bad),
            "{arg:?}: the message names neither the flag nor the value: {}",
            run.stderr
        );
    }
}

/// Runs `sandbox-run ARGS` with a report file; `args` include `--` and the command.
pub fn sandbox(args: &[&str]) -> Run {
    sandbox_in(args, None)
}

pub fn sandbox_in(args: &[&str], cwd: Option<&Path>) -> Run {
    let dir = tempfile::tempdir().expect("tempdir");
    let report = dir.path().join("report.json");
    let mut c = Command::new(SANDBOX_RUN);
    c.arg("--report").arg(&report).args(args);
    c.env("PATH", test_path());
    if let Some(d) = cwd {
        c.current_dir(d);
    }
    let out: Output = c.stdin(Stdio::null()).output().expect("spawn sandbox-run");
    let report = std::fs::read_to_string(&report)
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or(serde_json::Value::Null);
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        report,
    }
}

/// Runs a probe file from tests/probes with the given interpreter, sharing the probe read-only.
pub fn probe(runtime: &str, file: &str, extra: &[&str]) -> Run {
    require(runtime);
    let path = repo().join("tests/probes").join(file);
    let p = path.to_str().expect("utf-8 path");
    let mut args: Vec<&str> = vec!["--allow-read", p];
    args.extend_from_slice(extra);
    args.push("--");
    let run_args: Vec<&str> = match runtime {
        "deno" => vec!["deno", "run", "--allow-all", p],
        "node" => vec!["node", p],
        _ => vec![runtime, p],
    };
    args.extend(run_args);
    sandbox(&args)
}

/// Host processes owned by `uid` (from /proc), to prove nothing of a run survives.
pub fn host_processes_of(uid: u32) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|s| s.chars().all(|c| c.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(status) = std::fs::read_to_string(e.path().join("status")) else {
            continue;
        };
        let owner = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|r| r.split_whitespace().next())
            .and_then(|u| u.parse::<u32>().ok());
        if owner == Some(uid) {
            let cmd = std::fs::read_to_string(e.path().join("cmdline")).unwrap_or_default();
            out.push(format!("{pid}: {}", cmd.replace('\0', " ")));
        }
    }
    out
}
