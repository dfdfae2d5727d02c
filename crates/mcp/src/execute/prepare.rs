//! Everything before a run: rate limit, arguments, runtime, permissions, dangerous patterns.
//! A request that passes becomes a [`PreparedExecution`]; one that does not becomes the
//! result that says why, and nothing is launched.

use std::path::PathBuf;
use std::sync::Arc;

use code_executor::grant::Access;

use serde_json::{Map, Value};

use crate::output::{ErrorType, ExecOutcome};
use crate::params::{self, ExecuteParams, ExecuteTool, JsRuntime};
use crate::paths;
use crate::patterns::{self, Language};
use crate::runtime::{interpreter_args, GuestRuntime};
use crate::sandbox::HostGrant;
use crate::state::ServerState;

/// A request that passed every pre-run check.
pub struct PreparedExecution {
    pub params: ExecuteParams,
    pub runtime: GuestRuntime,
    /// The interpreter, as given to sandbox-run.
    pub command: PathBuf,
    /// The interpreter's arguments.
    pub args: Vec<String>,
    /// Host objects granted read-only, resolved against the configured roots and opened.
    pub read: Vec<HostGrant>,
    /// Host objects granted read-write.
    pub write: Vec<HostGrant>,
    /// Dangerous-pattern warnings (the code runs anyway unless the configuration blocks them).
    pub warnings: Vec<String>,
}

impl PreparedExecution {
    /// A run that asks for no host paths and no network launches exactly like a warm sandbox.
    pub fn fits_a_warm_sandbox(&self) -> bool {
        self.read.is_empty() && self.write.is_empty() && self.params.permissions.net.is_empty()
    }
}

/// Check one request. `Err` is the result to return as is.
#[allow(clippy::result_large_err)]
pub fn prepare(
    s: &ServerState,
    tool: ExecuteTool,
    args: Option<&Map<String, Value>>,
) -> Result<PreparedExecution, ExecOutcome> {
    let typescript = tool == ExecuteTool::Typescript;
    // Every execute request counts against the rate limit, valid or not: it bounds load.
    if let Some(rl) = &s.rate {
        rl.check().map_err(validation)?;
    }
    let p = params::parse_execute(args, &s.cfg, typescript).map_err(|e| validation(e.0))?;
    if p.enable_sampling {
        return Err(validation(
            "sampling is not enabled on this server; call again without enableSampling".into(),
        ));
    }
    let runtime = match tool {
        ExecuteTool::Typescript => GuestRuntime::from(p.js_runtime.unwrap_or(JsRuntime::Deno)),
        ExecuteTool::Python => GuestRuntime::Python,
    };
    let command = installed_command(s, runtime)?;
    let (read, write) = granted_paths(s, &p)?;
    params::check_net(&p.permissions.net, &s.cfg.net_ceiling).map_err(security)?;
    let lang = if typescript {
        Language::JavaScript
    } else {
        Language::Python
    };
    let warnings = patterns::scan(&p.code, lang);
    if s.cfg.block_dangerous_patterns && !warnings.is_empty() {
        let mut o = security(format!(
            "blocked by security.blockDangerousPatterns: {}",
            warnings.join("; ")
        ));
        o.warnings = warnings;
        return Err(o);
    }
    let inside = |g: &[HostGrant]| g.iter().map(|g| g.inside.clone()).collect::<Vec<_>>();
    let args = interpreter_args(runtime, &inside(&read), &inside(&write), &p.permissions);
    Ok(PreparedExecution {
        params: p,
        runtime,
        command,
        args,
        read,
        write,
        warnings,
    })
}

fn validation(m: String) -> ExecOutcome {
    ExecOutcome::rejected(ErrorType::Validation, m)
}

fn security(m: String) -> ExecOutcome {
    ExecOutcome::rejected(ErrorType::Security, m)
}

/// The interpreter's command, or a result saying it is not available and what to do.
#[allow(clippy::result_large_err)]
fn installed_command(s: &ServerState, runtime: GuestRuntime) -> Result<PathBuf, ExecOutcome> {
    let detected = s.runtimes.get(runtime);
    if let Some(command) = &detected.command {
        return Ok(command.clone());
    }
    let hint = match runtime {
        GuestRuntime::Deno if s.runtimes.node.command.is_some() => {
            "; pass runtime: \"node\" to run JavaScript on node, or install deno (DENO_PATH)"
        }
        _ => "",
    };
    let mut o = ExecOutcome::rejected(
        ErrorType::Execution,
        format!(
            "runtime {} is not available: {}{hint}",
            runtime.name(),
            detected.problem.clone().unwrap_or_default()
        ),
    );
    o.runtime = Some(runtime.name());
    Err(o)
}

/// The requested host paths, resolved under the configured roots and opened there once:
/// (read-only, read-write). What the sandbox is given is each descriptor, never the name.
#[allow(clippy::result_large_err)]
fn granted_paths(
    s: &ServerState,
    p: &ExecuteParams,
) -> Result<(Vec<HostGrant>, Vec<HostGrant>), ExecOutcome> {
    // Write roots are also readable; read permission may use either.
    let read_roots: Vec<PathBuf> = s
        .cfg
        .allow_read
        .iter()
        .chain(s.cfg.allow_write.iter())
        .cloned()
        .collect();
    let read = paths::resolve_all("read", &p.permissions.read, &read_roots)
        .map_err(|e| security(e.to_string()))?;
    let write = paths::resolve_all("write", &p.permissions.write, &s.cfg.allow_write)
        .map_err(|e| security(e.to_string()))?;
    // A path granted for writing is readable already; don't mount it twice.
    let read: Vec<PathBuf> = read.into_iter().filter(|r| !write.contains(r)).collect();
    let open = |kind, paths: Vec<PathBuf>, roots: &[PathBuf], access| {
        paths
            .into_iter()
            .map(|inside| {
                let fd = paths::open_granted(kind, &inside, roots)
                    .map_err(|e| security(e.to_string()))?;
                Ok(HostGrant {
                    fd: Arc::new(fd),
                    inside,
                    access,
                })
            })
            .collect::<Result<Vec<_>, ExecOutcome>>()
    };
    Ok((
        open("read", read, &read_roots, Access::ReadOnly)?,
        open("write", write, &s.cfg.allow_write, Access::ReadWrite)?,
    ))
}
