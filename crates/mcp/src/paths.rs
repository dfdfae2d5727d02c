//! Resolution of a run's `permissions.read/write` against the configured roots.
//!
//! A requested path must be absolute, free of `..`, exist, and after following every symlink
//! lie under an allowed root. The resolved path is then opened once, beneath its root, without
//! following any symlink ([`open_granted`]); the sandbox gets that descriptor, never the name,
//! so a symlink swapped in after the check cannot point a grant outside the roots.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

/// Why a requested path was refused; shown to the caller.
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    #[error("permissions.{kind}: {path:?} is not an absolute path; pass a full path such as /home/me/project")]
    Relative { kind: &'static str, path: String },
    #[error(
        "permissions.{kind}: {path:?} contains `..`; pass the path without parent-directory steps"
    )]
    DotDot { kind: &'static str, path: String },
    #[error("permissions.{kind}: {path:?} cannot be resolved ({source}); it must exist")]
    Unresolvable {
        kind: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("permissions.{kind}: {path:?} resolves to {resolved} which is outside the allowed roots ({roots}); the server configuration (ALLOWED_PROJECTS, security.allow{cap}) decides what may be granted")]
    OutsideRoots {
        kind: &'static str,
        cap: &'static str,
        path: String,
        resolved: String,
        roots: String,
    },
    #[error("permissions.{kind}: {path}: {source}")]
    Open {
        kind: &'static str,
        path: String,
        source: code_executor::grant::GrantError,
    },
}

/// Opens a path that [`resolve_all`] accepted, beneath the allowed root that holds it, with
/// `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)`: if anything on the
/// way was swapped for a symlink since it was resolved, the open fails instead of following it.
/// The root itself is the server's configuration (canonical at start), opened by name.
pub fn open_granted(
    kind: &'static str,
    resolved: &Path,
    roots: &[PathBuf],
) -> Result<OwnedFd, PathError> {
    let fail = |source| PathError::Open {
        kind,
        path: resolved.display().to_string(),
        source,
    };
    let root = roots
        .iter()
        .filter(|r| resolved.starts_with(r))
        .max_by_key(|r| r.components().count())
        .ok_or_else(|| PathError::OutsideRoots {
            kind,
            cap: if kind == "write" { "Write" } else { "Read" },
            path: resolved.display().to_string(),
            resolved: resolved.display().to_string(),
            roots: roots
                .iter()
                .map(|r| r.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        })?;
    let root_fd: OwnedFd = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(root)
        .map_err(|source| {
            fail(code_executor::grant::GrantError::Open {
                path: root.clone(),
                source,
            })
        })?
        .into();
    let rel = resolved.strip_prefix(root).unwrap_or(Path::new(""));
    if rel.as_os_str().is_empty() {
        return Ok(root_fd);
    }
    code_executor::grant::open_beneath(root_fd.as_fd(), rel).map_err(fail)
}

/// Resolve every path of one permission kind (`read` or `write`) against `roots`.
pub fn resolve_all(
    kind: &'static str,
    requested: &[String],
    roots: &[PathBuf],
) -> Result<Vec<PathBuf>, PathError> {
    let mut out = Vec::new();
    for p in requested {
        let r = resolve(kind, p, roots)?;
        if !out.contains(&r) {
            out.push(r);
        }
    }
    Ok(out)
}

fn resolve(kind: &'static str, requested: &str, roots: &[PathBuf]) -> Result<PathBuf, PathError> {
    let path = Path::new(requested);
    if !path.is_absolute() {
        return Err(PathError::Relative {
            kind,
            path: requested.to_string(),
        });
    }
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(PathError::DotDot {
            kind,
            path: requested.to_string(),
        });
    }
    let resolved = path
        .canonicalize()
        .map_err(|source| PathError::Unresolvable {
            kind,
            path: requested.to_string(),
            source,
        })?;
    if roots.iter().any(|root| resolved.starts_with(root)) {
        Ok(resolved)
    } else {
        Err(PathError::OutsideRoots {
            kind,
            cap: if kind == "write" { "Write" } else { "Read" },
            path: requested.to_string(),
            resolved: resolved.display().to_string(),
            roots: if roots.is_empty() {
                "none configured".to_string()
            } else {
                roots
                    .iter()
                    .map(|r| r.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    /// The descriptor is the checked object; a symlink swapped in after resolution is refused.
    #[test]
    fn granted_paths_are_opened_beneath_their_root_without_following() {
        let mut b = [0u8; 6];
        getrandom::fill(&mut b).unwrap();
        let base = std::env::temp_dir().join(format!("opentest-{}", hex::encode(b)));
        let root = base.join("root");
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::create_dir_all(base.join("outside")).unwrap();
        let roots = vec![root.canonicalize().unwrap()];
        let sub = roots[0].join("a/b");
        let fd = open_granted("read", &sub, &roots).unwrap();
        let ino = |p: &Path| std::fs::metadata(p).unwrap().ino();
        let fd_ino = std::fs::metadata(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&fd)
        ))
        .unwrap()
        .ino();
        assert_eq!(fd_ino, ino(&sub));
        // The root itself can be granted.
        assert!(open_granted("read", &roots[0], &roots).is_ok());
        // `a` becomes a symlink to the outside after it was resolved: refused, not followed.
        std::fs::rename(root.join("a"), base.join("a-moved")).unwrap();
        std::os::unix::fs::symlink(base.join("outside"), root.join("a")).unwrap();
        std::fs::create_dir_all(base.join("outside/b")).unwrap();
        let e = open_granted("read", &sub, &roots).unwrap_err().to_string();
        assert!(e.contains("changed while it was being opened"), "{e}");
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn checks_relative_dotdot_outside_and_symlinks() {
        let mut b = [0u8; 6];
        getrandom::fill(&mut b).unwrap();
        let base = std::env::temp_dir().join(format!("pathtest-{}", hex::encode(b)));
        let root = base.join("root");
        let outside = base.join("outside");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("escape")).unwrap();
        std::os::unix::fs::symlink(root.join("sub"), base.join("inward")).unwrap();
        let roots = vec![root.canonicalize().unwrap()];
        let s = |p: &Path| p.to_str().unwrap().to_string();

        let ok = resolve_all("read", &[s(&root.join("sub"))], &roots).unwrap();
        assert_eq!(ok, vec![root.join("sub").canonicalize().unwrap()]);
        // A symlink from outside into a root is fine: the target is what counts.
        assert!(resolve_all("read", &[s(&base.join("inward"))], &roots).is_ok());

        let e = |p: String| resolve_all("write", &[p], &roots).unwrap_err().to_string();
        assert!(e("sub".into()).contains("not an absolute path"));
        assert!(e(format!("{}/sub/../sub", root.display())).contains("`..`"));
        assert!(e(s(&outside)).contains("outside the allowed roots"));
        assert!(e(s(&root.join("escape"))).contains("outside the allowed roots"));
        assert!(e(s(&root.join("missing"))).contains("must exist"));
        assert!(resolve_all("read", &[s(&root)], &[])
            .unwrap_err()
            .to_string()
            .contains("none configured"));
        std::fs::remove_dir_all(&base).unwrap();
    }
}
