//! Opt-in audit log: one JSON line per execution. The code itself is never logged, only its
//! SHA-256 and length.
//!
//! A write failure is never swallowed: it is logged on stderr and kept for `health`
//! (`auditLog.lastError`, `auditLog.writeFailures`), and the next execution tries again.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// One audit record, before serialization.
#[derive(Debug, Clone, Default)]
pub struct AuditEntry {
    pub code: String,
    pub executor: &'static str,
    pub runtime: Option<&'static str>,
    pub allowed_tools: Vec<String>,
    pub execution_time_ms: u64,
    pub success: bool,
    pub error: Option<String>,
    pub error_type: Option<&'static str>,
    pub exit_code: Option<i32>,
    pub limit_hit: Option<String>,
    pub warnings: Vec<String>,
    /// Egress decisions of the run; each becomes its own `"type": "network"` line.
    pub network: Vec<Value>,
    /// Tool names the run called (`toolsCalled`).
    pub tools_called: Vec<String>,
    /// Tool calls of the run (see `bridge::audit_lines`); each becomes its own
    /// `"type": "tool_call"` line (with `codeHash` filled in here).
    pub tool_calls: Vec<Value>,
}

#[derive(Default)]
struct State {
    file: Option<File>,
    last_error: Option<String>,
    failures: u64,
    written: u64,
}

/// The audit log sink; disabled when constructed without a path.
pub struct AuditLog {
    path: Option<PathBuf>,
    state: Mutex<State>,
}

/// Audit state for `health`.
#[derive(Debug, Clone)]
pub struct AuditStatus {
    pub enabled: bool,
    pub path: Option<PathBuf>,
    pub last_error: Option<String>,
    pub failures: u64,
    pub written: u64,
}

impl AuditLog {
    pub fn new(path: Option<PathBuf>) -> Self {
        let log = AuditLog {
            path,
            state: Mutex::new(State::default()),
        };
        if let Some(p) = &log.path {
            let mut st = log.lock();
            if let Err(e) = open(p).map(|f| st.file = Some(f)) {
                log.record_failure(&mut st, e);
            }
        }
        log
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record_failure(&self, st: &mut State, e: std::io::Error) {
        let path = self.path.as_deref().unwrap_or(Path::new("?"));
        let msg = format!(
            "audit log {}: write failed: {e}; check the path (AUDIT_LOG_PATH / security.auditLogPath) and disk space",
            path.display()
        );
        tracing::error!("{msg}");
        st.last_error = Some(msg);
        st.failures += 1;
        st.file = None;
    }

    pub fn enabled(&self) -> bool {
        self.path.is_some()
    }

    pub fn status(&self) -> AuditStatus {
        let st = self.lock();
        AuditStatus {
            enabled: self.enabled(),
            path: self.path.clone(),
            last_error: st.last_error.clone(),
            failures: st.failures,
            written: st.written,
        }
    }

    /// Append one line (and flush it, so nothing is lost on a crash or kill).
    pub fn write(&self, entry: &AuditEntry) {
        let Some(path) = &self.path else { return };
        let mut line = to_line(entry);
        let hash = hex::encode(Sha256::digest(entry.code.as_bytes()));
        for decision in &entry.network {
            let v = json!({
                "type": "network",
                "timestamp": rfc3339_now(),
                "codeHash": hash,
                "decision": decision,
            });
            line.push('\n');
            line.push_str(&v.to_string());
        }
        for call in &entry.tool_calls {
            let mut v = call.clone();
            v["codeHash"] = json!(hash);
            line.push('\n');
            line.push_str(&v.to_string());
        }
        let mut st = self.lock();
        if st.file.is_none() {
            match open(path) {
                Ok(f) => st.file = Some(f),
                Err(e) => return self.record_failure(&mut st, e),
            }
        }
        let res = match st.file.as_mut() {
            Some(f) => f
                .write_all(line.as_bytes())
                .and_then(|_| f.write_all(b"\n"))
                .and_then(|_| f.flush()),
            None => Ok(()),
        };
        match res {
            Ok(()) => st.written += 1,
            Err(e) => self.record_failure(&mut st, e),
        }
    }

    /// Flush and sync at shutdown.
    pub fn flush(&self) {
        let mut st = self.lock();
        if let Some(f) = st.file.as_mut() {
            if let Err(e) = f.flush().and_then(|_| f.sync_all()) {
                self.record_failure(&mut st, e);
            }
        }
    }
}

fn open(path: &Path) -> std::io::Result<File> {
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir)?;
        }
    }
    OpenOptions::new().create(true).append(true).open(path)
}

fn to_line(e: &AuditEntry) -> String {
    let v: Value = json!({
        "type": "execution",
        "timestamp": rfc3339_now(),
        "codeHash": hex::encode(Sha256::digest(e.code.as_bytes())),
        "codeLength": e.code.len(),
        "executor": e.executor,
        "runtime": e.runtime,
        "allowedTools": e.allowed_tools,
        "toolsCalled": e.tools_called,
        "executionTimeMs": e.execution_time_ms,
        "success": e.success,
        "error": e.error,
        "errorType": e.error_type,
        "exitCode": e.exit_code,
        "limitHit": e.limit_hit,
        "warnings": e.warnings,
    });
    v.to_string()
}

/// Current UTC time as `YYYY-MM-DDTHH:MM:SS.mmmZ`, without pulling in a date crate.
pub fn rfc3339_now() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        d.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_lines_without_code_and_reports_failures() {
        let mut b = [0u8; 6];
        getrandom::fill(&mut b).unwrap();
        let dir = std::env::temp_dir().join(format!("audittest-{}", hex::encode(b)));
        let path = dir.join("sub/audit.log");
        let log = AuditLog::new(Some(path.clone()));
        log.write(&AuditEntry {
            code: "print('secret')".into(),
            executor: "python",
            success: true,
            ..Default::default()
        });
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("secret"));
        let v: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(v["codeLength"], 15);
        assert_eq!(v["codeHash"].as_str().unwrap().len(), 64);
        assert!(v["timestamp"].as_str().unwrap().ends_with('Z'));
        std::fs::remove_dir_all(&dir).unwrap();

        let bad = AuditLog::new(Some(PathBuf::from("/proc/no-such-dir/audit.log")));
        bad.write(&AuditEntry::default());
        let st = bad.status();
        assert!(st.failures >= 1 && st.last_error.unwrap().contains("write failed"));
    }

    #[test]
    fn timestamp_shape() {
        let t = rfc3339_now();
        assert_eq!(t.len(), 24, "{t}");
        assert!(t.starts_with("20"));
    }
}
