//! What a run did through its bridge: one record per tool call, and the result's
//! `toolCallsMade` and `toolCallSummary` and the audit log's lines made from them.

use serde_json::{json, Value};

/// One tool call of a run, for the result summary and the audit log.
#[derive(Debug, Clone)]
pub struct CallRecord {
    pub tool: String,
    pub called_at: String,
    pub duration_ms: f64,
    pub ok: bool,
    pub error: Option<String>,
    /// Size of the serialized arguments (their values are never kept).
    pub arg_bytes: usize,
}

/// `toolCallsMade`: each tool name once, in the order of first call.
pub fn calls_made(records: &[CallRecord]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in records {
        if !out.contains(&r.tool) {
            out.push(r.tool.clone());
        }
    }
    out
}

/// `toolCallSummary`: one entry per tool, as in code-executor-mcp.
pub fn call_summary(records: &[CallRecord]) -> Vec<Value> {
    calls_made(records)
        .into_iter()
        .map(|tool| {
            let mine: Vec<&CallRecord> = records.iter().filter(|r| r.tool == tool).collect();
            let total: f64 = mine.iter().map(|r| r.duration_ms).sum();
            let ok = mine.iter().filter(|r| r.ok).count();
            let last = mine[mine.len() - 1];
            let mut v = json!({
                "toolName": tool,
                "callCount": mine.len(),
                "successCount": ok,
                "errorCount": mine.len() - ok,
                "totalDurationMs": round2(total),
                "averageDurationMs": round2(total / mine.len() as f64),
                "lastCallDurationMs": round2(last.duration_ms),
                "lastCallStatus": if last.ok { "success" } else { "error" },
                "lastCalledAt": last.called_at,
            });
            if let Some(e) = mine.iter().rev().find_map(|r| r.error.as_ref()) {
                v["lastErrorMessage"] = json!(e);
            }
            v
        })
        .collect()
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// One audit line per call: tool, duration, ok or error, and the argument size (never the
/// argument values, which may hold secrets).
pub fn audit_lines(records: &[CallRecord]) -> Vec<Value> {
    records
        .iter()
        .map(|r| {
            json!({
                "type": "tool_call",
                "timestamp": r.called_at,
                "tool": r.tool,
                "durationMs": round2(r.duration_ms),
                "ok": r.ok,
                "error": r.error,
                "argBytes": r.arg_bytes,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_counts_and_orders() {
        let rec = |tool: &str, ok: bool, ms: f64| CallRecord {
            tool: tool.into(),
            called_at: "t".into(),
            duration_ms: ms,
            ok,
            error: (!ok).then(|| "boom".to_string()),
            arg_bytes: 2,
        };
        let r = vec![
            rec("mcp__a__x", true, 1.0),
            rec("mcp__b__y", false, 3.0),
            rec("mcp__a__x", true, 2.0),
        ];
        assert_eq!(calls_made(&r), ["mcp__a__x", "mcp__b__y"]);
        let s = call_summary(&r);
        assert_eq!(s[0]["callCount"], 2);
        assert_eq!(s[0]["averageDurationMs"], 1.5);
        assert_eq!(s[1]["errorCount"], 1);
        assert_eq!(s[1]["lastErrorMessage"], "boom");
        let lines = audit_lines(&r);
        assert_eq!(lines[1]["ok"], false);
        assert_eq!(lines[1]["argBytes"], 2);
    }
}
