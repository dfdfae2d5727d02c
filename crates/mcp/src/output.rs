//! Shaping a run into the MCP result: `structuredContent`, the text block, cleaning (see
//! [`crate::text`]) and truncation, and the `outputSchema` they conform to.
//!
//! Errors before a run (validation, rate limit, busy) use the same structured shape with an
//! `errorType`, so a client validating against `outputSchema` never sees a different shape.

use rmcp::model::{CallToolResult, ContentBlock};
use serde_json::{json, Map, Value};

use crate::text::{clean, clean_json};

/// Most characters of stdout or stderr put in a result; the rest is cut with a note.
pub const MAX_OUTPUT_CHARS: usize = 25_000;

/// Category of a failure, as in code-executor-mcp's `errorType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    Validation,
    Security,
    Execution,
    Mcp,
    Timeout,
}

impl ErrorType {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::Validation => "validation",
            ErrorType::Security => "security",
            ErrorType::Execution => "execution",
            ErrorType::Mcp => "mcp",
            ErrorType::Timeout => "timeout",
        }
    }
}

/// Everything a result says about one execution (or a refusal to execute).
#[derive(Debug, Clone, Default)]
pub struct ExecOutcome {
    pub success: bool,
    pub timed_out: bool,
    pub stdout: String,
    pub stderr: String,
    /// Short explanation of the failure, without the stderr text.
    pub error: Option<String>,
    pub error_type: Option<ErrorType>,
    pub execution_time_ms: u64,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub limit_hit: Option<String>,
    pub runtime: Option<&'static str>,
    pub warnings: Vec<String>,
    /// Sandbox layers that could not be applied on this machine (from the run report).
    pub degraded: Vec<String>,
    pub cpu_time_ms: Option<f64>,
    pub peak_memory_bytes: Option<u64>,
    /// Egress decisions (one object per connection attempt) from the run report.
    pub network: Vec<Value>,
    /// Calls the guest made through the tool bridge.
    pub tool_calls: Vec<crate::bridge::CallRecord>,
    /// The run used a sandbox launched ahead of time (still used exactly once).
    pub prewarmed: bool,
}

impl ExecOutcome {
    /// A refusal before anything ran.
    pub fn rejected(error_type: ErrorType, message: impl Into<String>) -> Self {
        ExecOutcome {
            error: Some(message.into()),
            error_type: Some(error_type),
            ..Default::default()
        }
    }
}

/// Cut `s` to [`MAX_OUTPUT_CHARS`] characters, saying how many were cut.
pub fn truncate(s: &str) -> (String, bool) {
    let total = s.chars().count();
    if total <= MAX_OUTPUT_CHARS {
        return (s.to_string(), false);
    }
    let cut: String = s.chars().take(MAX_OUTPUT_CHARS).collect();
    (
        format!(
            "{cut}\n[output truncated: {} of {total} characters cut]",
            total - MAX_OUTPUT_CHARS
        ),
        true,
    )
}

/// Build the MCP result: structured content plus the one text block.
pub fn to_result(o: &ExecOutcome) -> CallToolResult {
    // Cleaned before the cut, so the cut counts what the client sees.
    let (stdout, out_cut) = truncate(&clean(&o.stdout));
    let (stderr, err_cut) = truncate(&clean(&o.stderr));
    let error = match (&o.error, o.success) {
        (_, true) => None,
        // The timeout message is exact (agents and clients match on it); stderr stays in `stderr`.
        (Some(e), false) if o.timed_out => Some(e.clone()),
        (Some(e), false) if stderr.trim().is_empty() => Some(e.clone()),
        (Some(e), false) => Some(format!("{e}\n{stderr}")),
        (None, false) => Some(stderr.clone()),
    };
    let summary = crate::bridge::call_summary(&o.tool_calls);
    let shown = Shown {
        stdout: &stdout,
        stderr: &stderr,
        error: error.as_deref(),
        truncated: out_cut || err_cut,
    };
    let sc = structured(o, &shown, &summary);
    let text = text_block(o, &shown, &summary);

    // Every other text field (the error, warnings, tool-call errors from upstreams, network
    // decisions) is cleaned too; output and stderr are clean already.
    let text = clean(&text);
    let mut sc = Value::Object(sc);
    clean_json(&mut sc);
    let mut r = if o.success {
        CallToolResult::success(vec![ContentBlock::text(text)])
    } else {
        CallToolResult::error(vec![ContentBlock::text(text)])
    };
    r.structured_content = Some(sc);
    r
}

/// The texts of a result as the client sees them: cleaned and cut.
struct Shown<'a> {
    stdout: &'a str,
    stderr: &'a str,
    /// `error`: the failure, with stderr after it.
    error: Option<&'a str>,
    /// stdout or stderr was cut.
    truncated: bool,
}

/// `structuredContent`: the fields of `outputSchema` that apply.
fn structured(o: &ExecOutcome, shown: &Shown<'_>, summary: &[Value]) -> Map<String, Value> {
    let mut sc = Map::new();
    sc.insert("success".into(), json!(o.success));
    sc.insert("output".into(), json!(shown.stdout));
    if let Some(e) = shown.error {
        sc.insert("error".into(), json!(e));
    }
    if let Some(t) = o.error_type {
        sc.insert("errorType".into(), json!(t.as_str()));
    }
    sc.insert("executionTimeMs".into(), json!(o.execution_time_ms));
    sc.insert(
        "toolCallsMade".into(),
        json!(crate::bridge::calls_made(&o.tool_calls)),
    );
    sc.insert("toolCallSummary".into(), json!(summary));
    if !shown.stderr.is_empty() {
        sc.insert("stderr".into(), json!(shown.stderr));
    }
    if let Some(r) = o.runtime {
        sc.insert("runtime".into(), json!(r));
    }
    if o.exit_code.is_some() || o.signal.is_some() {
        sc.insert("exitCode".into(), json!(o.exit_code));
    }
    if let Some(s) = o.signal {
        sc.insert("signal".into(), json!(s));
    }
    if let Some(l) = &o.limit_hit {
        sc.insert("limitHit".into(), json!(l));
    }
    if let Some(c) = o.cpu_time_ms {
        sc.insert("cpuTimeMs".into(), json!(c.round() as u64));
    }
    if let Some(m) = o.peak_memory_bytes {
        sc.insert("peakMemoryBytes".into(), json!(m));
    }
    if !o.network.is_empty() {
        sc.insert("network".into(), json!(o.network));
    }
    if shown.truncated {
        sc.insert("outputTruncated".into(), json!(true));
    }
    if !o.warnings.is_empty() {
        sc.insert("warnings".into(), json!(o.warnings));
    }
    if !o.degraded.is_empty() {
        sc.insert("sandboxDegraded".into(), json!(o.degraded));
    }
    if o.prewarmed {
        sc.insert("prewarmed".into(), json!(true));
    }
    sc
}

/// The one text block: status, error, stdout, stderr, warnings, duration, tool calls.
fn text_block(o: &ExecOutcome, shown: &Shown<'_>, summary: &[Value]) -> String {
    let status = if o.timed_out {
        "TIMEOUT"
    } else if o.success {
        "SUCCESS"
    } else {
        "FAILURE"
    };
    let mut text = format!("Status: {status}\n");
    if let Some(e) = &o.error {
        if !o.success {
            text.push_str(&format!("Error: {e}\n"));
        }
    }
    text.push_str(&format!("Stdout:\n{}\n", shown.stdout));
    text.push_str(&format!("Stderr:\n{}\n", shown.stderr));
    if !o.warnings.is_empty() {
        text.push_str(&format!("Warnings:\n{}\n", o.warnings.join("\n")));
    }
    text.push_str(&format!(
        "Duration: {:.2}s\n",
        o.execution_time_ms as f64 / 1000.0
    ));
    text.push_str(&tool_calls_text(summary));
    text
}

/// The `Tool Calls:` section: one line per tool with its counts.
fn tool_calls_text(summary: &[Value]) -> String {
    if summary.is_empty() {
        return "Tool Calls: none\n".into();
    }
    let mut t = "Tool Calls:\n".to_string();
    for s in summary {
        t.push_str(&format!(
            "- {}: {} call(s), {} ok, {} failed, avg {:.1} ms{}\n",
            s["toolName"].as_str().unwrap_or_default(),
            s["callCount"],
            s["successCount"],
            s["errorCount"],
            s["averageDurationMs"].as_f64().unwrap_or_default(),
            s["lastErrorMessage"]
                .as_str()
                .map(|e| format!("; last error: {}", e.lines().next().unwrap_or_default()))
                .unwrap_or_default()
        ));
    }
    t
}

/// `outputSchema` of the execute tools.
pub fn execute_output_schema() -> Map<String, Value> {
    let schema = json!({
        "type": "object",
        "properties": {
            "success": {"type": "boolean"},
            "output": {"type": "string", "description": "stdout of the run (escape sequences removed, other control and bidi characters shown as <U+XXXX>, cut past 25,000 characters)"},
            "error": {"type": "string"},
            "errorType": {"type": "string", "enum": ["validation", "security", "execution", "mcp", "timeout"]},
            "executionTimeMs": {"type": "number"},
            "toolCallsMade": {"type": "array", "items": {"type": "string"}},
            "toolCallSummary": {"type": "array", "items": {"type": "object", "properties": {
                "toolName": {"type": "string"}, "callCount": {"type": "number"},
                "successCount": {"type": "number"}, "errorCount": {"type": "number"},
                "totalDurationMs": {"type": "number"}, "averageDurationMs": {"type": "number"},
                "lastCallDurationMs": {"type": "number"}, "lastCallStatus": {"type": "string"},
                "lastErrorMessage": {"type": "string"}, "lastCalledAt": {"type": "string"}
            }, "required": ["toolName", "callCount", "successCount", "errorCount", "totalDurationMs", "averageDurationMs"]}},
            "stderr": {"type": "string"},
            "runtime": {"type": "string"},
            "exitCode": {"type": ["integer", "null"]},
            "signal": {"type": "integer"},
            "limitHit": {"type": "string"},
            "cpuTimeMs": {"type": "number"},
            "network": {"type": "array", "items": {"type": "object"}, "description": "egress decisions: host, port, allowed, reason"},
            "peakMemoryBytes": {"type": "number"},
            "outputTruncated": {"type": "boolean"},
            "warnings": {"type": "array", "items": {"type": "string"}},
            "sandboxDegraded": {"type": "array", "items": {"type": "string"}},
            "prewarmed": {"type": "boolean", "description": "the run took a sandbox launched ahead of time (each is used once)"}
        },
        "required": ["success", "output", "executionTimeMs"]
    });
    match schema {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// `outputSchema` of `health`.
pub fn health_output_schema() -> Map<String, Value> {
    let schema = json!({
        "type": "object",
        "properties": {
            "healthy": {"type": "boolean"},
            "auditLog": {"type": "object", "properties": {"enabled": {"type": "boolean"}}, "required": ["enabled"]},
            "mcpClients": {"type": "object", "properties": {"connected": {"type": "number"}}, "required": ["connected"]},
            "connectionPool": {"type": "object", "properties": {
                "active": {"type": "number"}, "waiting": {"type": "number"}, "max": {"type": "number"}},
                "required": ["active", "waiting", "max"]},
            "uptime": {"type": "number"},
            "timestamp": {"type": "string"}
        },
        "required": ["healthy", "auditLog", "mcpClients", "connectionPool", "uptime", "timestamp"]
    });
    match schema {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_with_note() {
        let (s, cut) = truncate(&"é".repeat(MAX_OUTPUT_CHARS + 10));
        assert!(cut);
        assert!(
            s.ends_with("[output truncated: 10 of 25010 characters cut]"),
            "{s}"
        );
        assert_eq!(truncate("short"), ("short".to_string(), false));
    }

    #[test]
    fn result_fields() {
        let r = to_result(&ExecOutcome {
            success: false,
            timed_out: true,
            stdout: "a".into(),
            error: Some("Execution timeout after 2.00s".into()),
            error_type: Some(ErrorType::Timeout),
            execution_time_ms: 2001,
            ..Default::default()
        });
        assert_eq!(r.is_error, Some(true));
        let sc = r.structured_content.unwrap();
        assert_eq!(sc["errorType"], "timeout");
        assert_eq!(sc["error"], "Execution timeout after 2.00s");
        let text = r.content[0].as_text().unwrap().text.clone();
        assert!(text.starts_with("Status: TIMEOUT\n"), "{text}");
        for section in ["Stdout:", "Stderr:", "Duration: 2.00s", "Tool Calls:"] {
            assert!(text.contains(section), "{text}");
        }
    }
}
