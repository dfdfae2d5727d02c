//! The MCP server end to end: the real `code-executor-mcp` binary, the real `sandbox-run`, real
//! deno, node and python3, and real MCP clients (rmcp's, and the Python SDK) over stdio.
//!
//! One test binary with a module per concern, so the server crate is linked once.

#![forbid(unsafe_code)]

mod mcp_support;

#[path = "server/config.rs"]
mod config;
#[path = "server/input.rs"]
mod input;
#[path = "server/interop.rs"]
mod interop;
#[path = "server/lifecycle.rs"]
mod lifecycle;
#[path = "server/pool.rs"]
mod pool;
#[path = "server/prewarm.rs"]
mod prewarm;
#[path = "server/tools.rs"]
mod tools;
