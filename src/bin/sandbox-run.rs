//! `sandbox-run [OPTIONS] -- COMMAND [ARGS...]`: run a program in the sandbox.
//!
//! Single-threaded on purpose: this process is the launch helper (H) itself.
//!
//! No `unsafe` here: the two system calls it makes itself (taking over `--report-fd`, the
//! parent-death signal) are the library's `code_executor::sys` wrappers, the same ones the
//! library uses, so that all of the package's `unsafe` is read in one module.
#![forbid(unsafe_code)]

use std::ffi::OsString;
use std::fs::File;
use std::io::Write;
use std::os::fd::RawFd;
use std::process::ExitCode;

use clap::Parser;
use code_executor::cli::{self, Cli, RunArgs, Sub};
use code_executor::grant::{self, Access};
use code_executor::launch::{SetupError, Step};
use code_executor::policy::RuntimeKind;
use code_executor::probe::{self, Level};
use code_executor::sys::{self, AdoptError};
use code_executor::{Error, Policy, RunReport, Sandbox};

fn main() -> ExitCode {
    let argv: Vec<OsString> = std::env::args_os().collect();
    let code = match Cli::try_parse_from(&argv) {
        Ok(cli) => match cli.sub {
            Some(Sub::Doctor { json }) => doctor(json),
            None => run(cli.run),
        },
        Err(e) => refused(&argv, e),
    };
    let _ = std::io::stdout().flush();
    ExitCode::from(code.clamp(0, 255) as u8)
}

/// A command line clap refused: the message on stderr as always, and a `usage-error` report on
/// the caller's report descriptor when one can be found.
fn refused(argv: &[OsString], e: clap::Error) -> i32 {
    let code = e.exit_code();
    let _ = e.print();
    if !e.use_stderr() {
        return code; // --help, --version
    }
    if let Some(fd) = cli::report_fd_in(argv) {
        if let Ok(mut sink) = ReportSink::claim(fd) {
            let message = e.render().to_string().trim().to_string();
            let report = RunReport::usage_error(command_of(argv), message, code);
            let _ = sink.write(&report);
        }
    }
    code
}

/// The command after `--` of a raw argument list, for reports of refused requests.
fn command_of(argv: &[OsString]) -> Vec<String> {
    argv.iter()
        .skip_while(|a| *a != "--")
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}

/// The report descriptor, owned by this process and closed on exec, so that neither the
/// workload nor the egress proxy inherits it.
struct ReportSink {
    fd: RawFd,
    file: File,
}

impl ReportSink {
    /// `fd` is a number because the flag is: the caller chose it for the report.
    fn claim(fd: RawFd) -> Result<ReportSink, String> {
        let owned = sys::adopt_inherited_fd(fd).map_err(|e| match e {
            AdoptError::NotOpen(err) => format!(
                "--report-fd {fd}: not an open descriptor ({err}); pass one that sandbox-run inherits"
            ),
            other => format!("--report-fd {fd}: {other}"),
        })?;
        Ok(ReportSink {
            fd,
            file: File::from(owned),
        })
    }

    fn write(&mut self, report: &RunReport) -> Result<(), String> {
        let json = serde_json::to_string(report).map_err(|e| e.to_string())?;
        self.file
            .write_all(format!("{json}\n").as_bytes())
            .and_then(|()| self.file.flush())
            .map_err(|e| format!("cannot write the report to --report-fd {}: {e}", self.fd))
    }
}

/// Where the report goes: `--report FILE|-` and `--report-fd FD`, both when both are given.
struct ReportOut {
    dest: Option<String>,
    sink: Option<ReportSink>,
}

impl ReportOut {
    /// Writes `report` everywhere it was asked for; returns the exit code, made 125 when the
    /// run succeeded but its report could not be delivered.
    fn deliver(&mut self, report: &RunReport) -> i32 {
        let mut failed = Vec::new();
        if let Some(dest) = &self.dest {
            let json = serde_json::to_string_pretty(report)
                .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
            let written = if dest == "-" {
                writeln!(std::io::stdout(), "{json}")
            } else {
                std::fs::write(dest, json + "\n")
            };
            if let Err(e) = written {
                failed.push(format!("cannot write the report to {dest}: {e}"));
            }
        }
        if let Some(sink) = &mut self.sink {
            if let Err(e) = sink.write(report) {
                failed.push(e);
            }
        }
        for f in &failed {
            eprintln!("sandbox-run: {f}");
        }
        if !failed.is_empty() && report.sandbox_exit_code == 0 {
            125
        } else {
            report.sandbox_exit_code
        }
    }

    /// A request refused before the launch: stderr as always, and a `usage-error` report (or
    /// `setup-failed`, for a setup step that failed while planning).
    fn refuse(&mut self, command: &[OsString], e: &Error) -> i32 {
        eprintln!("sandbox-run: {e}");
        let command = command
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let mut report = RunReport::usage_error(command, e.to_string(), e.exit_code());
        if let Error::Setup(s) = e {
            report.status = code_executor::report::RunStatus::SetupFailed;
            report.usage_error = None;
            report.error = Some(s.clone());
        }
        self.deliver(&report)
    }
}

fn build(args: &RunArgs) -> Result<Sandbox, Error> {
    let Some(cmd) = args.command.first() else {
        return Err(Error::Usage(
            "no command given: write it after `--`, e.g. sandbox-run -- python3 -c 'print(1)'"
                .into(),
        ));
    };
    let mut policy = match &args.policy {
        Some(p) => Policy::load(p)?,
        None => {
            let name = RuntimeKind::from_command(&cmd.to_string_lossy())
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
    if args.cpus.is_some() {
        l.cpus = args.cpus;
    }
    if let Some(s) = args.max_file_size {
        l.max_file_size = s;
    }
    if let Some(s) = args.tmp_size {
        l.tmp_size = s;
    }
    if let Some(s) = args.write_limit {
        l.write_limit = s;
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
            if taken.contains(fd) || args.report_fd == Some(*fd) {
                return Err(Error::Usage(format!(
                    "{flag} {fd}: descriptor {fd} is given twice (or is also --report-fd); pass each descriptor once"
                )));
            }
            taken.push(*fd);
            let owned =
                grant::adopt_inherited(*fd, flag).map_err(|e| Error::Usage(e.to_string()))?;
            sandbox.grant_as(owned, inside, access, flag);
        }
    }
    Ok(sandbox)
}

fn run(args: RunArgs) -> i32 {
    // Claimed first, before anything can fail or be spawned, so every outcome reaches it and
    // no child inherits it.
    let sink = match args.report_fd.map(ReportSink::claim).transpose() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("sandbox-run: {e}");
            return 125;
        }
    };
    let mut out = ReportOut {
        dest: args.report.clone(),
        sink,
    };
    let sandbox = match build(&args) {
        Ok(x) => x,
        Err(e) => return out.refuse(&args.command, &e),
    };
    let command = &args.command;
    let mut cmd = sandbox.command(command[0].to_string_lossy());
    cmd.args(&command[1..]);
    for (k, v) in &args.env {
        cmd.env(k, v);
    }
    if let Some(w) = &args.workdir {
        cmd.current_dir(w);
    }
    let mut prepared = match cmd.prepare() {
        Ok(p) => p,
        Err(e) => return out.refuse(command, &e),
    };
    if args.explain {
        print!("{}", prepared.explain());
        return 0;
    }
    if args.die_with_parent {
        // Check afterwards that the parent did not die before the signal was armed.
        let parent = nix::unistd::getppid();
        let _ = sys::set_pdeathsig(libc::SIGKILL);
        if nix::unistd::getppid() != parent {
            let e = SetupError::new(
                Step::Preflight,
                "the parent process died before the run started (--die-with-parent)",
            );
            let report = prepared.report(Err(e), None, vec![]);
            eprintln!(
                "sandbox-run: {}",
                report
                    .error
                    .as_ref()
                    .map(|e| e.to_string())
                    .unwrap_or_default()
            );
            return out.deliver(&report);
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
    out.deliver(&report)
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
                r.wall_time_ms,
                r.layers
                    .as_ref()
                    .map_or("?", |l| l.memory.mechanism.as_str()),
                r.layers.as_ref().map_or("?", |l| l.landlock.as_str())
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
                    .unwrap_or_else(|| r.status.name().to_string())
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
