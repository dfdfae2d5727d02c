//! File-system boundary and network attempts (probes/escape.py `fs`).

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::process::Command;
use std::sync::OnceLock;

use crate::support::*;

pub struct Runs {
    pub sandbox: Results,
    pub bare: Results,
    pub victim_after: Option<String>,
    pub shared_listing: Vec<String>,
}

const VICTIM: &str = "original host content\n";

pub fn runs() -> &'static Runs {
    static R: OnceLock<Runs> = OnceLock::new();
    R.get_or_init(|| {
        let shared = tempfile::tempdir().unwrap();
        let shared_bare = tempfile::tempdir().unwrap();
        let scratch = tempfile::tempdir().unwrap();
        for d in [shared.path(), shared_bare.path()] {
            std::fs::write(d.join("victim"), VICTIM).unwrap();
            std::fs::set_permissions(d.join("victim"), std::fs::Permissions::from_mode(0o666))
                .unwrap();
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o777)).unwrap();
        }
        // Host listeners: a world-writable pathname socket in a host temp dir that is not
        // shared, an abstract socket, and a loopback TCP port.
        let sockdir = tempfile::tempdir().unwrap();
        let sock = sockdir.path().join("host.sock");
        let _ul = UnixListener::bind(&sock).unwrap();
        std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o777)).unwrap();
        let abs = unique("abs");
        let _al = {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(abs.as_bytes()).unwrap();
            UnixListener::bind_addr(&addr).unwrap()
        };
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port().to_string();
        let sh = shared.path().to_str().unwrap();
        let out = sandbox_cmd(
            &["--allow-read", sh],
            &[
                "python3",
                &probe("escape.py"),
                "sandbox",
                "fs",
                sh,
                "-",
                sock.to_str().unwrap(),
                &abs,
                &port,
            ],
        )
        .output()
        .unwrap();
        assert!(out.status.success(), "sandboxed fs probe: {}", show(&out));
        let bare = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "--"])
            .arg(runtime("python3"))
            .args([
                &probe("escape.py"),
                "bare",
                "fs",
                shared_bare.path().to_str().unwrap(),
                scratch.path().to_str().unwrap(),
                sock.to_str().unwrap(),
                &abs,
                &port,
            ])
            .output()
            .unwrap();
        assert!(bare.status.success(), "bare fs probe: {}", show(&bare));
        let mut listing: Vec<String> = std::fs::read_dir(shared.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        listing.sort();
        Runs {
            sandbox: parse(&out.stdout),
            bare: parse(&bare.stdout),
            victim_after: std::fs::read_to_string(shared.path().join("victim")).ok(),
            shared_listing: listing,
        }
    })
}

fn bare_ok(r: &Results, a: &str) {
    assert!(
        errno(r, a).is_none(),
        "baseline: bare `{a}` works on a writable fs: {:?}",
        r.get(a)
    );
}

#[test]
fn read_only_usr_cannot_be_written_truncated_or_renamed() {
    let r = runs();
    assert_errno(
        &r.sandbox,
        "fs:write_usr",
        "EROFS",
        "read-only bind of /usr",
    );
    assert_errno(
        &r.sandbox,
        "fs:truncate_usr_file",
        "EACCES",
        "Landlock: /usr is read-only",
    );
    assert_errno(
        &r.sandbox,
        "fs:rename_usr_to_rw",
        "EXDEV",
        "different mounts",
    );
    assert_errno(
        &r.sandbox,
        "fs:mkdir_root",
        "EROFS",
        "the root tmpfs is remounted read-only",
    );
    assert_errno(
        &r.sandbox,
        "fs:write_etc_passwd",
        "EROFS",
        "root tmpfs read-only",
    );
    for a in [
        "fs:write_usr",
        "fs:truncate_usr_file",
        "fs:rename_usr_to_rw",
        "fs:mkdir_root",
    ] {
        bare_ok(&r.bare, a);
    }
}

#[test]
fn links_across_the_ro_rw_boundary() {
    let r = runs();
    assert_errno(
        &r.sandbox,
        "fs:hardlink_usr_to_rw",
        "EXDEV",
        "hard links cannot cross mounts",
    );
    // A symlink in /workspace to /usr can be made, but writing through it still hits /usr.
    assert!(
        errno(&r.sandbox, "fs:symlink_in_rw_to_usr").is_none(),
        "symlinks in /workspace are allowed"
    );
    assert_errno(
        &r.sandbox,
        "fs:write_through_symlink",
        "EROFS",
        "the target mount is read-only",
    );
    for a in [
        "fs:hardlink_usr_to_rw",
        "fs:symlink_in_rw_to_usr",
        "fs:write_through_symlink",
    ] {
        bare_ok(&r.bare, a);
    }
}

#[test]
fn mknod_denied() {
    let r = runs();
    assert_errno(
        &r.sandbox,
        "fs:mknod_chr",
        "EPERM",
        "seccomp denies device nodes (behind it: Landlock MAKE_CHAR not granted, no CAP_MKNOD)",
    );
    assert_errno(
        &r.sandbox,
        "fs:mknod_blk",
        "EPERM",
        "seccomp denies device nodes (behind it: Landlock MAKE_BLOCK not granted)",
    );
    bare_ok(&r.bare, "fs:mknod_chr");
    bare_ok(&r.bare, "fs:mknod_blk");
}

#[test]
fn proc_sys_and_sysrq_not_writable() {
    let r = runs();
    assert_errno(
        &r.sandbox,
        "fs:proc_sys_write",
        "EACCES",
        "/proc/sys owned by the host's root",
    );
    assert_errno(
        &r.sandbox,
        "fs:sysrq_trigger",
        "ENOENT",
        "/proc/sysrq-trigger is absent from the fresh /proc",
    );
}

#[test]
fn host_files_not_visible() {
    let r = runs();
    assert_errno(
        &r.sandbox,
        "fs:read_shadow",
        "ENOENT",
        "/etc is synthesized: no shadow",
    );
    assert_errno(&r.sandbox, "fs:sys_cgroup", "ENOENT", "no /sys");
    bare_ok(&r.bare, "fs:read_shadow");
    bare_ok(&r.bare, "fs:sys_cgroup");
    // /root exists only as the path to an interpreter installed under it (pyenv here): at most
    // that one entry, never the home's dotfiles.
    let home = ret(&r.sandbox, "fs:read_root_home");
    if let Some(v) = home.as_array() {
        assert!(
            v.len() <= 1,
            "/root inside shows more than an install prefix: {home}"
        );
    } else {
        assert_errno(&r.sandbox, "fs:read_root_home", "ENOENT", "no /root");
    }
    assert!(
        ret(&r.bare, "fs:read_root_home")
            .as_array()
            .map_or(0, |v| v.len())
            > 1,
        "baseline: bare /root has dotfiles"
    );
}

#[test]
fn tmp_is_nosuid() {
    let r = runs();
    assert_eq!(
        ret(&r.sandbox, "fs:tmp_nosuid"),
        true,
        "/tmp must be nosuid"
    );
}

#[test]
fn shared_read_only_dir_unchanged_on_host() {
    let r = runs();
    assert_errno(
        &r.sandbox,
        "fs:shared_write",
        "EROFS",
        "read-only bind (Landlock also denies)",
    );
    assert_errno(
        &r.sandbox,
        "fs:shared_truncate",
        "EROFS",
        "read-only bind (Landlock also denies)",
    );
    assert_errno(&r.sandbox, "fs:shared_chmod", "EROFS", "read-only bind");
    assert_errno(&r.sandbox, "fs:shared_unlink", "EROFS", "read-only bind");
    assert_errno(&r.sandbox, "fs:shared_create", "EROFS", "read-only bind");
    assert_errno(
        &r.sandbox,
        "fs:shared_rename_to_tmp",
        "EXDEV",
        "rename across mounts",
    );
    assert_errno(
        &r.sandbox,
        "fs:shared_hardlink_to_tmp",
        "EXDEV",
        "link across mounts",
    );
    assert_errno(
        &r.sandbox,
        "fs:shared_symlink_write",
        "EROFS",
        "a /tmp symlink does not lift the read-only bind",
    );
    assert_eq!(
        r.victim_after.as_deref(),
        Some(VICTIM),
        "the shared host file changed"
    );
    assert_eq!(
        r.shared_listing,
        vec!["victim".to_string()],
        "the shared host dir changed"
    );
    for a in [
        "fs:shared_write",
        "fs:shared_truncate",
        "fs:shared_chmod",
        "fs:shared_create",
        "fs:shared_rename_to_tmp",
        "fs:shared_hardlink_to_tmp",
        "fs:shared_symlink_write",
    ] {
        bare_ok(&r.bare, a);
    }
}

#[test]
fn host_pathname_unix_socket_unreachable() {
    let r = runs();
    assert_errno(
        &r.sandbox,
        "unix:host_path",
        "ENOENT",
        "host temp dir not in the sandbox's root",
    );
    assert_eq!(ret(&r.bare, "unix:host_path"), "connected", "baseline");
}

#[test]
fn host_abstract_unix_socket_unreachable() {
    let r = runs();
    assert_errno(
        &r.sandbox,
        "unix:host_abstract",
        "ECONNREFUSED",
        "abstract names are per network namespace",
    );
    assert_eq!(ret(&r.bare, "unix:host_abstract"), "connected", "baseline");
}

#[test]
fn network_isolated() {
    let r = runs();
    assert_errno(
        &r.sandbox,
        "net:host_loopback_tcp",
        "EACCES",
        "Landlock TCP connect denied (and a separate netns)",
    );
    assert_errno(
        &r.sandbox,
        "net:internet_tcp",
        "EACCES",
        "Landlock TCP connect denied",
    );
    assert_errno(
        &r.sandbox,
        "net:tcp_bind",
        "EACCES",
        "Landlock TCP bind denied",
    );
    assert_errno(
        &r.sandbox,
        "net:udp_internet",
        "ENETUNREACH",
        "the netns has only lo",
    );
    assert_eq!(
        ret(&r.sandbox, "net:interfaces"),
        &serde_json::json!(["lo"])
    );
    assert_eq!(
        ret(&r.bare, "net:host_loopback_tcp"),
        "connected",
        "baseline"
    );
    assert_eq!(ret(&r.bare, "net:tcp_bind"), "bound", "baseline");
    // Bare internet access depends on the CI machine: not asserted.
}
