//! Network egress for sandboxed runs.
//!
//! A run has no network by default: its own network namespace with only `lo`. When a run is
//! granted hosts, the sandbox's init runs [`forwarder`] inside the namespace (a TCP listener on
//! 127.0.0.1 that splices to a Unix socket), the workload gets `HTTP_PROXY`/`HTTPS_PROXY`
//! pointing at it, and the host side runs the egress proxy (the `code-executor-egress` crate, its own process), which checks each CONNECT or
//! plain HTTP request against the run's [`pattern::NetPolicy`] *after* resolving the name, and
//! connects to the vetted address itself. [`addr`] holds the address classification both rely
//! on; [`guest`] the runtime preludes that make clients honour the proxy variables.

pub mod addr;
pub mod forwarder;
pub mod guest;
pub mod pattern;

use std::net::IpAddr;

/// One decision about one connection, for the audit log and the run report (serialises as
/// `{"host", "port", "address", "allowed", "reason"}`, `address` a string or null).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConnectionDecision {
    /// The requested host as the client wrote it (normalised; IPv6 in brackets).
    pub host: String,
    /// The requested port.
    pub port: u16,
    /// The address connected to (allowed), or the address that caused the refusal; `None` when
    /// the refusal came before resolution.
    pub address: Option<IpAddr>,
    /// Whether the policy allowed the connection.
    pub allowed: bool,
    /// Why: the pattern that allowed it, or the refusal reason (also sent in the 403 body).
    pub reason: String,
}
