//! Interop with a client we did not write: the official Python MCP SDK drives the real server.

use std::path::Path;

use crate::mcp_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_lists_tools_and_runs_code() {
    let root = Path::new(crate::mcp_support::REPO_ROOT);
    let python = root.join(".deps/venv/bin/python");
    assert!(
        python.exists(),
        "the Python MCP SDK is required by this test and {} is missing; install it with \
         `scripts/test.sh` (python3 -m venv .deps/venv && .deps/venv/bin/pip install 'mcp>=2,<3')",
        python.display()
    );
    let env = ServerEnv::new();
    let mut cmd = tokio::process::Command::new(&python);
    cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/python_sdk_client.py"))
        .arg(SERVER)
        .env_clear()
        .envs(&env.vars)
        .current_dir(env.path())
        .kill_on_drop(true);
    let out = tokio::time::timeout(std::time::Duration::from_secs(300), cmd.output())
        .await
        .expect("python client timed out")
        .expect("run python client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("python-sdk interop: OK"),
        "python SDK client failed ({:?})\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
}
