//! `code-executor-mcp`: an MCP stdio server that runs every execution in the sandbox.
//!
//! The server is a multi-threaded tokio process, so it never configures a sandbox itself:
//! each execution spawns the single-threaded `sandbox-run` launcher (see [`sandbox`]) and
//! feeds the guest code on its stdin. One file per concern:
//! [`config`] (files and environment), [`params`] (tool arguments), [`paths`] (permission
//! resolution), [`runtime`] (which interpreters exist and how to start them), [`pool`]
//! (concurrency and queue), [`rate_limit`], [`audit`], [`patterns`] (dangerous-pattern
//! warnings), [`output`] (result shaping), [`upstream`] and [`bridge`] (the tool bridge),
//! [`warm`] (prewarmed sandboxes) and [`server`] (the MCP handler).

pub mod audit;
pub mod bridge;
pub mod config;
pub mod output;
pub mod params;
pub mod paths;
pub mod patterns;
pub mod pool;
pub mod rate_limit;
pub mod runtime;
pub mod sandbox;
pub mod server;
pub mod tool_names;
pub mod upstream;
pub mod warm;

/// The strings of a JSON array (other items skipped); empty when `v` is not an array.
pub(crate) fn string_array(v: Option<&serde_json::Value>) -> Vec<String> {
    v.and_then(serde_json::Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Name the server reports in `initialize` (the one agents know from code-executor-mcp 1.0.5).
pub const SERVER_NAME: &str = "code-executor-mcp-server";
