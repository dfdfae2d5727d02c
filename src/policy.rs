//! Policies: plain data describing what a run may see and use.
//!
//! A policy file is TOML. The built-ins (`default`, `deno`, `node`, `python`) live in
//! `policies/` and are compiled in, so the binary works without the source tree. A file may
//! `extends` a built-in and override parts of it. Unknown fields are errors, and every error names
//! the file, the line and the field: a typo in a security policy must never be ignored.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The built-in policies, compiled in from `policies/`.
const BUILTINS: &[(&str, &str)] = &[
    ("default", include_str!("../policies/default.toml")),
    ("deno", include_str!("../policies/deno.toml")),
    ("node", include_str!("../policies/node.toml")),
    ("python", include_str!("../policies/python.toml")),
];

/// Names of the built-in policies, for help texts and errors.
pub fn builtin_names() -> Vec<&'static str> {
    BUILTINS.iter().map(|(n, _)| *n).collect()
}

/// A policy error: where it is and what is wrong, in words a user can act on.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("policy {name:?} not found: it is neither a built-in ({builtins}) nor a readable file ({reason}); pass --policy NAME or --policy path/to/policy.toml")]
    NotFound {
        name: String,
        builtins: String,
        reason: String,
    },
    #[error("{file}:{line}: {message}")]
    Parse {
        file: String,
        line: usize,
        message: String,
    },
    #[error("{file}: field `{field}`: {message}")]
    Invalid {
        file: String,
        field: String,
        message: String,
    },
    #[error("{file}: `extends = {parent:?}`: only a built-in policy can be extended ({builtins})")]
    BadParent {
        file: String,
        parent: String,
        builtins: String,
    },
}

/// A byte size written as `512M`, `1G`, `100k` or a plain number of bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Size(pub u64);

impl Size {
    pub const MIB: u64 = 1024 * 1024;

    /// Parses `N`, `Nk`, `NM`, `NG` (binary multiples; an optional trailing `B`/`iB`).
    pub fn parse(s: &str) -> Result<Size, String> {
        let t = s.trim();
        let lower = t.to_ascii_lowercase();
        let lower = lower
            .strip_suffix("ib")
            .or_else(|| lower.strip_suffix('b'))
            .unwrap_or(&lower);
        let (digits, mult) = match lower.chars().last() {
            Some('k') => (&lower[..lower.len() - 1], 1024u64),
            Some('m') => (&lower[..lower.len() - 1], 1024 * 1024),
            Some('g') => (&lower[..lower.len() - 1], 1024 * 1024 * 1024),
            _ => (lower, 1),
        };
        let n: u64 = digits.trim().parse().map_err(|_| {
            format!(
                "{t:?} is not a size: write a number with an optional K, M or G suffix, e.g. 512M"
            )
        })?;
        n.checked_mul(mult)
            .map(Size)
            .ok_or_else(|| format!("{t:?} is too large"))
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        if b >= 1 << 30 && b.is_multiple_of(1 << 30) {
            write!(f, "{}G", b >> 30)
        } else if b >= 1 << 20 && b.is_multiple_of(1 << 20) {
            write!(f, "{}M", b >> 20)
        } else if b >= 1 << 10 && b.is_multiple_of(1 << 10) {
            write!(f, "{}K", b >> 10)
        } else {
            write!(f, "{b}")
        }
    }
}

impl Serialize for Size {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(Size(n)),
            Raw::S(s) => Size::parse(&s).map_err(serde::de::Error::custom),
        }
    }
}

/// Which interpreter a policy is tuned for. It decides heap flags and thread bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeKind {
    Deno,
    Node,
    Python,
}

impl RuntimeKind {
    /// The runtime a command name stands for (`python3.11` counts as python).
    pub fn from_command(cmd: &str) -> Option<RuntimeKind> {
        let base = Path::new(cmd).file_name()?.to_str()?;
        match base {
            "deno" => Some(RuntimeKind::Deno),
            "node" | "nodejs" => Some(RuntimeKind::Node),
            b if b == "python"
                || b == "python3"
                || (b.starts_with("python3.")
                    && b["python3.".len()..].chars().all(|c| c.is_ascii_digit())) =>
            {
                Some(RuntimeKind::Python)
            }
            _ => None,
        }
    }

    /// The built-in policy for this runtime.
    pub fn policy_name(self) -> &'static str {
        match self {
            RuntimeKind::Deno => "deno",
            RuntimeKind::Node => "node",
            RuntimeKind::Python => "python",
        }
    }
}

/// A weaker mode a policy may accept on a machine that lacks a kernel feature. Each is named so
/// that nobody gets less protection without asking for it by name, and the run report lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Degradation {
    /// Run without Landlock when the kernel has none (or it is disabled). The minimal root and
    /// the other layers still apply.
    NoLandlock,
    /// Run with writable grants whose total cannot be bounded soundly (no project quota on their
    /// file system, or not root): the per-file RLIMIT_FSIZE still applies, the total does not.
    UnboundedWrites,
}

impl Degradation {
    pub fn parse(s: &str) -> Result<Degradation, String> {
        match s {
            "no-landlock" => Ok(Degradation::NoLandlock),
            "unbounded-writes" => Ok(Degradation::UnboundedWrites),
            other => Err(format!(
                "unknown degraded mode {other:?}: the modes are `no-landlock` and `unbounded-writes`"
            )),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Degradation::NoLandlock => "no-landlock",
            Degradation::UnboundedWrites => "unbounded-writes",
        }
    }
}

/// The most CPUs a workload is pinned to (fewer when sandbox-run itself may use fewer), so
/// runtimes that size thread pools by CPU count stay under the task limit on many-core hosts.
pub const MAX_CPUS: usize = 2;

/// The smallest CPU share: the kernel's smallest CFS quota is 1 ms per 100 ms period.
pub const MIN_CPUS: f64 = 0.01;

/// Checks a CPU share (`--cpus`, `limits.cpus`) against what any run may use; the caller
/// names the option in the error. The host's own CPU count is checked at launch planning.
pub fn check_cpus(cpus: f64) -> Result<f64, String> {
    if !cpus.is_finite() || cpus <= 0.0 {
        return Err(format!(
            "{cpus} is not a CPU share: write a number of CPUs above 0, e.g. 0.5 or 1"
        ));
    }
    if cpus < MIN_CPUS {
        return Err(format!(
            "{cpus} is below the smallest share, {MIN_CPUS} (1 ms of CPU per 100 ms)"
        ));
    }
    if cpus > MAX_CPUS as f64 {
        return Err(format!(
            "{cpus} is more than the {MAX_CPUS} CPUs a run is pinned to at most"
        ));
    }
    Ok(cpus)
}

/// Resource limits of one run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Memory cap of the whole run (cgroup when available, else RLIMIT_DATA per process).
    pub memory: Size,
    /// Tasks (processes and threads) of the sandbox's user.
    pub nproc: u64,
    /// CPU seconds per process (RLIMIT_CPU); none means only the wall clock bounds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_time_secs: Option<u64>,
    /// Wall-clock limit of the whole run, in seconds.
    pub timeout_secs: f64,
    /// CPU share of the whole run, in CPUs (0.5 = half of one CPU), enforced by the cgroup CPU
    /// controller like Docker's `--cpus`; none means the run may use all the CPUs it is
    /// pinned to for as long as its timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    /// Largest file the run may write (RLIMIT_FSIZE).
    pub max_file_size: Size,
    /// Open file descriptors per process (RLIMIT_NOFILE).
    pub open_files: u64,
    /// Size of the private /tmp (and, separately, of /workspace).
    pub tmp_size: Size,
    /// The total a run may add to its writable host grants, per file system (with an inode
    /// bound of one inode per 16K); enforced by a project quota, see `quota`.
    #[serde(default = "default_write_limit")]
    pub write_limit: Size,
}

/// 1G: room for a build or a data set's output, far from filling a host disk.
fn default_write_limit() -> Size {
    Size(1 << 30)
}

/// Host paths made visible inside, at the same path.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filesystem {
    #[serde(default)]
    pub read_only: Vec<PathBuf>,
    #[serde(default)]
    pub read_write: Vec<PathBuf>,
}

/// Network egress. Empty means no network at all (an empty network namespace).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    #[serde(default)]
    pub allow: Vec<String>,
}

/// An effective policy: everything a launch needs to know, as data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<RuntimeKind>,
    pub limits: Limits,
    #[serde(default)]
    pub filesystem: Filesystem,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub network: Network,
    #[serde(default)]
    pub allow_degraded: Vec<Degradation>,
}

/// The on-disk form: every part optional, so that a file can extend a built-in.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    name: Option<String>,
    description: Option<String>,
    extends: Option<String>,
    runtime: Option<RuntimeKind>,
    limits: Option<LimitsFile>,
    filesystem: Option<Filesystem>,
    env: Option<BTreeMap<String, String>>,
    network: Option<Network>,
    allow_degraded: Option<Vec<Degradation>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsFile {
    memory: Option<Size>,
    nproc: Option<u64>,
    cpu_time_secs: Option<u64>,
    timeout_secs: Option<f64>,
    cpus: Option<f64>,
    max_file_size: Option<Size>,
    open_files: Option<u64>,
    tmp_size: Option<Size>,
    write_limit: Option<Size>,
}

impl Policy {
    /// A built-in policy by name (`default`, `deno`, `node`, `python`).
    pub fn builtin(name: &str) -> Option<Policy> {
        let (_, text) = BUILTINS.iter().find(|(n, _)| *n == name)?;
        // The built-ins are tested to parse; a failure here is a build defect, reported as such.
        Policy::parse(text, &format!("<built-in {name}>")).ok()
    }

    /// A built-in name, or else a path to a TOML file.
    pub fn load(name_or_path: &str) -> Result<Policy, PolicyError> {
        if let Some(p) = Policy::builtin(name_or_path) {
            return Ok(p);
        }
        match std::fs::read_to_string(name_or_path) {
            Ok(text) => Policy::parse(&text, name_or_path),
            Err(e) => Err(PolicyError::NotFound {
                name: name_or_path.to_string(),
                builtins: builtin_names().join(", "),
                reason: e.to_string(),
            }),
        }
    }

    /// Parses policy text; `file` is used in error messages.
    pub fn parse(text: &str, file: &str) -> Result<Policy, PolicyError> {
        let raw: PolicyFile = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| {
                    text.as_bytes()[..s.start.min(text.len())]
                        .iter()
                        .filter(|b| **b == b'\n')
                        .count()
                        + 1
                })
                .unwrap_or(1);
            // The line itself names the field, which a type error's message does not.
            let source = text.lines().nth(line - 1).unwrap_or("").trim();
            let message = if source.is_empty() {
                e.message().trim().to_string()
            } else {
                format!("`{source}`: {}", e.message().trim())
            };
            PolicyError::Parse {
                file: file.to_string(),
                line,
                message,
            }
        })?;
        let base = match raw.extends.as_deref() {
            None => None,
            Some(parent) => {
                let p = Policy::builtin(parent);
                Some(p.ok_or_else(|| PolicyError::BadParent {
                    file: file.to_string(),
                    parent: parent.to_string(),
                    builtins: builtin_names().join(", "),
                })?)
            }
        };
        let invalid = |field: &str, message: String| PolicyError::Invalid {
            file: file.to_string(),
            field: field.to_string(),
            message,
        };
        let limits = match (base.as_ref().map(|b| b.limits.clone()), raw.limits) {
            (Some(b), None) => b,
            (b, Some(l)) => {
                fn need<T>(
                    v: Option<T>,
                    bv: Option<T>,
                    field: &str,
                    file: &str,
                ) -> Result<T, PolicyError> {
                    v.or(bv).ok_or_else(|| PolicyError::Invalid {
                        file: file.to_string(),
                        field: format!("limits.{field}"),
                        message: "missing (required)".into(),
                    })
                }
                Limits {
                    memory: need(l.memory, b.as_ref().map(|b| b.memory), "memory", file)?,
                    nproc: need(l.nproc, b.as_ref().map(|b| b.nproc), "nproc", file)?,
                    cpu_time_secs: l.cpu_time_secs.or(b.as_ref().and_then(|b| b.cpu_time_secs)),
                    timeout_secs: need(
                        l.timeout_secs,
                        b.as_ref().map(|b| b.timeout_secs),
                        "timeout_secs",
                        file,
                    )?,
                    cpus: l.cpus.or(b.as_ref().and_then(|b| b.cpus)),
                    max_file_size: need(
                        l.max_file_size,
                        b.as_ref().map(|b| b.max_file_size),
                        "max_file_size",
                        file,
                    )?,
                    open_files: need(
                        l.open_files,
                        b.as_ref().map(|b| b.open_files),
                        "open_files",
                        file,
                    )?,
                    tmp_size: need(l.tmp_size, b.as_ref().map(|b| b.tmp_size), "tmp_size", file)?,
                    write_limit: l
                        .write_limit
                        .or(b.as_ref().map(|b| b.write_limit))
                        .unwrap_or_else(default_write_limit),
                }
            }
            (None, None) => return Err(invalid("limits", "missing (required)".into())),
        };
        let mut env = base.as_ref().map(|b| b.env.clone()).unwrap_or_default();
        env.extend(raw.env.unwrap_or_default());
        let mut filesystem = base
            .as_ref()
            .map(|b| b.filesystem.clone())
            .unwrap_or_default();
        if let Some(fs) = raw.filesystem {
            filesystem.read_only.extend(fs.read_only);
            filesystem.read_write.extend(fs.read_write);
        }
        let policy = Policy {
            name: raw
                .name
                .or(base.as_ref().map(|b| b.name.clone()))
                .unwrap_or_else(|| file.to_string()),
            description: raw
                .description
                .or(base.as_ref().map(|b| b.description.clone()))
                .unwrap_or_default(),
            runtime: raw.runtime.or(base.as_ref().and_then(|b| b.runtime)),
            limits,
            filesystem,
            env,
            network: raw
                .network
                .or(base.as_ref().map(|b| b.network.clone()))
                .unwrap_or_default(),
            allow_degraded: raw
                .allow_degraded
                .or(base.as_ref().map(|b| b.allow_degraded.clone()))
                .unwrap_or_default(),
        };
        policy
            .validate()
            .map_err(|(field, msg)| invalid(&field, msg))?;
        Ok(policy)
    }

    /// Checks values that TOML types alone cannot: ranges, absolute paths, env names.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let l = &self.limits;
        if l.memory.0 < 16 * Size::MIB {
            return Err((
                "limits.memory".into(),
                format!("{} is below the 16M minimum", l.memory),
            ));
        }
        if !(1..=4096).contains(&l.nproc) {
            return Err((
                "limits.nproc".into(),
                format!("{} is outside 1..=4096", l.nproc),
            ));
        }
        if !(l.timeout_secs.is_finite() && l.timeout_secs > 0.0 && l.timeout_secs <= 86_400.0) {
            return Err((
                "limits.timeout_secs".into(),
                format!("{} is outside (0, 86400] seconds", l.timeout_secs),
            ));
        }
        if l.cpu_time_secs == Some(0) {
            return Err((
                "limits.cpu_time_secs".into(),
                "must be at least 1 second".into(),
            ));
        }
        if let Some(c) = l.cpus {
            check_cpus(c).map_err(|m| ("limits.cpus".to_string(), m))?;
        }
        if !(16..=1 << 20).contains(&l.open_files) {
            return Err((
                "limits.open_files".into(),
                format!("{} is outside 16..=1048576", l.open_files),
            ));
        }
        if l.tmp_size.0 < Size::MIB {
            return Err(("limits.tmp_size".into(), "must be at least 1M".into()));
        }
        if l.write_limit.0 < 64 * 1024 {
            return Err(("limits.write_limit".into(), "must be at least 64K".into()));
        }
        for (field, list) in [
            ("filesystem.read_only", &self.filesystem.read_only),
            ("filesystem.read_write", &self.filesystem.read_write),
        ] {
            for p in list {
                if !p.is_absolute() {
                    return Err((
                        field.into(),
                        format!("{} is not an absolute path", p.display()),
                    ));
                }
            }
        }
        for k in self.env.keys() {
            if k.is_empty() || k.contains('=') || k.contains('\0') {
                return Err((
                    format!("env.{k}"),
                    "not a valid environment variable name".into(),
                ));
            }
        }
        Ok(())
    }

    /// The policy as TOML, for `--explain`.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render policy: {e}\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_parse_and_extend_default() {
        for name in builtin_names() {
            let p = Policy::builtin(name).unwrap_or_else(|| panic!("built-in {name} must parse"));
            assert_eq!(p.limits.nproc, 25, "{name}");
            assert_eq!(p.limits.memory, Size(512 * Size::MIB), "{name}");
            assert!(
                p.filesystem
                    .read_only
                    .iter()
                    .any(|p| p == Path::new("/usr")),
                "{name}"
            );
        }
        assert_eq!(
            Policy::builtin("deno").unwrap().runtime,
            Some(RuntimeKind::Deno)
        );
        assert_eq!(
            Policy::builtin("deno")
                .unwrap()
                .env
                .get("LANG")
                .map(String::as_str),
            Some("C.UTF-8")
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(Size::parse("512M").unwrap(), Size(512 << 20));
        assert_eq!(Size::parse("1g").unwrap(), Size(1 << 30));
        assert_eq!(Size::parse("100k").unwrap(), Size(100 << 10));
        assert_eq!(Size::parse("64MiB").unwrap(), Size(64 << 20));
        assert_eq!(Size::parse("4096").unwrap(), Size(4096));
        assert!(Size::parse("12X").unwrap_err().contains("not a size"));
        assert!(Size::parse("").is_err());
        assert!(Size::parse("-1M").is_err());
        assert!(Size::parse("99999999999999G")
            .unwrap_err()
            .contains("too large"));
    }

    #[test]
    fn unknown_field_names_file_line_and_field() {
        let text = "extends = \"default\"\n[limits]\nmemroy = \"1G\"\n";
        let e = Policy::parse(text, "p.toml").unwrap_err().to_string();
        assert!(e.starts_with("p.toml:3:"), "{e}");
        assert!(e.contains("memroy"), "{e}");
    }

    #[test]
    fn malformed_toml_names_line() {
        let e = Policy::parse("name = \"x\"\n[limits\n", "bad.toml")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("bad.toml:2:"), "{e}");
    }

    #[test]
    fn extends_overrides_only_what_it_names() {
        let text =
            "extends = \"python\"\nname = \"mine\"\n[limits]\nmemory = \"1G\"\n[env]\nX = \"1\"\n";
        let p = Policy::parse(text, "mine.toml").unwrap();
        assert_eq!(p.name, "mine");
        assert_eq!(p.limits.memory, Size(1 << 30));
        assert_eq!(p.limits.nproc, 25);
        assert_eq!(p.runtime, Some(RuntimeKind::Python));
        assert_eq!(p.env.get("X").map(String::as_str), Some("1"));
        assert_eq!(p.env.get("PYTHONNOUSERSITE").map(String::as_str), Some("1"));
    }

    #[test]
    fn bad_values_name_the_field() {
        let e = Policy::parse("extends = \"default\"\n[limits]\nnproc = 0\n", "x.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("limits.nproc"), "{e}");
        let e = Policy::parse(
            "extends = \"default\"\n[filesystem]\nread_only = [\"rel\"]\n",
            "x.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("filesystem.read_only") && e.contains("absolute"),
            "{e}"
        );
        let e = Policy::parse("extends = \"nosuch\"\n", "x.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("nosuch"), "{e}");
        let e = Policy::parse(
            "extends = \"default\"\nallow_degraded = [\"no-seccomp\"]\n",
            "x.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("x.toml:2"), "{e}");
    }

    #[test]
    fn cpus_is_optional_inherited_and_checked() {
        assert_eq!(Policy::builtin("default").unwrap().limits.cpus, None);
        let p = Policy::parse("extends = \"python\"\n[limits]\ncpus = 0.5\n", "c.toml").unwrap();
        assert_eq!(p.limits.cpus, Some(0.5));
        // Written as an integer, as a Docker user would.
        let p = Policy::parse("extends = \"python\"\n[limits]\ncpus = 1\n", "c.toml").unwrap();
        assert_eq!(p.limits.cpus, Some(1.0));
        for bad in ["0.0", "-1.0", "3.0", "0.001", "nan", "inf"] {
            let text = format!("extends = \"default\"\n[limits]\ncpus = {bad}\n");
            let e = Policy::parse(&text, "c.toml").unwrap_err().to_string();
            assert!(e.contains("limits.cpus"), "{bad}: {e}");
        }
        let e = check_cpus(0.0).unwrap_err();
        assert!(e.contains('0'), "{e}");
        assert_eq!(check_cpus(2.0), Ok(2.0));
    }

    #[test]
    fn runtime_from_command() {
        assert_eq!(
            RuntimeKind::from_command("/usr/bin/python3.11"),
            Some(RuntimeKind::Python)
        );
        assert_eq!(RuntimeKind::from_command("deno"), Some(RuntimeKind::Deno));
        assert_eq!(RuntimeKind::from_command("nodejs"), Some(RuntimeKind::Node));
        assert_eq!(RuntimeKind::from_command("python3-config"), None);
        assert_eq!(RuntimeKind::from_command("/bin/true"), None);
    }
}
