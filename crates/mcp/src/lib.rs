//! `code-executor-mcp`: an MCP stdio server that runs every execution in the sandbox.
//!
//! The server is a multi-threaded tokio process, so it never configures a sandbox itself:
//! each execution spawns the single-threaded `sandbox-run` launcher (see [`sandbox`]) and
//! feeds the guest code on its stdin.
//!
//! A map, in the order a request meets the code:
//!
//! | module | concern |
//! |---|---|
//! | [`config`] | every setting, read once at start: files, environment, `mcpServers` |
//! | [`server`] | start (stale directories swept, upstreams, warm pool) and shutdown |
//! | [`tools`] | the MCP handler: tool list, schemas, dispatch |
//! | [`health`] | the `health` tool |
//! | [`execute`] | one execution: [`execute::prepare`] checks it, [`execute::outcome`] reads its end |
//! | [`params`], [`paths`], [`patterns`], [`tool_names`] | argument parsing, path grants, dangerous-pattern warnings, tool allowlists |
//! | [`pool`], [`rate_limit`] | concurrency, queue and rate limits |
//! | [`progress`] | progress notifications, client cancellation, shutdown during a run |
//! | [`sandbox`] | the launcher: one run of `sandbox-run` |
//! | [`warm`] | sandboxes launched ahead of time |
//! | [`runtime`] | which interpreters exist and how each runs the guest code |
//! | [`rundir`] | the server's private directory, run directories, stale-directory sweep |
//! | [`bridge`] | the tool bridge: per-run socket ([`bridge`]), its methods, the upstream client pool ([`bridge::upstream`]), the guest prelude |
//! | [`output`], [`text`] | the result's shape; cleaning of every text a client sees |
//! | [`audit`] | the audit log |
//! | [`state`] | what all requests share |
//! | `sys` | the only `unsafe` code |
//!
//! Dependencies go one way, down this list roughly: nothing imports [`tools`] or [`server`]
//! but `main`, and [`config`] imports nothing of the server but [`tool_names`].
#![deny(unsafe_code)]

pub mod audit;
pub mod bridge;
pub mod config;
pub mod execute;
pub mod health;
mod json;
pub mod output;
pub mod params;
pub mod paths;
pub mod patterns;
pub mod pool;
pub mod progress;
pub mod rate_limit;
pub mod rundir;
pub mod runtime;
pub mod sandbox;
pub mod server;
pub mod state;
mod sys;
pub mod text;
pub mod tool_names;
pub mod tools;
pub mod warm;

/// Name the server reports in `initialize` (the one agents know from code-executor-mcp 1.0.5).
pub const SERVER_NAME: &str = "code-executor-mcp-server";
