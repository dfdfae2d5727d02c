//! code-executor: a Linux-native process sandbox for untrusted, AI-written code.
//!
//! [`Sandbox`] → [`Command`] → [`RunReport`], like `std::process`. The layers (namespaces, a
//! minimal root, capabilities, no_new_privs, rlimits, cgroups, Landlock, seccomp) are applied in
//! [`launch`], the only module that runs between fork and exec. `unsafe` belongs in `sys` only:
//! small safe wrappers around the system calls, each with the reason it is sound (five files of
//! `launch` still make their calls themselves until they are converted; see below).
#![deny(unsafe_code)]

pub mod cgroup;
pub mod cli;
pub mod grant;
pub mod invocation;
pub mod launch;
pub mod net;
pub mod policy;
pub mod probe;
pub mod quota;
pub mod report;
pub mod runtime;
pub mod sandbox;
/// The crate's only `unsafe` code. Public for `sandbox-run` and the egress proxy, which make
/// the same calls; not an API (hidden from the documentation).
#[doc(hidden)]
#[allow(unsafe_code)]
pub mod sys;

pub use invocation::Invocation;
pub use policy::Policy;
pub use report::RunReport;
pub use sandbox::{Command, Sandbox};

/// Every error of the crate, by layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Policy(#[from] policy::PolicyError),
    #[error(transparent)]
    Runtime(#[from] runtime::RuntimeError),
    #[error(transparent)]
    Setup(#[from] launch::SetupError),
    /// A bad option or path from the caller.
    #[error("{0}")]
    Usage(String),
}

impl Error {
    /// The exit code sandbox-run uses for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Runtime(e) => e.exit_code(),
            Error::Setup(e) => e.exit_code,
            Error::Policy(_) | Error::Usage(_) => 125,
        }
    }
}
