//! `sandbox-run [OPTIONS] -- COMMAND [ARGS...]`: run a program in the sandbox.
//!
//! Single-threaded on purpose: this process is the launch helper (H) itself.

use std::io::Write;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use std::os::fd::RawFd;

use code_executor::grant::{self, Access};
use code_executor::policy::{Degradation, RuntimeKind, Size};
use code_executor::probe::{self, Level};
use code_executor::{Error, Policy, Sandbox};

#[derive(Parser, Debug)]
#[command(
    name = "sandbox-run",
    version,
    about = "Run a program in a fail-closed Linux sandbox (namespaces, minimal root, Landlock, seccomp)",
    after_help = "Exit codes: the command's own; 128+N killed by signal N; 124 wall-clock timeout; 125 sandbox setup failed; 126 not executable; 127 not found.\nSubcommand: `sandbox-run doctor` checks what this machine supports.",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    sub: Option<Sub>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand, Debug)]
enum Sub {
    /// Check what this kernel supports, then run /bin/true under the full sandbox.
    Doctor {
        /// Print the findings as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
struct RunArgs {
    /// A built-in policy (default, deno, node, python) or a TOML file. Default: from COMMAND.
    #[arg(long, value_name = "NAME|FILE")]
    policy: Option<String>,
    /// Show a host path read-only at the same path inside (repeatable).
    #[arg(long, value_name = "PATH")]
    allow_read: Vec<std::path::PathBuf>,
    /// Show a host path read-write at the same path inside (repeatable).
    #[arg(long, value_name = "PATH")]
    allow_write: Vec<std::path::PathBuf>,
    /// Show the object behind the inherited descriptor FD read-only at PATH inside
    /// (repeatable). The caller opened it (e.g. with openat2 beneath a root it allows); it is
    /// mounted as it is, never looked up by name, and does not reach the workload.
    #[arg(long, value_name = "FD:PATH", value_parser = grant::parse_fd_spec)]
    grant_read_fd: Vec<(RawFd, std::path::PathBuf)>,
    /// Like --grant-read-fd, read-write.
    #[arg(long, value_name = "FD:PATH", value_parser = grant::parse_fd_spec)]
    grant_write_fd: Vec<(RawFd, std::path::PathBuf)>,
    /// Working directory inside (default: the current directory if shared, else /workspace).
    #[arg(long, value_name = "PATH")]
    workdir: Option<std::path::PathBuf>,
    /// Add KEY=VALUE to the workload's environment (repeatable).
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_env)]
    env: Vec<(String, String)>,
    /// Memory cap of the whole run [default: 512M].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    memory: Option<Size>,
    /// Tasks (processes + threads) [default: 25].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=4096))]
    nproc: Option<u64>,
    /// CPU seconds per process.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    cpu_time: Option<u64>,
    /// Wall-clock limit in seconds, fractions allowed [default: 30].
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    timeout: Option<f64>,
    /// Largest file the run may write [default: 100M].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    max_file_size: Option<Size>,
    /// Size of the private /tmp and /workspace [default: 100M].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    tmp_size: Option<Size>,
    /// Allow egress to HOST[:PORT] through the host-side proxy (repeatable; `*.example.com`,
    /// `*` = any public host; private addresses only when named explicitly).
    #[arg(long, value_name = "HOST[:PORT]")]
    allow_net: Vec<String>,
    /// Accept a named weaker mode when this machine lacks a feature (only: no-landlock).
    #[arg(long, value_name = "MODE", value_parser = Degradation::parse)]
    allow_degraded: Vec<Degradation>,
    /// Kill the run when the process that started sandbox-run dies (like bwrap's option of the
    /// same name). Servers that keep sandboxes waiting use it so none outlives them.
    #[arg(long)]
    die_with_parent: bool,
    /// Print the effective policy and every layer, then exit.
    #[arg(long)]
    explain: bool,
    /// Write a JSON run report to FILE (or - for stdout, after the run).
    #[arg(long, value_name = "FILE|-")]
    report: Option<String>,
    /// The command and its arguments.
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<String>,
}

fn parse_env(s: &str) -> Result<(String, String), String> {
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

fn parse_size(s: &str) -> Result<Size, String> {
    Size::parse(s)
}

fn parse_secs(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if v.is_finite() && v > 0.0 && v <= 86_400.0 {
        Ok(v)
    } else {
        Err(format!("{s} is outside (0, 86400] seconds"))
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.sub {
        Some(Sub::Doctor { json }) => doctor(json),
        None => run(cli.run),
    };
    let _ = std::io::stdout().flush();
    ExitCode::from(code.clamp(0, 255) as u8)
}

fn fail(e: &Error) -> i32 {
    eprintln!("sandbox-run: {e}");
    e.exit_code()
}

fn build(args: &RunArgs) -> Result<(Sandbox, Vec<String>), Error> {
    let Some(cmd) = args.command.first() else {
        return Err(Error::Usage(
            "no command given: write it after `--`, e.g. sandbox-run -- python3 -c 'print(1)'"
                .into(),
        ));
    };
    let mut policy = match &args.policy {
        Some(p) => Policy::load(p)?,
        None => {
            let name = RuntimeKind::from_command(cmd)
                .map(RuntimeKind::policy_name)
                .unwrap_or("default");
            Policy::load(name)?
        }
    };
    let l = &mut policy.limits;
    if let Some(m) = args.memory {
        l.memory = m;
    }
    if let Some(n) = args.nproc {
        l.nproc = n;
    }
    if args.cpu_time.is_some() {
        l.cpu_time_secs = args.cpu_time;
    }
    if let Some(t) = args.timeout {
        l.timeout_secs = t;
    }
    if let Some(s) = args.max_file_size {
        l.max_file_size = s;
    }
    if let Some(s) = args.tmp_size {
        l.tmp_size = s;
    }
    policy.network.allow.extend(args.allow_net.iter().cloned());
    for d in &args.allow_degraded {
        if !policy.allow_degraded.contains(d) {
            policy.allow_degraded.push(*d);
        }
    }
    policy
        .validate()
        .map_err(|(field, msg)| Error::Usage(format!("option for {field}: {msg}")))?;
    let mut sandbox = Sandbox::new(policy);
    for p in &args.allow_read {
        sandbox.allow_read(p);
    }
    for p in &args.allow_write {
        sandbox.allow_write(p);
    }
    let held = [
        ("--grant-read-fd", Access::ReadOnly, &args.grant_read_fd),
        ("--grant-write-fd", Access::ReadWrite, &args.grant_write_fd),
    ];
    let mut taken = Vec::new();
    for (flag, access, specs) in held {
        for (fd, inside) in specs {
            if taken.contains(fd) {
                return Err(Error::Usage(format!(
                    "{flag} {fd}: descriptor {fd} is given twice; pass each object once"
                )));
            }
            taken.push(*fd);
            let owned =
                grant::adopt_inherited(*fd, flag).map_err(|e| Error::Usage(e.to_string()))?;
            sandbox.grant_as(owned, inside, access, flag);
        }
    }
    Ok((sandbox, args.command.clone()))
}

fn run(args: RunArgs) -> i32 {
    let (sandbox, command) = match build(&args) {
        Ok(x) => x,
        Err(e) => return fail(&e),
    };
    let mut cmd = sandbox.command(&command[0]);
    cmd.args(&command[1..]);
    for (k, v) in &args.env {
        cmd.env(k, v);
    }
    if let Some(w) = &args.workdir {
        cmd.current_dir(w);
    }
    let mut prepared = match cmd.prepare() {
        Ok(p) => p,
        Err(e) => return fail(&e),
    };
    if args.explain {
        print!("{}", prepared.explain());
        return 0;
    }
    if args.die_with_parent {
        // SAFETY: prctl with integer arguments; then check the parent did not die before it.
        let parent = nix::unistd::getppid();
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
        if nix::unistd::getppid() != parent {
            eprintln!("sandbox-run: the parent process died before the run started");
            return 125;
        }
    }
    let report = code_executor::sandbox::run_prepared(&mut prepared);
    if let Some(e) = &report.error {
        eprintln!("sandbox-run: {e}");
    }
    if let Some(line) = report.limit_line() {
        eprintln!("{line}");
    }
    for d in &report.degraded {
        eprintln!("sandbox-run: degraded: {d}");
    }
    if let Some(dest) = &args.report {
        let json = serde_json::to_string_pretty(&report)
            .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
        let written = if dest == "-" {
            writeln!(std::io::stdout(), "{json}")
        } else {
            std::fs::write(dest, json + "\n")
        };
        if let Err(e) = written {
            eprintln!("sandbox-run: cannot write the report to {dest}: {e}");
            if report.sandbox_exit_code == 0 {
                return 125;
            }
        }
    }
    report.sandbox_exit_code
}

fn doctor(json: bool) -> i32 {
    let mut findings = probe::kernel();
    let path = std::env::var_os("PATH").unwrap_or_default();
    let cwd = std::env::current_dir().unwrap_or_else(|_| "/".into());
    for name in ["deno", "node", "python3"] {
        findings.push(match code_executor::runtime::resolve(name, &path, &cwd) {
            Ok(r) => probe::Finding {
                check: "runtime",
                level: Level::Ok,
                detail: format!(
                    "{name}: {} (install {})",
                    r.program.display(),
                    r.install.display()
                ),
                fix: None,
            },
            Err(e) => probe::Finding {
                check: "runtime",
                level: Level::Warn,
                detail: format!("{name}: {e}"),
                fix: Some(format!("install {name} to run it sandboxed")),
            },
        });
    }
    let trial = Policy::load("default").map_err(Error::from).and_then(|p| {
        let sb = Sandbox::new(p);
        let report = sb.command("/bin/true").status()?;
        Ok(report)
    });
    findings.push(match trial {
        Ok(r) if r.sandbox_exit_code == 0 && r.degraded.is_empty() => probe::Finding {
            check: "trial run",
            level: Level::Ok,
            detail: format!(
                "/bin/true ran under the full sandbox in {:.1} ms (memory: {}, landlock: {})",
                r.wall_time_ms, r.layers.memory.mechanism, r.layers.landlock
            ),
            fix: None,
        },
        Ok(r) => probe::Finding {
            check: "trial run",
            level: Level::Fail,
            detail: format!(
                "/bin/true: exit {} ({})",
                r.sandbox_exit_code,
                r.error
                    .map(|e| e.to_string())
                    .unwrap_or_else(|| r.status.to_string())
            ),
            fix: Some("see the failing checks above".into()),
        },
        Err(e) => probe::Finding {
            check: "trial run",
            level: Level::Fail,
            detail: e.to_string(),
            fix: Some("see the failing checks above".into()),
        },
    });
    let failed = findings.iter().any(|f| f.level == Level::Fail);
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"ok": !failed, "findings": findings}))
                .unwrap_or_default()
        );
    } else {
        for f in &findings {
            let tag = match f.level {
                Level::Ok => "OK  ",
                Level::Warn => "WARN",
                Level::Fail => "FAIL",
            };
            println!("{tag} {:<36} {}", f.check, f.detail);
            if let (Some(fix), true) = (&f.fix, f.level != Level::Ok) {
                println!("     fix: {fix}");
            }
        }
        println!(
            "{}",
            if failed {
                "The sandbox cannot be enforced on this machine: fix the FAIL lines above."
            } else {
                "The sandbox is fully enforced on this machine."
            }
        );
    }
    i32::from(failed)
}
