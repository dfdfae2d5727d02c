//! Prewarmed sandboxes, through the real server and the real sandbox: runs take a sandbox that
//! was launched ahead of time, each is used exactly once, only runs whose launch would be the
//! same may take one, the run's own timeout still holds, and nothing is left behind.

use std::time::Duration;

use crate::mcp_support::*;
use serde_json::json;

fn warm_env(n: &str) -> ServerEnv {
    ServerEnv::new().set("CODE_EXECUTOR_PREWARM", n)
}

async fn ready(c: &Client, runtime: &str) -> u64 {
    let h = c.call("health", json!({})).await;
    sc(&h)["prewarm"]["ready"][runtime].as_u64().unwrap_or(0)
}

async fn wait_ready(c: &Client, runtimes: &[&str]) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    for r in runtimes {
        while ready(c, r).await == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "no warm {r} sandbox after 30 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_take_warm_sandboxes_once_each() {
    let env = warm_env("1");
    let c = env.start().await;
    wait_ready(&c, &["python", "deno", "node"]).await;
    let h = c.call("health", json!({})).await;
    assert_eq!(sc(&h)["prewarm"]["perRuntime"], 1, "{h:?}");

    // Python: the first run leaves a file in /tmp and /workspace; the next run, also warm, is
    // another sandbox and sees neither.
    let code = "import os\nprint(os.path.exists('/tmp/left'), os.path.exists('/workspace/left'))\nopen('/tmp/left','w').write('x')\nopen('/workspace/left','w').write('x')";
    let first = c.call("executePython", json!({"code": code})).await;
    assert_eq!(output(&first), "False False\n", "{first:?}");
    assert_eq!(sc(&first)["prewarmed"], true, "{first:?}");
    wait_ready(&c, &["python"]).await;
    let second = c.call("executePython", json!({"code": code})).await;
    assert_eq!(
        output(&second),
        "False False\n",
        "a warm sandbox is never reused: {second:?}"
    );
    assert_eq!(sc(&second)["prewarmed"], true);

    // deno and node, top-level await included.
    for (runtime, args) in [
        (
            "deno",
            json!({"code": "await Promise.resolve(); console.log(1)"}),
        ),
        (
            "node",
            json!({"code": "await Promise.resolve(); console.log(1)", "runtime": "node"}),
        ),
    ] {
        let r = c.call("executeTypescript", args).await;
        assert_eq!(output(&r), "1\n", "{runtime}: {r:?}");
        assert_eq!(sc(&r)["prewarmed"], true, "{runtime}: {r:?}");
        assert_eq!(sc(&r)["runtime"], runtime);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_runs_with_the_same_launch_take_a_warm_sandbox() {
    let env = warm_env("1");
    let granted = env.path().join("granted");
    std::fs::create_dir_all(&granted).unwrap();
    set_mode(&granted, 0o755);
    std::fs::write(granted.join("f.txt"), "data").unwrap();
    let root = env.path().display().to_string();
    let env = env.set("ALLOWED_PROJECTS", root);
    let c = env.start().await;
    wait_ready(&c, &["python"]).await;
    // A run granted a host path launches differently: it gets a fresh sandbox.
    let code = format!("print(open('{}/f.txt').read())", granted.display());
    let r = c
        .call(
            "executePython",
            json!({"code": code, "permissions": {"read": [granted]}}),
        )
        .await;
    assert_eq!(output(&r), "data\n", "{r:?}");
    assert!(sc(&r).get("prewarmed").is_none(), "{r:?}");
    assert_eq!(
        ready(&c, "python").await,
        1,
        "the warm sandbox is still there"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_run_keeps_its_own_timeout_and_allowlist() {
    let env = warm_env("1");
    let c = env.start().await;
    wait_ready(&c, &["python"]).await;
    let r = c
        .call(
            "executePython",
            json!({"code": "while True: pass", "timeoutMs": 1000}),
        )
        .await;
    assert_eq!(sc(&r)["prewarmed"], true, "{r:?}");
    assert_eq!(sc(&r)["success"], false);
    assert_eq!(error(&r), "Execution timeout after 1.00s", "{r:?}");
    assert!(text(&r).contains("Status: TIMEOUT"), "{}", text(&r));
    // The allowlist is the taking run's, set when it takes the sandbox.
    wait_ready(&c, &["python"]).await;
    let code = "try:\n    await call_mcp_tool('mcp__nosrv__x', {})\nexcept Exception as e:\n    print(type(e).__name__, getattr(e, 'kind', ''))";
    let r = c
        .call(
            "executePython",
            json!({"code": code, "allowedTools": ["mcp__other__*"]}),
        )
        .await;
    assert_eq!(sc(&r)["prewarmed"], true, "{r:?}");
    assert_eq!(output(&r), "MCPToolError denied\n", "{r:?}");
    wait_ready(&c, &["python"]).await;
    let r = c
        .call(
            "executePython",
            json!({"code": code, "allowedTools": ["mcp__nosrv__*"]}),
        )
        .await;
    assert_eq!(sc(&r)["prewarmed"], true, "{r:?}");
    assert!(
        output(&r).starts_with("MCPToolError ") && !output(&r).contains("denied"),
        "allowed now, so it fails further on: {r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prewarm_off_and_shutdown_leave_nothing() {
    let c = warm_env("0").start().await;
    let r = c.call("executePython", json!({"code": "print(1)"})).await;
    assert_eq!(output(&r), "1\n");
    assert!(sc(&r).get("prewarmed").is_none());
    assert_eq!(ready(&c, "python").await, 0);
    drop(c);

    // With warm sandboxes waiting, closing the server's stdin ends them all and removes its
    // directories.
    let env = warm_env("2");
    let c = env.start().await;
    wait_ready(&c, &["python", "deno", "node"]).await;
    let server = c.pid;
    let launchers = c.launcher_children();
    assert!(
        launchers.len() >= 3,
        "warm launchers are the server's children: {launchers:?}"
    );
    c.service.cancel().await.expect("close the client");
    let gone = eventually(Duration::from_secs(10), || {
        !std::path::Path::new(&format!("/proc/{server}")).exists()
            && launchers
                .iter()
                .all(|p| !std::path::Path::new(&format!("/proc/{p}")).exists())
    })
    .await;
    assert!(gone, "server or warm launchers still running");
    let leftovers: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(&format!("code-executor-mcp-{server}-")))
        })
        .collect();
    assert!(leftovers.is_empty(), "run directories left: {leftovers:?}");
    let cgroups_of_launchers: Vec<String> =
        std::fs::read_dir("/sys/fs/cgroup/memory/code-executor")
            .map(|d| {
                d.flatten()
                    .filter_map(|e| e.file_name().to_str().map(str::to_string))
                    .filter(|n| {
                        launchers
                            .iter()
                            .any(|p| n.starts_with(&format!("run-{p}-")))
                    })
                    .collect()
            })
            .unwrap_or_default();
    assert!(
        cgroups_of_launchers.is_empty(),
        "cgroups left by warm launchers: {cgroups_of_launchers:?}"
    );
}
