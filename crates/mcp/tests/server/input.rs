//! Bad input and permissions, end to end: every bad request gets a clear error result (or the
//! JSON-RPC error the protocol calls for) and the server keeps serving.

use std::time::Duration;

use crate::mcp_support::*;
use rmcp::service::ServiceError;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_arguments_get_clear_errors_and_the_server_keeps_serving() {
    let env = ServerEnv::new();
    let proj = env.path().join("proj");
    let outside = env.path().join("outside");
    std::fs::create_dir_all(proj.join("data")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret.txt"), "s3cret").unwrap();
    std::os::unix::fs::symlink(&outside, proj.join("escape")).unwrap();
    let cfg = env.path().join("cfg.json");
    std::fs::write(
        &cfg,
        r#"{"security": {"allowedTools": ["mcp__fs__*"], "maxCodeSize": 1000}}"#,
    )
    .unwrap();
    let env = env
        .set("ALLOWED_PROJECTS", proj.display().to_string())
        .set("CODE_EXECUTOR_CONFIG_PATH", cfg.display().to_string());
    let c = env.start().await;
    let p = |s: &std::path::Path| s.display().to_string();

    let cases: Vec<(Value, &str, &str)> = vec![
        (json!({}), "validation", "missing required argument `code`"),
        (
            json!({"code": 42}),
            "validation",
            "`code` must be a string, got a number",
        ),
        (
            json!({"code": ["print(1)"]}),
            "validation",
            "`code` must be a string",
        ),
        (json!({"code": ""}), "validation", "`code` is empty"),
        (
            json!({"code": "#".repeat(1001)}),
            "validation",
            "over the limit of 1000 bytes",
        ),
        (
            json!({"code": "print(1)", "timeoutMs": 999}),
            "validation",
            "`timeoutMs` must be an integer from 1000 to 300000",
        ),
        (
            json!({"code": "print(1)", "timeoutMs": 300001}),
            "validation",
            "`timeoutMs` must be an integer from 1000 to 300000",
        ),
        (
            json!({"code": "print(1)", "timeoutMs": -5}),
            "validation",
            "`timeoutMs`",
        ),
        (
            json!({"code": "print(1)", "timeoutMs": 1500.5}),
            "validation",
            "`timeoutMs`",
        ),
        (
            json!({"code": "print(1)", "permissions": {"exec": ["/bin"]}}),
            "validation",
            "unknown key `permissions.exec`",
        ),
        (
            json!({"code": "print(1)", "permissions": "all"}),
            "validation",
            "`permissions` must be an object",
        ),
        (
            json!({"code": "print(1)", "permissions": {"read": ["proj/data"]}}),
            "security",
            "is not an absolute path",
        ),
        (
            json!({"code": "print(1)", "permissions": {"read": [format!("{}/data/../data", p(&proj))]}}),
            "security",
            "contains `..`",
        ),
        (
            json!({"code": "print(1)", "permissions": {"read": [p(&outside)]}}),
            "security",
            "outside the allowed roots",
        ),
        (
            json!({"code": "print(1)", "permissions": {"write": [p(&proj.join("escape"))]}}),
            "security",
            "outside the allowed roots",
        ),
        (
            json!({"code": "print(1)", "permissions": {"read": [p(&proj.join("missing"))]}}),
            "security",
            "must exist",
        ),
        (
            json!({"code": "print(1)", "permissions": {"net": ["example.com"]}}),
            "security",
            "security.allowNetwork",
        ),
        (
            json!({"code": "print(1)", "allowedTools": ["fs_read_file"]}),
            "validation",
            "is malformed",
        ),
        (
            json!({"code": "print(1)", "allowedTools": ["mcp__fs__read file"]}),
            "validation",
            "is malformed",
        ),
        (
            json!({"code": "print(1)", "allowedTools": ["mcp__git__log"]}),
            "validation",
            "not allowed by the server configuration",
        ),
        (
            json!({"code": "print(1)", "allowedTools": "mcp__fs__x"}),
            "validation",
            "must be an array of strings",
        ),
        (
            json!({"code": "print(1)", "enableSampling": true}),
            "validation",
            "sampling is not enabled",
        ),
        (
            json!({"code": "print(1)", "timeout": 5}),
            "validation",
            "unknown argument `timeout`",
        ),
    ];
    for (args, kind, want) in &cases {
        let r = c.call("executePython", args.clone()).await;
        assert_eq!(r.is_error, Some(true), "{args}");
        let s = sc(&r);
        assert_eq!(s["success"], false, "{args}");
        assert_eq!(s["errorType"], *kind, "{args}: {s:?}");
        assert_eq!(s["output"], "", "{args}");
        assert!(s["executionTimeMs"].is_number());
        let e = error(&r);
        assert!(e.contains(want), "{args}: expected {want:?} in {e:?}");
        assert!(text(&r).starts_with("Status: FAILURE\n"));
    }
    let r = c
        .call("executeTypescript", json!({"code": "1", "runtime": "bun"}))
        .await;
    assert!(
        error(&r).contains("`runtime` must be \"deno\" or \"node\""),
        "{}",
        error(&r)
    );

    // An unknown tool is a JSON-RPC error (-32602), and the server goes on.
    match c
        .try_call("executeRust", json!({"code": "fn main(){}"}))
        .await
    {
        Err(ServiceError::McpError(e)) => {
            assert_eq!(e.code.0, -32602);
            assert!(e.message.contains("tool not found"), "{}", e.message);
        }
        other => panic!("expected a JSON-RPC error, got {other:?}"),
    }

    // Accepted-and-ignored compatibility fields do not fail a good run.
    let r = c
        .call(
            "executePython",
            json!({"code": "print('still serving')", "skipDangerousPatternCheck": true,
                   "maxSamplingRounds": 3, "allowedTools": ["mcp__fs__read_file", "mcp__fs__*"],
                   "permissions": {"read": [p(&proj)], "write": [], "net": []}}),
        )
        .await;
    assert_eq!(r.is_error, Some(false), "{}", text(&r));
    assert_eq!(output(&r), "still serving\n");
    c.service.cancel().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn granted_paths_are_visible_and_nothing_else() {
    let env = ServerEnv::new();
    let proj = env.path().join("proj");
    std::fs::create_dir_all(proj.join("in")).unwrap();
    std::fs::create_dir_all(proj.join("out")).unwrap();
    std::fs::write(proj.join("in/data.txt"), "hello from host").unwrap();
    set_mode(&proj.join("out"), 0o777);
    // A symlink pointing into the root is fine: the resolved target is what is granted.
    let link = env.path().join("link-to-in");
    std::os::unix::fs::symlink(proj.join("in"), &link).unwrap();
    // /tmp has no project quotas here: writable grants need the named weaker mode; without
    // it they are refused (a_writable_grant_without_a_bound_is_refused_with_the_way_out).
    let env = env
        .set("ALLOWED_PROJECTS", proj.display().to_string())
        .set("CODE_EXECUTOR_ALLOW_DEGRADED", "unbounded-writes");
    let c = env.start().await;
    let proj_c = proj.canonicalize().unwrap();
    let data = proj_c.join("in/data.txt").display().to_string();
    let out = proj_c.join("out").display().to_string();

    // Without permissions, the host file is not visible.
    let code = format!("import os\nprint(os.path.exists({data:?}))");
    let r = c.call("executePython", json!({"code": code})).await;
    assert_eq!(output(&r), "False\n", "{}", text(&r));

    // Read granted through a symlink path, write granted: both work.
    let code = format!(
        "print(open({data:?}).read())\nopen({:?}, 'w').write('written inside')",
        format!("{out}/result.txt")
    );
    let r = c
        .call(
            "executePython",
            json!({"code": code, "permissions": {"read": [link.display().to_string()], "write": [out.clone()]}}),
        )
        .await;
    assert_eq!(r.is_error, Some(false), "{}", text(&r));
    assert_eq!(output(&r), "hello from host\n");
    assert_eq!(
        std::fs::read_to_string(proj.join("out/result.txt")).unwrap(),
        "written inside"
    );

    // Read-only grant: writing fails.
    let code = format!("open({:?}, 'w').write('x')", format!("{out}/nope.txt"));
    let r = c
        .call(
            "executePython",
            json!({"code": code, "permissions": {"read": [out.clone()]}}),
        )
        .await;
    assert_eq!(r.is_error, Some(true), "{}", text(&r));
    assert!(!proj.join("out/nope.txt").exists());

    // deno: its own permission layer mirrors the grant.
    let code = format!("console.log(await Deno.readTextFile({data:?}));");
    let r = c
        .call(
            "executeTypescript",
            json!({"code": code, "permissions": {"read": [data.clone()]}}),
        )
        .await;
    assert_eq!(output(&r), "hello from host\n", "{}", text(&r));
    // node reads the granted file as well.
    let code = format!(
        "import {{ readFileSync }} from 'node:fs';\nconsole.log(readFileSync({data:?}, 'utf8'));"
    );
    let r = c
        .call(
            "executeTypescript",
            json!({"runtime": "node", "code": code, "permissions": {"read": [data]}}),
        )
        .await;
    assert_eq!(output(&r), "hello from host\n", "{}", text(&r));
    c.service.cancel().await.expect("close");
}

/// Raw JSON-RPC over the server's stdio: a malformed line gets no reply (rmcp ignores it) and
/// does not stop the server, which answers the next request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_does_not_stop_the_server() {
    let env = ServerEnv::new();
    let mut child = env.spawn_raw();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let send = |v: String| {
        let mut line = v;
        line.push('\n');
        line
    };
    let msgs = [
        send(json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"0"}}}).to_string()),
        send(json!({"jsonrpc":"2.0","method":"notifications/initialized"}).to_string()),
        send("{this is not json".to_string()),
        send("[1, 2".to_string()),
        send(json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"executePython","arguments":{"code":"print(7*6)"}}}).to_string()),
        send(json!({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"nope","arguments":{}}}).to_string()),
    ];
    for m in &msgs {
        stdin.write_all(m.as_bytes()).await.unwrap();
    }
    stdin.flush().await.unwrap();
    let mut replies = std::collections::HashMap::new();
    let read = async {
        while replies.len() < 3 {
            let line = lines
                .next_line()
                .await
                .unwrap()
                .expect("server closed stdout");
            let v: Value = serde_json::from_str(&line).expect("server wrote non-JSON on stdout");
            if let Some(id) = v.get("id").and_then(Value::as_i64) {
                replies.insert(id, v);
            }
        }
    };
    tokio::time::timeout(CALL_LIMIT, read)
        .await
        .expect("no replies");
    assert!(replies[&1]["result"]["serverInfo"]["name"] == "code-executor-mcp-server");
    let r = &replies[&2]["result"];
    assert_eq!(r["structuredContent"]["output"], "42\n", "{r}");
    assert_eq!(replies[&3]["error"]["code"], -32602);
    drop(stdin);
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("server did not exit on stdin EOF")
        .unwrap();
    assert!(status.success(), "{status:?}");
}

/// A writable grant on a file system where the sandbox cannot bound the total written (here:
/// /tmp, no project quotas) is refused, and the error names the server's setting that accepts
/// the weaker mode; with it, the run proceeds and the result says what was not enforced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writable_grant_without_a_bound_is_refused_with_the_way_out() {
    let env = ServerEnv::new();
    let out = env.path().join("proj/out");
    std::fs::create_dir_all(&out).unwrap();
    set_mode(&out, 0o777);
    let proj = env.path().join("proj").display().to_string();
    let target = out.canonicalize().unwrap().join("f.txt");
    let code = format!("open({:?}, 'w').write('x')", target.display().to_string());
    let args = json!({"code": code, "permissions": {"write": [out.display().to_string()]}});

    let env = env.set("ALLOWED_PROJECTS", proj);
    let c = env.start().await;
    let r = c.call("executePython", args.clone()).await;
    assert_eq!(r.is_error, Some(true), "{}", text(&r));
    let e = error(&r);
    assert!(e.contains("unbounded-writes"), "{e}");
    assert!(e.contains("sandbox.allowDegraded"), "{e}");
    assert!(!target.exists(), "nothing ran");

    drop(c);
    let env = env.set("CODE_EXECUTOR_ALLOW_DEGRADED", "unbounded-writes");
    let c = env.start().await;
    let r = c.call("executePython", args).await;
    assert_eq!(r.is_error, Some(false), "{}", text(&r));
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "x");
    let degraded = sc(&r)["sandboxDegraded"].to_string();
    assert!(degraded.contains("unbounded-writes"), "{degraded}");
}

/// A directory inside an allowed root is swapped for a symlink to a directory outside it (and
/// back), as fast as a thread can, while runs ask for it with `permissions.read`. The server
/// opens each grant once beneath its root without following symlinks and hands sandbox-run the
/// descriptor, so no run ever sees the outside, at the granted path or at its own: each sees
/// the real directory or is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlink_swapped_in_never_grants_the_outside() {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let env = ServerEnv::new();
    let root = env.path().join("proj");
    let outside = env.path().join("outside");
    for (dir, marker) in [(root.join("sub"), "INSIDE"), (outside.clone(), "OUTSIDE")] {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("marker"), marker).unwrap();
        set_mode(&dir, 0o755);
    }
    std::os::unix::fs::symlink(&outside, root.join("swap")).unwrap();
    let proj = root.canonicalize().unwrap();
    let env = env.set("ALLOWED_PROJECTS", proj.display().to_string());
    let c = env.start().await;
    let sub = proj.join("sub").display().to_string();
    // The guest looks at the granted path and at the outside directory's own path: a sandbox
    // that resolved the name again could show the outside at either.
    let outside = outside.canonicalize().unwrap().display().to_string();
    let code = format!(
        "for p in [{:?}, {:?}]:\n    try:\n        print(open(p).read())\n    except OSError:\n        pass",
        format!("{sub}/marker"),
        format!("{outside}/marker"),
    );

    let stop = Arc::new(AtomicBool::new(false));
    let racer = {
        let (a, b) = (
            CString::new(proj.join("sub").as_os_str().as_bytes()).unwrap(),
            CString::new(proj.join("swap").as_os_str().as_bytes()).unwrap(),
        );
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut swaps = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // RENAME_EXCHANGE swaps the two atomically.
                nix::fcntl::renameat2(
                    nix::fcntl::AT_FDCWD,
                    a.as_c_str(),
                    nix::fcntl::AT_FDCWD,
                    b.as_c_str(),
                    nix::fcntl::RenameFlags::RENAME_EXCHANGE,
                )
                .expect("renameat2");
                swaps += 1;
            }
            swaps
        })
    };
    let (mut inside, mut refused) = (0, 0);
    for _ in 0..150 {
        let r = c
            .call(
                "executePython",
                json!({"code": code, "permissions": {"read": [sub.clone()]}}),
            )
            .await;
        let all = text(&r);
        assert!(!all.contains("OUTSIDE"), "a run saw the outside: {all}");
        if output(&r) == "INSIDE\n" {
            inside += 1;
        } else {
            refused += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = racer.join().unwrap();
    eprintln!("{inside} runs saw the real directory, {refused} were refused, {swaps} swaps");
    assert!(swaps > 1000, "the racer barely ran ({swaps} swaps)");
    // Some runs must have reached the sandbox, or the check above proved nothing.
    assert!(
        inside > 0,
        "no run got the directory while it was being swapped"
    );
}
