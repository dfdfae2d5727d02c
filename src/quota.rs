//! The write bound: the total a run may add to its writable host grants (`--allow-write`,
//! `filesystem.read_write`).
//!
//! RLIMIT_FSIZE caps one file; without more, a run could fill the host's disk through a writable
//! grant. The only kernel mechanism that bounds what is added below an arbitrary directory is a
//! *project quota* (ext4 made with `-O quota,project` and mounted `prjquota`; xfs mounted
//! `prjquota`): every inode carries a project id, a directory flagged PROJINHERIT hands its id to
//! what is created in it, and the file system refuses (EDQUOT) an allocation charged to a project
//! over its hard limit. Only root (CAP_SYS_ADMIN in the initial user namespace) may change
//! project ids and limits. So, for every file system holding writable grants, a run:
//! 1. takes the machine-wide walk lock, so the walks of two runs never interleave;
//! 2. recovers what runs killed by SIGKILL left behind (their records in [`STATE_DIR`]);
//! 3. takes a fresh project id from a reserved range, and a record file locked for its lifetime;
//! 4. walks each grant as the sandbox will see it (a non-recursive clone of its mount, so a
//!    directory hidden under a submount on the host is covered too), without following symlinks,
//!    recording each inode's project id and PROJINHERIT flag and setting its own;
//! 5. sets hard limits of current usage + the limit (blocks and inodes) and reads them back.
//!
//! After the run it walks again, puts back what was there (an inode the run created gets what the
//! kernel would have given it before), removes the limit and deletes the record.
//!
//! Where none of that is possible (not root, tmpfs, overlay, btrfs, a kernel or mount without
//! project quotas) there is no sound bound, and the run is refused unless the policy names the
//! weaker mode `unbounded-writes`.

use std::collections::HashMap;
use std::ffi::CString;
use std::fmt;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::sys;

/// Where runs keep the record of what they changed, so that the next run can undo the changes of
/// one killed by SIGKILL. On disk (not /run): project ids survive a reboot, so must the record.
pub const STATE_DIR: &str = "/var/lib/code-executor/write-bound";

/// Project ids this crate takes for runs: far above the small ids administrators give in
/// /etc/projid, and recognisable as ours when a walk meets one.
pub const PROJECT_RANGE: std::ops::Range<u32> = 0x6ce0_0000..0x6cf0_0000;

/// The bytes one inode stands for in the inode bound: the ratio mkfs.ext4 uses by default, so a
/// run may use its share of the file system's inodes, not more.
const BYTES_PER_INODE: u64 = 16 * 1024;
const MIN_INODES: u64 = 1024;

/// What a run may add to its writable grants, per file system.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteLimit {
    pub bytes: u64,
    pub inodes: u64,
}

impl WriteLimit {
    /// A byte limit with the inode bound that goes with it.
    pub fn from_bytes(bytes: u64) -> WriteLimit {
        WriteLimit {
            bytes,
            inodes: (bytes / BYTES_PER_INODE).max(MIN_INODES),
        }
    }
}

/// Why a grant's writes cannot be bounded soundly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoSoundBound {
    pub grant: PathBuf,
    /// The file system's type, e.g. `tmpfs`, `ext4`.
    pub fs: String,
    pub why: String,
}

impl fmt::Display for NoSoundBound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} is on {}: {}",
            self.grant.display(),
            self.fs,
            self.why
        )
    }
}

/// A write bound that could not be set up, or not be undone.
#[derive(Debug, thiserror::Error)]
pub enum WriteBoundError {
    #[error("write bound: the total written to a writable grant cannot be bounded soundly: {0}")]
    NoSoundBound(NoSoundBound),
    #[error("write bound: {grant} is in use by another sandbox run with a write bound (project id {project}, record {record}); two runs cannot bound the same tree")]
    InUse {
        grant: PathBuf,
        project: u32,
        record: PathBuf,
    },
    #[error("write bound: {grant}: {what}: {err}")]
    Io {
        grant: PathBuf,
        what: String,
        err: io::Error,
    },
}

impl WriteBoundError {
    /// What the user can do about it.
    pub fn fix(&self) -> String {
        match self {
            WriteBoundError::NoSoundBound(_) => "either put the grant on ext4 or xfs with project quotas and run sandbox-run as root (ext4: `tune2fs -O quota,project DEVICE` while unmounted, then mount with `-o prjquota`; xfs: mount with `-o prjquota`), or accept writes without a total bound with `--allow-degraded unbounded-writes` (policy: allow_degraded = [\"unbounded-writes\"]; the report lists it)".into(),
            WriteBoundError::InUse { .. } => "wait for the other run to end, or give each run its own directory".into(),
            WriteBoundError::Io { .. } => format!("check the grant is a local directory root can change; state is kept in {STATE_DIR}"),
        }
    }
}

/// How a run's writable grants were bounded.
#[derive(Debug)]
pub enum Outcome {
    /// No writable host paths: nothing to bound.
    NoGrants,
    /// Every grant is under a project quota.
    Bounded(WriteBound),
    /// The policy accepted `unbounded-writes`, and these grants have no sound bound (grants that
    /// could be bounded are, in the `WriteBound`).
    Degraded {
        bound: Option<WriteBound>,
        unbounded: Vec<NoSoundBound>,
    },
}

impl Outcome {
    /// One line for the report's layers.
    pub fn describe(&self, limit: WriteLimit) -> String {
        match self {
            Outcome::NoGrants => {
                "no writable host paths (private /tmp and /workspace are size-capped tmpfs)".into()
            }
            Outcome::Bounded(b) => b.describe(limit),
            Outcome::Degraded { bound, unbounded } => {
                let mut s = format!(
                    "NOT BOUNDED (degraded mode unbounded-writes): {}",
                    unbounded
                        .iter()
                        .map(|u| u.to_string())
                        .collect::<Vec<_>>()
                        .join("; ")
                );
                if let Some(b) = bound {
                    s.push_str("; bounded: ");
                    s.push_str(&b.describe(limit));
                }
                s
            }
        }
    }

    /// Undoes every change (see [`WriteBound::restore`]).
    pub fn restore(self) -> Result<(), WriteBoundError> {
        match self {
            Outcome::Bounded(b) | Outcome::Degraded { bound: Some(b), .. } => b.restore(),
            _ => Ok(()),
        }
    }
}

/// Project quotas set up for one run, one project per file system.
#[derive(Debug)]
pub struct WriteBound {
    projects: Vec<Project>,
}

/// One file system's project: the grants on it, what the walk changed, and the locked record.
#[derive(Debug)]
struct Project {
    id: u32,
    dev: u64,
    fs: String,
    grants: Vec<PathBuf>,
    /// Original (project id, PROJINHERIT) of every inode the walk changed, by inode number.
    originals: HashMap<u64, Original>,
    /// Usage when the limit was set, in bytes and inodes.
    usage: (u64, u64),
    /// The record file, flock'ed for the lifetime of the run: its lock says "alive".
    record: File,
    record_path: PathBuf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Original {
    projid: u32,
    inherit: bool,
}

/// What a killed run's successor needs to undo its changes.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    pid: u32,
    project: u32,
    grants: Vec<PathBuf>,
    /// Inodes whose original state was not (0, no PROJINHERIT), the default.
    originals: Vec<(u64, Original)>,
}

impl WriteBound {
    fn describe(&self, limit: WriteLimit) -> String {
        self.projects
            .iter()
            .map(|p| {
                format!(
                    "project quota on {} (project {}): at most {} and {} inodes added to {} (usage at start {} bytes, {} inodes)",
                    p.fs,
                    p.id,
                    crate::policy::Size(limit.bytes),
                    limit.inodes,
                    p.grants.iter().map(|g| g.display().to_string()).collect::<Vec<_>>().join(", "),
                    p.usage.0,
                    p.usage.1
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Puts back every inode's project id and PROJINHERIT flag, removes the limit and the record.
    /// Runs after the workload is gone (its PID namespace is dead when the launch returns).
    pub fn restore(self) -> Result<(), WriteBoundError> {
        let _walk = WalkLock::take()?;
        let mut first_err = None;
        for p in self.projects {
            if let Err(e) = p.restore() {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

/// Bounds what a run adds to `grants` (host paths, resolved). `allow_unbounded`: the policy
/// accepts `unbounded-writes`, so grants without a sound bound are reported, not refused.
pub fn apply(
    grants: &[PathBuf],
    limit: WriteLimit,
    allow_unbounded: bool,
) -> Result<Outcome, WriteBoundError> {
    if grants.is_empty() {
        return Ok(Outcome::NoGrants);
    }
    let mut sound = Vec::new();
    let mut unbounded = Vec::new();
    for g in grants {
        match probe(g) {
            Ok(Some(view)) => sound.push((g.clone(), view)),
            Ok(None) => {}
            Err(Probe::NoBound(n)) => unbounded.push(n),
            Err(Probe::Io(e)) => return Err(e),
        }
    }
    if let Some(first) = unbounded.first() {
        if !allow_unbounded {
            return Err(WriteBoundError::NoSoundBound(first.clone()));
        }
    }
    let bound = if sound.is_empty() {
        None
    } else {
        Some(bound_all(sound, limit)?)
    };
    Ok(match (bound, unbounded.is_empty()) {
        (Some(b), true) => Outcome::Bounded(b),
        (bound, _) => Outcome::Degraded { bound, unbounded },
    })
}

/// A grant seen as the sandbox sees it: a detached, non-recursive clone of its mount.
struct GrantView {
    /// The clone (an O_PATH descriptor; closing it drops the detached mount).
    tree: OwnedFd,
    dev: u64,
    fs: String,
    is_dir: bool,
}

enum Probe {
    NoBound(NoSoundBound),
    Io(WriteBoundError),
}

/// Finds whether `grant` can be bounded: root, ext4 or xfs, project quota accounted and enforced.
/// `None`: neither a directory nor a regular file (a FIFO, socket or device), which holds no
/// blocks, so there is nothing to bound.
fn probe(grant: &Path) -> Result<Option<GrantView>, Probe> {
    let io_err = |what: &str, err: io::Error| {
        Probe::Io(WriteBoundError::Io {
            grant: grant.to_path_buf(),
            what: what.into(),
            err,
        })
    };
    // O_PATH: opening a FIFO or device for real could block or have side effects.
    let plain = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_NOFOLLOW)
        .open(grant)
        .map_err(|e| io_err("open", e))?;
    let kind = sys::fstat(plain.as_fd())
        .map_err(|e| io_err("stat", e))?
        .st_mode
        & libc::S_IFMT;
    if kind != libc::S_IFDIR && kind != libc::S_IFREG {
        return Ok(None);
    }
    let plain = File::open(grant).map_err(|e| io_err("open", e))?;
    let fs = fs_name(plain.as_fd());
    let no = |why: String| {
        Probe::NoBound(NoSoundBound {
            grant: grant.to_path_buf(),
            fs: fs.clone(),
            why,
        })
    };
    if !nix::unistd::geteuid().is_root() {
        return Err(no("sandbox-run is not running as root, and only root (CAP_SYS_ADMIN) can set project ids and quota limits".into()));
    }
    if !(fs == "ext4" || fs == "xfs") {
        return Err(no(format!("{fs} has no project quotas, the only mechanism that bounds what is written below a directory (they exist on ext4 and xfs)")));
    }
    match sys::project_quota_flags(plain.as_fd()) {
        Err(e) => {
            return Err(no(format!(
                "project quotas are not available on this file system or kernel ({e}; ext4 needs the kernel's CONFIG_QFMT_V2 and the `quota,project` features, xfs needs CONFIG_XFS_QUOTA)"
            )))
        }
        Ok(flags) if flags & FS_QUOTA_PDQ_ACCT == 0 || flags & FS_QUOTA_PDQ_ENFD == 0 => {
            return Err(no(format!(
                "project quota accounting is {} and enforcement {}: it must be mounted with `prjquota`",
                on_off(flags & FS_QUOTA_PDQ_ACCT != 0),
                on_off(flags & FS_QUOTA_PDQ_ENFD != 0)
            )))
        }
        Ok(_) => {}
    }
    let tree = open_tree_clone(grant).map_err(|e| io_err("clone its mount (open_tree)", e))?;
    let st = sys::fstat(tree.as_fd()).map_err(|e| io_err("stat", e))?;
    Ok(Some(GrantView {
        tree,
        dev: st.st_dev,
        fs,
        is_dir: st.st_mode & libc::S_IFMT == libc::S_IFDIR,
    }))
}

fn on_off(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}

/// One project per file system, every grant on it walked, then the limits set.
fn bound_all(
    sound: Vec<(PathBuf, GrantView)>,
    limit: WriteLimit,
) -> Result<WriteBound, WriteBoundError> {
    let _walk = WalkLock::take()?;
    recover_stale();
    let mut bound = WriteBound {
        projects: Vec::new(),
    };
    let result = (|| {
        for (grant, view) in &sound {
            let idx = match bound.projects.iter().position(|p| p.dev == view.dev) {
                Some(i) => i,
                None => {
                    bound
                        .projects
                        .push(Project::new(grant, view.dev, &view.fs)?);
                    bound.projects.len() - 1
                }
            };
            let p = &mut bound.projects[idx];
            p.grants.push(grant.clone());
            p.write_record(grant)?;
            p.mark(grant, view)?;
        }
        for p in &mut bound.projects {
            p.write_record(&p.grants[0].clone())?;
            p.set_limit(limit)?;
        }
        Ok(())
    })();
    match result {
        Ok(()) => Ok(bound),
        Err(e) => {
            // Undo what was done so far; the lock is still held, so restore each directly.
            for p in bound.projects {
                let _ = p.restore();
            }
            Err(e)
        }
    }
}

impl Project {
    fn new(grant: &Path, dev: u64, fs: &str) -> Result<Project, WriteBoundError> {
        let io = |what: &str, err: io::Error| WriteBoundError::Io {
            grant: grant.to_path_buf(),
            what: what.into(),
            err,
        };
        std::fs::create_dir_all(STATE_DIR).map_err(|e| io(&format!("create {STATE_DIR}"), e))?;
        let probe_fd = File::open(grant).map_err(|e| io("open", e))?;
        for _ in 0..64 {
            let r = getrandom::u32()
                .map_err(|e| io("random project id", io::Error::other(e.to_string())))?;
            let id = PROJECT_RANGE.start + r % (PROJECT_RANGE.end - PROJECT_RANGE.start);
            let record_path = PathBuf::from(STATE_DIR).join(format!("{id}.json"));
            if record_path.exists() {
                continue;
            }
            match sys::project_quota(probe_fd.as_fd(), id) {
                Ok(q)
                    if q.d_bcount != 0
                        || q.d_icount != 0
                        || q.d_blk_hardlimit != 0
                        || q.d_ino_hardlimit != 0 =>
                {
                    continue
                }
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                Err(e) => return Err(io("read the project quota (Q_XGETQUOTA)", e)),
            }
            let record = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&record_path)
                .map_err(|e| io(&format!("create {}", record_path.display()), e))?;
            sys::flock(record.as_fd(), libc::LOCK_EX | libc::LOCK_NB)
                .map_err(|e| io("lock the record", e))?;
            return Ok(Project {
                id,
                dev,
                fs: fs.to_string(),
                grants: Vec::new(),
                originals: HashMap::new(),
                usage: (0, 0),
                record,
                record_path,
            });
        }
        Err(io(
            "find a free project id",
            io::Error::other("64 random ids of the reserved range were all in use"),
        ))
    }

    /// Saves what a successor needs to undo this run's changes, should it be killed.
    fn write_record(&self, grant: &Path) -> Result<(), WriteBoundError> {
        let rec = Record {
            pid: std::process::id(),
            project: self.id,
            grants: self.grants.clone(),
            originals: self
                .originals
                .iter()
                .filter(|(_, o)| **o != DEFAULT_ORIGINAL)
                .map(|(i, o)| (*i, *o))
                .collect(),
        };
        let json = serde_json::to_vec(&rec).map_err(|e| WriteBoundError::Io {
            grant: grant.to_path_buf(),
            what: "encode the record".into(),
            err: io::Error::other(e),
        })?;
        let write = || -> io::Result<()> {
            use std::io::{Seek, Write};
            let mut f = &self.record;
            f.set_len(0)?;
            f.seek(io::SeekFrom::Start(0))?;
            f.write_all(&json)?;
            f.sync_all()
        };
        write().map_err(|e| WriteBoundError::Io {
            grant: grant.to_path_buf(),
            what: format!("write {}", self.record_path.display()),
            err: e,
        })
    }

    /// Gives every inode of the grant this project, and PROJINHERIT to every directory.
    fn mark(&mut self, grant: &Path, view: &GrantView) -> Result<(), WriteBoundError> {
        let id = self.id;
        let originals = &mut self.originals;
        let mut in_use = None;
        walk(&view.tree, view.is_dir, (), &mut |fd, st, ()| {
            if originals.contains_key(&st.st_ino) {
                return Ok(());
            }
            let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
            let mut x = sys::fs_get_xattr(fd.as_fd())?;
            if x.fsx_projid != id && PROJECT_RANGE.contains(&x.fsx_projid) {
                in_use = Some(x.fsx_projid);
                return Err(io::Error::other("in use"));
            }
            originals.insert(
                st.st_ino,
                Original {
                    projid: x.fsx_projid,
                    inherit: x.fsx_xflags & FS_XFLAG_PROJINHERIT != 0,
                },
            );
            x.fsx_projid = id;
            if is_dir {
                x.fsx_xflags |= FS_XFLAG_PROJINHERIT;
            }
            match sys::fs_set_xattr(fd.as_fd(), &x) {
                // An immutable inode cannot grow, so it needs no project.
                Err(e)
                    if e.raw_os_error() == Some(libc::EPERM)
                        && x.fsx_xflags & FS_XFLAG_IMMUTABLE != 0 =>
                {
                    originals.remove(&st.st_ino);
                    Ok(())
                }
                Err(e) => Err(e),
                Ok(()) => Ok(()),
            }
        })
        .map_err(|err| match in_use {
            Some(project) => WriteBoundError::InUse {
                grant: grant.to_path_buf(),
                project,
                record: PathBuf::from(STATE_DIR).join(format!("{project}.json")),
            },
            None => WriteBoundError::Io {
                grant: grant.to_path_buf(),
                what: "set project ids (FS_IOC_FSSETXATTR)".into(),
                err,
            },
        })
    }

    /// Hard limits of usage + the limit, read back: a limit the kernel did not take is an error.
    fn set_limit(&mut self, limit: WriteLimit) -> Result<(), WriteBoundError> {
        let grant = self.grants[0].clone();
        let io = |what: &str, err: io::Error| WriteBoundError::Io {
            grant: grant.clone(),
            what: what.into(),
            err,
        };
        let f = File::open(&grant).map_err(|e| io("open", e))?;
        let now = sys::project_quota(f.as_fd(), self.id)
            .map_err(|e| io("read usage (Q_XGETQUOTA)", e))?;
        let blocks = now.d_bcount + limit.bytes.div_ceil(512);
        let inodes = now.d_icount + limit.inodes;
        sys::set_project_quota_limit(f.as_fd(), self.id, blocks, inodes)
            .map_err(|e| io("set the limit (Q_XSETQLIM)", e))?;
        let back =
            sys::project_quota(f.as_fd(), self.id).map_err(|e| io("read the limit back", e))?;
        if back.d_blk_hardlimit != blocks || back.d_ino_hardlimit != inodes {
            return Err(io(
                "verify the limit",
                io::Error::other(format!(
                    "set {blocks} blocks and {inodes} inodes, the kernel reports {} and {}",
                    back.d_blk_hardlimit, back.d_ino_hardlimit
                )),
            ));
        }
        self.usage = (now.d_bcount * 512, now.d_icount);
        Ok(())
    }

    fn restore(self) -> Result<(), WriteBoundError> {
        let mut first_err = None;
        for g in &self.grants {
            if let Err(e) = restore_tree(g, self.id, |ino| self.originals.get(&ino).copied()) {
                first_err.get_or_insert(e);
            }
        }
        if let Some(g) = self.grants.first() {
            let cleared =
                File::open(g).and_then(|f| sys::set_project_quota_limit(f.as_fd(), self.id, 0, 0));
            if let Err(err) = cleared {
                first_err.get_or_insert(WriteBoundError::Io {
                    grant: g.clone(),
                    what: "remove the limit (Q_XSETQLIM)".into(),
                    err,
                });
            }
        }
        if first_err.is_none() {
            let _ = std::fs::remove_file(&self.record_path);
        }
        drop(self.record);
        first_err.map_or(Ok(()), Err)
    }
}

const DEFAULT_ORIGINAL: Original = Original {
    projid: 0,
    inherit: false,
};

/// Walks `grant` and gives every inode carrying `project` back its original state; an inode the
/// run created gets what its parent would have given it (its original id if it had PROJINHERIT).
fn restore_tree(
    grant: &Path,
    project: u32,
    original: impl Fn(u64) -> Option<Original>,
) -> Result<(), WriteBoundError> {
    let io = |what: &str, err: io::Error| WriteBoundError::Io {
        grant: grant.to_path_buf(),
        what: what.into(),
        err,
    };
    let tree = open_tree_clone(grant).map_err(|e| io("clone its mount (open_tree)", e))?;
    let st = sys::fstat(tree.as_fd()).map_err(|e| io("stat", e))?;
    let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
    // The context handed to children: what a new inode below would have got.
    walk(&tree, is_dir, DEFAULT_ORIGINAL, &mut |fd, st, inherited| {
        let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
        let mut x = sys::fs_get_xattr(fd.as_fd())?;
        if x.fsx_projid != project {
            // Not ours (never marked, e.g. immutable): its children may still be.
            let own = Original {
                projid: x.fsx_projid,
                inherit: x.fsx_xflags & FS_XFLAG_PROJINHERIT != 0,
            };
            return Ok(child_context(own));
        }
        let orig = original(st.st_ino).unwrap_or(Original {
            projid: inherited.projid,
            inherit: inherited.inherit && is_dir,
        });
        x.fsx_projid = orig.projid;
        if is_dir && orig.inherit {
            x.fsx_xflags |= FS_XFLAG_PROJINHERIT;
        } else {
            x.fsx_xflags &= !FS_XFLAG_PROJINHERIT;
        }
        sys::fs_set_xattr(fd.as_fd(), &x)?;
        Ok(child_context(orig))
    })
    .map_err(|e| io("restore project ids (FS_IOC_FSSETXATTR)", e))
}

/// What a directory in state `own` gives an inode created in it.
fn child_context(own: Original) -> Original {
    if own.inherit {
        own
    } else {
        DEFAULT_ORIGINAL
    }
}

/// Undoes the changes of runs that were killed (record present, its lock free). Best effort:
/// a record that cannot be undone stays for the next run, and the walk then refuses its tree.
fn recover_stale() {
    let Ok(dir) = std::fs::read_dir(STATE_DIR) else {
        return;
    };
    for entry in dir.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let Ok(f) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
        else {
            continue;
        };
        if sys::flock(f.as_fd(), libc::LOCK_EX | libc::LOCK_NB).is_err() {
            continue; // a live run holds it
        }
        let Ok(rec) = serde_json::from_reader::<_, Record>(&f) else {
            continue;
        };
        let originals: HashMap<u64, Original> = rec.originals.into_iter().collect();
        let mut ok = true;
        for g in &rec.grants {
            ok &= restore_tree(g, rec.project, |ino| originals.get(&ino).copied()).is_ok();
        }
        if let Some(g) = rec.grants.first() {
            ok &= File::open(g)
                .and_then(|fd| sys::set_project_quota_limit(fd.as_fd(), rec.project, 0, 0))
                .is_ok();
        }
        if ok {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// The machine-wide lock held while a run walks (marks or restores) its grants.
struct WalkLock(#[allow(dead_code)] File);

impl WalkLock {
    fn take() -> Result<WalkLock, WriteBoundError> {
        let io = |what: &str, err: io::Error| WriteBoundError::Io {
            grant: PathBuf::from(STATE_DIR),
            what: what.into(),
            err,
        };
        std::fs::create_dir_all(STATE_DIR).map_err(|e| io("create the state directory", e))?;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(Path::new(STATE_DIR).join("walk.lock"))
            .map_err(|e| io("open walk.lock", e))?;
        sys::flock(f.as_fd(), libc::LOCK_EX).map_err(|e| io("lock walk.lock", e))?;
        Ok(WalkLock(f))
    }
}

/// What a walk does at each inode: given the context its parent handed down, it returns the
/// context for its children.
type Visit<'a, C> = dyn FnMut(&OwnedFd, &libc::stat, C) -> io::Result<C> + 'a;

/// Calls `visit` on the root and, for directories, on every entry below, depth first, never
/// following a symlink and never opening anything but directories and regular files (a FIFO or
/// device holds no blocks, a symlink's are fixed at creation). `visit` returns the context for
/// the node's children. `root` is an O_PATH descriptor (the detached clone).
fn walk<C: Copy>(
    root: &OwnedFd,
    root_is_dir: bool,
    ctx: C,
    visit: &mut Visit<'_, C>,
) -> io::Result<()> {
    let path =
        CString::new(format!("/proc/self/fd/{}", root.as_raw_fd())).map_err(io::Error::other)?;
    let flags = if root_is_dir { libc::O_DIRECTORY } else { 0 };
    let fd = sys::open(
        &path,
        libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY | flags,
    )?;
    let st = sys::fstat(fd.as_fd())?;
    walk_node(&fd, &st, ctx, visit)
}

fn walk_node<C: Copy>(
    fd: &OwnedFd,
    st: &libc::stat,
    ctx: C,
    visit: &mut Visit<'_, C>,
) -> io::Result<()> {
    let kind = st.st_mode & libc::S_IFMT;
    if kind != libc::S_IFDIR && kind != libc::S_IFREG {
        return Ok(());
    }
    let child_ctx = visit(fd, st, ctx)?;
    if kind != libc::S_IFDIR {
        return Ok(());
    }
    for entry in std::fs::read_dir(format!("/proc/self/fd/{}", fd.as_raw_fd()))? {
        let entry = entry?;
        let ft = entry.file_type()?;
        if !(ft.is_dir() || ft.is_file()) {
            continue;
        }
        let name = CString::new(entry.file_name().as_bytes()).map_err(io::Error::other)?;
        // O_NOFOLLOW: a symlink swapped in since the readdir fails instead of being followed;
        // O_NONBLOCK: a FIFO swapped in does not block.
        let opened = sys::openat(
            fd.as_fd(),
            &name,
            libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY,
        );
        let child = match opened {
            Ok(child) => child,
            // Gone since the readdir, or replaced by a symlink: nothing to mark.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ELOOP)) => {
                continue
            }
            Err(e) => return Err(e),
        };
        let cst = sys::fstat(child.as_fd())?;
        // A directory on another device is a submount: not shown inside (binds are not
        // recursive), and the directory under it is reached through the non-recursive clone.
        if cst.st_dev != st.st_dev {
            continue;
        }
        walk_node(&child, &cst, child_ctx, visit)?;
    }
    Ok(())
}

// ---- The kernel interfaces (the calls themselves are in `sys`). ----

const FS_XFLAG_IMMUTABLE: u32 = 0x0000_0008;
const FS_XFLAG_PROJINHERIT: u32 = 0x0000_0200;
const FS_QUOTA_PDQ_ACCT: u16 = 1 << 4;
const FS_QUOTA_PDQ_ENFD: u16 = 1 << 5;

/// A detached, non-recursive clone of the mount at `path` (what a non-recursive bind shows).
fn open_tree_clone(path: &Path) -> io::Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
    sys::open_tree(&c, sys::OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint)
}

/// The file system's type name, from statfs, for messages.
fn fs_name(fd: BorrowedFd<'_>) -> String {
    let s = match sys::fstatfs(fd) {
        Ok(s) => s,
        Err(e) => return format!("an unknown file system ({e})"),
    };
    match s.f_type {
        libc::EXT4_SUPER_MAGIC => "ext4".into(),
        libc::XFS_SUPER_MAGIC => "xfs".into(),
        libc::TMPFS_MAGIC => "tmpfs".into(),
        libc::OVERLAYFS_SUPER_MAGIC => "overlay".into(),
        libc::BTRFS_SUPER_MAGIC => "btrfs".into(),
        libc::NFS_SUPER_MAGIC => "nfs".into(),
        0x6573_5546 => "fuse".into(),
        0x0102_1997 => "9p".into(),
        other => format!("a file system of type {other:#x}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inode_bound_follows_the_byte_bound() {
        assert_eq!(WriteLimit::from_bytes(1 << 30).inodes, 65536);
        assert_eq!(WriteLimit::from_bytes(1 << 20).inodes, MIN_INODES);
    }
}
