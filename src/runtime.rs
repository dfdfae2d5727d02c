//! Finding the real program behind a command name.
//!
//! The sandbox shows only what the program needs, so it must know where the program really
//! lives: `python3` here is a pyenv shim (a bash script) over an install under /root, and `deno`
//! from npm is a symlink into node_modules. We resolve shims and links on the host, then bind only
//! the interpreter's install prefix, never the user's home.

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::policy::RuntimeKind;

/// Why a command cannot be run. Maps to exit codes 127 (not found) and 126 (not executable).
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(
        "command not found: {cmd:?} is not in PATH ({path}); install it or give its absolute path"
    )]
    NotFound { cmd: String, path: String },
    #[error(
        "{path}: not an executable file ({reason}); check the path and its permissions (chmod +x)"
    )]
    NotExecutable { path: String, reason: String },
    #[error("{shim}: a pyenv shim for version {version:?}, but {expected} does not exist; run `pyenv install {version}` or select an installed version")]
    PyenvVersionMissing {
        shim: String,
        version: String,
        expected: String,
    },
}

impl RuntimeError {
    /// The exit code sandbox-run uses for this error, like a shell would.
    pub fn exit_code(&self) -> i32 {
        match self {
            RuntimeError::NotFound { .. } | RuntimeError::PyenvVersionMissing { .. } => 127,
            RuntimeError::NotExecutable { .. } => 126,
        }
    }
}

/// A command resolved to the file that will really be executed.
#[derive(Clone, Debug, PartialEq)]
pub struct ResolvedCommand {
    /// The real executable (no shims, no symlinks), visible at the same path inside.
    pub program: PathBuf,
    /// The runtime it is, when it is one we know.
    pub runtime: Option<RuntimeKind>,
    /// The install prefix to bind read-only (a directory, or the file itself for a lone binary).
    pub install: PathBuf,
    /// The directory to put first on PATH inside, so the runtime finds itself by name.
    pub bin_dir: PathBuf,
}

/// Resolves `cmd` the way a shell would (PATH search when it has no slash), then follows pyenv
/// shims, npm wrappers and symlinks to the real file.
pub fn resolve(cmd: &str, path_env: &OsStr, cwd: &Path) -> Result<ResolvedCommand, RuntimeError> {
    let found = if cmd.contains('/') {
        let p = cwd.join(cmd);
        if !p.exists() {
            return Err(RuntimeError::NotFound {
                cmd: cmd.to_string(),
                path: "an explicit path".to_string(),
            });
        }
        p
    } else {
        search_path(cmd, path_env, None).ok_or_else(|| RuntimeError::NotFound {
            cmd: cmd.to_string(),
            path: path_env.to_string_lossy().into_owned(),
        })?
    };
    let found = follow_pyenv_shim(&found, cmd, path_env, cwd)?;
    let real = std::fs::canonicalize(&found).map_err(|e| RuntimeError::NotExecutable {
        path: found.display().to_string(),
        reason: e.to_string(),
    })?;
    let real = follow_deno_npm_wrapper(&real).unwrap_or(real);
    check_executable(&real)?;
    let runtime = RuntimeKind::from_command(cmd).or_else(|| {
        RuntimeKind::from_command(real.file_name().and_then(OsStr::to_str).unwrap_or(""))
    });
    let bin_dir = real.parent().unwrap_or(Path::new("/")).to_path_buf();
    let install = match runtime {
        // An interpreter installed as PREFIX/bin/NAME needs PREFIX (its lib/ and include/).
        Some(RuntimeKind::Python) | Some(RuntimeKind::Node)
            if bin_dir.file_name() == Some(OsStr::new("bin")) =>
        {
            bin_dir.parent().unwrap_or(&bin_dir).to_path_buf()
        }
        // deno is one self-contained file: bind its directory only.
        Some(_) => bin_dir.clone(),
        // Another program: bind the file itself if the policy does not already show it.
        None => real.clone(),
    };
    Ok(ResolvedCommand {
        program: real,
        runtime,
        install,
        bin_dir,
    })
}

fn check_executable(p: &Path) -> Result<(), RuntimeError> {
    let meta = std::fs::metadata(p).map_err(|e| RuntimeError::NotExecutable {
        path: p.display().to_string(),
        reason: e.to_string(),
    })?;
    if !meta.is_file() {
        return Err(RuntimeError::NotExecutable {
            path: p.display().to_string(),
            reason: "not a regular file".to_string(),
        });
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err(RuntimeError::NotExecutable {
            path: p.display().to_string(),
            reason: "no execute permission".to_string(),
        });
    }
    Ok(())
}

fn is_executable_file(p: &Path) -> bool {
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

fn search_path(cmd: &str, path_env: &OsStr, skip: Option<&Path>) -> Option<PathBuf> {
    std::env::split_paths(path_env)
        .filter(|d| d.is_absolute() && Some(d.as_path()) != skip)
        .map(|d| d.join(cmd))
        .find(|p| is_executable_file(p))
}

/// pyenv's shims are bash scripts that pick a version at every start (~50 ms). We apply pyenv's
/// own rules statically: `PYENV_VERSION`, then `.python-version` from the working directory up,
/// then `$PYENV_ROOT/version`, then the system interpreter.
fn follow_pyenv_shim(
    found: &Path,
    cmd: &str,
    path_env: &OsStr,
    cwd: &Path,
) -> Result<PathBuf, RuntimeError> {
    let Some(shims) = found.parent() else {
        return Ok(found.to_path_buf());
    };
    if shims.file_name() != Some(OsStr::new("shims")) {
        return Ok(found.to_path_buf());
    }
    let Some(root) = shims.parent() else {
        return Ok(found.to_path_buf());
    };
    if !root.join("versions").is_dir() {
        return Ok(found.to_path_buf());
    }
    let name = found.file_name().and_then(OsStr::to_str).unwrap_or(cmd);
    let version = std::env::var("PYENV_VERSION")
        .ok()
        .and_then(|v| v.split(':').next().map(str::to_string))
        .filter(|v| !v.is_empty())
        .or_else(|| {
            cwd.ancestors()
                .map(|d| d.join(".python-version"))
                .find_map(|f| first_word(&f))
        })
        .or_else(|| first_word(&root.join("version")))
        .unwrap_or_else(|| "system".to_string());
    if version == "system" {
        return search_path(name, path_env, Some(shims)).ok_or_else(|| RuntimeError::NotFound {
            cmd: cmd.to_string(),
            path: path_env.to_string_lossy().into_owned(),
        });
    }
    let expected = root.join("versions").join(&version).join("bin").join(name);
    if is_executable_file(&expected) {
        Ok(expected)
    } else {
        Err(RuntimeError::PyenvVersionMissing {
            shim: found.display().to_string(),
            version,
            expected: expected.display().to_string(),
        })
    }
}

fn first_word(file: &Path) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .and_then(|l| l.split_whitespace().next())
        .map(str::to_string)
}

/// The npm package `deno` installs a node script `bin.cjs` that execs the real binary; when its
/// postinstall step ran, the binary sits beside it. Running node just to start deno would add
/// ~40 ms and need node inside the sandbox, so we go to the binary directly.
fn follow_deno_npm_wrapper(real: &Path) -> Option<PathBuf> {
    if real.file_name()? != "bin.cjs" {
        return None;
    }
    let dir = real.parent()?;
    let beside = dir.join("deno");
    if is_executable_file(&beside) {
        return Some(beside);
    }
    let platform = dir.parent()?.join("@deno/linux-x64-glibc/deno");
    is_executable_file(&platform).then_some(platform)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_and_path_search() {
        let r = resolve(
            "true",
            OsStr::new("/nonexistent:/usr/bin:/bin"),
            Path::new("/"),
        )
        .unwrap();
        assert!(r.program.ends_with("true"));
        assert_eq!(r.runtime, None);
        assert_eq!(r.install, r.program);
        let e = resolve("no-such-cmd-xyz", OsStr::new("/usr/bin"), Path::new("/")).unwrap_err();
        assert_eq!(e.exit_code(), 127);
        let t = tempfile::tempdir().unwrap();
        let plain = t.path().join("plain");
        std::fs::write(&plain, "data").unwrap();
        let e = resolve(plain.to_str().unwrap(), OsStr::new(""), Path::new("/")).unwrap_err();
        assert_eq!(e.exit_code(), 126, "{e}");
    }

    #[test]
    fn pyenv_shim_resolves_to_version_install() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        std::fs::create_dir_all(root.join("shims")).unwrap();
        std::fs::create_dir_all(root.join("versions/3.99.1/bin")).unwrap();
        for p in [
            root.join("shims/python3"),
            root.join("versions/3.99.1/bin/python3"),
        ] {
            std::fs::write(&p, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::fs::write(root.join("version"), "3.99.1\n").unwrap();
        let path = root.join("shims");
        let r = resolve("python3", path.as_os_str(), root).unwrap();
        assert_eq!(
            r.program,
            root.join("versions/3.99.1/bin/python3")
                .canonicalize()
                .unwrap()
        );
        assert_eq!(
            r.install,
            root.join("versions/3.99.1").canonicalize().unwrap()
        );
        assert_eq!(r.runtime, Some(RuntimeKind::Python));
        std::fs::write(root.join("version"), "3.0.0\n").unwrap();
        let e = resolve("python3", path.as_os_str(), root).unwrap_err();
        assert!(e.to_string().contains("pyenv install 3.0.0"), "{e}");
    }
}
