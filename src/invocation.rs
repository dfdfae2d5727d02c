//! [`Invocation`]: a `sandbox-run` command line as typed data, for programs that spawn it (the
//! MCP server). Callers set fields instead of writing flags by hand, and a unit test parses
//! every shape back with the binary's own clap types ([`crate::cli`]), so a renamed or
//! retyped flag breaks the build's tests, not a production run.

use std::ffi::OsString;
use std::os::fd::RawFd;
use std::path::PathBuf;

use crate::policy::{Degradation, Size};

/// One run of `sandbox-run`: options, then the command after `--`. `None` and empty fields
/// leave the policy's value in force.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Invocation {
    /// A built-in policy name or a policy file.
    pub policy: Option<String>,
    pub memory: Option<Size>,
    pub nproc: Option<u64>,
    pub cpu_time_secs: Option<u64>,
    pub timeout_secs: Option<f64>,
    /// CPU share in CPUs (Docker's `--cpus`).
    pub cpus: Option<f64>,
    pub max_file_size: Option<Size>,
    pub tmp_size: Option<Size>,
    /// Total the run may add to its writable grants, per file system.
    pub write_limit: Option<Size>,
    pub allow_read: Vec<PathBuf>,
    pub allow_write: Vec<PathBuf>,
    /// Objects the caller opened itself, each an inherited descriptor (3 or above) and where
    /// it appears inside: shown read-only.
    pub grant_read_fd: Vec<(RawFd, PathBuf)>,
    /// Like `grant_read_fd`, writable.
    pub grant_write_fd: Vec<(RawFd, PathBuf)>,
    pub allow_net: Vec<String>,
    pub allow_degraded: Vec<Degradation>,
    /// Added to the workload's environment, in order.
    pub env: Vec<(String, String)>,
    pub workdir: Option<PathBuf>,
    /// Kill the run when the spawning process dies.
    pub die_with_parent: bool,
    /// The descriptor (3 or above, inherited by sandbox-run) that receives the JSON report.
    pub report_fd: Option<RawFd>,
    pub program: OsString,
    pub args: Vec<OsString>,
}

impl Invocation {
    /// An invocation of `program` with every option at the policy's value.
    pub fn new(program: impl Into<OsString>) -> Invocation {
        Invocation {
            program: program.into(),
            ..Invocation::default()
        }
    }

    /// The arguments for sandbox-run (without argv[0]). Every value is written as
    /// `--flag=value`, so a value that starts with `-` is never read as a flag; the command
    /// follows `--`, so nothing in it is read as an option.
    pub fn to_args(&self) -> Vec<OsString> {
        let mut a: Vec<OsString> = Vec::new();
        let mut opt = |flag: &str, value: &dyn AsRef<std::ffi::OsStr>| {
            let mut s = OsString::from(format!("--{flag}="));
            s.push(value.as_ref());
            a.push(s);
        };
        if let Some(p) = &self.policy {
            opt("policy", p);
        }
        if let Some(m) = self.memory {
            opt("memory", &m.to_string());
        }
        if let Some(n) = self.nproc {
            opt("nproc", &n.to_string());
        }
        if let Some(c) = self.cpu_time_secs {
            opt("cpu-time", &c.to_string());
        }
        // f64's Display is the shortest text that parses back to the same value.
        if let Some(t) = self.timeout_secs {
            opt("timeout", &t.to_string());
        }
        if let Some(c) = self.cpus {
            opt("cpus", &c.to_string());
        }
        if let Some(s) = self.max_file_size {
            opt("max-file-size", &s.to_string());
        }
        if let Some(s) = self.tmp_size {
            opt("tmp-size", &s.to_string());
        }
        if let Some(s) = self.write_limit {
            opt("write-limit", &s.to_string());
        }
        for p in &self.allow_read {
            opt("allow-read", p);
        }
        for p in &self.allow_write {
            opt("allow-write", p);
        }
        for (flag, grants) in [
            ("grant-read-fd", &self.grant_read_fd),
            ("grant-write-fd", &self.grant_write_fd),
        ] {
            for (fd, inside) in grants {
                let mut v = OsString::from(format!("{fd}:"));
                v.push(inside);
                opt(flag, &v);
            }
        }
        for n in &self.allow_net {
            opt("allow-net", n);
        }
        for d in &self.allow_degraded {
            opt("allow-degraded", &d.name());
        }
        for (k, v) in &self.env {
            opt("env", &format!("{k}={v}"));
        }
        if let Some(w) = &self.workdir {
            opt("workdir", w);
        }
        if let Some(fd) = self.report_fd {
            opt("report-fd", &fd.to_string());
        }
        if self.die_with_parent {
            a.push("--die-with-parent".into());
        }
        a.push("--".into());
        a.push(self.program.clone());
        a.extend(self.args.iter().cloned());
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, RunArgs};
    use clap::Parser;
    use std::os::unix::ffi::OsStringExt;

    /// Parses `inv`'s arguments with the binary's own parser.
    fn parsed(inv: &Invocation) -> RunArgs {
        let mut argv = vec![OsString::from("sandbox-run")];
        argv.extend(inv.to_args());
        let cli = Cli::try_parse_from(&argv)
            .unwrap_or_else(|e| panic!("sandbox-run refuses {argv:?}: {e}"));
        assert!(cli.sub.is_none());
        cli.run
    }

    /// Every field of `inv` arrives as the same value.
    fn round_trip(inv: &Invocation) {
        let r = parsed(inv);
        let mut command = vec![inv.program.clone()];
        command.extend(inv.args.iter().cloned());
        let want = RunArgs {
            policy: inv.policy.clone(),
            allow_read: inv.allow_read.clone(),
            allow_write: inv.allow_write.clone(),
            grant_read_fd: inv.grant_read_fd.clone(),
            grant_write_fd: inv.grant_write_fd.clone(),
            workdir: inv.workdir.clone(),
            env: inv.env.clone(),
            memory: inv.memory,
            nproc: inv.nproc,
            cpu_time: inv.cpu_time_secs,
            timeout: inv.timeout_secs,
            cpus: inv.cpus,
            max_file_size: inv.max_file_size,
            tmp_size: inv.tmp_size,
            write_limit: inv.write_limit,
            allow_net: inv.allow_net.clone(),
            allow_degraded: inv.allow_degraded.clone(),
            die_with_parent: inv.die_with_parent,
            explain: false,
            report: None,
            report_fd: inv.report_fd,
            command,
        };
        assert_eq!(r, want, "args: {:?}", inv.to_args());
    }

    #[test]
    fn minimal() {
        let inv = Invocation::new("python3");
        assert_eq!(inv.to_args(), vec![OsString::from("--"), "python3".into()]);
        round_trip(&inv);
    }

    #[test]
    fn every_option() {
        round_trip(&Invocation {
            policy: Some("/etc/my policy.toml".into()),
            memory: Some(Size(256 * Size::MIB)),
            nproc: Some(40),
            cpu_time_secs: Some(9),
            timeout_secs: Some(12.345),
            cpus: Some(0.25),
            max_file_size: Some(Size(1234567)),
            tmp_size: Some(Size(64 * Size::MIB)),
            write_limit: Some(Size(3 * 1024 * Size::MIB)),
            allow_read: vec!["/data/a b".into(), "/x=y".into()],
            allow_write: vec!["/out".into()],
            grant_read_fd: vec![(4, "/run/bridge".into()), (5, "/data/x:y".into())],
            grant_write_fd: vec![(6, "/work space/out".into())],
            allow_net: vec!["*.example.com".into(), "10.0.0.1:8080".into()],
            allow_degraded: vec![Degradation::NoLandlock, Degradation::UnboundedWrites],
            env: vec![
                ("A".into(), "1".into()),
                ("B".into(), "x=y=z".into()),
                ("EMPTY".into(), String::new()),
            ],
            workdir: Some("/workspace".into()),
            die_with_parent: true,
            report_fd: Some(9),
            program: "deno".into(),
            args: vec!["run".into(), "-A".into(), "main.ts".into()],
        });
    }

    #[test]
    fn tricky_strings() {
        round_trip(&Invocation {
            // Values that look like flags, or hold `=`, `--`, quotes, spaces and non-ASCII.
            policy: Some("-policy".into()),
            allow_read: vec!["--allow-write".into(), "-".into(), "/tmp/ünï cödé".into()],
            allow_net: vec!["--".into()],
            env: vec![
                ("K".into(), "--explain".into()),
                ("Q".into(), "'\"$(rm -rf /)\"'\n\ttab".into()),
            ],
            workdir: Some("/-w".into()),
            timeout_secs: Some(0.1 + 0.2),
            cpus: Some(1.0 / 3.0),
            program: "--explain".into(),
            args: vec![
                "--".into(),
                "--report-fd=1".into(),
                String::new().into(),
                "-c".into(),
                "print('hi')".into(),
                // Not UTF-8: a command's arguments are bytes.
                OsString::from_vec(vec![0x66, 0xff, 0xfe]),
            ],
            ..Invocation::default()
        });
    }

    #[test]
    fn a_command_that_looks_like_a_subcommand_stays_a_command() {
        round_trip(&Invocation::new("doctor"));
    }
}
