//! Configuration end to end: config files (errors at start), `env:VAR` values, audit log,
//! rate limit, dangerous patterns, runtime availability and the environment variables.

use std::time::Duration;

use crate::mcp_support::*;
use serde_json::{json, Value};

async fn start_fails(env: &ServerEnv) -> String {
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        env.command().stdin(std::process::Stdio::null()).output(),
    )
    .await
    .expect("server did not exit")
    .expect("spawn");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_errors_stop_the_start_naming_file_and_key() {
    let env = ServerEnv::new();
    let file = env.path().join(".code-executor.json");
    std::fs::write(&file, "{\n  \"security\": {\"maxCodeSize\": 10,}\n}").unwrap();
    let err = start_fails(&env).await;
    assert!(
        err.contains(&file.display().to_string()) && err.contains("line 2"),
        "{err}"
    );

    std::fs::write(
        &file,
        r#"{"security": {"rateLimit": {"enabled": true, "maxRequest": 3}}}"#,
    )
    .unwrap();
    let err = start_fails(&env).await;
    assert!(err.contains(&file.display().to_string()), "{err}");
    assert!(
        err.contains("unknown key `security.rateLimit.maxRequest`"),
        "{err}"
    );

    std::fs::write(
        &file,
        r#"{"security": {"allowedTools": ["mcp__bad name__x"]}}"#,
    )
    .unwrap();
    let err = start_fails(&env).await;
    assert!(
        err.contains("mcp__bad name__x") && err.contains("malformed"),
        "{err}"
    );

    std::fs::write(
        &file,
        r#"{"security": {"auditLogPath": "env:NOT_SET_ANYWHERE"}}"#,
    )
    .unwrap();
    let err = start_fails(&env).await;
    assert!(
        err.contains("NOT_SET_ANYWHERE") && err.contains("security.auditLogPath"),
        "{err}"
    );

    std::fs::remove_file(&file).unwrap();
    let missing = env.path().join("missing.json");
    let env = env.set("CODE_EXECUTOR_CONFIG_PATH", missing.display().to_string());
    let err = start_fails(&env).await;
    assert!(err.contains("missing.json"), "{err}");

    let env = ServerEnv::new().set("POOL_MAX_CONCURRENT", "lots");
    let err = start_fails(&env).await;
    assert!(err.contains("POOL_MAX_CONCURRENT"), "{err}");

    // A bad value is never replaced by a default: the variable, its value and what it accepts
    // are named (every variable has a case in the config unit tests).
    for (var, value, accepted) in [
        ("MCP_MAX_IN_FLIGHT", "0", "from 1 to 1000000"),
        ("MCP_CALL_TIMEOUT_MS", "soon", "at least 1"),
        ("MCP_MAX_CALLS_PER_RUN", "-1", "0 (none) or more"),
        ("TMPDIR", "relative/tmp", "absolute path"),
        ("RUST_LOG", "info,[", "log filter"),
    ] {
        let err = start_fails(&ServerEnv::new().set(var, value)).await;
        assert!(
            err.contains(var) && err.contains(value) && err.contains(accepted),
            "{var}={value}: {err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_log_rate_limit_and_patterns_from_a_config_file_with_env_values() {
    let env = ServerEnv::new();
    let audit = env.path().join("logs/audit.jsonl");
    std::fs::write(
        env.path().join(".code-executor.json"),
        r#"{"security": {"enableAuditLog": true, "auditLogPath": "env:MY_AUDIT_PATH",
            "rateLimit": {"enabled": true, "windowMs": 600000, "maxRequests": "env:MY_MAX"},
            "defaultTimeoutMs": 20000}}"#,
    )
    .unwrap();
    let env = env
        .set("MY_AUDIT_PATH", audit.display().to_string())
        .set("MY_MAX", "3");
    let c = env.start().await;
    let tools = c.service.list_all_tools().await.unwrap();
    assert_eq!(
        tools[1].input_schema["properties"]["timeoutMs"]["default"],
        20000
    );

    let r = c
        .call(
            "executePython",
            json!({"code": "print('secret-code-marker')"}),
        )
        .await;
    assert_eq!(r.is_error, Some(false), "{}", text(&r));
    // A dangerous pattern is a warning, not a block (this config does not ask to block).
    let r = c
        .call(
            "executePython",
            json!({"code": "import subprocess\nprint(eval('1+1'))"}),
        )
        .await;
    assert_eq!(r.is_error, Some(false), "{}", text(&r));
    let w = sc(&r)["warnings"].as_array().cloned().unwrap_or_default();
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(text(&r).contains("Warnings:\n"));
    let r = c
        .call("executePython", json!({"code": "raise SystemExit(5)"}))
        .await;
    assert_eq!(sc(&r)["exitCode"], 5);
    // The fourth execution in the window is refused.
    let r = c.call("executePython", json!({"code": "print(1)"})).await;
    assert_eq!(r.is_error, Some(true));
    assert!(
        error(&r).contains("rate limit exceeded: at most 3 executions per 600000 ms"),
        "{}",
        error(&r)
    );
    // health is not rate limited and shows the audit log.
    let h = c.call("health", json!({})).await;
    assert_eq!(sc(&h)["auditLog"]["enabled"], true);
    assert_eq!(sc(&h)["auditLog"]["entriesWritten"], 4);
    assert_eq!(sc(&h)["rateLimit"]["maxRequests"], 3);
    c.service.cancel().await.unwrap();

    let text = std::fs::read_to_string(&audit).unwrap();
    assert!(
        !text.contains("secret-code-marker"),
        "code leaked into the audit log"
    );
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4, "{text}");
    for key in [
        "timestamp",
        "codeHash",
        "codeLength",
        "executor",
        "allowedTools",
        "toolsCalled",
        "executionTimeMs",
        "success",
        "error",
        "runtime",
        "exitCode",
        "limitHit",
    ] {
        assert!(
            lines[0].get(key).is_some(),
            "audit line lacks {key}: {}",
            lines[0]
        );
    }
    assert_eq!(lines[0]["executor"], "python");
    assert_eq!(lines[0]["success"], true);
    assert_eq!(lines[0]["codeLength"], 27);
    assert_eq!(lines[0]["codeHash"].as_str().unwrap().len(), 64);
    assert_eq!(lines[1]["warnings"].as_array().unwrap().len(), 2);
    assert_eq!(lines[2]["exitCode"], 5);
    assert_eq!(lines[3]["success"], false);
    assert_eq!(lines[3]["errorType"], "validation");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_rate_limit_blocking_patterns_and_audit_failure() {
    let env = ServerEnv::new();
    std::fs::write(
        env.path().join(".code-executor.json"),
        r#"{"security": {"blockDangerousPatterns": true}}"#,
    )
    .unwrap();
    let env = env
        .set("CODE_EXECUTOR_RATE_LIMIT_RPM", "2")
        .set("ENABLE_AUDIT_LOG", "true")
        .set("AUDIT_LOG_PATH", "/proc/self/no-such-dir/audit.log")
        .set("CODE_EXECUTOR_TIMEOUT_MS", "7000");
    let c = env.start().await;
    let tools = c.service.list_all_tools().await.unwrap();
    assert_eq!(
        tools[0].input_schema["properties"]["timeoutMs"]["default"],
        7000
    );

    let r = c
        .call(
            "executeTypescript",
            json!({"code": "console.log(eval('1'))"}),
        )
        .await;
    assert_eq!(r.is_error, Some(true));
    assert_eq!(sc(&r)["errorType"], "security");
    assert!(
        error(&r).contains("blockDangerousPatterns"),
        "{}",
        error(&r)
    );
    // `compile(` in TypeScript is not a pattern (code-executor-mcp 1.0.5 blocked it).
    let r = c
        .call(
            "executeTypescript",
            json!({"runtime": "node", "code": "const compile = (x) => x; console.log(compile(3))"}),
        )
        .await;
    assert_eq!(output(&r), "3\n", "{}", text(&r));
    let r = c.call("executePython", json!({"code": "print(1)"})).await;
    assert!(
        error(&r).contains("rate limit exceeded: at most 2 executions per 60000 ms"),
        "{}",
        error(&r)
    );

    // The audit log cannot be written: reported in health, never swallowed.
    let h = c.call("health", json!({})).await;
    let s = sc(&h);
    assert_eq!(s["healthy"], false);
    assert!(
        s["auditLog"]["writeFailures"].as_u64().unwrap() >= 3,
        "{s:?}"
    );
    assert!(s["auditLog"]["lastError"]
        .as_str()
        .unwrap()
        .contains("write failed"));
    c.service.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtimes_that_are_missing_are_not_offered_and_health_says_why() {
    // No deno on PATH, python disabled by config: only executeTypescript (node) and health.
    let env = ServerEnv::new();
    let deno = deno();
    std::fs::write(
        env.path().join(".code-executor.json"),
        r#"{"executors": {"python": {"enabled": false}}}"#,
    )
    .unwrap();
    let path = std::env::var("PATH").unwrap_or_default();
    let path: Vec<_> = std::env::split_paths(&path)
        .filter(|d| !d.join("deno").exists())
        .collect();
    let path = std::env::join_paths(path).unwrap().into_string().unwrap();
    let env = env.set("PATH", path.clone());
    let c = env.start().await;
    let tools = c.service.list_all_tools().await.unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert_eq!(names, ["executeTypescript", "health"]);
    let h = c.call("health", json!({})).await;
    let s = sc(&h);
    assert_eq!(s["runtimes"]["python"]["available"], false);
    assert!(s["runtimes"]["python"]["reason"]
        .as_str()
        .unwrap()
        .contains("executors.python.enabled"));
    assert!(s["runtimes"]["deno"]["reason"]
        .as_str()
        .unwrap()
        .contains("not found on PATH"));
    let r = c.call("executePython", json!({"code": "print(1)"})).await;
    assert!(error(&r).contains("not offered"), "{}", error(&r));
    let r = c
        .call("executeTypescript", json!({"code": "console.log(1)"}))
        .await;
    assert!(
        error(&r).contains("runtime deno is not available")
            && error(&r).contains("runtime: \"node\""),
        "{}",
        error(&r)
    );
    let r = c
        .call(
            "executeTypescript",
            json!({"runtime": "node", "code": "console.log(1)"}),
        )
        .await;
    assert_eq!(output(&r), "1\n", "{}", text(&r));
    c.service.cancel().await.unwrap();

    // DENO_PATH brings deno back without PATH.
    let env = ServerEnv::new()
        .set("PATH", path)
        .set("DENO_PATH", deno.display().to_string());
    let c = env.start().await;
    let r = c
        .call(
            "executeTypescript",
            json!({"code": "const x: string = 'typed'; console.log(x)"}),
        )
        .await;
    assert_eq!(output(&r), "typed\n", "{}", text(&r));
    c.service.cancel().await.unwrap();
}
