//! The server's lifecycle: what it sets up at start (runtimes, launcher, its private directory,
//! the upstream pool, prewarmed sandboxes) and how it stops. The MCP handler itself is in
//! `tools`, one execution in `execute`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

use crate::audit::AuditLog;
use crate::bridge::upstream::Upstreams;
use crate::bridge::RunBridge;
use crate::config::Config;
use crate::execute::launch_warm;
use crate::pool::Pool;
use crate::rate_limit::RateLimiter;
use crate::rundir::{self, ServerDir, StartError};
use crate::runtime::{GuestRuntime, GuestRuntimes};
use crate::sandbox;
use crate::state::ServerState;
use crate::warm::{WarmFactory, WarmPool};

/// The MCP server; cheap to clone.
#[derive(Clone)]
pub struct ExecutorServer {
    pub(crate) state: Arc<ServerState>,
}

impl ExecutorServer {
    /// Set the server up from its configuration. Directories left by servers that are gone
    /// are removed first (see [`rundir`]). Inside a tokio runtime, the upstreams start
    /// connecting and the warm pool starts filling in the background, so neither delays the
    /// MCP handshake.
    pub fn new(cfg: Config) -> Result<Self, StartError> {
        let runtimes = GuestRuntimes::detect(&cfg);
        let sandbox_run = sandbox::locate_sandbox_run(cfg.sandbox_run.as_deref());
        let sandbox_problem = (!sandbox_run.is_file()).then(|| {
            format!(
                "sandbox launcher {} not found; install sandbox-run next to code-executor-mcp or set SANDBOX_RUN_PATH",
                sandbox_run.display()
            )
        });
        for gone in rundir::sweep_stale(&cfg.temp_dir) {
            tracing::info!("removed {}, left by a server that is gone", gone.display());
        }
        let dir = ServerDir::create(&cfg.temp_dir)?;
        for p in &cfg.mcp_server_problems {
            tracing::warn!("mcpServers: {p}");
        }
        let upstreams = Arc::new(Upstreams::new(
            cfg.mcp_servers.clone(),
            cfg.mcp_server_problems.clone(),
            cfg.upstream.clone(),
        ));
        let warm_runtimes: Vec<GuestRuntime> =
            [GuestRuntime::Deno, GuestRuntime::Node, GuestRuntime::Python]
                .into_iter()
                .filter(|r| runtimes.get(*r).command.is_some() && sandbox_problem.is_none())
                .collect();
        let state = Arc::new(ServerState {
            pool: Pool::new(cfg.pool.clone()),
            rate: cfg.rate_limit.clone().map(RateLimiter::new),
            audit: AuditLog::new(cfg.audit_log.clone()),
            warm: WarmPool::new(cfg.pool.prewarm, warm_runtimes),
            runtimes,
            sandbox_run,
            sandbox_problem,
            started: Instant::now(),
            shutdown: CancellationToken::new(),
            dir,
            in_flight: Default::default(),
            doctor: OnceCell::new(),
            upstreams,
            cfg,
        });
        if tokio::runtime::Handle::try_current().is_ok() {
            start_background(&state);
        }
        Ok(ExecutorServer { state })
    }

    /// Token that, once cancelled, kills every run in flight and refuses new ones.
    pub fn stop_token(&self) -> CancellationToken {
        self.state.shutdown.clone()
    }

    /// Stop everything: kill running sandboxes, wait (bounded) for their cleanup, remove the
    /// server's directory and flush the audit log.
    pub async fn shutdown(&self) {
        let s = &self.state;
        s.shutdown.cancel();
        let deadline = Instant::now() + Duration::from_secs(5);
        while s.in_flight.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Warm sandboxes are asked to end (sandbox-run cleans up on SIGTERM) and awaited.
        s.warm.drain().await;
        s.dir.remove();
        s.upstreams.shutdown().await;
        s.audit.flush();
    }
}

/// The upstreams' connect-and-retry loop and the warm pool's refill loop, until shutdown.
fn start_background(state: &Arc<ServerState>) {
    state.upstreams.spawn_maintenance(state.shutdown.clone());
    // Weak: the refill loop must not keep the state (and its directory lock) alive.
    let weak = Arc::downgrade(state);
    let factory: WarmFactory<RunBridge> = Arc::new(move |runtime| {
        let s = weak.upgrade().ok_or("the server is gone")?;
        launch_warm(&s, runtime)
    });
    state
        .warm
        .spawn_maintenance(factory, state.shutdown.clone());
}
