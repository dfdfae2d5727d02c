//! The public API, shaped like `std::process`: a [`Sandbox`] (a policy and what it shares)
//! makes a [`Command`], whose [`Command::status`] runs it to completion and returns a
//! [`RunReport`].
//!
//! The launch forks and creates a user namespace, which is only sound in a single-threaded
//! process: `status()` refuses to run in a threaded one. Threaded programs (our MCP server)
//! spawn the `sandbox-run` binary instead.

use std::collections::BTreeMap;
use std::ffi::{CString, OsStr, OsString};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::cgroup::{CgroupRequest, CgroupStats, CpuQuota, RunCgroup};
use crate::grant::{self, Access, Grant};
use crate::launch::{
    self, egress, landlock::LandlockPlan, mounts, rlimits::RlimitPlan, Ending, Ids, LaunchOutcome,
    LaunchSpec, SetupError,
};
use crate::net::forwarder::proxy_env;
use crate::net::guest::NODE_PROXY_PRELUDE;
use crate::net::pattern::NetPolicy;
use crate::net::ConnectionDecision;
use crate::policy::{Degradation, Policy, RuntimeKind, Size};
use crate::quota;
use crate::report::{CpuShare, Layers, LimitHit, MemoryCap, RunReport, RunStatus};
use crate::runtime::{self, ResolvedCommand};
use crate::Error;

/// A sandbox configuration: a policy, plus paths and objects shared by the caller.
///
/// Cloning shares the granted descriptors (they are reference-counted), not copies of them.
#[derive(Clone, Debug)]
pub struct Sandbox {
    policy: Policy,
    allow_read: Vec<PathBuf>,
    allow_write: Vec<PathBuf>,
    held: Vec<HeldFd>,
}

/// An object the caller opened itself, to show at `inside`.
#[derive(Clone, Debug)]
struct HeldFd {
    fd: Arc<OwnedFd>,
    inside: PathBuf,
    access: Access,
    /// The option it came from, for messages.
    flag: &'static str,
}

impl Sandbox {
    pub fn new(policy: Policy) -> Sandbox {
        Sandbox {
            policy,
            allow_read: Vec::new(),
            allow_write: Vec::new(),
            held: Vec::new(),
        }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Shows a host path read-only at the same path inside. It must exist.
    pub fn allow_read(&mut self, path: impl Into<PathBuf>) -> &mut Self {
        self.allow_read.push(path.into());
        self
    }

    /// Shows a host path read-write at the same path inside. It must exist.
    pub fn allow_write(&mut self, path: impl Into<PathBuf>) -> &mut Self {
        self.allow_write.push(path.into());
        self
    }

    /// Shows the object behind `fd` (a directory or file the caller opened, e.g. with `openat2`
    /// beneath a root it allows) at the absolute path `inside`, with `access`.
    ///
    /// The object is mounted as it is: no path is looked up for it again, so a symlink swapped
    /// in after the caller opened it changes nothing. The same checks as for `allow_read` are
    /// made on the object when the command is prepared (not `/`, `/proc`, `/sys`, `/dev`;
    /// usable by the sandbox's host uid). The descriptor never reaches the workload.
    pub fn grant(&mut self, fd: OwnedFd, inside: impl Into<PathBuf>, access: Access) -> &mut Self {
        self.grant_as(fd, inside, access, "grant")
    }

    /// [`Sandbox::grant`], naming the option the descriptor came from in messages
    /// (`--grant-read-fd`).
    pub fn grant_as(
        &mut self,
        fd: OwnedFd,
        inside: impl Into<PathBuf>,
        access: Access,
        flag: &'static str,
    ) -> &mut Self {
        self.held.push(HeldFd {
            fd: Arc::new(fd),
            inside: inside.into(),
            access,
            flag,
        });
        self
    }

    /// A command to run in this sandbox. `program` is resolved on the host (PATH, shims).
    pub fn command(&self, program: impl Into<String>) -> Command<'_> {
        Command {
            sandbox: self,
            program: program.into(),
            args: Vec::new(),
            env: BTreeMap::new(),
            workdir: None,
        }
    }
}

/// A program to run in a [`Sandbox`].
#[derive(Clone, Debug)]
pub struct Command<'a> {
    sandbox: &'a Sandbox,
    program: String,
    args: Vec<OsString>,
    env: BTreeMap<String, String>,
    workdir: Option<PathBuf>,
}

/// A command resolved against the host and planned, but not yet launched.
pub struct Prepared {
    pub resolved: ResolvedCommand,
    pub spec: LaunchSpec,
    pub layers: Layers,
    pub command_line: Vec<String>,
    pub policy: Policy,
    /// The egress allowlist, when the run may reach the network.
    pub net: Option<NetPolicy>,
}

/// The environment every run starts from: nothing of the host's.
const BASE_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

impl<'a> Command<'a> {
    pub fn arg(&mut self, a: impl AsRef<OsStr>) -> &mut Self {
        self.args.push(a.as_ref().to_os_string());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(&mut self, args: I) -> &mut Self {
        for a in args {
            self.arg(a);
        }
        self
    }

    /// Adds to the workload's (otherwise cleared) environment.
    pub fn env(&mut self, key: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.env.insert(key.into(), value.into());
        self
    }

    /// The working directory inside. Default: the caller's current directory when it is
    /// shared, else /workspace.
    pub fn current_dir(&mut self, dir: impl Into<PathBuf>) -> &mut Self {
        self.workdir = Some(dir.into());
        self
    }

    /// Resolves the program and plans every layer, without launching anything.
    pub fn prepare(&self) -> Result<Prepared, Error> {
        let policy = &self.sandbox.policy;
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        let host_path = std::env::var_os("PATH").unwrap_or_else(|| BASE_PATH.into());
        let resolved = runtime::resolve(&self.program, &host_path, &cwd)?;
        let runtime = policy.runtime.or(resolved.runtime);
        let ids = Ids::for_current_user()?;

        // (paths, access, need, where they come from); order matters, see MountPlan.
        let install = std::slice::from_ref(&resolved.install);
        let sources: [(&[PathBuf], Access, mounts::Need, &'static str); 5] = [
            (
                &policy.filesystem.read_only,
                Access::ReadOnly,
                mounts::Need::Optional,
                "policy filesystem.read_only",
            ),
            (
                &policy.filesystem.read_write,
                Access::ReadWrite,
                mounts::Need::Optional,
                "policy filesystem.read_write",
            ),
            (
                install,
                Access::ReadOnly,
                mounts::Need::Optional,
                "runtime install",
            ),
            (
                &self.sandbox.allow_read,
                Access::ReadOnly,
                mounts::Need::Required,
                "--allow-read",
            ),
            (
                &self.sandbox.allow_write,
                Access::ReadWrite,
                mounts::Need::Required,
                "--allow-write",
            ),
        ];
        let shares: Vec<mounts::Share<'_>> = sources
            .iter()
            .flat_map(|(paths, access, need, flag)| {
                paths.iter().map(move |p| mounts::Share {
                    path: p,
                    access: *access,
                    need: *need,
                    flag,
                })
            })
            .collect();
        let held = self
            .sandbox
            .held
            .iter()
            .map(|h| {
                let fail = |e: grant::GrantError| Error::Usage(format!("{} {e}", h.flag));
                let object = grant::object_from_fd(h.fd.clone()).map_err(fail)?;
                let host_path = grant::path_of(object.fd())
                    .map_err(|e| Error::Usage(format!("{}: {e}", h.flag)))?;
                Ok(mounts::HeldGrant {
                    grant: Grant {
                        object,
                        host_path,
                        inside: h.inside.clone(),
                        access: h.access,
                    },
                    flag: h.flag,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let net = if policy.network.allow.is_empty() {
            None
        } else {
            Some(
                NetPolicy::parse(&policy.network.allow)
                    .map_err(|e| Error::Usage(format!("--allow-net / network.allow: {e}")))?,
            )
        };
        let mut files = etc_files();
        if net.is_some() {
            files.push((
                egress::NODE_PRELOAD_INSIDE.into(),
                NODE_PROXY_PRELUDE.to_string(),
            ));
        }
        let plan = mounts::MountPlan::build(
            &shares,
            held,
            policy.limits.tmp_size.0,
            (ids.inner_uid, ids.inner_gid),
            (ids.host_uid, ids.host_gid),
            files,
        )
        .map_err(|e| Error::Usage(e.to_string()))?;

        let workdir = self.workdir_inside(&plan, &cwd)?;
        let (ro, rw) = plan.landlock_paths();
        let landlock = LandlockPlan {
            read_only: ro,
            read_write: rw,
            devices: mounts::DEVICES
                .iter()
                .map(|d| PathBuf::from("/dev").join(d))
                .collect(),
            connect_port: net.as_ref().map(|_| egress::PORT),
        };

        let mut env = BTreeMap::new();
        let bin = resolved.bin_dir.display().to_string();
        let path = if BASE_PATH.split(':').any(|d| d == bin) {
            BASE_PATH.to_string()
        } else {
            format!("{bin}:{BASE_PATH}")
        };
        env.insert("PATH".to_string(), path);
        env.insert("HOME".into(), mounts::WORKSPACE.into());
        env.insert("TMPDIR".into(), mounts::TMP.into());
        env.extend(policy.env.clone());
        let heap_mib = policy.limits.memory.0 / Size::MIB * 3 / 4;
        if net.is_some() {
            env.extend(
                proxy_env(egress::PORT)
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v)),
            );
        }
        match runtime {
            Some(RuntimeKind::Node) => {
                // node 20 ignores HTTP(S)_PROXY: a preload routes fetch, http and https.
                let preload = if net.is_some() {
                    format!(" --require {}", egress::NODE_PRELOAD_INSIDE)
                } else {
                    String::new()
                };
                env.insert(
                    "NODE_OPTIONS".into(),
                    format!("--max-old-space-size={heap_mib} --v8-pool-size=2{preload}"),
                );
            }
            Some(RuntimeKind::Deno) => {
                env.insert(
                    "DENO_V8_FLAGS".into(),
                    format!("--max-old-space-size={heap_mib}"),
                );
            }
            _ => {}
        }
        env.extend(self.env.clone());

        let to_c = |s: &[u8], what: &str| {
            CString::new(s).map_err(|_| Error::Usage(format!("{what} contains a NUL byte")))
        };
        let mut argv = vec![to_c(self.program.as_bytes(), "the command")?];
        for a in &self.args {
            argv.push(to_c(a.as_bytes(), "an argument")?);
        }
        let envp = env
            .iter()
            .map(|(k, v)| to_c(format!("{k}={v}").as_bytes(), "an environment variable"))
            .collect::<Result<Vec<_>, _>>()?;

        let max_cpus = pinned_cpus();
        if let Some(c) = policy.limits.cpus {
            if c > max_cpus as f64 {
                return Err(Error::Usage(format!(
                    "--cpus / limits.cpus {c}: more than the {max_cpus} CPUs this run may use (runs are pinned to at most {} CPUs, and sandbox-run itself may use {}); ask for at most {max_cpus}",
                    crate::policy::MAX_CPUS,
                    available_cpus()
                )));
            }
        }
        let memory = policy.limits.memory.0;
        let rlimits = RlimitPlan {
            nproc: policy.limits.nproc,
            nofile: policy.limits.open_files,
            fsize: policy.limits.max_file_size.0,
            cpu_secs: policy.limits.cpu_time_secs,
            data: None,
        };
        let landlock_required = !policy.allow_degraded.contains(&Degradation::NoLandlock);
        let spec = LaunchSpec {
            program: resolved.program.clone(),
            argv,
            env: envp,
            workdir,
            mounts: plan,
            landlock,
            landlock_required,
            rlimits,
            seccomp: launch::seccomp::compile().map_err(|e| {
                Error::Setup(launch::SetupError::new(
                    launch::Step::Seccomp,
                    e.to_string(),
                ))
            })?,
            ids,
            hostname: "sandbox".into(),
            timeout: Duration::from_secs_f64(policy.limits.timeout_secs),
            egress: net.is_some(),
            max_cpus,
        };
        let layers = Layers::planned(&spec, policy, memory);
        let mut command_line = vec![self.program.clone()];
        command_line.extend(self.args.iter().map(|a| a.to_string_lossy().into_owned()));
        Ok(Prepared {
            resolved,
            spec,
            layers,
            command_line,
            policy: policy.clone(),
            net,
        })
    }

    fn workdir_inside(&self, plan: &mounts::MountPlan, cwd: &Path) -> Result<PathBuf, Error> {
        let (ro, rw) = plan.landlock_paths();
        let shared: Vec<&PathBuf> = ro
            .iter()
            .chain(rw.iter())
            .filter(|p| !(p.as_path() == Path::new("/etc") || p.as_path() == Path::new("/proc")))
            .collect();
        let visible = |p: &Path| shared.iter().any(|s| p.starts_with(s));
        match &self.workdir {
            Some(w) => {
                if !w.is_absolute() {
                    return Err(Error::Usage(format!(
                        "--workdir {}: must be an absolute path",
                        w.display()
                    )));
                }
                if visible(w) {
                    Ok(w.clone())
                } else {
                    Err(Error::Usage(format!(
                        "--workdir {}: not visible inside the sandbox; share it with --allow-read or --allow-write, or use /workspace or /tmp",
                        w.display()
                    )))
                }
            }
            None => {
                let real = std::fs::canonicalize(cwd).unwrap_or_else(|_| cwd.to_path_buf());
                let user_shared = self
                    .sandbox
                    .allow_read
                    .iter()
                    .chain(self.sandbox.allow_write.iter())
                    .filter_map(|p| std::fs::canonicalize(p).ok())
                    .any(|p| real.starts_with(p));
                Ok(if user_shared {
                    real
                } else {
                    PathBuf::from(mounts::WORKSPACE)
                })
            }
        }
    }

    /// Runs the command to completion in the sandbox. Setup failures are returned inside the
    /// report (status `setup-failed`) when the launch got far enough to have one.
    pub fn status(&self) -> Result<RunReport, Error> {
        let mut prepared = self.prepare()?;
        Ok(run_prepared(&mut prepared))
    }
}

/// Launches a prepared command: cgroup (or rlimit fallback), the launch, the report.
pub fn run_prepared(prepared: &mut Prepared) -> RunReport {
    let policy = &prepared.policy;
    let memory = policy.limits.memory.0;
    let run_id = format!("run-{}-{}", std::process::id(), unique());
    // The init, the reaper and the egress forwarder are tasks of the run as well.
    let tasks = policy.limits.nproc + 3;
    let request = CgroupRequest {
        memory,
        tasks,
        cpu: policy.limits.cpus.map(CpuQuota::from_cpus),
    };
    let cgroup = RunCgroup::create(&run_id, &request);
    let pinned = prepared.spec.max_cpus;
    if let (Some(cpus), Some(held)) = (policy.limits.cpus, cgroup.cpu()) {
        prepared.layers.cpu = match held {
            Ok(cg) => CpuShare::enforced(cpus, cg, pinned),
            Err(why) => CpuShare::not_enforced(cpus, why, pinned),
        };
    }
    let memory_cap = match cgroup.memory() {
        Ok(cg) => MemoryCap::cgroup(cg, memory, tasks),
        Err(reason) => {
            // Per process: V8 reserves ~600 MiB of address space as data at start, so deno
            // gets a floor of 1 GiB; its heap is still capped by --max-old-space-size.
            let floor = if policy.runtime == Some(RuntimeKind::Deno)
                || prepared.resolved.runtime == Some(RuntimeKind::Deno)
            {
                1 << 30
            } else {
                0
            };
            let data = memory.max(floor);
            prepared.spec.rlimits.data = Some(data);
            MemoryCap::rlimit(data, reason.to_string())
        }
    };
    prepared.layers.memory = memory_cap;
    let write_bound = match bound_writes(prepared) {
        Ok(b) => b,
        Err(err) => return prepared.report(Err(err), None, vec![]),
    };
    let proxy = match prepared
        .net
        .is_some()
        .then(|| egress::ProxyProcess::start(&prepared.policy.network.allow))
        .transpose()
    {
        Ok(p) => p,
        Err(e) => {
            let err =
                launch::SetupError::new(launch::Step::Preflight, format!("egress proxy: {e}"));
            let _ = write_bound.restore();
            return prepared.report(Err(err), None, vec![]);
        }
    };
    // The proxy's socket directory is ours (just created), and opened like any grant.
    let pushed = match proxy
        .as_ref()
        .map(|p| grant::open_user_path(p.dir()))
        .transpose()
    {
        Ok(opened) => opened.map(|(object, real)| {
            prepared.spec.mounts.ops.push(mounts::MountOp::Bind {
                object,
                host_path: real,
                target: egress::DIR_INSIDE.into(),
                access: Access::ReadOnly,
            });
        }),
        Err(e) => {
            let err = launch::SetupError::new(
                launch::Step::Preflight,
                format!("egress proxy directory: {e}"),
            );
            return prepared.report(Err(err), None, vec![]);
        }
    };
    let result = launch::run(&prepared.spec, Some(&cgroup));
    if pushed.is_some() {
        prepared.spec.mounts.ops.pop();
    }
    let decisions = proxy.map(egress::ProxyProcess::finish).unwrap_or_default();
    let stats = cgroup.stats();
    drop(cgroup);
    // The run's PID namespace is gone: nothing of it writes any more.
    let degraded = matches!(write_bound, quota::Outcome::Degraded { .. });
    let restored = write_bound.restore();
    let mut report = prepared.report(result, stats, decisions);
    if degraded {
        report
            .degraded
            .push(format!("unbounded-writes: {}", prepared.layers.write_bound));
    }
    if let Err(e) = restored {
        if let Some(layers) = report.layers.as_mut() {
            layers
                .write_bound
                .push_str(&format!("; RESTORE FAILED: {e}"));
        }
        if report.error.is_none() {
            report.error = Some(write_bound_error(&e, "after the run"));
        }
    }
    report
}

/// Bounds what the run may add to its writable host binds (see `quota`), and records how in the
/// report's layers. Refused, with the fix, where no sound bound exists and the policy does not
/// accept `unbounded-writes`.
fn bound_writes(prepared: &mut Prepared) -> Result<quota::Outcome, launch::SetupError> {
    let grants: Vec<PathBuf> = prepared
        .spec
        .mounts
        .ops
        .iter()
        .filter_map(|op| match op {
            // The walk finds the tree by its host path again (after the descriptor was checked):
            // see SECURITY.md, "What is not protected".
            mounts::MountOp::Bind {
                host_path,
                access: Access::ReadWrite,
                ..
            } => Some(host_path.clone()),
            _ => None,
        })
        .collect();
    let limit = quota::WriteLimit::from_bytes(prepared.policy.limits.write_limit.0);
    let allow = prepared
        .policy
        .allow_degraded
        .contains(&Degradation::UnboundedWrites);
    let outcome =
        quota::apply(&grants, limit, allow).map_err(|e| write_bound_error(&e, "before the run"))?;
    prepared.layers.write_bound = outcome.describe(limit);
    Ok(outcome)
}

fn write_bound_error(e: &quota::WriteBoundError, when: &str) -> launch::SetupError {
    let mut err = launch::SetupError::new(launch::Step::Preflight, format!("{e} ({when})"));
    err.fix = e.fix();
    err
}

/// The CPUs sandbox-run itself may run on (its affinity mask); 1 when it cannot be read.
fn available_cpus() -> usize {
    nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0))
        .map(|set| {
            (0..nix::sched::CpuSet::count())
                .filter(|&i| set.is_set(i).unwrap_or(false))
                .count()
        })
        .unwrap_or(1)
        .max(1)
}

/// The CPUs a workload is pinned to: at most [`crate::policy::MAX_CPUS`], never more than
/// sandbox-run has.
fn pinned_cpus() -> usize {
    available_cpus().min(crate::policy::MAX_CPUS)
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    t ^ N.fetch_add(1, Ordering::Relaxed)
}

/// Files of the sandbox's own /etc: who the workload is, and how to resolve localhost.
fn etc_files() -> Vec<(PathBuf, String)> {
    let u = Ids::INNER;
    vec![
        (
            "/etc/passwd".into(),
            format!("root:x:0:0:root:/:/usr/sbin/nologin\nsandbox:x:{u}:{u}:sandbox:/workspace:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/:/usr/sbin/nologin\n"),
        ),
        (
            "/etc/group".into(),
            format!("root:x:0:\nsandbox:x:{u}:\nnogroup:x:65534:\n"),
        ),
        ("/etc/hosts".into(), "127.0.0.1 localhost sandbox\n::1 localhost\n".into()),
        ("/etc/hostname".into(), "sandbox\n".into()),
        ("/etc/nsswitch.conf".into(), "passwd: files\ngroup: files\nhosts: files\n".into()),
    ]
}

/// The command line of a Prepared, for reports.
impl Prepared {
    /// The report of this command's run: what the launch returned, the cgroup's counts and the
    /// proxy's decisions, over the layers planned at prepare time.
    pub fn report(
        &self,
        result: Result<LaunchOutcome, SetupError>,
        stats: Option<CgroupStats>,
        network: Vec<ConnectionDecision>,
    ) -> RunReport {
        let mut layers = self.layers.clone();
        // Setup failed until the launch's outcome says otherwise.
        let mut report = RunReport {
            program: self.resolved.program.display().to_string(),
            policy: self.policy.name.clone(),
            layers: Some(layers.clone()),
            degraded: layers.cpu.degraded_line().into_iter().collect(),
            network,
            ..RunReport::unstarted(self.command_line.clone(), RunStatus::SetupFailed, 125)
        };
        let out = match result {
            Ok(o) => o,
            Err(e) => {
                report.sandbox_exit_code = e.exit_code;
                report.error = Some(e);
                return report;
            }
        };
        match &out.landlock {
            Some(l) => {
                layers.landlock = format!(
                    "enforced {}; tcp rules: {}; scopes: {}",
                    l.enforced, l.tcp, l.scopes
                );
                layers.landlock_abi = Some(l.kernel_abi);
            }
            None => {
                layers.landlock = "NOT ENFORCED: the kernel has no usable Landlock; ran in the accepted degraded mode no-landlock".into();
                report.degraded.push("no-landlock: Landlock unavailable, the filesystem is fenced by the minimal root only".into());
            }
        }
        let (status, exit_code, signal, code) = match out.ending {
            Ending::Exited { code } => (RunStatus::Exited, Some(code), None, code),
            Ending::Signaled { signal } => (RunStatus::Signaled, None, Some(signal), 128 + signal),
            Ending::Timeout => (RunStatus::Timeout, None, Some(libc::SIGKILL), 124),
            Ending::Interrupted { signal } => {
                (RunStatus::Interrupted, None, Some(signal), 128 + signal)
            }
        };
        report.status = status;
        report.exit_code = exit_code;
        report.signal = signal;
        report.sandbox_exit_code = code;
        report.wall_time_ms = out.wall.as_secs_f64() * 1000.0;
        report.cpu_time_ms = out.cpu.as_secs_f64() * 1000.0;
        report.peak_memory_bytes = stats
            .as_ref()
            .and_then(|s| s.peak_memory)
            .unwrap_or(out.max_rss);
        report.cpu_throttling = stats.as_ref().and_then(|s| s.cpu);
        report.limit_hit = LimitHit::from_run(
            &out.ending,
            stats.as_ref(),
            self.policy.runtime.or(self.resolved.runtime),
            out.cpu,
            self.policy.limits.cpu_time_secs,
        );
        report.layers = Some(layers);
        report
    }

    pub fn explain(&self) -> String {
        let mut out = String::new();
        out.push_str("# Effective policy\n");
        out.push_str(&self.policy.to_toml());
        out.push_str("\n# Command\n");
        out.push_str(&format!("program = {:?}\n", self.resolved.program));
        out.push_str(&format!("argv = {:?}\n", self.command_line));
        out.push_str(&format!("workdir = {:?}\n", self.spec.workdir));
        out.push_str("\n# Layers applied at every run, in order\n");
        out.push_str(&self.layers.describe());
        out.push_str("\n# Mounts (the whole visible filesystem)\n");
        out.push_str("/            tmpfs, read-only after setup\n");
        for op in &self.spec.mounts.ops {
            match op {
                mounts::MountOp::Bind {
                    target,
                    access,
                    host_path,
                    ..
                } => {
                    let from = if host_path == target {
                        String::new()
                    } else {
                        format!(" of {}", host_path.display())
                    };
                    out.push_str(&format!(
                        "{:<12} bind{from}, {}\n",
                        target.display(),
                        if access.writable() {
                            "read-write"
                        } else {
                            "read-only"
                        }
                    ))
                }
                mounts::MountOp::Symlink { target, points_to } => out.push_str(&format!(
                    "{:<12} symlink -> {}\n",
                    target.display(),
                    points_to.display()
                )),
                mounts::MountOp::Tmpfs { target, size, .. } => out.push_str(&format!(
                    "{:<12} tmpfs, read-write, {}\n",
                    target.display(),
                    Size(*size)
                )),
                mounts::MountOp::File { target, .. } => {
                    out.push_str(&format!("{:<12} file (generated)\n", target.display()))
                }
            }
        }
        out.push_str("/dev         null zero full random urandom, fd links\n/proc        fresh procfs of the sandbox's PID namespace\n");
        for s in &self.spec.mounts.skipped {
            out.push_str(&format!(
                "# skipped (absent on this host): {}\n",
                s.display()
            ));
        }
        out.push_str("\n# Environment (nothing else is inherited)\n");
        for e in &self.spec.env {
            out.push_str(&format!("{}\n", e.to_string_lossy()));
        }
        out
    }
}
