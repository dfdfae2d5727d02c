//! The CPU share (`--cpus`, `limits.cpus`): a run that wants every CPU it is pinned to gets
//! only its share, through the real cgroup CPU controller, measured by the report's CPU and
//! wall times. Bad values are refused with the option and the value named.

use std::sync::Mutex;

use crate::common::*;

/// The two busy runs take turns: run together, each would only measure the other.
static BUSY: Mutex<()> = Mutex::new(());

/// Busy workers for about two seconds of wall time: processes, not threads, because Python's
/// threads share one lock and could not use two CPUs. Four of them, so that even on a loaded
/// machine the run wants far more than half a CPU in every period.
const SPIN: &str = r#"
import os, time
end = time.monotonic() + 2.0
kids = []
for _ in range(3):
    pid = os.fork()
    if pid == 0:
        kids = None
        break
    kids.append(pid)
while time.monotonic() < end:
    pass
if kids is None:
    os._exit(0)
for pid in kids:
    os.waitpid(pid, 0)
print("spun")
"#;

fn spin(extra: &[&str]) -> Run {
    require("python3");
    let _turn = BUSY.lock().unwrap_or_else(|e| e.into_inner());
    let mut args = extra.to_vec();
    args.extend(["--", "python3", "-c", SPIN]);
    let run = sandbox(&args);
    assert_eq!(
        run.code, 0,
        "stdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    assert_eq!(run.stdout.trim(), "spun", "{}", run.stderr);
    run
}

/// CPU time over wall time: 2.0 means both pinned CPUs were busy the whole run.
fn ratio(report: &serde_json::Value) -> f64 {
    let cpu = report["cpu_time_ms"].as_f64().expect("cpu_time_ms");
    let wall = report["wall_time_ms"].as_f64().expect("wall_time_ms");
    cpu / wall
}

#[test]
fn half_a_cpu_holds_a_busy_run_to_half_a_cpu() {
    let run = spin(&["--cpus", "0.5"]);
    let r = &run.report;
    let cpu = &r["layers"]["cpu"];
    if cpu["enforced"] != true {
        // Only a machine without a writable CPU controller gets here: the run must then say
        // so, in the layer and as a degraded line, and the share cannot be measured.
        assert_eq!(cpu["mechanism"], "none", "{r}");
        assert!(
            r["degraded"]
                .as_array()
                .unwrap()
                .iter()
                .any(|d| d.as_str().unwrap().starts_with("cpu-share:")),
            "{r}"
        );
        eprintln!(
            "SKIPPED (no CPU controller on this machine): {}",
            cpu["detail"]
        );
        return;
    }
    assert_eq!(cpu["requested"], 0.5, "{r}");
    assert_eq!(cpu["quota_us"], 50_000, "{r}");
    assert_eq!(cpu["period_us"], 100_000, "{r}");
    assert!(
        cpu["mechanism"] == "cgroup-v1" || cpu["mechanism"] == "cgroup-v2",
        "{r}"
    );
    assert_eq!(r["degraded"], serde_json::json!([]), "{r}");
    let got = ratio(r);
    eprintln!("--cpus 0.5: cpu/wall = {got:.3} ({r})");
    assert!(
        got <= 0.65,
        "a run limited to 0.5 CPUs used {got:.3} CPUs on average: {r}"
    );
    // How often the kernel held the run back: shown, not asserted, because on a machine
    // busy enough to give the run less than half a CPU the quota never has to act.
    eprintln!("throttling: {}", r["cpu_throttling"]);
    assert!(
        r["cpu_throttling"]["periods"]
            .as_u64()
            .is_some_and(|p| p > 0),
        "the CPU controller counted no period: {r}"
    );
}

#[test]
fn bare_control_without_a_share_is_not_held_back() {
    let run = spin(&[]);
    let r = &run.report;
    let cpu = &r["layers"]["cpu"];
    assert_eq!(cpu["requested"], serde_json::Value::Null, "{r}");
    assert_eq!(cpu["enforced"], false, "{r}");
    assert_eq!(r["cpu_throttling"], serde_json::Value::Null, "{r}");
    assert_eq!(
        r["degraded"],
        serde_json::json!([]),
        "no share asked, nothing degraded: {r}"
    );
    // Not asserted: how much of the machine the bare run got depends on the other load (the
    // workload is its own session, so autogroup scheduling shares the CPUs between sessions).
    // On an idle 2-CPU machine it is close to 2.0.
    eprintln!("without --cpus: cpu/wall = {:.3}", ratio(r));
}

#[test]
fn bad_cpus_values_name_the_option_and_the_value() {
    each_bad_value_is_named("--cpus", &["0", "-1", "x", "3", "0.001", "nan"], 2);
}

#[test]
fn bad_limits_cpus_in_a_policy_names_the_field_and_the_value() {
    let dir = tempfile::tempdir().unwrap();
    for (bad, shown) in [("0.0", "0"), ("-1.0", "-1"), ("3.0", "3"), ("\"x\"", "x")] {
        let file = dir.path().join("p.toml");
        std::fs::write(
            &file,
            format!("extends = \"default\"\n[limits]\ncpus = {bad}\n"),
        )
        .unwrap();
        let run = sandbox(&["--policy", file.to_str().unwrap(), "--", "/bin/true"]);
        assert_eq!(run.code, 125, "{bad}: {}", run.stderr);
        assert!(
            run.stderr.contains("cpus") && run.stderr.contains(shown),
            "{bad}: {}",
            run.stderr
        );
        assert_eq!(run.report["status"], "usage-error", "{bad}: {}", run.report);
    }
}

#[test]
fn a_policy_share_applies_and_the_option_overrides_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.toml");
    std::fs::write(&file, "extends = \"default\"\n[limits]\ncpus = 1\n").unwrap();
    let p = file.to_str().unwrap();
    let run = sandbox(&["--policy", p, "--", "/bin/true"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.report["layers"]["cpu"]["requested"], 1.0,
        "{}",
        run.report
    );
    let run = sandbox(&["--policy", p, "--cpus", "0.25", "--", "/bin/true"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.report["layers"]["cpu"]["requested"], 0.25,
        "{}",
        run.report
    );
    if run.report["layers"]["cpu"]["enforced"] == true {
        assert_eq!(run.report["layers"]["cpu"]["quota_us"], 25_000);
    }
}
