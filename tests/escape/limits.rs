//! Resource abuse: fork/thread/memory/tmpfs/file-size/fd bombs and CPU spins, with small limits
//! and short timeouts so the suite stays fast.

use std::process::{Command, Output};

use crate::support::*;

struct Run {
    out: Output,
    res: Results,
    report: serde_json::Value,
}

fn run(opts: &[&str], guest: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let rep = dir.path().join("report.json");
    let mut o: Vec<&str> = vec!["--report", rep.to_str().unwrap()];
    o.extend_from_slice(opts);
    let out = sandbox_cmd(&o, guest).output().expect("spawn sandbox-run");
    let res = parse(&out.stdout);
    let report = report(&rep);
    Run { out, res, report }
}

fn py(opts: &[&str], group: &str) -> Run {
    run(opts, &["python3", &probe("escape.py"), "sandbox", group])
}

fn bare_py(group: &str) -> Results {
    let out = Command::new(runtime("python3"))
        .args([&probe("escape.py"), "bare", group])
        .output()
        .unwrap();
    assert!(out.status.success(), "bare {group}: {}", show(&out));
    parse(&out.stdout)
}

fn killed_by_memory(r: &Run, what: &str) {
    assert_eq!(
        r.report["limit_hit"],
        "memory",
        "{what}: the memory cap must end the run: {}\n{}",
        r.report,
        show(&r.out)
    );
    assert_eq!(r.report["status"], "signaled", "{what}: {}", r.report);
    let code = r.out.status.code().unwrap();
    assert!(
        code == 137 || code == 134,
        "{what}: exit {code}: SIGKILL (OOM) or SIGABRT (V8 heap limit)"
    );
}

#[test]
fn fork_bomb_stopped_at_nproc() {
    let r = py(&[], "fork");
    assert!(r.out.status.success(), "{}", show(&r.out));
    let n = ret(&r.res, "bomb:fork").as_u64().unwrap();
    assert_eq!(
        errno(&r.res, "bomb:fork").as_deref(),
        Some("EAGAIN"),
        "fork must fail with EAGAIN"
    );
    assert!(n < 25, "{n} forks succeeded with nproc 25");
    assert_eq!(
        ret(&bare_py("fork"), "bomb:fork"),
        200,
        "baseline: bare, 200 forks succeed"
    );
}

#[test]
fn thread_bomb_stopped_at_nproc() {
    let r = py(&[], "thread");
    let n = ret(&r.res, "bomb:thread").as_u64().unwrap();
    assert_eq!(
        errno(&r.res, "bomb:thread").as_deref(),
        Some("can't start new thread")
    );
    assert!(n < 25, "{n} threads with nproc 25");
    assert_eq!(
        ret(&bare_py("thread"), "bomb:thread"),
        200,
        "baseline: bare, 200 threads start"
    );
}

#[test]
fn memory_bomb_python_bytearray() {
    killed_by_memory(&py(&["--memory", "96M"], "mem"), "python bytearray");
}

#[test]
fn memory_bomb_node_arrays() {
    killed_by_memory(
        &run(
            &["--memory", "128M"],
            &["node", &probe("bomb.js"), "arrays"],
        ),
        "node JS arrays",
    );
}

#[test]
fn memory_bomb_node_buffers() {
    killed_by_memory(
        &run(
            &["--memory", "128M"],
            &["node", &probe("bomb.js"), "buffers"],
        ),
        "node Buffers",
    );
}

#[test]
fn memory_bomb_deno_wasm_memory() {
    runtime("deno");
    killed_by_memory(
        &run(
            &["--memory", "128M"],
            &["deno", "run", "-A", &probe("bomb.js"), "wasm"],
        ),
        "deno WebAssembly.Memory",
    );
}

#[test]
fn tmpfs_fill_gets_enospc() {
    let r = py(&["--tmp-size", "8M"], "tmpfill");
    assert!(r.out.status.success(), "{}", show(&r.out));
    assert_eq!(
        errno(&r.res, "bomb:tmpfill").as_deref(),
        Some("ENOSPC"),
        "{:?}",
        r.res
    );
    let mib = r.res["bomb:tmpfill"]["mib"].as_u64().unwrap();
    assert!((6..=8).contains(&mib), "wrote {mib} MiB into an 8M /tmp");
    // Baseline (bare would fill the host's /tmp): the default 100M /tmp takes more than 8 MiB.
    // The same probe with a 16M tmpfs writes past 8 MiB, so the 8M cap is what stopped it.
    let b = py(&["--tmp-size", "16M"], "tmpfill");
    assert!(
        b.res["bomb:tmpfill"]["mib"].as_u64().unwrap() > 8,
        "baseline: {:?}",
        b.res
    );
}

#[test]
fn file_size_bomb_gets_efbig() {
    let r = py(&["--max-file-size", "1M"], "fsize");
    assert!(r.out.status.success(), "{}", show(&r.out));
    assert_eq!(
        errno(&r.res, "bomb:fsize").as_deref(),
        Some("EFBIG"),
        "python ignores SIGXFSZ, so write fails: {:?}",
        r.res
    );
    assert_eq!(r.res["bomb:fsize"]["size"], 1 << 20);
    let b = py(&[], "fsize");
    assert_eq!(
        ret(&b.res, "bomb:fsize"),
        3 << 20,
        "baseline: with the default 100M, 3 MiB are written"
    );
}

#[test]
fn fd_exhaustion_gets_emfile() {
    let r = py(&[], "fds");
    assert_eq!(errno(&r.res, "bomb:fds").as_deref(), Some("EMFILE"));
    let n = r.res["bomb:fds"]["n"].as_u64().unwrap();
    assert!(n <= 1024, "{n} fds opened with nofile 1024");
    let b = bare_py("fds");
    assert!(
        b["bomb:fds"]["n"].as_u64().unwrap() > 1024,
        "baseline: bare opens more than 1024: {:?}",
        b["bomb:fds"]
    );
}

#[test]
fn cpu_spin_killed_by_cpu_time() {
    let r = py(&["--cpu-time", "1", "--timeout", "20"], "spin");
    assert_eq!(
        r.report["limit_hit"],
        "cpu",
        "{}\n{}",
        r.report,
        show(&r.out)
    );
    assert_eq!(
        r.out.status.code(),
        Some(128 + 24),
        "SIGXCPU: {}",
        show(&r.out)
    );
    assert!(r.report["wall_time_ms"].as_f64().unwrap() < 10_000.0);
}

#[test]
fn cpu_spin_killed_by_timeout() {
    let r = run(&["--timeout", "1"], &["node", &probe("bomb.js"), "spin"]);
    assert_eq!(r.out.status.code(), Some(124), "{}", show(&r.out));
    assert_eq!(r.report["status"], "timeout");
    assert_eq!(r.report["limit_hit"], "timeout");
    assert_eq!(ret(&r.res, "spin"), "spinning", "the spin started");
}
