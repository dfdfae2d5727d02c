//! The minimal root: what the workload sees instead of the host tree.
//!
//! A visible pathname socket is connectable whatever Landlock says (up to ABI 7), and
//! supplementary groups survive into a user namespace, so showing the host tree (even read-only)
//! can hand out the docker socket. We build a root from nothing: a small tmpfs, read-only binds
//! of what the runtime needs, a private /tmp and /workspace, a minimal /dev and a fresh /proc.
//!
//! The plan is made on the host side (`MountPlan::build`): every host path is opened there,
//! once, and checked on the descriptor it gave (see [`crate::grant`]); from then on only the
//! descriptor travels. The init process gets the descriptors with its copy of the fd table and
//! mounts exactly those objects ([`take_sources`]); no host path is looked up again.

use std::ffi::{CString, OsStr};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

use crate::grant::{self, Access, Grant, GrantError, Object};
use crate::sys;

/// Where the sandbox's own writable places are.
pub const TMP: &str = "/tmp";
pub const WORKSPACE: &str = "/workspace";

/// Device nodes the workload gets; everything else under /dev is absent.
pub const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom"];

/// One step of building the root, in order.
#[derive(Debug)]
pub enum MountOp {
    /// Bind a granted host object (held as an O_PATH descriptor) at `target`.
    Bind {
        object: Object,
        /// Where the object was on the host when it was opened, for messages.
        host_path: PathBuf,
        target: PathBuf,
        access: Access,
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
    #[error("{flag} {source}")]
    Grant {
        flag: &'static str,
        source: GrantError,
    },
}

/// Whether a share must exist: the policy's paths are optional (absent ones are skipped, a
/// symlink is copied as a symlink), the user's are required and checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    Optional,
    Required,
}

/// A host path to show inside at the same path, as asked by the policy or the user.
pub struct Share<'a> {
    pub path: &'a Path,
    pub access: Access,
    pub need: Need,
    pub flag: &'static str,
}

/// A grant the caller opened itself (`--grant-read-fd`, [`crate::Sandbox::grant`]).
pub struct HeldGrant {
    pub grant: Grant,
    pub flag: &'static str,
}

impl MountPlan {
    /// Plans the root. `shares` come in order: policy paths, the runtime's install, then the
    /// user's --allow-read/--allow-write paths; `held` are grants opened by the caller. The
    /// user's shares and the held grants are opened and checked here, then sorted so parents are
    /// mounted first.
    pub fn build(
        shares: &[Share<'_>],
        held: Vec<HeldGrant>,
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
            if let Some(g) = plan.open_share(s)? {
                plan.add_grant(g, s.need, s.flag)?;
            }
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
        let mut opened = Vec::new();
        for s in user {
            if let Some(g) = plan.open_share(s)? {
                opened.push((g, s.need, s.flag));
            }
        }
        opened.extend(held.into_iter().map(|h| (h.grant, Need::Required, h.flag)));
        opened.sort_by_key(|(g, _, _)| g.inside.components().count());
        for (g, need, flag) in opened {
            plan.add_grant(g, need, flag)?;
        }
        Ok(plan)
    }

    /// Opens a share's path (once: everything after works on the descriptor). `None` when an
    /// optional path is absent or was copied as a symlink.
    fn open_share(&mut self, s: &Share<'_>) -> Result<Option<Grant>, PlanError> {
        let bad = |reason: String| PlanError::BadPath {
            flag: s.flag,
            path: s.path.display().to_string(),
            reason,
        };
        if !s.path.is_absolute() {
            return Err(bad("not an absolute path".into()));
        }
        if s.need == Need::Optional {
            // A policy path that is a symlink on this host (/bin -> usr/bin) is recreated as a
            // symlink inside; it points into the sandbox's own root, not the host's.
            match std::fs::symlink_metadata(s.path) {
                Err(_) => {
                    self.skipped.push(s.path.to_path_buf());
                    return Ok(None);
                }
                Ok(m) if m.file_type().is_symlink() => {
                    let to = std::fs::read_link(s.path).map_err(|e| bad(e.to_string()))?;
                    self.ops.push(MountOp::Symlink {
                        target: s.path.to_path_buf(),
                        points_to: to,
                    });
                    return Ok(None);
                }
                Ok(_) => {}
            }
        }
        // The path is resolved (the user's symlinks followed) once, and shown at its real
        // location; the object is what that canonical path named, opened without following.
        let (object, real) = grant::open_user_path(s.path).map_err(|source| PlanError::Grant {
            flag: s.flag,
            source,
        })?;
        Ok(Some(Grant {
            object,
            host_path: real.clone(),
            inside: real,
            access: s.access,
        }))
    }

    /// Adds a bind of an opened object, after checking the object (never its name).
    fn add_grant(&mut self, g: Grant, need: Need, flag: &'static str) -> Result<(), PlanError> {
        let bad = |reason: String| PlanError::BadPath {
            flag,
            path: g.host_path.display().to_string(),
            reason,
        };
        if need == Need::Required {
            grant::check_user_object(&g.object, &g.host_path).map_err(&bad)?;
            grant::check_access(&g.object, self.host_ids, g.access).map_err(&bad)?;
            check_inside(&g.inside).map_err(&bad)?;
        }
        let same_path = g.inside == g.host_path;
        if same_path && self.covers(&g.inside, g.access) {
            return Ok(());
        }
        // A bind's mount point is created inside whatever is mounted above it. For a path shown
        // at its own host path that is the same host tree; an object shown elsewhere would get
        // its mount point created in (or refused by) an unrelated object, maybe on the host.
        for op in &self.ops {
            if let MountOp::Bind {
                target, host_path, ..
            } = op
            {
                let above_is_same_path = target == host_path;
                if g.inside.starts_with(target) && !(same_path && above_is_same_path) {
                    return Err(bad(format!(
                        "{} lies inside {}, which is already shown from another object; choose a path outside it",
                        g.inside.display(),
                        target.display()
                    )));
                }
            }
        }
        self.ops.push(MountOp::Bind {
            object: g.object,
            host_path: g.host_path,
            target: g.inside,
            access: g.access,
        });
        Ok(())
    }

    /// True when an earlier bind already shows `path` with the same access. (A path asked
    /// with different access than its parent share gets a bind of its own, over it.)
    fn covers(&self, path: &Path, access: Access) -> bool {
        self.ops.iter().any(|op| match op {
            MountOp::Bind {
                target, access: a, ..
            } => path.starts_with(target) && *a == access,
            _ => false,
        })
    }

    /// Read-only and read-write paths inside, for Landlock.
    pub fn landlock_paths(&self) -> (Vec<PathBuf>, Vec<PathBuf>) {
        let mut ro = vec![PathBuf::from("/etc"), PathBuf::from("/proc")];
        let mut rw = vec![PathBuf::from(TMP), PathBuf::from(WORKSPACE)];
        for op in &self.ops {
            if let MountOp::Bind { target, access, .. } = op {
                if access.writable() {
                    rw.push(target.clone())
                } else {
                    ro.push(target.clone())
                }
            }
        }
        (ro, rw)
    }
}

/// Where a grant may appear inside: not `/`, and not in the sandbox's own trees.
fn check_inside(inside: &Path) -> Result<(), String> {
    if !inside.is_absolute() || inside.components().any(|c| c == Component::ParentDir) {
        return Err(format!(
            "{}: the path inside must be absolute, without `..`",
            inside.display()
        ));
    }
    if inside == Path::new("/") {
        return Err("cannot be shown over the sandbox's whole root".into());
    }
    for special in ["/proc", "/dev"] {
        if inside.starts_with(special) {
            return Err(format!(
                "{special} is the sandbox's own; choose another path inside"
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
fn locked_flags(source: BorrowedFd<'_>) -> MsFlags {
    let Ok(st) = sys::fstatvfs(source) else {
        return MsFlags::empty();
    };
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

/// Turns every bind's object into a detached mount this process can attach, in plan order, then
/// enters a mount namespace of our own. Runs in the init, which must still be in the host's
/// mount namespace (it is cloned without `CLONE_NEWNS`) and still have the caller's uid.
///
/// Why not bind `/proc/self/fd/N`: the kernel binds only from mounts of the caller's own mount
/// namespace (or detached ones), and a descriptor opened by H refers to a mount of the host's
/// namespace, of which a new namespace only holds a copy. The two things the kernel carries into
/// the copy are the working directory and the root: `unshare(CLONE_NEWNS)` moves them onto the
/// copied mounts. So a short-lived child of ours makes one granted directory its root and
/// another its working directory (`chroot` after `fchdir`, then `fchdir`, on H's descriptors: no
/// name is looked up), unshares, and clones the mount under each into a detached mount
/// (`open_tree(OPEN_TREE_CLONE)`), which it hands back over a socket. A file cannot be a root or
/// a working directory: the child enters the file's directory and opens the file's name in it,
/// and refuses unless that finds the very file H opened (same device and inode). The children
/// run in parallel, two directories each, because each costs a fork.
pub fn take_sources(plan: &MountPlan) -> Result<Vec<OwnedFd>, String> {
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    let binds: Vec<(&Object, &PathBuf)> = plan
        .ops
        .iter()
        .filter_map(|op| match op {
            MountOp::Bind {
                object, host_path, ..
            } => Some((object, host_path)),
            _ => None,
        })
        .collect();
    let trips = plan_trips(&binds)?;
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| format!("socketpair: {e}"))?;
    let mut children = Vec::new();
    let mut failure = None;
    for trip in trips.chunks(2) {
        // The init is single-threaded (sys::fork checks); the child only makes syscalls and
        // leaves with _exit, without running the parent's destructors.
        match sys::fork() {
            Ok(nix::unistd::ForkResult::Child) => {
                take_in_own_namespace(trip, &theirs);
                sys::exit_immediately(0)
            }
            Ok(nix::unistd::ForkResult::Parent { child }) => children.push(child),
            Err(e) => {
                failure = Some(format!("fork to take the shared paths: {e}"));
                break;
            }
        }
    }
    // Our copy of the children's end goes, so a child that dies without answering is seen as
    // end-of-file instead of a wait forever.
    drop(theirs);
    let mut trees: Vec<Option<OwnedFd>> = binds.iter().map(|_| None).collect();
    let wanted = if failure.is_some() { 0 } else { binds.len() };
    for _ in 0..wanted {
        match receive_tree(&ours) {
            Ok((i, Ok(fd))) if i < trees.len() => trees[i] = Some(fd),
            Ok((i, Err(e))) if i < binds.len() => {
                failure = Some(format!("{}: {e}", binds[i].1.display()));
                break;
            }
            Ok(_) => {
                failure = Some("internal: an answer for a bind that does not exist".into());
                break;
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    for child in children {
        let _ = nix::sys::wait::waitpid(child, None);
    }
    if let Some(f) = failure {
        return Err(f);
    }
    let trees = trees
        .into_iter()
        .collect::<Option<Vec<_>>>()
        .ok_or("internal: a shared path got no mount")?;
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
        .map_err(|e| format!("a new mount namespace (unshare CLONE_NEWNS): {e}"))?;
    Ok(trees)
}

/// One directory a child enters, and what it takes from it: the directory itself, and files
/// in it by name. `usize` is the bind's index in plan order.
struct Trip<'a> {
    dir: BorrowedFd<'a>,
    takes: Vec<(usize, Take<'a>)>,
}

enum Take<'a> {
    Itself,
    File { name: &'a OsStr, fd: BorrowedFd<'a> },
}

/// Groups the binds by the directory a child has to enter (a file's directory can be the same
/// as another file's or a granted directory).
fn plan_trips<'a>(binds: &[(&'a Object, &PathBuf)]) -> Result<Vec<Trip<'a>>, String> {
    let mut trips: Vec<(u64, u64, Trip<'a>)> = Vec::new();
    for (i, (object, host_path)) in binds.iter().enumerate() {
        let (dir, take) = match object {
            Object::Directory(fd) => (fd.as_fd(), Take::Itself),
            Object::File { fd, dir, name } => (
                dir.as_fd(),
                Take::File {
                    name: name.as_os_str(),
                    fd: fd.as_fd(),
                },
            ),
        };
        let st = sys::fstat(dir).map_err(|e| format!("{}: fstat: {e}", host_path.display()))?;
        match trips
            .iter_mut()
            .find(|(dev, ino, _)| (*dev, *ino) == (st.st_dev, st.st_ino))
        {
            Some((_, _, trip)) => trip.takes.push((i, take)),
            None => trips.push((
                st.st_dev,
                st.st_ino,
                Trip {
                    dir,
                    takes: vec![(i, take)],
                },
            )),
        }
    }
    Ok(trips.into_iter().map(|(_, _, t)| t).collect())
}

/// In a forked child: enter the first trip's directory as root and the second's (if any) as
/// working directory, unshare, and send a detached mount (or an error) for every take.
fn take_in_own_namespace(trip: &[Trip<'_>], sock: &OwnedFd) {
    let entered = (|| -> Result<(), String> {
        nix::unistd::fchdir(trip[0].dir).map_err(|e| format!("fchdir: {e}"))?;
        if trip.len() > 1 {
            // "." is the directory just entered.
            sys::chroot(c".").map_err(|e| format!("chroot: {e}"))?;
            nix::unistd::fchdir(trip[1].dir).map_err(|e| format!("fchdir: {e}"))?;
        }
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
            .map_err(|e| format!("unshare CLONE_NEWNS: {e}"))
    })();
    // With two trips the first is reached through "/" (our root), the second through ".".
    let places: &[&str] = if trip.len() > 1 { &["/", "."] } else { &["."] };
    for (t, place) in trip.iter().zip(places) {
        for (i, take) in &t.takes {
            let answer = entered.clone().and_then(|_| detach(place, take, t.dir));
            send_tree(
                sock,
                *i,
                answer.as_ref().map(|fd| fd.as_fd()).map_err(|e| e.as_str()),
            );
        }
    }
}

/// A detached mount of `take`, found at `place` (our root or working directory); refused
/// unless it is the object H opened.
fn detach(place: &str, take: &Take<'_>, dir: BorrowedFd<'_>) -> Result<OwnedFd, String> {
    let (path, want) = match take {
        Take::Itself => (PathBuf::from(place), dir),
        Take::File { name, fd } => (Path::new(place).join(name), *fd),
    };
    let c = cpath(&path)?;
    // AT_SYMLINK_NOFOLLOW: a symlink swapped in under a file's name is not followed (and then
    // fails the check).
    let tree = sys::open_tree(
        &c,
        sys::OPEN_TREE_CLONE
            | libc::O_CLOEXEC as libc::c_uint
            | libc::AT_SYMLINK_NOFOLLOW as libc::c_uint,
    )
    .map_err(|e| format!("open_tree (Linux 5.2+): {e}"))?;
    let want = sys::fstat(want).map_err(|e| format!("fstat: {e}"))?;
    let got = sys::fstat(tree.as_fd()).map_err(|e| format!("fstat: {e}"))?;
    if !grant::same_object(&want, &got) {
        return Err(
            "changed while it was being shared (another file now has its name); nothing was shared; try again"
                .into(),
        );
    }
    Ok(tree)
}

/// Child side: one datagram per bind: its index (8 bytes), then "k" with the descriptor, or
/// "e" and the error.
fn send_tree(sock: &OwnedFd, index: usize, tree: Result<BorrowedFd<'_>, &str>) {
    let mut msg = (index as u64).to_le_bytes().to_vec();
    let fd = match tree {
        Ok(fd) => {
            msg.push(b'k');
            Some(fd)
        }
        Err(e) => {
            msg.push(b'e');
            msg.extend_from_slice(e.as_bytes());
            None
        }
    };
    // An unsent answer is seen by the init as end-of-file once we exit.
    let _ = sys::send_with_fd(sock.as_fd(), &msg, fd);
}

/// Parent side of [`send_tree`]: the bind's index and its detached mount or error.
fn receive_tree(sock: &OwnedFd) -> Result<(usize, Result<OwnedFd, String>), String> {
    let mut buf = [0u8; 1024];
    let (n, fd) = sys::recv_with_fd(sock.as_fd(), &mut buf)
        .map_err(|e| format!("receive a detached mount: {e}"))?;
    if n < 9 {
        return Err("a child taking the shared paths died without an answer".into());
    }
    let mut index = [0u8; 8];
    index.copy_from_slice(&buf[..8]);
    let index = u64::from_le_bytes(index) as usize;
    match (buf[8], fd) {
        (b'k', Some(fd)) => Ok((index, Ok(fd))),
        (b'e', _) => Ok((index, Err(String::from_utf8_lossy(&buf[9..n]).into_owned()))),
        _ => Err("a child taking the shared paths sent a malformed answer".into()),
    }
}

/// Builds the new root at `newroot` (an empty directory of the init's mount namespace), with
/// the detached mounts from [`take_sources`].
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
                object,
                host_path,
                target,
                access,
            } => {
                let fd = sources.next().ok_or("internal: fewer sources than binds")?;
                bind(newroot, fd, host_path, target, object.is_dir(), *access)?
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

/// Attaches the detached mount `tree` (from [`take_sources`]) at `target` and remounts it with
/// `access`, keeping the flags the kernel locks.
fn bind(
    newroot: &Path,
    tree: &OwnedFd,
    host_path: &Path,
    target: &Path,
    is_dir: bool,
    access: Access,
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
    // Not recursive (open_tree without AT_RECURSIVE): a submount of a shared directory is not
    // shown, so a read-only remount below cannot leave a writable submount behind.
    let ct = cpath(&t)?;
    sys::move_mount_to(tree.as_fd(), &ct).map_err(|e| {
        format!(
            "bind {} at {}: move_mount: {e}",
            host_path.display(),
            target.display(),
        )
    })?;
    // The clone keeps the host mount's propagation: make it private, so nothing the host mounts
    // later appears inside.
    mount(none, &t, none, MsFlags::MS_PRIVATE, none)
        .map_err(|e| format!("make {} private: {e}", target.display()))?;
    let fd = tree.as_fd();
    let writable = access.writable();
    let mut flags = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    flags |= locked_flags(fd) & !MsFlags::MS_RDONLY;
    if !writable {
        flags |= MsFlags::MS_RDONLY;
    } else if locked_flags(fd).contains(MsFlags::MS_RDONLY) {
        return Err(format!(
            "{} is on a read-only filesystem; it cannot be shared writable",
            host_path.display()
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
    sys::pivot_root(&dot, &dot).map_err(|e| format!("pivot_root: {e}"))?;
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
