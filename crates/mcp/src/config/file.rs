//! The `.code-executor.json` file format: its key tree, the check of one file against it
//! (with `"env:VAR"` substitution), and the merge of several files.
//!
//! Files are validated against a fixed key tree rather than through serde so that an error can
//! name the file and the full dotted key (`security.rateLimit.maxRequest`), which serde's
//! `deny_unknown_fields` cannot do.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::error::ConfigError;

/// Expected type of a configuration key; the tree of these is the whole file format.
#[derive(Clone, Copy)]
enum KeyKind {
    Bool,
    UInt,
    /// Any JSON number (fractions allowed).
    Num,
    Str,
    StrList,
    Object(&'static [(&'static str, KeyKind)]),
}

const RATE_LIMIT_KEYS: &[(&str, KeyKind)] = &[
    ("enabled", KeyKind::Bool),
    ("windowMs", KeyKind::UInt),
    ("maxRequests", KeyKind::UInt),
];
const SECURITY_KEYS: &[(&str, KeyKind)] = &[
    ("defaultTimeoutMs", KeyKind::UInt),
    ("maxTimeoutMs", KeyKind::UInt),
    ("maxCodeSize", KeyKind::UInt),
    ("allowRead", KeyKind::StrList),
    ("allowWrite", KeyKind::StrList),
    ("allowNetwork", KeyKind::StrList),
    ("enableAuditLog", KeyKind::Bool),
    ("auditLogPath", KeyKind::Str),
    ("rateLimit", KeyKind::Object(RATE_LIMIT_KEYS)),
    ("allowedTools", KeyKind::StrList),
    ("blockDangerousPatterns", KeyKind::Bool),
];
const TS_KEYS: &[(&str, KeyKind)] = &[
    ("enabled", KeyKind::Bool),
    ("denoPath", KeyKind::Str),
    ("nodePath", KeyKind::Str),
];
const PY_KEYS: &[(&str, KeyKind)] = &[("enabled", KeyKind::Bool), ("pythonPath", KeyKind::Str)];
const EXECUTOR_KEYS: &[(&str, KeyKind)] = &[
    ("typescript", KeyKind::Object(TS_KEYS)),
    ("python", KeyKind::Object(PY_KEYS)),
];
const POOL_KEYS: &[(&str, KeyKind)] = &[
    ("maxConcurrent", KeyKind::UInt),
    ("queueSize", KeyKind::UInt),
    ("queueTimeoutMs", KeyKind::UInt),
    ("prewarm", KeyKind::UInt),
];
const SANDBOX_KEYS: &[(&str, KeyKind)] = &[
    ("cpus", KeyKind::Num),
    ("writeLimit", KeyKind::Str),
    ("allowDegraded", KeyKind::StrList),
];
const ROOT_KEYS: &[(&str, KeyKind)] = &[
    ("$schema", KeyKind::Str),
    ("security", KeyKind::Object(SECURITY_KEYS)),
    ("executors", KeyKind::Object(EXECUTOR_KEYS)),
    ("pool", KeyKind::Object(POOL_KEYS)),
    ("sandbox", KeyKind::Object(SANDBOX_KEYS)),
];

/// Looks up an environment variable for an `"env:VAR"` value (empty counts as unset).
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<&'a str>;

/// Read, check and merge `files` in order (a later file wins per key).
pub fn read_merged(
    files: &[PathBuf],
    env: EnvLookup<'_>,
) -> Result<Map<String, Value>, ConfigError> {
    let mut merged = Map::new();
    for file in files {
        let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
            file: file.clone(),
            source,
        })?;
        let mut value: Value = serde_json::from_str(&text).map_err(|e| ConfigError::Syntax {
            file: file.clone(),
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
        let at = Place { file, env };
        at.check("", &mut value, &KeyKind::Object(ROOT_KEYS))?;
        if let Value::Object(obj) = value {
            merge(&mut merged, obj);
        }
    }
    Ok(merged)
}

/// The file being checked and where its `"env:VAR"` values come from.
struct Place<'f, 'e> {
    file: &'f Path,
    env: EnvLookup<'e>,
}

impl Place<'_, '_> {
    /// Walk one file's JSON against the key tree: reject unknown keys and wrong types, and
    /// replace `"env:VAR"` strings by the variable's value (converted to the key's type).
    fn check(&self, key: &str, value: &mut Value, kind: &KeyKind) -> Result<(), ConfigError> {
        // Substitute env references first, so the type check sees the final value.
        self.substitute_env(key, value, kind)?;
        let wrong = |expected: &'static str, v: &Value| ConfigError::WrongType {
            file: self.file.to_path_buf(),
            key: key.to_string(),
            expected,
            found: type_name(v),
        };
        match kind {
            KeyKind::Bool if !value.is_boolean() => Err(wrong("a boolean", value)),
            KeyKind::UInt if !value.is_u64() => Err(wrong("a non-negative integer", value)),
            KeyKind::Num if !value.is_number() => Err(wrong("a number", value)),
            KeyKind::Str if !value.is_string() => Err(wrong("a string", value)),
            KeyKind::StrList => {
                let Value::Array(items) = value else {
                    return Err(wrong("an array of strings", value));
                };
                for (i, item) in items.iter_mut().enumerate() {
                    self.check(&format!("{key}[{i}]"), item, &KeyKind::Str)?;
                }
                Ok(())
            }
            KeyKind::Object(children) => {
                let Value::Object(obj) = value else {
                    return Err(wrong("an object", value));
                };
                for (k, v) in obj.iter_mut() {
                    let full = if key.is_empty() {
                        k.clone()
                    } else {
                        format!("{key}.{k}")
                    };
                    let Some((_, child)) = children.iter().find(|(name, _)| name == k) else {
                        return Err(ConfigError::UnknownKey {
                            file: self.file.to_path_buf(),
                            key: full,
                            known: children
                                .iter()
                                .map(|(n, _)| *n)
                                .collect::<Vec<_>>()
                                .join(", "),
                        });
                    };
                    self.check(&full, v, child)?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// `"env:VAR"` becomes VAR's value, converted to the key's type where it parses (a value
    /// that does not is left a string, so the type check names the key and the value).
    fn substitute_env(
        &self,
        key: &str,
        value: &mut Value,
        kind: &KeyKind,
    ) -> Result<(), ConfigError> {
        let Value::String(s) = value else {
            return Ok(());
        };
        let Some(var) = s.strip_prefix("env:") else {
            return Ok(());
        };
        let raw = (self.env)(var).ok_or_else(|| ConfigError::MissingEnv {
            file: self.file.to_path_buf(),
            key: key.to_string(),
            var: var.to_string(),
        })?;
        *value = match kind {
            KeyKind::Bool => match raw {
                "true" | "1" => Value::Bool(true),
                "false" | "0" => Value::Bool(false),
                _ => Value::String(raw.to_string()),
            },
            KeyKind::UInt => raw
                .parse::<u64>()
                .map(Value::from)
                .unwrap_or_else(|_| Value::String(raw.to_string())),
            KeyKind::Num => raw
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
                .unwrap_or_else(|| Value::String(raw.to_string())),
            KeyKind::StrList => Value::Array(
                raw.split(':')
                    .filter(|p| !p.is_empty())
                    .map(|p| Value::String(p.to_string()))
                    .collect(),
            ),
            _ => Value::String(raw.to_string()),
        };
        Ok(())
    }
}

fn type_name(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) => format!("string {s:?}"),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

/// Deep merge: objects merge key by key, anything else is replaced by the later value.
fn merge(into: &mut Map<String, Value>, from: Map<String, Value>) {
    for (k, v) in from {
        match (into.get_mut(&k), v) {
            (Some(Value::Object(a)), Value::Object(b)) => merge(a, b),
            (_, v) => {
                into.insert(k, v);
            }
        }
    }
}
