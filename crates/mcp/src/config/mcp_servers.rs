//! The upstream MCP servers: `mcpServers` entries of `.mcp.json` in the working directory,
//! `~/.claude.json`, then `MCP_CONFIG_PATH` (a later file wins per server name).
//!
//! Unlike `.code-executor.json`, a bad file or entry here is reported (in `health` and the
//! log), never fatal: these files are shared with other clients, which may use entries we
//! cannot, and the server is still useful without the tool bridge.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// The entry of our own server in a shared `mcpServers` file: never connected (no self-loop).
pub const SELF_NAME: &str = "code-executor";

/// How one upstream is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// A child process speaking MCP on stdin/stdout.
    Stdio {
        command: String,
        args: Vec<String>,
        env: BTreeMap<String, String>,
    },
    /// A Streamable HTTP endpoint.
    Http {
        url: String,
        headers: BTreeMap<String, String>,
    },
}

/// One configured upstream server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamSpec {
    pub name: String,
    pub transport: Transport,
    /// The file that defined it (the last one, when several did).
    pub origin: PathBuf,
}

/// Read `mcpServers` from `.mcp.json` in `cwd`, `~/.claude.json`, then `mcp_config_path`;
/// a later file wins per server name. Returns the servers and one message per problem
/// (an unreadable file or a bad entry is reported, never fatal).
pub fn load(
    cwd: &Path,
    home: Option<&Path>,
    mcp_config_path: Option<&Path>,
) -> (Vec<UpstreamSpec>, Vec<String>) {
    let mut files = vec![cwd.join(".mcp.json")];
    if let Some(h) = home {
        files.push(h.join(".claude.json"));
    }
    let explicit = mcp_config_path.map(Path::to_path_buf);
    if let Some(p) = &explicit {
        files.push(p.clone());
    }
    let mut merged: BTreeMap<String, UpstreamSpec> = BTreeMap::new();
    let mut problems = Vec::new();
    for file in files {
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound && Some(&file) != explicit.as_ref() =>
            {
                continue
            }
            Err(e) => {
                problems.push(format!("{}: cannot read: {e}", file.display()));
                continue;
            }
        };
        let v: Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => {
                problems.push(format!("{}: not valid JSON: {e}", file.display()));
                continue;
            }
        };
        let Some(servers) = v.get("mcpServers") else {
            continue;
        };
        let Some(servers) = servers.as_object() else {
            problems.push(format!("{}: `mcpServers` is not an object", file.display()));
            continue;
        };
        for (name, entry) in servers {
            if name == SELF_NAME {
                continue;
            }
            match parse_entry(name, entry) {
                Ok(transport) => {
                    merged.insert(
                        name.clone(),
                        UpstreamSpec {
                            name: name.clone(),
                            transport,
                            origin: file.clone(),
                        },
                    );
                }
                Err(e) => problems.push(format!(
                    "{}: mcpServers.{name}: {e}; the server is skipped",
                    file.display()
                )),
            }
        }
    }
    (merged.into_values().collect(), problems)
}

fn parse_entry(name: &str, v: &Value) -> Result<Transport, String> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        || name.contains("__")
    {
        return Err(
            "the name must be made of A-Z a-z 0-9 _ . - without `__` (it becomes mcp__<name>__<tool>)"
                .into(),
        );
    }
    let o = v.as_object().ok_or("the entry is not an object")?;
    let strings = |k: &str| -> Result<BTreeMap<String, String>, String> {
        match o.get(k) {
            None | Some(Value::Null) => Ok(BTreeMap::new()),
            Some(Value::Object(m)) => m
                .iter()
                .map(|(k2, v)| match v {
                    Value::String(s) => Ok((k2.clone(), s.clone())),
                    _ => Err(format!("`{k}.{k2}` must be a string")),
                })
                .collect(),
            Some(_) => Err(format!("`{k}` must be an object of strings")),
        }
    };
    let kind = o.get("type").and_then(Value::as_str).unwrap_or("");
    match (kind, o.get("url"), o.get("command")) {
        ("sse", _, _) => Err(
            "the legacy SSE transport is not supported; use Streamable HTTP (`type: \"http\"`)"
                .into(),
        ),
        ("http" | "streamable-http" | "streamableHttp", Some(Value::String(url)), _)
        | ("", Some(Value::String(url)), None) => Ok(Transport::Http {
            url: url.clone(),
            headers: strings("headers")?,
        }),
        ("" | "stdio", _, Some(Value::String(command))) if !command.is_empty() => {
            let args = match o.get("args") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|x| {
                        x.as_str()
                            .map(str::to_string)
                            .ok_or("`args` must be strings")
                    })
                    .collect::<Result<_, _>>()?,
                Some(_) => return Err("`args` must be an array of strings".into()),
            };
            Ok(Transport::Stdio {
                command: command.clone(),
                args,
                env: strings("env")?,
            })
        }
        _ => {
            Err("expected {command, args?, env?} (stdio) or {type: \"http\", url, headers?}".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_files_last_wins_and_skips_self() {
        let dir = tempfile::tempdir().unwrap();
        let cwd = dir.path().join("proj");
        let home = dir.path().join("home");
        std::fs::create_dir_all(&cwd).unwrap();
        std::fs::create_dir_all(&home).unwrap();
        std::fs::write(
            cwd.join(".mcp.json"),
            r#"{"mcpServers": {"a": {"command": "one"}, "code-executor": {"command": "x"},
                "bad name": {"command": "y"}}}"#,
        )
        .unwrap();
        std::fs::write(
            home.join(".claude.json"),
            r#"{"mcpServers": {"a": {"command": "two", "args": ["-v"], "env": {"K": "V"}},
                "web": {"type": "http", "url": "http://127.0.0.1:9/mcp", "headers": {"Authorization": "Bearer t"}},
                "old": {"type": "sse", "url": "http://x"}}}"#,
        )
        .unwrap();
        let explicit = dir.path().join("mcp.json");
        std::fs::write(&explicit, r#"{"mcpServers": {"b": {"command": "three"}}}"#).unwrap();
        let (specs, problems) = load(&cwd, Some(&home), Some(&explicit));
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "web"]);
        assert_eq!(
            specs[0].transport,
            Transport::Stdio {
                command: "two".into(),
                args: vec!["-v".into()],
                env: [("K".to_string(), "V".to_string())].into()
            }
        );
        assert!(
            matches!(&specs[2].transport, Transport::Http { headers, .. } if headers["Authorization"] == "Bearer t")
        );
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems.iter().any(|p| p.contains("bad name")));
        assert!(problems.iter().any(|p| p.contains("SSE")));

        // A named file that is missing is a problem; the default files may be absent.
        let (specs, problems) = load(&home, None, Some(&dir.path().join("nope.json")));
        assert!(specs.is_empty());
        assert!(problems[0].contains("cannot read"), "{problems:?}");
    }
}
