//! What every request of one server process shares.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

use crate::audit::AuditLog;
use crate::bridge::upstream::Upstreams;
use crate::bridge::RunBridge;
use crate::config::Config;
use crate::pool::Pool;
use crate::rate_limit::RateLimiter;
use crate::rundir::ServerDir;
use crate::runtime::GuestRuntimes;
use crate::warm::WarmPool;

/// State shared by all requests of one server process.
pub struct ServerState {
    pub cfg: Config,
    pub runtimes: GuestRuntimes,
    pub sandbox_run: PathBuf,
    /// Why executions cannot run at all (the launcher is missing), for `health` and the tool
    /// list.
    pub sandbox_problem: Option<String>,
    pub pool: Pool,
    pub rate: Option<RateLimiter>,
    pub audit: AuditLog,
    pub started: Instant,
    /// Cancelled at shutdown: every run in flight kills its sandbox.
    pub shutdown: CancellationToken,
    /// Private host directory of this server process; one subdirectory per run.
    pub dir: ServerDir,
    /// Runs between their start and the end of their cleanup, so shutdown can wait for them.
    pub in_flight: AtomicUsize,
    /// `sandbox-run doctor`'s answer, asked once, by the first `health`.
    pub doctor: OnceCell<Value>,
    /// Upstream MCP servers, reached by guest code through each run's tool bridge.
    pub upstreams: Arc<Upstreams>,
    /// Sandboxes launched ahead of time, each with its own bridge (see `warm`).
    pub warm: Arc<WarmPool<RunBridge>>,
}

impl ServerState {
    /// Counts a run as in flight until the returned guard is dropped.
    pub fn enter_run(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(&self.in_flight)
    }
}

/// Counts a run as in flight until dropped, so shutdown can wait for cleanup.
pub struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
