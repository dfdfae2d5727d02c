//! The command line of `sandbox-run`, as clap types in the library: the binary parses with
//! them, and `crate::invocation::Invocation` (what callers such as the MCP server build) is
//! tested against them, so the two sides of the seam cannot drift apart.

use std::ffi::OsString;
use std::os::fd::RawFd;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::policy::{Degradation, Size};

#[derive(Parser, Debug)]
#[command(
    name = "sandbox-run",
    version,
    about = "Run a program in a fail-closed Linux sandbox (namespaces, minimal root, Landlock, seccomp)",
    after_help = "Exit codes: the command's own; 128+N killed by signal N; 124 wall-clock timeout; 125 sandbox setup failed; 126 not executable; 127 not found.\nSubcommand: `sandbox-run doctor` checks what this machine supports.",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub sub: Option<Sub>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Subcommand, Debug)]
pub enum Sub {
    /// Check what this kernel supports, then run /bin/true under the full sandbox.
    Doctor {
        /// Print the findings as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// The options of a run. Flags that hand descriptors to the workload (`--grant-read-fd`,
/// `--grant-write-fd`) are added next to `--report-fd`.
#[derive(Args, Debug, Default, PartialEq)]
pub struct RunArgs {
    /// A built-in policy (default, deno, node, python) or a TOML file. Default: from COMMAND.
    #[arg(long, value_name = "NAME|FILE")]
    pub policy: Option<String>,
    /// Show a host path read-only at the same path inside (repeatable).
    #[arg(long, value_name = "PATH")]
    pub allow_read: Vec<PathBuf>,
    /// Show a host path read-write at the same path inside (repeatable).
    #[arg(long, value_name = "PATH")]
    pub allow_write: Vec<PathBuf>,
    /// Show the object behind the inherited descriptor FD read-only at PATH inside
    /// (repeatable). The caller opened it (e.g. with openat2 beneath a root it allows); it is
    /// mounted as it is, never looked up by name, and does not reach the workload.
    #[arg(long, value_name = "FD:PATH", value_parser = crate::grant::parse_fd_spec)]
    pub grant_read_fd: Vec<(RawFd, PathBuf)>,
    /// Like --grant-read-fd, read-write.
    #[arg(long, value_name = "FD:PATH", value_parser = crate::grant::parse_fd_spec)]
    pub grant_write_fd: Vec<(RawFd, PathBuf)>,
    /// Working directory inside (default: the current directory if shared, else /workspace).
    #[arg(long, value_name = "PATH")]
    pub workdir: Option<PathBuf>,
    /// Add KEY=VALUE to the workload's environment (repeatable).
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_env)]
    pub env: Vec<(String, String)>,
    /// Memory cap of the whole run [default: 512M].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub memory: Option<Size>,
    /// Tasks (processes + threads) [default: 25].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub nproc: Option<u64>,
    /// CPU seconds per process.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub cpu_time: Option<u64>,
    /// Wall-clock limit in seconds, fractions allowed [default: 30].
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub timeout: Option<f64>,
    /// CPU share of the whole run, in CPUs, like Docker's --cpus (0.5 = half of one CPU;
    /// at most the CPUs the run is pinned to) [default: no share, only pinning].
    #[arg(long, value_name = "N", value_parser = parse_cpus)]
    pub cpus: Option<f64>,
    /// Largest file the run may write [default: 100M].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_file_size: Option<Size>,
    /// Size of the private /tmp and /workspace [default: 100M].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub tmp_size: Option<Size>,
    /// The total the run may add to its writable grants (--allow-write), per file system, via a
    /// project quota; refused where no sound bound exists [default: 1G].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub write_limit: Option<Size>,
    /// Allow egress to HOST[:PORT] through the host-side proxy (repeatable; `*.example.com`,
    /// `*` = any public host; private addresses only when named explicitly).
    #[arg(long, value_name = "HOST[:PORT]")]
    pub allow_net: Vec<String>,
    /// Accept a named weaker mode when this machine lacks a feature: no-landlock, or
    /// unbounded-writes (writable grants on a file system without project quotas).
    #[arg(long, value_name = "MODE", value_parser = Degradation::parse)]
    pub allow_degraded: Vec<Degradation>,
    /// Kill the run when the process that started sandbox-run dies (like bwrap's option of the
    /// same name). Servers that keep sandboxes waiting use it so none outlives them.
    #[arg(long)]
    pub die_with_parent: bool,
    /// Print the effective policy and every layer, then exit.
    #[arg(long)]
    pub explain: bool,
    /// Write a JSON run report to FILE (or - for stdout, after the run).
    #[arg(long, value_name = "FILE|-")]
    pub report: Option<String>,
    /// Write the JSON run report to descriptor FD, inherited from the caller (3 or above: the
    /// workload shares 0-2). Written for every outcome, usage errors included; the workload
    /// never sees the descriptor.
    #[arg(long, value_name = "FD", value_parser = parse_report_fd)]
    pub report_fd: Option<RawFd>,
    /// The command and its arguments.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

pub fn parse_env(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not KEY=VALUE"))?;
    if k.is_empty() || k.contains('\0') || v.contains('\0') {
        return Err(format!(
            "{s:?}: the key must be non-empty and neither part may hold a NUL byte"
        ));
    }
    Ok((k.to_string(), v.to_string()))
}

pub fn parse_size(s: &str) -> Result<Size, String> {
    Size::parse(s)
}

pub fn parse_secs(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if v.is_finite() && v > 0.0 && v <= 86_400.0 {
        Ok(v)
    } else {
        Err(format!("{s} is outside (0, 86400] seconds"))
    }
}

/// `--cpus`: a positive number of CPUs; clap names the option and the value in the error.
pub fn parse_cpus(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of CPUs: write e.g. 0.5 or 1"))?;
    crate::policy::check_cpus(v)
}

/// `--report-fd`: 0-2 are the workload's own stdio, so a report there could be forged by it.
pub fn parse_report_fd(s: &str) -> Result<RawFd, String> {
    let fd: RawFd = s
        .parse()
        .map_err(|_| format!("{s:?} is not a descriptor number"))?;
    if fd < 3 {
        return Err(format!(
            "{fd} is the workload's own stdin, stdout or stderr, where it could forge a report: pass a descriptor of 3 or above"
        ));
    }
    Ok(fd)
}

/// The `--report-fd` of an argument list clap refused, found the way clap would have (before
/// `--`, `--report-fd N` or `--report-fd=N`), so that even a usage error reaches the caller's
/// report channel. None when absent or itself malformed.
pub fn report_fd_in(argv: &[OsString]) -> Option<RawFd> {
    let mut it = argv.iter().skip(1).map(|a| a.to_str());
    let mut found = None;
    while let Some(arg) = it.next() {
        match arg {
            Some("--") => break,
            Some("--report-fd") => {
                found = it.next().flatten().and_then(|v| parse_report_fd(v).ok())
            }
            Some(a) => {
                if let Some(v) = a.strip_prefix("--report-fd=") {
                    found = parse_report_fd(v).ok();
                }
            }
            None => {}
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn cpus_values() {
        assert_eq!(parse_cpus("0.5"), Ok(0.5));
        assert_eq!(parse_cpus("1"), Ok(1.0));
        for bad in ["0", "-1", "x", "", "nan", "inf", "3", "0.001"] {
            assert!(parse_cpus(bad).is_err(), "{bad:?}");
        }
        let e = Cli::try_parse_from(["sandbox-run", "--cpus", "x", "--", "true"]).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("--cpus") && text.contains('x'), "{text}");
    }

    #[test]
    fn report_fd_is_found_in_refused_argv() {
        let argv = os(&[
            "sandbox-run",
            "--cpus",
            "0",
            "--report-fd",
            "7",
            "--",
            "true",
        ]);
        assert!(Cli::try_parse_from(&argv).is_err());
        assert_eq!(report_fd_in(&argv), Some(7));
        assert_eq!(report_fd_in(&os(&["s", "--report-fd=9", "--bad"])), Some(9));
        // After `--` it belongs to the command.
        assert_eq!(
            report_fd_in(&os(&["s", "--", "x", "--report-fd", "7"])),
            None
        );
        // Never the workload's stdio.
        assert_eq!(report_fd_in(&os(&["s", "--report-fd", "1"])), None);
        assert!(Cli::try_parse_from(["s", "--report-fd", "2", "--", "true"]).is_err());
    }
}
