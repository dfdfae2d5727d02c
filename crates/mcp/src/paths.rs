//! Resolution of a run's `permissions.read/write` against the configured roots.
//!
//! A requested path must be absolute, free of `..`, exist, and after following every symlink
//! lie under an allowed root. The resolved path, not the requested one, is what the sandbox
//! gets, so a symlink swapped after the check cannot widen access beyond the checked target.

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
