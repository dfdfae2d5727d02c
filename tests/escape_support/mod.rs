//! Shared harness of the escape suite: finds sandbox-run, the runtimes and the probes, runs a
//! probe group in the sandbox and bare, and parses its JSON lines.
#![allow(dead_code)]

#[allow(unsafe_code)]
pub mod ffi;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

pub fn sandbox_run() -> &'static str {
    env!("CARGO_BIN_EXE_sandbox-run")
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn probes() -> PathBuf {
    repo().join("tests/escape/probes")
}

pub fn probe(name: &str) -> String {
    probes().join(name).display().to_string()
}

/// Finds a runtime on PATH, then in `<repo>/.deps/node_modules/.bin` (where CI installs deno).
/// Fails (never skips) with an install hint when absent.
pub fn runtime(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    dirs.push(repo().join(".deps/node_modules/.bin"));
    for d in dirs {
        let p = d.join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "{name} not found on PATH nor in {}: install it (deno: `npm install --prefix .deps deno`; node 20+ and python3 from your distribution)",
        repo().join(".deps/node_modules/.bin").display()
    );
}

/// PATH for sandbox-run with the three runtimes' directories first.
pub fn path_env() -> String {
    let mut dirs: Vec<String> = ["deno", "node", "python3"]
        .iter()
        .map(|r| runtime(r).parent().unwrap().display().to_string())
        .collect();
    dirs.push(std::env::var("PATH").unwrap_or_default());
    dirs.join(":")
}

/// A `sandbox-run` command with the probes directory shared read-only.
pub fn sandbox_cmd(opts: &[&str], guest: &[&str]) -> Command {
    let mut c = Command::new(sandbox_run());
    c.env("PATH", path_env())
        .arg("--allow-read")
        .arg(probes())
        .args(opts)
        .arg("--")
        .args(guest)
        .current_dir("/")
        .stdin(Stdio::null());
    c
}

/// One probe's results: attempt name -> the JSON object it printed.
pub type Results = HashMap<String, Value>;

pub fn parse(out: &[u8]) -> Results {
    String::from_utf8_lossy(out)
        .lines()
        // From the first `{`: on a pty, bare TIOCSTI echoes its injected byte before the JSON.
        .filter_map(|l| serde_json::from_str::<Value>(&l[l.find('{')?..]).ok())
        .filter_map(|v| Some((v.get("a")?.as_str()?.to_string(), v)))
        .collect()
}

pub fn show(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The errno name an attempt failed with, or None when it succeeded. Panics when missing.
pub fn errno(r: &Results, a: &str) -> Option<String> {
    let v = r
        .get(a)
        .unwrap_or_else(|| panic!("attempt {a}: no result line from the probe"));
    v.get("errno").and_then(|e| e.as_str()).map(str::to_string)
}

pub fn ret<'a>(r: &'a Results, a: &str) -> &'a Value {
    let v = r
        .get(a)
        .unwrap_or_else(|| panic!("attempt {a}: no result line from the probe"));
    v.get("ret").unwrap_or(&Value::Null)
}

/// Asserts an attempt failed with exactly `want`.
pub fn assert_errno(r: &Results, a: &str, want: &str, why: &str) {
    let got = r.get(a).cloned();
    assert_eq!(
        errno(r, a).as_deref(),
        Some(want),
        "ESCAPE attempt `{a}` must fail with {want} ({why}); probe said {got:?}"
    );
}

/// Asserts a bare attempt did NOT fail with `not` (it reached the kernel's implementation).
pub fn assert_bare_reaches(r: &Results, a: &str, not: &str) {
    let got = r.get(a).cloned();
    assert_ne!(
        errno(r, a).as_deref(),
        Some(not),
        "baseline: bare on the host, `{a}` should get past {not} (else the sandboxed check is vacuous); probe said {got:?}"
    );
}

/// Host processes whose comm is `marker`.
pub fn procs_named(marker: &str) -> Vec<i32> {
    let mut v = vec![];
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            if let Ok(c) = std::fs::read_to_string(e.path().join("comm")) {
                if c.trim_end() == marker {
                    v.push(pid);
                }
            }
        }
    }
    v
}

/// The run report written by `--report FILE`.
pub fn report(p: &Path) -> Value {
    let s = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("report {}: {e}", p.display()));
    serde_json::from_str(&s).unwrap_or_else(|e| panic!("report {}: {e}: {s}", p.display()))
}

pub fn unique(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    // comm is at most 15 bytes
    let s = format!(
        "e{}{}{}",
        tag,
        std::process::id() % 10000,
        N.fetch_add(1, Ordering::SeqCst)
    );
    s.chars().take(15).collect()
}
