//! Grants: host objects shown inside a sandbox, held as descriptors from the moment they are
//! checked.
//!
//! A name is only an instruction for finding an object, and anything that can write in a granted
//! tree (a guest of an earlier run, another user) can change what a name finds between two
//! lookups. So a host path is looked up exactly once, here, in the process that checks it; every
//! check (not `/`, not the sandbox's own `/proc`, `/dev`, `/sys`, usable by the sandbox's host
//! uid) is made on the descriptor that lookup returned, and the launch mounts that descriptor's
//! object. Nothing looks the name up again.
//!
//! The lookup itself refuses symlinks in every component (`openat2` with `RESOLVE_NO_SYMLINKS`,
//! or a component-by-component `O_NOFOLLOW` walk on kernels without `openat2`). For the CLI the
//! user's path is the authority: we canonicalize what the user typed (their intent), then open
//! that canonical path without following anything. A symlink swapped in after the
//! canonicalization makes the open fail instead of leading elsewhere.

use std::ffi::{CString, OsString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use crate::sys::{self, fstat, AdoptError};

/// How the sandbox may use a granted object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    ReadOnly,
    ReadWrite,
}

impl Access {
    pub fn writable(self) -> bool {
        self == Access::ReadWrite
    }
}

/// The opened object of a grant.
///
/// A file keeps the directory it was found in and its name there: the launch has to bring the
/// object into a mount namespace of its own, which it can do for a directory (as its working
/// directory) but not for a file, so it brings the directory and looks the file up in it, and
/// refuses unless that lookup finds this very file (same device and inode).
#[derive(Clone, Debug)]
pub enum Object {
    Directory(Arc<OwnedFd>),
    File {
        fd: Arc<OwnedFd>,
        dir: Arc<OwnedFd>,
        name: OsString,
    },
}

impl Object {
    /// The descriptor of the object itself (O_PATH).
    pub fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Object::Directory(fd) => fd.as_fd(),
            Object::File { fd, .. } => fd.as_fd(),
        }
    }

    pub fn is_dir(&self) -> bool {
        matches!(self, Object::Directory(_))
    }
}

/// A host object to show inside the sandbox at `inside`, with `access`.
#[derive(Clone, Debug)]
pub struct Grant {
    pub object: Object,
    /// Where the object was on the host when it was opened (for messages and --explain).
    pub host_path: PathBuf,
    pub inside: PathBuf,
    pub access: Access,
}

/// Why a grant was refused.
#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    #[error("{path} changed while it was being opened (a symlink appeared); nothing was shared; try again")]
    Changed { path: PathBuf },
    #[error("{path}: {source}; give a path that exists")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Refused { path: PathBuf, reason: String },
    #[error(
        "{path}: a granted path may only name components below its root (no `..`, not absolute)"
    )]
    Escapes { path: PathBuf },
    #[error("{flag} {fd}: {reason}")]
    BadFd {
        flag: &'static str,
        fd: RawFd,
        reason: String,
    },
}

const OPEN_FLAGS: libc::c_int = libc::O_PATH | libc::O_CLOEXEC;

/// Opens `rel` beneath `root` without following any symlink (O_PATH, close-on-exec).
///
/// `rel` must be relative and made of plain names (no `..`). A symlink in any component, a
/// magic link, or an attempt to leave `root` fails with [`GrantError::Changed`]: the caller
/// resolved the path before and expects none. Uses `openat2` (Linux 5.6+) and falls back to
/// [`open_beneath_walk`] when the kernel does not have it.
pub fn open_beneath(root: BorrowedFd<'_>, rel: &Path) -> Result<OwnedFd, GrantError> {
    let c = relative_cstring(rel)?;
    let resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS;
    let err = match sys::openat2(root, &c, OPEN_FLAGS, resolve) {
        Ok(fd) => return Ok(fd),
        Err(err) => err,
    };
    match err.raw_os_error() {
        Some(libc::ENOSYS) => open_beneath_walk(root, rel),
        // ELOOP: a symlink (or magic link) on the way; EXDEV: the walk would leave `root`.
        Some(libc::ELOOP) | Some(libc::EXDEV) => Err(GrantError::Changed {
            path: rel.to_path_buf(),
        }),
        // EAGAIN: a rename elsewhere on the filesystem raced with a RESOLVE_BENEATH lookup.
        Some(libc::EAGAIN) => open_beneath_walk(root, rel),
        _ => Err(GrantError::Open {
            path: rel.to_path_buf(),
            source: err,
        }),
    }
}

/// The fallback of [`open_beneath`] for kernels without `openat2`: one `openat(O_NOFOLLOW)` per
/// component, each result checked with fstat, refusing a symlink anywhere.
///
/// Each step starts from the descriptor of the previous one, so a component swapped after we
/// passed it changes nothing, and one swapped before we reach it is seen as a symlink.
pub fn open_beneath_walk(root: BorrowedFd<'_>, rel: &Path) -> Result<OwnedFd, GrantError> {
    relative_cstring(rel)?;
    let changed = || GrantError::Changed {
        path: rel.to_path_buf(),
    };
    let mut cur = sys::openat(root, c".", OPEN_FLAGS).map_err(|source| GrantError::Open {
        path: rel.to_path_buf(),
        source,
    })?;
    for comp in rel.components() {
        let Component::Normal(name) = comp else {
            continue; // `.` only: relative_cstring refused everything else.
        };
        let c = CString::new(name.as_bytes()).map_err(|_| GrantError::Escapes {
            path: rel.to_path_buf(),
        })?;
        let next =
            sys::openat(cur.as_fd(), &c, OPEN_FLAGS | libc::O_NOFOLLOW).map_err(|err| match err
                .raw_os_error()
            {
                Some(libc::ELOOP) => changed(),
                _ => GrantError::Open {
                    path: rel.to_path_buf(),
                    source: err,
                },
            })?;
        // O_PATH|O_NOFOLLOW opens a symlink itself instead of failing: look at what we got.
        let st = fstat(next.as_fd()).map_err(|source| GrantError::Open {
            path: rel.to_path_buf(),
            source,
        })?;
        if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
            return Err(changed());
        }
        cur = next;
    }
    Ok(cur)
}

/// `rel` as a C string, refusing anything but plain names and `.`.
fn relative_cstring(rel: &Path) -> Result<CString, GrantError> {
    let escapes = || GrantError::Escapes {
        path: rel.to_path_buf(),
    };
    if rel
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(escapes());
    }
    let bytes = if rel.as_os_str().is_empty() {
        b".".as_slice()
    } else {
        rel.as_os_str().as_bytes()
    };
    CString::new(bytes).map_err(|_| escapes())
}

/// True when two stats name the same object.
pub(crate) fn same_object(a: &libc::stat, b: &libc::stat) -> bool {
    a.st_dev == b.st_dev && a.st_ino == b.st_ino
}

fn root_fd() -> Result<OwnedFd, GrantError> {
    sys::open(c"/", OPEN_FLAGS | libc::O_DIRECTORY).map_err(|source| GrantError::Open {
        path: "/".into(),
        source,
    })
}

/// Opens the absolute, already canonical `real` from `/`, following no symlink; a directory
/// becomes [`Object::Directory`], anything else an [`Object::File`] with its directory.
/// Errors name `shown` (what the caller asked for).
fn open_canonical(real: &Path, shown: &Path) -> Result<Object, GrantError> {
    let relabel = |e: GrantError| match e {
        GrantError::Changed { .. } => GrantError::Changed {
            path: shown.to_path_buf(),
        },
        GrantError::Open { source, .. } => GrantError::Open {
            path: shown.to_path_buf(),
            source,
        },
        GrantError::Escapes { .. } => GrantError::Escapes {
            path: shown.to_path_buf(),
        },
        other => other,
    };
    let root = root_fd()?;
    let rel = real.strip_prefix("/").map_err(|_| GrantError::Escapes {
        path: shown.to_path_buf(),
    })?;
    let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
        return Ok(Object::Directory(Arc::new(root))); // `/` itself; the checks refuse it.
    };
    let dir = open_beneath(root.as_fd(), parent).map_err(relabel)?;
    let fd = open_beneath(dir.as_fd(), Path::new(name)).map_err(relabel)?;
    let st = fstat(fd.as_fd()).map_err(|source| GrantError::Open {
        path: shown.to_path_buf(),
        source,
    })?;
    Ok(if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        Object::Directory(Arc::new(fd))
    } else {
        Object::File {
            fd: Arc::new(fd),
            dir: Arc::new(dir),
            name: name.to_os_string(),
        }
    })
}

/// Opens what the user named: the path is canonicalized (the user's intent: symlinks the user
/// typed are followed once, here), then that canonical path is opened from `/` following no
/// symlink. Returns the object and the canonical path, where it is shown inside.
pub fn open_user_path(path: &Path) -> Result<(Object, PathBuf), GrantError> {
    if !path.is_absolute() {
        return Err(GrantError::Refused {
            path: path.to_path_buf(),
            reason: "not an absolute path".into(),
        });
    }
    let real = std::fs::canonicalize(path).map_err(|source| GrantError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    Ok((open_canonical(&real, path)?, real))
}

/// The path of an opened object on the host, as the kernel names it now.
pub fn path_of(fd: BorrowedFd<'_>) -> std::io::Result<PathBuf> {
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Takes over a descriptor this process inherited (`--grant-read-fd FD:PATH`): it must be open;
/// it is made close-on-exec, so it reaches neither the workload nor anything else we spawn.
/// `fd` is a number because the flag is: the starting process chose it.
pub fn adopt_inherited(fd: RawFd, flag: &'static str) -> Result<OwnedFd, GrantError> {
    sys::adopt_inherited_fd(fd).map_err(|e| GrantError::BadFd {
        flag,
        fd,
        reason: match e {
            AdoptError::Stdio => {
                "descriptors 0, 1 and 2 are stdio; pass the object at 3 or above".into()
            }
            AdoptError::NotOpen(err) => format!(
                "{err}; the starting process must leave it open (not close-on-exec) for sandbox-run"
            ),
            AdoptError::Taken => "already taken over; pass each descriptor once".into(),
            AdoptError::Cloexec(err) => err.to_string(),
        },
    })
}

/// Turns a descriptor the caller already holds into an [`Object`]. A directory is used as is.
/// For a file we also need its directory (see [`Object`]); it is opened from the file's current
/// path without following symlinks, and refused unless it holds this very file.
pub fn object_from_fd(fd: Arc<OwnedFd>) -> Result<Object, GrantError> {
    let host = path_of(fd.as_fd()).map_err(|source| GrantError::Open {
        path: PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd())),
        source,
    })?;
    let st = fstat(fd.as_fd()).map_err(|source| GrantError::Open {
        path: host.clone(),
        source,
    })?;
    if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        return Ok(Object::Directory(fd));
    }
    if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
        return Err(GrantError::Refused {
            path: host,
            reason: "is a symlink; pass the object it points to".into(),
        });
    }
    let Object::File {
        dir,
        name,
        fd: found,
    } = open_canonical(&host, &host)?
    else {
        return Err(GrantError::Changed { path: host });
    };
    let found_st = fstat(found.as_fd()).map_err(|source| GrantError::Open {
        path: host.clone(),
        source,
    })?;
    if !same_object(&st, &found_st) {
        return Err(GrantError::Changed { path: host });
    }
    Ok(Object::File { fd, dir, name })
}

/// Paths a user may not share: the whole host, or the sandbox's own special trees. Checked on
/// the opened object: its identity against `/`, its filesystem type, and its current path.
pub fn check_user_object(object: &Object, host_path: &Path) -> Result<(), String> {
    let fd = object.fd();
    let st = fstat(fd).map_err(|e| e.to_string())?;
    let root = root_fd().map_err(|e| e.to_string())?;
    let root_st = fstat(root.as_fd()).map_err(|e| e.to_string())?;
    if same_object(&st, &root_st) {
        return Err(
            "refusing to show the whole host filesystem; name the directories the program needs"
                .into(),
        );
    }
    let sfs = sys::fstatfs(fd).map_err(|e| format!("fstatfs: {e}"))?;
    let special = match sfs.f_type {
        libc::PROC_SUPER_MAGIC => Some("/proc"),
        libc::SYSFS_MAGIC => Some("/sys"),
        _ => None,
    };
    let special = special.or_else(|| {
        ["/proc", "/dev", "/sys"]
            .into_iter()
            .find(|s| host_path.starts_with(s))
    });
    if let Some(special) = special {
        return Err(format!(
            "{special} is the sandbox's own; it cannot be shared from the host"
        ));
    }
    Ok(())
}

/// The workload runs as an unprivileged host uid (65534 when root starts it): a shared object it
/// cannot use would fail later with a bare EACCES inside, so say it now, with the fix. Checked
/// on the opened object's mode and owner.
pub fn check_access(object: &Object, (uid, gid): (u32, u32), access: Access) -> Result<(), String> {
    let st = fstat(object.fd()).map_err(|e| e.to_string())?;
    let mode = st.st_mode;
    let bits = if st.st_uid == uid {
        (mode >> 6) & 7
    } else if st.st_gid == gid {
        (mode >> 3) & 7
    } else {
        mode & 7
    };
    let is_dir = mode & libc::S_IFMT == libc::S_IFDIR;
    let writable = access.writable();
    let need = match (is_dir, writable) {
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
        st.st_uid,
        match (is_dir, writable) {
            (true, true) => "rwx",
            (true, false) => "rx",
            (false, true) => "rw",
            (false, false) => "r",
        }
    ))
}

/// Parses `FD:PATH` of `--grant-read-fd` / `--grant-write-fd`.
pub fn parse_fd_spec(s: &str) -> Result<(RawFd, PathBuf), String> {
    let (fd, path) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?} is not FD:PATH (e.g. 3:/data)"))?;
    let fd: RawFd = fd
        .parse()
        .map_err(|_| format!("{fd:?} is not a descriptor number"))?;
    let path = PathBuf::from(path);
    if !path.is_absolute() || path.components().any(|c| c == Component::ParentDir) {
        return Err(format!(
            "{}: the path inside must be absolute, without `..`",
            path.display()
        ));
    }
    Ok((fd, path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn dir_fd(p: &Path) -> OwnedFd {
        OwnedFd::from(std::fs::File::open(p).unwrap())
    }

    fn ident(fd: BorrowedFd<'_>) -> (u64, u64) {
        let st = fstat(fd).unwrap();
        (st.st_dev, st.st_ino)
    }

    fn meta_ident(p: &Path) -> (u64, u64) {
        let m = std::fs::metadata(p).unwrap();
        (m.dev(), m.ino())
    }

    /// A root with a/b/c (a directory), a/file, a/link -> b, and an outside directory.
    fn tree() -> (tempfile::TempDir, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        std::fs::create_dir_all(root.join("a/b/c")).unwrap();
        std::fs::write(root.join("a/file"), "x").unwrap();
        std::os::unix::fs::symlink("b", root.join("a/link")).unwrap();
        std::os::unix::fs::symlink("/", root.join("a/abs")).unwrap();
        std::fs::create_dir_all(t.path().join("outside")).unwrap();
        (t, root)
    }

    type Opener = fn(BorrowedFd<'_>, &Path) -> Result<OwnedFd, GrantError>;
    const OPENERS: [(&str, Opener); 2] = [("openat2", open_beneath), ("walk", open_beneath_walk)];

    #[test]
    fn both_openers_find_plain_paths() {
        let (_t, root) = tree();
        let r = dir_fd(&root);
        for (name, open) in OPENERS {
            for rel in ["a", "a/b", "a/b/c", "a/file", "./a/b", ""] {
                let fd =
                    open(r.as_fd(), Path::new(rel)).unwrap_or_else(|e| panic!("{name} {rel}: {e}"));
                assert_eq!(
                    ident(fd.as_fd()),
                    meta_ident(&root.join(rel)),
                    "{name} {rel}"
                );
            }
        }
    }

    #[test]
    fn both_openers_refuse_symlinks_dotdot_and_absolute_paths() {
        let (_t, root) = tree();
        let r = dir_fd(&root);
        for (name, open) in OPENERS {
            for rel in ["a/link", "a/link/c", "a/abs", "a/abs/etc"] {
                let e = open(r.as_fd(), Path::new(rel)).expect_err(rel);
                assert!(matches!(e, GrantError::Changed { .. }), "{name} {rel}: {e}");
            }
            for rel in ["..", "a/../..", "a/b/../../..", "/etc", "a/.."] {
                let e = open(r.as_fd(), Path::new(rel)).expect_err(rel);
                assert!(matches!(e, GrantError::Escapes { .. }), "{name} {rel}: {e}");
            }
            let e = open(r.as_fd(), Path::new("a/missing")).expect_err("missing");
            assert!(matches!(e, GrantError::Open { .. }), "{name}: {e}");
        }
    }

    #[test]
    fn the_user_path_is_canonicalized_once_then_opened_without_following() {
        let (_t, root) = tree();
        // The user typed a path through a symlink: that is their intent, it is followed.
        let (obj, real) = open_user_path(&root.join("a/link/c")).unwrap();
        assert_eq!(real, std::fs::canonicalize(root.join("a/b/c")).unwrap());
        assert!(obj.is_dir());
        assert_eq!(ident(obj.fd()), meta_ident(&root.join("a/b/c")));
        let (obj, _) = open_user_path(&root.join("a/file")).unwrap();
        let Object::File { dir, name, .. } = &obj else {
            panic!("a file must come with its directory")
        };
        assert_eq!(name, "file");
        assert_eq!(ident(dir.as_fd()), meta_ident(&root.join("a")));
        assert!(open_user_path(Path::new("relative")).is_err());
    }

    #[test]
    fn checks_are_made_on_the_object() {
        let (_t, root) = tree();
        let (slash, p) = open_user_path(Path::new("/")).unwrap();
        assert!(check_user_object(&slash, &p)
            .unwrap_err()
            .contains("whole host"));
        let (proc, p) = open_user_path(Path::new("/proc/self")).unwrap();
        assert!(check_user_object(&proc, &p).unwrap_err().contains("/proc"));
        let (ok, p) = open_user_path(&root.join("a")).unwrap();
        check_user_object(&ok, &p).unwrap();
        // A name that says nothing: the object behind it decides (procfs by its type).
        let fd = open_beneath(root_fd().unwrap().as_fd(), Path::new("proc/1")).unwrap();
        let obj = Object::Directory(Arc::new(fd));
        assert!(check_user_object(&obj, Path::new("/elsewhere")).is_err());
    }

    #[test]
    fn fd_specs_parse() {
        assert_eq!(
            parse_fd_spec("3:/data").unwrap(),
            (3, PathBuf::from("/data"))
        );
        assert!(parse_fd_spec("3").is_err());
        assert!(parse_fd_spec("x:/data").is_err());
        assert!(parse_fd_spec("3:data").is_err());
        assert!(parse_fd_spec("3:/a/../b").is_err());
    }

    #[test]
    fn a_closed_or_stdio_descriptor_is_refused_by_number() {
        let e = adopt_inherited(987, "--grant-read-fd")
            .unwrap_err()
            .to_string();
        assert!(e.contains("--grant-read-fd 987"), "{e}");
        let e = adopt_inherited(1, "--grant-write-fd")
            .unwrap_err()
            .to_string();
        assert!(e.contains("--grant-write-fd 1"), "{e}");
    }

    #[test]
    fn an_inherited_file_descriptor_gets_its_directory() {
        let (_t, root) = tree();
        let fd = OwnedFd::from(std::fs::File::open(root.join("a/file")).unwrap());
        let obj = object_from_fd(Arc::new(fd)).unwrap();
        let Object::File { dir, .. } = &obj else {
            panic!("file expected")
        };
        assert_eq!(ident(dir.as_fd()), meta_ident(&root.join("a")));
    }

    /// The race: a racer swaps a directory inside the root for a symlink to an outside
    /// directory and back, as fast as it can.
    struct Racer {
        stop: Arc<std::sync::atomic::AtomicBool>,
        handle: Option<std::thread::JoinHandle<()>>,
    }

    impl Racer {
        /// Swaps `root/sub` (a real directory) with `root/sub.link` (-> outside) by rename.
        fn start(root: &Path, outside: &Path) -> Racer {
            let sub = root.join("sub");
            std::fs::create_dir_all(&sub).unwrap();
            let link = root.join("sub.link");
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(outside, &link).unwrap();
            let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let s = stop.clone();
            let handle = std::thread::spawn(move || {
                use nix::fcntl::{renameat2, RenameFlags, AT_FDCWD};
                while !s.load(std::sync::atomic::Ordering::Relaxed) {
                    // RENAME_EXCHANGE swaps the two names atomically.
                    let _ = renameat2(
                        AT_FDCWD,
                        &sub,
                        AT_FDCWD,
                        &link,
                        RenameFlags::RENAME_EXCHANGE,
                    );
                }
            });
            Racer {
                stop,
                handle: Some(handle),
            }
        }
    }

    impl Drop for Racer {
        fn drop(&mut self) {
            self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
            if let Some(h) = self.handle.take() {
                let _ = h.join();
            }
        }
    }

    /// Under the race, the checked openers never return the outside directory; the old way
    /// (canonicalize, then open by name) is fooled, which proves the race is real.
    #[test]
    fn racing_symlink_swaps_never_lead_outside() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        let outside = t.path().join("outside");
        std::fs::create_dir_all(root.join("sub/inner")).unwrap();
        std::fs::create_dir_all(outside.join("inner")).unwrap();
        let outside_ids = [meta_ident(&outside), meta_ident(&outside.join("inner"))];
        let root_fd = dir_fd(&root);
        let racer = Racer::start(&root, &outside);

        // Control first: the old way is fooled at least once (bounded).
        let mut fooled = 0;
        for _ in 0..200_000 {
            let Ok(real) = std::fs::canonicalize(root.join("sub/inner")) else {
                continue;
            };
            if !real.starts_with(&root) {
                continue; // canonicalize itself saw the swap: the old code refused this one.
            }
            let Ok(f) = std::fs::File::open(&real) else {
                continue;
            };
            if outside_ids.contains(&ident(f.as_fd())) {
                fooled += 1;
                break;
            }
        }
        assert!(
            fooled > 0,
            "the bare control never lost the race: the test proves nothing"
        );

        for (name, open) in OPENERS {
            let mut opened = 0;
            for _ in 0..10_000 {
                for rel in ["sub", "sub/inner"] {
                    if let Ok(fd) = open(root_fd.as_fd(), Path::new(rel)) {
                        opened += 1;
                        let id = ident(fd.as_fd());
                        assert!(!outside_ids.contains(&id), "{name}: {rel} led outside");
                        let p = path_of(fd.as_fd()).unwrap();
                        assert!(p.starts_with(&root), "{name}: {rel} opened {p:?}");
                    }
                }
            }
            assert!(
                opened > 0,
                "{name}: never opened anything: the race starved it"
            );
        }
        // The CLI way: canonicalize, then open from `/` following nothing.
        let mut opened = 0;
        for _ in 0..10_000 {
            match open_user_path(&root.join("sub/inner")) {
                Ok((obj, real)) => {
                    opened += 1;
                    let id = ident(obj.fd());
                    if real.starts_with(&root) {
                        // The name meant a directory inside when it was canonicalized: what we
                        // opened is inside, whatever the racer did since.
                        assert!(!outside_ids.contains(&id), "the CLI opener led outside");
                        assert!(path_of(obj.fd()).unwrap().starts_with(&root));
                    } else {
                        // canonicalize saw the symlink: the user's path meant the outside
                        // directory then, and that (nothing else) is what was opened.
                        assert_eq!(id, meta_ident(&real));
                    }
                }
                Err(GrantError::Changed { .. }) | Err(GrantError::Open { .. }) => {}
                Err(e) => panic!("unexpected: {e}"),
            }
        }
        assert!(opened > 0, "the CLI opener never opened anything");
        drop(racer);
    }
}
