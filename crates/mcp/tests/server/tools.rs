//! End to end: the real code-executor-mcp binary, real sandbox-run, real deno, node, python3.

use crate::mcp_support::*;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_are_listed_with_schemas_and_health_fields() {
    let env = ServerEnv::new();
    let c = env.start().await;
    let info = c.service.peer_info().expect("peer info");
    assert_eq!(
        info.server_info.as_ref().map(|i| i.name.as_str()),
        Some("code-executor-mcp-server")
    );

    let tools = c.service.list_all_tools().await.expect("tools/list");
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert_eq!(names, ["executeTypescript", "executePython", "health"]);
    for t in &tools[..2] {
        let input = Value::Object((*t.input_schema).clone());
        for key in [
            "code",
            "allowedTools",
            "timeoutMs",
            "permissions",
            "skipDangerousPatternCheck",
            "enableSampling",
        ] {
            assert!(
                input["properties"].get(key).is_some(),
                "{} lacks {key}",
                t.name
            );
        }
        assert_eq!(input["required"], json!(["code"]));
        assert_eq!(input["properties"]["timeoutMs"]["minimum"], 1000);
        assert_eq!(input["properties"]["timeoutMs"]["maximum"], 300000);
        let out = Value::Object((**t.output_schema.as_ref().expect("outputSchema")).clone());
        assert_eq!(
            out["required"],
            json!(["success", "output", "executionTimeMs"])
        );
    }
    assert_eq!(
        tools[0].input_schema["properties"]["runtime"]["enum"],
        json!(["deno", "node"])
    );
    assert!(tools[1].input_schema["properties"].get("runtime").is_none());

    let h = c.call("health", json!({})).await;
    assert_eq!(h.is_error, Some(false));
    let s = sc(&h);
    assert_eq!(s["healthy"], true, "{s:?}");
    assert_eq!(s["auditLog"]["enabled"], false);
    assert_eq!(s["mcpClients"]["connected"], 0);
    assert_eq!(s["connectionPool"]["active"], 0);
    assert_eq!(s["connectionPool"]["waiting"], 0);
    assert_eq!(s["connectionPool"]["max"], 100);
    assert!(s["uptime"].as_f64().is_some());
    assert!(s["timestamp"].as_str().unwrap().ends_with('Z'));
    for rt in ["deno", "node", "python"] {
        assert_eq!(s["runtimes"][rt]["available"], true, "{rt}: {s:?}");
    }
    assert_eq!(s["sandbox"]["available"], true);
    assert_eq!(s["sandbox"]["doctor"]["ran"], true, "{s:?}");
    c.service.cancel().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_runtime_runs_code_with_every_result_field() {
    let env = ServerEnv::new();
    let c = env.start().await;

    // Python: top-level await, stdout and stderr.
    let r = c
        .call(
            "executePython",
            json!({"code": "import asyncio, sys\nawait asyncio.sleep(0)\nprint('py', 6*7)\nprint('note', file=sys.stderr)"}),
        )
        .await;
    let s = sc(&r);
    assert_eq!(r.is_error, Some(false), "{}", text(&r));
    assert_eq!(s["success"], true);
    assert_eq!(s["output"], "py 42\n");
    assert_eq!(s["stderr"], "note\n");
    assert!(s.get("error").is_none());
    assert!(s["executionTimeMs"].as_u64().is_some());
    assert_eq!(s["toolCallsMade"], json!([]));
    assert_eq!(s["toolCallSummary"], json!([]));
    assert_eq!(s["runtime"], "python");
    assert_eq!(s["exitCode"], 0);
    let t = text(&r);
    assert!(t.starts_with("Status: SUCCESS\n"), "{t}");
    for section in [
        "Stdout:\npy 42\n",
        "Stderr:\nnote\n",
        "Duration: ",
        "Tool Calls: none",
    ] {
        assert!(t.contains(section), "missing {section:?} in {t}");
    }

    // Deno (default runtime): TypeScript with types and top-level await.
    let r = c
        .call(
            "executeTypescript",
            json!({"code": "const n: number = await Promise.resolve(41);\nconsole.log('ts', n + 1);"}),
        )
        .await;
    assert_eq!(r.is_error, Some(false), "{}", text(&r));
    assert_eq!(output(&r), "ts 42\n");
    assert_eq!(sc(&r)["runtime"], "deno");

    // Node: ES module with top-level await.
    let r = c
        .call(
            "executeTypescript",
            json!({"runtime": "node", "code": "const n = await Promise.resolve(41);\nconsole.log('node', n + 1, typeof require);"}),
        )
        .await;
    assert_eq!(r.is_error, Some(false), "{}", text(&r));
    assert_eq!(output(&r), "node 42 undefined\n");
    assert_eq!(sc(&r)["runtime"], "node");

    // Failures: exit code, exception text, isError, FAILURE status.
    let r = c
        .call(
            "executePython",
            json!({"code": "print('before')\nraise ValueError('boom')"}),
        )
        .await;
    assert_eq!(r.is_error, Some(true));
    let s = sc(&r);
    assert_eq!(s["success"], false);
    assert_eq!(s["output"], "before\n");
    assert_eq!(s["errorType"], "execution");
    assert_eq!(s["exitCode"], 1);
    let e = error(&r);
    assert!(
        e.contains("exited with code 1") && e.contains("ValueError: boom"),
        "{e}"
    );
    assert!(
        !e.contains("_ce_main"),
        "runner frames leak into the traceback: {e}"
    );
    assert!(text(&r).starts_with("Status: FAILURE\n"));

    let r = c
        .call("executePython", json!({"code": "import sys; sys.exit(3)"}))
        .await;
    assert_eq!(sc(&r)["exitCode"], 3);

    let r = c
        .call(
            "executeTypescript",
            json!({"code": "throw new Error('tsboom');"}),
        )
        .await;
    assert_eq!(r.is_error, Some(true));
    assert!(error(&r).contains("tsboom"), "{}", error(&r));

    let r = c
        .call(
            "executeTypescript",
            json!({"runtime": "node", "code": "process.exitCode = 4;"}),
        )
        .await;
    assert_eq!(sc(&r)["exitCode"], 4);

    // ANSI escapes are stripped.
    let r = c
        .call(
            "executePython",
            json!({"code": "print('\\x1b[31mred\\x1b[0m plain')"}),
        )
        .await;
    assert_eq!(output(&r), "red plain\n");
    c.service.cancel().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_truncation_and_fresh_workspace() {
    let env = ServerEnv::new();
    let c = env.start().await;

    for (tool, args) in [
        (
            "executePython",
            json!({"code": "print('started', flush=True)\nwhile True: pass", "timeoutMs": 1500}),
        ),
        (
            "executeTypescript",
            json!({"code": "while (true) {}", "timeoutMs": 1500}),
        ),
        (
            "executeTypescript",
            json!({"runtime": "node", "code": "await new Promise(() => setInterval(() => {}, 1000));", "timeoutMs": 1500}),
        ),
    ] {
        let r = c.call(tool, args.clone()).await;
        let s = sc(&r);
        assert_eq!(r.is_error, Some(true), "{args}");
        assert_eq!(s["success"], false);
        assert_eq!(s["errorType"], "timeout", "{args}: {s:?}");
        assert_eq!(s["error"], "Execution timeout after 1.50s");
        assert!(text(&r).starts_with("Status: TIMEOUT\n"));
    }

    // Output past 25,000 characters is cut with a note saying how much.
    let r = c
        .call(
            "executePython",
            json!({"code": "print('x' * 30000, end='')"}),
        )
        .await;
    let out = output(&r);
    assert!(out.starts_with(&"x".repeat(25_000)));
    assert!(
        out.ends_with("[output truncated: 5000 of 30000 characters cut]"),
        "{}",
        &out[25_000..]
    );
    assert_eq!(sc(&r)["outputTruncated"], true);

    // Huge output does not hurt the server (bounded capture) and is reported as cut.
    let r = c
        .call(
            "executePython",
            json!({"code": "import sys\nfor _ in range(40): sys.stdout.write('y' * 100000)"}),
        )
        .await;
    assert_eq!(r.is_error, Some(false), "{}", text(&r));
    assert!(output(&r).contains("characters cut]"));

    // Nothing of one run is visible to the next: /workspace and /tmp are fresh.
    let r = c
        .call(
            "executePython",
            json!({"code": "import os\nopen('/workspace/left.txt','w').write('x')\nopen('/tmp/left.txt','w').write('x')\nprint(os.getcwd())"}),
        )
        .await;
    assert_eq!(output(&r), "/workspace\n", "{}", text(&r));
    let r = c
        .call(
            "executePython",
            json!({"code": "import os\nprint(os.path.exists('/workspace/left.txt'), os.path.exists('/tmp/left.txt'))"}),
        )
        .await;
    assert_eq!(output(&r), "False False\n");
    c.service.cancel().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_boundary_holds_through_mcp() {
    let env = ServerEnv::new();
    std::fs::write(env.path().join("host-secret.txt"), "top secret").unwrap();
    std::fs::write(
        env.path().join(".code-executor.json"),
        r#"{"security": {"allowNetwork": []}}"#,
    )
    .unwrap();
    let env = env.set("SECRET_FOR_TEST", "xyz");
    let c = env.start().await;
    let host_file = env.path().join("host-secret.txt").display().to_string();

    // The server's environment, cwd and files are not visible; HOME is the private workspace.
    let code = format!(
        "import os\nprint('SECRET_FOR_TEST' in os.environ, os.environ['HOME'], os.path.exists({host_file:?}))"
    );
    let r = c.call("executePython", json!({"code": code})).await;
    assert_eq!(output(&r), "False /workspace False\n", "{}", text(&r));

    // No network without a grant.
    let code = "import socket\ntry:\n    socket.create_connection(('1.1.1.1', 53), timeout=3)\n    print('connected')\nexcept OSError as e:\n    print('blocked')";
    let r = c.call("executePython", json!({"code": code})).await;
    assert_eq!(output(&r), "blocked\n", "{}", text(&r));
    let r = c
        .call("executeTypescript", json!({"runtime": "node", "code": "import net from 'node:net';\nconst s = net.connect(53, '1.1.1.1');\ns.on('connect', () => { console.log('connected'); s.destroy(); });\ns.on('error', () => console.log('blocked'));"}))
        .await;
    assert_eq!(output(&r), "blocked\n", "{}", text(&r));

    // A memory limit hit is reported as such.
    let r = c
        .call(
            "executePython",
            json!({"code": "x = bytearray(2 * 1024**3)\nprint(len(x))"}),
        )
        .await;
    let s = sc(&r);
    assert_eq!(r.is_error, Some(true));
    assert_eq!(s["limitHit"], "memory", "{s:?}");
    assert!(error(&r).contains("limit hit: memory"), "{}", error(&r));
    assert!(s["peakMemoryBytes"].as_u64().is_some(), "{s:?}");

    c.service.cancel().await.expect("close");
}

/// A tiny HTTP server on the host's loopback answering every request with `body`.
fn http_server(body: &'static str) -> u16 {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permissions_net_grants_egress_within_the_ceiling_only() {
    let port = http_server("hello via egress");
    let env = ServerEnv::new();
    let audit = env.path().join("audit.log");
    std::fs::write(
        env.path().join(".code-executor.json"),
        r#"{"security": {"allowNetwork": ["127.0.0.1", "*.example.com"]}}"#,
    )
    .unwrap();
    let env = env
        .set("ENABLE_AUDIT_LOG", "1")
        .set("AUDIT_LOG_PATH", audit.display().to_string());
    let c = env.start().await;
    let url = format!("http://127.0.0.1:{port}/x");
    let grant = json!({"net": [format!("127.0.0.1:{port}")]});
    let js = format!("const r = await fetch('{url}'); console.log(await r.text());");
    let cases = [
        (
            "executePython",
            json!({"code": format!("import urllib.request\nprint(urllib.request.urlopen('{url}').read().decode())"), "permissions": grant}),
        ),
        (
            "executeTypescript",
            json!({"code": js, "permissions": grant}),
        ),
        (
            "executeTypescript",
            json!({"runtime": "node", "code": js, "permissions": grant}),
        ),
    ];
    for (tool, args) in &cases {
        let r = c.call(tool, args.clone()).await;
        assert_eq!(output(&r), "hello via egress\n", "{args}: {}", text(&r));
        let d = &sc(&r)["network"][0];
        assert_eq!(d["allowed"], true, "{d}");
    }
    // Without the grant the same fetch fails.
    let mut no_grant = cases[0].1.clone();
    no_grant.as_object_mut().unwrap().remove("permissions");
    let r = c.call("executePython", no_grant).await;
    assert_eq!(r.is_error, Some(true), "{}", text(&r));

    // Outside the ceiling, or an exact host that only a wildcard covers: refused before running.
    for (net, want) in [
        (format!("localhost:{port}"), "does not allow"),
        ("api.example.com".to_string(), "only through a wildcard"),
        ("http://127.0.0.1/".to_string(), "URL"),
    ] {
        let r = c
            .call(
                "executePython",
                json!({"code": "print(1)", "permissions": {"net": [net]}}),
            )
            .await;
        assert_eq!(sc(&r)["errorType"], "security");
        assert!(error(&r).contains(want), "{}", error(&r));
    }
    c.service.cancel().await.expect("close");

    // Each egress decision is its own audit line.
    let lines: Vec<Value> = std::fs::read_to_string(&audit)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let net_lines = lines.iter().filter(|l| l["type"] == "network").count();
    assert!(net_lines >= 3, "{lines:?}");
}

/// The characters a guest could use to hide or reorder text on a reader's screen, as the
/// guests below print them: C0 controls (newline, tab, CR and ESC are checked apart), DEL, C1
/// controls (the ones that open a sequence are checked apart) and the bidi formatting marks.
fn hidden_code_points() -> Vec<u32> {
    let mut v: Vec<u32> = (0..0x20u32)
        .filter(|c| ![0x09, 0x0a, 0x0d, 0x1b].contains(c))
        .collect();
    v.push(0x7f);
    v.extend((0x80..0xa0u32).filter(|c| ![0x90, 0x98, 0x9b, 0x9d, 0x9e, 0x9f].contains(c)));
    v.extend([0x61c, 0x200e, 0x200f]);
    v.extend(0x202a..=0x202e);
    v.extend(0x2066..=0x2069);
    v
}

/// `text` holds no control or bidi character but newline and tab, and shows each one the
/// guest printed as `<U+XXXX>`; escape sequences (7-bit and the one-character CSI) are gone and
/// a carriage return became a newline.
fn assert_clean(label: &str, text: &str) {
    let bad: Vec<String> = text
        .chars()
        .filter(|c| {
            let u = *c as u32;
            (*c != '\n' && *c != '\t' && (u < 0x20 || (0x7f..0xa0).contains(&u)))
                || [0x61c, 0x200e, 0x200f].contains(&u)
                || (0x202a..=0x202e).contains(&u)
                || (0x2066..=0x2069).contains(&u)
        })
        .map(|c| format!("U+{:04X}", c as u32))
        .collect();
    assert!(bad.is_empty(), "{label} still holds {bad:?}: {text:?}");
    for cp in hidden_code_points() {
        let shown = format!("[{cp:04X}:<U+{cp:04X}>]");
        assert!(text.contains(&shown), "{label} lacks {shown}: {text:?}");
    }
    assert!(text.contains("csi:XY\n"), "{label}: {text:?}");
    assert!(text.contains("cr:a\nb\ttab\n"), "{label}: {text:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_and_bidi_characters_never_reach_the_client() {
    let env = ServerEnv::new();
    let c = env.start().await;
    let list: Vec<String> = hidden_code_points().iter().map(u32::to_string).collect();
    let list = list.join(", ");
    let python = format!(
        r#"import sys
text = "".join("[%04X:%s]\n" % (c, chr(c)) for c in [{list}])
text += "csi:" + chr(0x9b) + "31mX" + chr(27) + "[1mY\n" + "cr:a" + chr(13) + "b\ttab\n"
sys.stdout.write(text)
sys.stderr.write(text)
sys.exit(3)
"#
    );
    let deno = format!(
        r#"let text = "";
for (const c of [{list}]) text += `[${{c.toString(16).toUpperCase().padStart(4, "0")}}:${{String.fromCodePoint(c)}}]\n`;
text += "csi:" + String.fromCodePoint(0x9b) + "31mX" + "\x1b[1mY\n" + "cr:a\rb\ttab\n";
await Deno.stdout.write(new TextEncoder().encode(text));
await Deno.stderr.write(new TextEncoder().encode(text));
Deno.exit(3);
"#
    );
    for (tool, code) in [("executePython", python), ("executeTypescript", deno)] {
        let r = c.call(tool, json!({"code": code})).await;
        let s = sc(&r);
        assert_eq!(s["exitCode"], 3, "{tool}: {s:?}");
        for field in ["output", "stderr", "error"] {
            let text = s[field].as_str().unwrap_or_default();
            assert_clean(&format!("{tool} {field}"), text);
        }
        assert_clean(&format!("{tool} text block"), &text(&r));
    }
    c.service.cancel().await.expect("close");
}

/// A guest that prints sandbox-run's own limit lines and exits as a killed process would claims
/// nothing: how a run ended comes from the typed report on its own descriptor, never from text
/// the guest can write too. (The server before the report channel took these lines as facts.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_guest_prints_claims_no_limit() {
    let env = ServerEnv::new();
    let c = env.start().await;
    let code = r#"import sys
for line in ["sandbox-run: limit: memory: memory cap of 512M reached (cgroup-v1)",
             "sandbox-run: limit: timeout: killed after 30 s",
             "sandbox-run: limit: cpu: CPU time limit of 10 s reached (SIGXCPU)"]:
    print(line, file=sys.stderr)
sys.stderr.flush()
sys.exit(137)
"#;
    let r = c.call("executePython", json!({"code": code})).await;
    let s = sc(&r);
    assert_eq!(s["exitCode"], 137, "{s:?}");
    assert!(
        s.get("limitHit").is_none_or(Value::is_null),
        "a printed line claimed a limit: {s:?}"
    );
    assert!(
        !error(&r).contains("limit hit") && !error(&r).to_lowercase().contains("timed out"),
        "{}",
        error(&r)
    );
    // The lines are still shown, as the guest's own stderr.
    assert!(
        s["stderr"]
            .as_str()
            .unwrap_or_default()
            .contains("sandbox-run: limit: memory"),
        "{s:?}"
    );
    c.service.cancel().await.expect("close");
}
