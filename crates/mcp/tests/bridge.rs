//! The tool bridge end to end: guest code in deno, node and python calling real upstream MCP
//! servers (our `examples/test_upstream.rs`, which can crash, hang and fail on request, and
//! `@modelcontextprotocol/server-everything`) through the real server, with every fault.

#![forbid(unsafe_code)]

mod bridge_support;
mod mcp_support;

#[path = "bridge/faults.rs"]
mod faults;
#[path = "bridge/guest.rs"]
mod guest;
#[path = "bridge/http.rs"]
mod http;
#[path = "bridge/isolation.rs"]
mod isolation;
#[path = "bridge/upstream.rs"]
mod upstream;
