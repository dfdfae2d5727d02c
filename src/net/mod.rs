//! Network egress for sandboxed runs.
//!
//! A run has no network by default: its own network namespace with only `lo`. When a run is
//! granted hosts, the sandbox's init runs [`forwarder`] inside the namespace (a TCP listener on
//! 127.0.0.1 that splices to a Unix socket), the workload gets `HTTP_PROXY`/`HTTPS_PROXY`
//! pointing at it, and the host side runs [`proxy::EgressProxy`], which checks each CONNECT or
//! plain HTTP request against the run's [`pattern::NetPolicy`] *after* resolving the name, and
//! connects to the vetted address itself. [`addr`] holds the address classification both rely
//! on; [`guest`] the runtime preludes that make clients honour the proxy variables.

pub mod addr;
pub mod forwarder;
pub mod guest;
pub mod pattern;
pub mod proxy;
