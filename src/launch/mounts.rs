//! The minimal root: what the workload sees instead of the host tree.
//!
//! A visible pathname socket is connectable whatever Landlock says (up to ABI 7), and
//! supplementary groups survive into a user namespace, so showing the host tree (even read-only)
//! can hand out the docker socket. We build a root from nothing: a small tmpfs, read-only binds
//! of what the runtime needs, a private /tmp and /workspace, a minimal /dev and a fresh /proc.
//!
//! The plan is made on the host side (`MountPlan::build`), where every path is resolved. The init
//! process opens every source as an O_PATH descriptor first (binds must come from mounts of its
//! own namespace, and it still has the caller's uid then), and binds from `/proc/self/fd/N`, so
//! sources hidden by our own tmpfs on /tmp stay reachable.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::fcntl::{open, OFlag};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::Mode;

/// Where the sandbox's own writable places are.
pub const TMP: &str = "/tmp";
pub const WORKSPACE: &str = "/workspace";

/// Device nodes the workload gets; everything else under /dev is absent.
pub const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom"];

/// One step of building the root, in order.
#[derive(Debug)]
pub enum MountOp {
    /// Bind a host file or directory (opened as O_PATH) at `target`.
    Bind {
        source_path: PathBuf,
        target: PathBuf,
        is_dir: bool,
        writable: bool,
    },
    /// A symlink, copied from the host (e.g. /bin -> usr/bin on merged-/usr systems).
    Symlink { target: PathBuf, points_to: PathBuf },
    /// A fresh tmpfs, size-limited: tmpfs pages are not counted by any rlimit.
    Tmpfs {
        target: PathBuf,
        size: u64,
        mode: u32,
        owner: Option<(u32, u32)>,
    },
    /// A small file written into the root tmpfs (passwd, group, hosts).
    File { target: PathBuf, contents: String },
}

/// A planned root.
#[derive(Debug, Default)]
pub struct MountPlan {
    pub ops: Vec<MountOp>,
    /// Policy paths that do not exist on this host (skipped; shown by --explain).
    pub skipped: Vec<PathBuf>,
    /// The workload's uid and gid on the host, to check that shared paths are usable.
    pub host_ids: (u32, u32),
}

/// Why a path cannot be shown inside.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{flag} {path}: {reason}")]
    BadPath {
        flag: &'static str,
        path: String,
        reason: String,
    },
}

/// A host path to show inside, as asked by the policy (optional) or the user (required).
pub struct Share<'a> {
    pub path: &'a Path,
    pub writable: bool,
    pub required: bool,
    pub flag: &'static str,
}

impl MountPlan {
    /// Plans the root. `shares` come in order: policy paths, the runtime's install, then the
    /// user's --allow-read/--allow-write paths (sorted here so parents are mounted first).
    pub fn build(
        shares: &[Share<'_>],
        tmp_size: u64,
        inner_ids: (u32, u32),
        host_ids: (u32, u32),
        etc_files: Vec<(PathBuf, String)>,
    ) -> Result<MountPlan, PlanError> {
        let mut plan = MountPlan {
            host_ids,
            ..MountPlan::default()
        };
        let mut system = Vec::new();
        let mut user = Vec::new();
        for s in shares {
            // Only the policy's system paths go below the private /tmp; anything else (the
            // runtime's install, the user's paths) may live under the host's /tmp and must be
            // bound over the private one.
            if !s.flag.starts_with("policy") {
                user.push(s)
            } else {
                system.push(s)
            }
        }
        for s in system {
            plan.add_share(s)?;
        }
        for (target, contents) in etc_files {
            plan.ops.push(MountOp::File { target, contents });
        }
        plan.ops.push(MountOp::Tmpfs {
            target: TMP.into(),
            size: tmp_size,
            mode: 0o1777,
            owner: None,
        });
        plan.ops.push(MountOp::Tmpfs {
            target: WORKSPACE.into(),
            size: tmp_size,
            mode: 0o755,
            owner: Some(inner_ids),
        });
        user.sort_by_key(|s| s.path.components().count());
        for s in user {
            plan.add_share(s)?;
        }
        Ok(plan)
    }

    fn add_share(&mut self, s: &Share<'_>) -> Result<(), PlanError> {
        let bad = |reason: String| PlanError::BadPath {
            flag: s.flag,
            path: s.path.display().to_string(),
            reason,
        };
        if !s.path.is_absolute() {
            return Err(bad("not an absolute path".into()));
        }
        let meta = match std::fs::symlink_metadata(s.path) {
            Ok(m) => m,
            Err(e) if !s.required => {
                let _ = e;
                self.skipped.push(s.path.to_path_buf());
                return Ok(());
            }
            Err(e) => return Err(bad(format!("{e}; give a path that exists"))),
        };
        if meta.file_type().is_symlink() && !s.required {
            let to = std::fs::read_link(s.path).map_err(|e| bad(e.to_string()))?;
            self.ops.push(MountOp::Symlink {
                target: s.path.to_path_buf(),
                points_to: to,
            });
            return Ok(());
        }
        // The user's paths are resolved (symlinks followed) and shown at their real location.
        let real = std::fs::canonicalize(s.path).map_err(|e| bad(e.to_string()))?;
        if s.required {
            check_user_path(&real).map_err(&bad)?;
            check_access(&real, self.host_ids, s.writable).map_err(&bad)?;
        }
        if self.covers(&real, s.writable) {
            return Ok(());
        }
        self.ops.push(MountOp::Bind {
            source_path: real.clone(),
            is_dir: std::fs::metadata(&real)
                .map(|m| m.is_dir())
                .unwrap_or(false),
            target: real,
            writable: s.writable,
        });
        Ok(())
    }

    /// True when an earlier bind already shows `path` with the same access. (A path asked
    /// with different access than its parent share gets a bind of its own, over it.)
    fn covers(&self, path: &Path, writable: bool) -> bool {
        self.ops.iter().any(|op| match op {
            MountOp::Bind {
                target,
                writable: w,
                ..
            } => path.starts_with(target) && *w == writable,
            _ => false,
        })
    }

    /// Read-only and read-write paths inside, for Landlock.
    pub fn landlock_paths(&self) -> (Vec<PathBuf>, Vec<PathBuf>) {
        let mut ro = vec![PathBuf::from("/etc"), PathBuf::from("/proc")];
        let mut rw = vec![PathBuf::from(TMP), PathBuf::from(WORKSPACE)];
        for op in &self.ops {
            if let MountOp::Bind {
                target, writable, ..
            } = op
            {
                if *writable {
                    rw.push(target.clone())
                } else {
                    ro.push(target.clone())
                }
            }
        }
        (ro, rw)
    }
}

/// The workload runs as an unprivileged host uid (65534 when root starts it): a shared path it
/// cannot use would fail later with a bare EACCES inside, so say it now, with the fix.
fn check_access(real: &Path, (uid, gid): (u32, u32), writable: bool) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(real).map_err(|e| e.to_string())?;
    let mode = m.mode();
    let bits = if m.uid() == uid {
        (mode >> 6) & 7
    } else if m.gid() == gid {
        (mode >> 3) & 7
    } else {
        mode & 7
    };
    let need = match (m.is_dir(), writable) {
        (true, true) => 0o7,
        (true, false) => 0o5,
        (false, true) => 0o6,
        (false, false) => 0o4,
    };
    if bits & need == need {
        return Ok(());
    }
    Err(format!(
        "the sandbox runs as host uid {uid}, which cannot {} it (mode {:o}, owner {}); e.g. `chmod o+{}` it, or chown it to {uid}",
        if writable { "write" } else { "read" },
        mode & 0o7777,
        m.uid(),
        match (m.is_dir(), writable) {
            (true, true) => "rwx",
            (true, false) => "rx",
            (false, true) => "rw",
            (false, false) => "r",
        }
    ))
}

/// Paths a user may not share: the whole host, or the sandbox's own special trees.
fn check_user_path(real: &Path) -> Result<(), String> {
    if real == Path::new("/") {
        return Err(
            "refusing to show the whole host filesystem; name the directories the program needs"
                .into(),
        );
    }
    for special in ["/proc", "/dev", "/sys"] {
        if real.starts_with(special) {
            return Err(format!(
                "{special} is the sandbox's own; it cannot be shared from the host"
            ));
        }
    }
    Ok(())
}

// ---- Executed in the init process (new user + mount namespace), before pivot_root. ----

fn cpath(p: &Path) -> Result<CString, String> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| format!("{} contains a NUL byte", p.display()))
}

/// `root` joined with an absolute `inner` path.
fn under(root: &Path, inner: &Path) -> PathBuf {
    let mut p = root.to_path_buf();
    for c in inner.components() {
        if let Component::Normal(n) = c {
            p.push(n)
        }
    }
    p
}

fn mkdir_p(p: &Path) -> Result<(), String> {
    std::fs::create_dir_all(p).map_err(|e| format!("mkdir {}: {e}", p.display()))?;
    Ok(())
}

fn set_mode(p: &Path, mode: u32) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("chmod {}: {e}", p.display()))
}

/// The flags a bind of `source` must keep: in a user namespace the kernel refuses a remount that
/// would clear nosuid, nodev, noexec or change atime handling of a mount owned by another
/// namespace. Reading them with statvfs and keeping them is what bubblewrap does too.
fn locked_flags(source_fd: i32) -> MsFlags {
    // SAFETY: statvfs is plain old data, for which all-zero bytes are a valid value.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: fstatvfs on a valid fd with a zeroed struct to fill.
    if unsafe { libc::fstatvfs(source_fd, &mut st) } != 0 {
        return MsFlags::empty();
    }
    let f = st.f_flag;
    let mut m = MsFlags::empty();
    for (st_flag, ms) in [
        (libc::ST_NOSUID, MsFlags::MS_NOSUID),
        (libc::ST_NODEV, MsFlags::MS_NODEV),
        (libc::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (libc::ST_NOATIME, MsFlags::MS_NOATIME),
        (libc::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (libc::ST_RELATIME, MsFlags::MS_RELATIME),
        (libc::ST_RDONLY, MsFlags::MS_RDONLY),
    ] {
        if f & st_flag != 0 {
            m |= ms;
        }
    }
    m
}

/// Opens every bind source of the plan, in plan order. Runs in the init before it changes uid.
pub fn open_sources(plan: &MountPlan) -> Result<Vec<OwnedFd>, String> {
    plan.ops
        .iter()
        .filter_map(|op| match op {
            MountOp::Bind { source_path, .. } => Some(source_path),
            _ => None,
        })
        .map(|p| {
            open(
                p,
                OFlag::O_PATH | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
                Mode::empty(),
            )
            .map_err(|e| format!("open {}: {e}", p.display()))
        })
        .collect()
}

/// Builds the new root at `newroot` (an empty directory of the init's mount namespace), with
/// the descriptors from [`open_sources`].
pub fn build_root(plan: &MountPlan, sources: &[OwnedFd], newroot: &Path) -> Result<(), String> {
    let mut sources = sources.iter();
    let none: Option<&str> = None;
    mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none)
        .map_err(|e| format!("make / private: {e}"))?;
    mount(
        Some("tmpfs"),
        newroot,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("size=4m,mode=0755"),
    )
    .map_err(|e| format!("mount the root tmpfs: {e}"))?;
    for dir in ["etc", "proc", "dev", "tmp", "workspace", "run"] {
        mkdir_p(&newroot.join(dir))?;
    }
    for op in &plan.ops {
        match op {
            MountOp::Symlink { target, points_to } => {
                let t = under(newroot, target);
                if let Some(parent) = t.parent() {
                    mkdir_p(parent)?;
                }
                std::os::unix::fs::symlink(points_to, &t)
                    .map_err(|e| format!("symlink {}: {e}", target.display()))?;
            }
            MountOp::File { target, contents } => {
                let t = under(newroot, target);
                if let Some(parent) = t.parent() {
                    mkdir_p(parent)?;
                }
                std::fs::write(&t, contents)
                    .map_err(|e| format!("write {}: {e}", target.display()))?;
                set_mode(&t, 0o644)?;
            }
            MountOp::Tmpfs {
                target,
                size,
                mode,
                owner,
            } => {
                let t = under(newroot, target);
                mkdir_p(&t)?;
                let mut data = format!("size={size},mode={mode:o}");
                if let Some((uid, gid)) = owner {
                    data.push_str(&format!(",uid={uid},gid={gid}"));
                }
                mount(
                    Some("tmpfs"),
                    &t,
                    Some("tmpfs"),
                    MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                    Some(data.as_str()),
                )
                .map_err(|e| format!("mount tmpfs on {}: {e}", target.display()))?;
            }
            MountOp::Bind {
                target,
                is_dir,
                writable,
                source_path,
            } => {
                let fd = sources.next().ok_or("internal: fewer sources than binds")?;
                bind(
                    newroot,
                    fd.as_raw_fd(),
                    source_path,
                    target,
                    *is_dir,
                    *writable,
                )?
            }
        }
    }
    build_dev(newroot)?;
    // A fresh procfs of the new PID namespace. It must be mounted while the host's full /proc is
    // still visible: the kernel refuses a new procfs in a user namespace that cannot see one.
    mount(
        Some("proc"),
        &newroot.join("proc"),
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        none,
    )
    .map_err(|e| format!("mount a fresh /proc: {e}"))?;
    Ok(())
}

fn bind(
    newroot: &Path,
    fd: i32,
    source_path: &Path,
    target: &Path,
    is_dir: bool,
    writable: bool,
) -> Result<(), String> {
    let none: Option<&str> = None;
    let t = under(newroot, target);
    if is_dir {
        mkdir_p(&t)?;
    } else {
        if let Some(parent) = t.parent() {
            mkdir_p(parent)?;
        }
        if !t.exists() {
            std::fs::File::create(&t).map_err(|e| format!("create {}: {e}", t.display()))?;
        }
    }
    let src = PathBuf::from(format!("/proc/self/fd/{fd}"));
    // Not recursive: a submount of a shared directory is not shown, so a read-only remount
    // below cannot leave a writable submount behind.
    mount(Some(&src), &t, none, MsFlags::MS_BIND, none).map_err(|e| {
        format!(
            "bind {} at {}: {e}",
            source_path.display(),
            target.display()
        )
    })?;
    let mut flags = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    flags |= locked_flags(fd) & !MsFlags::MS_RDONLY;
    if !writable {
        flags |= MsFlags::MS_RDONLY;
    } else if locked_flags(fd).contains(MsFlags::MS_RDONLY) {
        return Err(format!(
            "{} is on a read-only filesystem; it cannot be shared writable",
            source_path.display()
        ));
    }
    mount(none, &t, none, flags, none).map_err(|e| {
        format!(
            "remount {} {}: {e}",
            target.display(),
            if writable { "rw" } else { "ro" }
        )
    })
}

/// /dev with the five harmless devices, fd links, and nothing else (no tty, no pts).
fn build_dev(newroot: &Path) -> Result<(), String> {
    let none: Option<&str> = None;
    let dev = newroot.join("dev");
    mount(
        Some("tmpfs"),
        &dev,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("size=64k,mode=0755"),
    )
    .map_err(|e| format!("mount /dev tmpfs: {e}"))?;
    for name in DEVICES {
        let host = PathBuf::from("/dev").join(name);
        let t = dev.join(name);
        std::fs::File::create(&t).map_err(|e| format!("create /dev/{name}: {e}"))?;
        mount(Some(&host), &t, none, MsFlags::MS_BIND, none)
            .map_err(|e| format!("bind /dev/{name}: {e}"))?;
    }
    for (link, to) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        std::os::unix::fs::symlink(to, dev.join(link)).map_err(|e| format!("/dev/{link}: {e}"))?;
    }
    mount(
        none,
        &dev,
        none,
        MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("size=64k,mode=0755"),
    )
    .map_err(|e| format!("remount /dev read-only: {e}"))
}

/// Switches to the new root and detaches the host tree, then makes the root read-only.
pub fn pivot(newroot: &Path) -> Result<(), String> {
    let none: Option<&str> = None;
    nix::unistd::chdir(newroot).map_err(|e| format!("chdir to new root: {e}"))?;
    let dot = cpath(Path::new("."))?;
    // pivot_root(".", ".") stacks the old root on top of the new one; detaching "." then
    // removes the old root and everything below it from this namespace.
    // SAFETY: pivot_root with two valid C strings.
    let r = unsafe { libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) };
    if r != 0 {
        return Err(format!("pivot_root: {}", std::io::Error::last_os_error()));
    }
    umount2(".", MntFlags::MNT_DETACH).map_err(|e| format!("detach the host root: {e}"))?;
    nix::unistd::chdir("/").map_err(|e| format!("chdir /: {e}"))?;
    mount(
        none,
        "/",
        none,
        MsFlags::MS_REMOUNT
            | MsFlags::MS_BIND
            | MsFlags::MS_RDONLY
            | MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV,
        none,
    )
    .map_err(|e| format!("remount / read-only: {e}"))
}
