//! Landlock: the filesystem (and TCP) fence on top of the minimal root.
//!
//! The minimal root already hides the host tree; Landlock is the second fence, so that a mistake
//! in the mount plan (or a future kernel feature of mounts) does not widen what the workload may
//! touch. We ask for the newest ABI this crate knows, best effort, over a hard minimum of ABI 1,
//! and record exactly what the kernel enforced. "Not enforced" is an error unless the policy
//! accepted the named weaker mode `no-landlock`.

use std::path::PathBuf;

use landlock::{
    Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, NetPort, PathBeneath, PathFd,
    Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope, ABI,
};
use serde::{Deserialize, Serialize};

/// What the workload may do where, in paths of the new root.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LandlockPlan {
    /// Read and execute beneath these.
    pub read_only: Vec<PathBuf>,
    /// Everything (but creating device nodes) beneath these.
    pub read_write: Vec<PathBuf>,
    /// Device files: read and write the file, nothing else.
    pub devices: Vec<PathBuf>,
    /// The one TCP port the workload may connect to (the egress bridge), if any.
    pub connect_port: Option<u16>,
}

/// What the kernel enforced, for the run report.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LandlockOutcome {
    pub kernel_abi: i32,
    pub enforced: String,
    pub filesystem: bool,
    pub tcp: bool,
    pub scopes: bool,
}

/// The kernel's Landlock ABI version: 0 when absent, negative errno when disabled.
pub fn kernel_abi() -> i32 {
    match crate::sys::landlock_abi_version() {
        Ok(v) => v,
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => -libc::EOPNOTSUPP,
        Err(_) => 0,
    }
}

/// Why Landlock could not be applied: the kernel lacks it (a degraded mode may accept that), or
/// something else failed (never accepted).
#[derive(Debug)]
pub enum ApplyError {
    Unsupported(String),
    Failed(String),
}

/// Applies the plan to this process (the workload, after no_new_privs).
pub fn apply(plan: &LandlockPlan) -> Result<LandlockOutcome, ApplyError> {
    apply_inner(plan)
        .map_err(ApplyError::Failed)?
        .map_err(ApplyError::Unsupported)
}

fn apply_inner(plan: &LandlockPlan) -> Result<Result<LandlockOutcome, String>, String> {
    let kabi = kernel_abi();
    if kabi < 1 {
        return Ok(Err(if kabi < 0 {
            "Landlock is built into this kernel but not enabled (add `landlock` to the lsm= boot parameter)".into()
        } else {
            "this kernel has no Landlock (needs Linux 5.13+ with CONFIG_SECURITY_LANDLOCK)".into()
        }));
    }
    let abi = ABI::V7;
    let fs_all = AccessFs::from_all(abi);
    let read = AccessFs::from_read(abi);
    let rw = fs_all & !(AccessFs::MakeChar | AccessFs::MakeBlock);
    let dev =
        (AccessFs::ReadFile | AccessFs::WriteFile | AccessFs::IoctlDev) & AccessFs::from_file(abi);
    let e = |what: &str, err: &dyn std::fmt::Display| format!("{what}: {err}");

    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(fs_all)
        .map_err(|x| e("handle filesystem access", &x))?;
    let tcp = kabi >= 4;
    if tcp {
        ruleset = ruleset
            .handle_access(AccessNet::BindTcp | AccessNet::ConnectTcp)
            .map_err(|x| e("handle TCP access", &x))?;
    }
    let scopes = kabi >= 6;
    if scopes {
        ruleset = ruleset
            .scope(Scope::AbstractUnixSocket | Scope::Signal)
            .map_err(|x| e("scope signals and abstract sockets", &x))?;
    }
    let mut created = ruleset.create().map_err(|x| e("create ruleset", &x))?;
    let mut rules: Vec<(PathBuf, BitFlags<AccessFs>)> = vec![
        // Listing directories anywhere is harmless and many runtimes scan their own trees.
        (PathBuf::from("/"), AccessFs::ReadDir.into()),
    ];
    rules.extend(plan.read_only.iter().map(|p| (p.clone(), read)));
    rules.extend(plan.read_write.iter().map(|p| (p.clone(), rw)));
    rules.extend(plan.devices.iter().map(|p| (p.clone(), dev)));
    for (path, access) in rules {
        let fd = PathFd::new(&path).map_err(|x| e(&format!("open {}", path.display()), &x))?;
        let is_dir = std::fs::metadata(&path)
            .map(|m| m.is_dir())
            .unwrap_or(false);
        let access = if is_dir {
            access
        } else {
            access & AccessFs::from_file(abi)
        };
        created = created
            .add_rule(PathBeneath::new(fd, access))
            .map_err(|x| e(&format!("rule for {}", path.display()), &x))?;
    }
    if let (true, Some(port)) = (tcp, plan.connect_port) {
        created = created
            .add_rule(NetPort::new(port, AccessNet::ConnectTcp))
            .map_err(|x| e("TCP rule for the egress bridge", &x))?;
    }
    let status = created
        .restrict_self()
        .map_err(|x| e("restrict_self", &x))?;
    let enforced = match status.ruleset {
        RulesetStatus::FullyEnforced => "fully",
        RulesetStatus::PartiallyEnforced => "partially",
        RulesetStatus::NotEnforced => {
            return Err("the kernel accepted the ruleset but enforces none of it".into())
        }
    };
    Ok(Ok(LandlockOutcome {
        kernel_abi: kabi,
        enforced: format!("{enforced} (kernel ABI {kabi}, requested ABI 7)"),
        filesystem: true,
        tcp,
        scopes,
    }))
}
