//! The crate's only `unsafe` code: small, safe wrappers around the system calls it makes, kept in
//! one place so that a reviewer reads all of it at once.
//!
//! The rules every wrapper follows:
//! - each `unsafe` block says why it is sound (`// SAFETY:`);
//! - descriptors go in as [`BorrowedFd`] and come out as [`OwnedFd`], never as raw numbers, so a
//!   descriptor cannot be closed twice or used after its owner closed it. The exceptions are the
//!   kernel interfaces that are about a number the caller chooses (the number a descriptor was
//!   inherited at, the number a child will see it at, the first number `close_range` marks);
//!   each says so;
//! - a number the kernel returns is checked (not negative) before it is owned:
//!   `OwnedFd::from_raw_fd(-1)` is undefined behaviour;
//! - errors are `std::io::Error` (or nix's `Errno` where the callers print nix's messages).
//!
//! It is public, but hidden from the documentation, because `sandbox-run` (a binary target of
//! this package) and the egress proxy (another crate) need the same few calls: one module to
//! audit instead of three. It is not an API for anyone else.
//!
//! Marked "(launch)": wrappers written for `launch/{mod,init,workload,seccomp,egress}.rs`, which
//! still make these calls themselves until they are converted.

use std::ffi::{CStr, CString};
use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Mutex;

use libc::{c_int, c_long, c_short, c_uint, c_ulong, pid_t};
use nix::sys::socket::MsgFlags;
use nix::unistd::{ForkResult, Pid};

/// `Err(errno)` when a call returned a negative number.
fn check(r: c_long) -> io::Result<c_long> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Owns the descriptor a system call just returned, or reads errno when it returned < 0.
///
/// # Safety
/// `r` must be the return value of the call made immediately before (nothing in between may
/// change errno), and that call must, on success, have installed a new descriptor in our table
/// that nothing else in this process owns.
unsafe fn new_fd(r: c_long) -> io::Result<OwnedFd> {
    let r = check(r)?;
    let fd = RawFd::try_from(r).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: fd >= 0 (checked) and, by this function's contract, a new descriptor of which
    // this is the only owner.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

// ---- Files and descriptors ----

/// open(2) of `path` with `flags`. Never creates: no mode is taken, and 0 is passed so that an
/// `O_CREAT` by mistake cannot make the kernel read a mode argument that is not there.
pub fn open(path: &CStr, flags: c_int) -> io::Result<OwnedFd> {
    // SAFETY: a NUL-terminated path borrowed for the call; open returns a new descriptor or -1,
    // and new_fd reads errno right after.
    unsafe { new_fd(libc::open(path.as_ptr(), flags, 0 as c_uint).into()) }
}

/// openat(2): `path` looked up from `dir`, with `flags` (never creates, as [`open`]).
pub fn openat(dir: BorrowedFd<'_>, path: &CStr, flags: c_int) -> io::Result<OwnedFd> {
    // SAFETY: a borrowed (open) directory descriptor and a NUL-terminated path; openat returns
    // a new descriptor or -1.
    unsafe { new_fd(libc::openat(dir.as_raw_fd(), path.as_ptr(), flags, 0 as c_uint).into()) }
}

/// `struct open_how` of openat2(2) (libc's is non-exhaustive, so it cannot be built outside libc).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// openat2(2) (Linux 5.6+): `path` looked up from `dir` with `flags` and `RESOLVE_*` rules.
/// ENOSYS on older kernels, for the caller's fallback.
pub fn openat2(
    dir: BorrowedFd<'_>,
    path: &CStr,
    flags: c_int,
    resolve: u64,
) -> io::Result<OwnedFd> {
    let how = OpenHow {
        flags: u64::from(flags as c_uint),
        mode: 0,
        resolve,
    };
    // SAFETY: a borrowed directory descriptor, a NUL-terminated path, and an open_how of exactly
    // the size we pass, which the kernel only reads; openat2 returns a new descriptor or -1.
    unsafe {
        new_fd(libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            path.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        ))
    }
}

/// fstat(2).
pub fn fstat(fd: BorrowedFd<'_>) -> io::Result<libc::stat> {
    // SAFETY: stat is plain data, for which all-zero bytes are a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: the kernel writes one struct stat into the valid, exclusively borrowed `st`.
    check(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) }.into())?;
    Ok(st)
}

/// fstatfs(2): the file system holding `fd`.
pub fn fstatfs(fd: BorrowedFd<'_>) -> io::Result<libc::statfs> {
    // SAFETY: statfs is plain data, for which all-zero bytes are a valid value.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: the kernel writes one struct statfs into the valid, exclusively borrowed `st`.
    check(unsafe { libc::fstatfs(fd.as_raw_fd(), &mut st) }.into())?;
    Ok(st)
}

/// fstatvfs(3): the mount flags (`ST_*`) of the mount holding `fd`, among others.
pub fn fstatvfs(fd: BorrowedFd<'_>) -> io::Result<libc::statvfs> {
    // SAFETY: statvfs is plain data, for which all-zero bytes are a valid value.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: fstatvfs writes one struct statvfs into the valid, exclusively borrowed `st`.
    check(unsafe { libc::fstatvfs(fd.as_raw_fd(), &mut st) }.into())?;
    Ok(st)
}

/// flock(2) with `op` (`LOCK_EX`, `LOCK_NB`, ...).
pub fn flock(fd: BorrowedFd<'_>, op: c_int) -> io::Result<()> {
    // SAFETY: flock takes a borrowed descriptor and an integer; no memory is passed.
    check(unsafe { libc::flock(fd.as_raw_fd(), op) }.into()).map(drop)
}

/// (launch) read(2) into `buf`: the number of bytes read, 0 at end of file.
pub fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: the kernel writes at most buf.len() bytes into buf, which is borrowed mutably.
    let r = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    Ok(check(r as c_long)? as usize)
}

/// (launch) Adds `O_NONBLOCK` to the file status flags (fcntl `F_GETFL`/`F_SETFL`).
pub fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: F_GETFL takes no argument and only reads the descriptor's flags.
    let flags = check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) }.into())? as c_int;
    // SAFETY: F_SETFL takes an integer argument; no memory is passed.
    check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) }.into())
        .map(drop)
}

/// (launch) Marks every descriptor from `first` up close-on-exec: `close_range(first, ~0,
/// CLOSE_RANGE_CLOEXEC)`. `first` is a number because the call is about numbers (everything
/// above stdio), not about descriptors we hold. Only the marking variant is offered: it closes
/// nothing, so no owner is left holding a closed descriptor.
pub fn close_range_cloexec(first: c_uint) -> io::Result<()> {
    // SAFETY: with CLOSE_RANGE_CLOEXEC the kernel only sets a flag on open descriptors; nothing
    // is closed and no memory is passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    check(r).map(drop)
}

/// Why an inherited descriptor number could not be adopted.
#[derive(Debug, thiserror::Error)]
pub enum AdoptError {
    #[error("descriptors 0, 1 and 2 are stdio and cannot be taken over")]
    Stdio,
    #[error("this descriptor was already taken over (given twice)")]
    Taken,
    #[error("not an open descriptor ({0})")]
    NotOpen(io::Error),
    #[error("{0}")]
    Cloexec(io::Error),
}

/// Numbers [`adopt_inherited_fd`] already handed out: adopting one twice would make two owners.
static ADOPTED: Mutex<Vec<RawFd>> = Mutex::new(Vec::new());

/// Takes ownership of descriptor number `fd`, which this process inherited from whoever started
/// it and was told about by number (`--report-fd 5`, the proxy's fixed 3 and 4): the number is
/// the interface. It must be open; it is made close-on-exec, so it reaches no program we start.
///
/// Refused: 0-2 (stdio, used through `std::io` without an owner), a number not open, and a
/// number this function already adopted. What it cannot check is that nothing else in the
/// process opened that number itself: call it for numbers given by the parent, early, before
/// the process opens descriptors of its own (sandbox-run claims them first thing).
pub fn adopt_inherited_fd(fd: RawFd) -> Result<OwnedFd, AdoptError> {
    if fd <= 2 {
        return Err(AdoptError::Stdio);
    }
    let mut adopted = ADOPTED.lock().unwrap_or_else(|e| e.into_inner());
    if adopted.contains(&fd) {
        return Err(AdoptError::Taken);
    }
    // SAFETY: F_GETFD only reads the flags of a descriptor number; no memory is passed.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags < 0 {
        return Err(AdoptError::NotOpen(io::Error::last_os_error()));
    }
    // SAFETY: F_SETFD takes an integer argument; the descriptor is open (F_GETFD succeeded).
    if unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) } < 0 {
        return Err(AdoptError::Cloexec(io::Error::last_os_error()));
    }
    adopted.push(fd);
    // SAFETY: fd is open (F_GETFD succeeded) and >= 3; it was inherited for this purpose and is
    // adopted once (ADOPTED), so this is its only owner, per the contract above.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

// ---- Sockets ----

/// send(2) on a borrowed socket (nix's `send` takes a raw number).
pub fn send(sock: BorrowedFd<'_>, buf: &[u8], flags: MsgFlags) -> nix::Result<usize> {
    nix::sys::socket::send(sock.as_raw_fd(), buf, flags)
}

/// One datagram of `data`, with `fd` attached (SCM_RIGHTS) when given.
pub fn send_with_fd(
    sock: BorrowedFd<'_>,
    data: &[u8],
    fd: Option<BorrowedFd<'_>>,
) -> nix::Result<usize> {
    use nix::sys::socket::{sendmsg, ControlMessage};
    let fds = fd.map(|f| [f.as_raw_fd()]);
    let cmsgs: Vec<ControlMessage<'_>> = fds.iter().map(|f| ControlMessage::ScmRights(f)).collect();
    sendmsg::<()>(
        sock.as_raw_fd(),
        &[io::IoSlice::new(data)],
        &cmsgs,
        MsgFlags::empty(),
        None,
    )
}

/// Receives one datagram into `buf`: its length and the first descriptor attached to it, owned
/// and close-on-exec (`MSG_CMSG_CLOEXEC`). Further descriptors are closed.
pub fn recv_with_fd(sock: BorrowedFd<'_>, buf: &mut [u8]) -> nix::Result<(usize, Option<OwnedFd>)> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned};
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let mut iov = [io::IoSliceMut::new(buf)];
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let mut fd = None;
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            for f in fds.into_iter().filter(|f| *f >= 0) {
                // SAFETY: SCM_RIGHTS: the kernel installed this descriptor (>= 0, checked) in
                // our table for this message; nothing else in the process knows its number.
                let owned = unsafe { OwnedFd::from_raw_fd(f) };
                fd.get_or_insert(owned);
            }
        }
    }
    Ok((msg.bytes, fd))
}

/// (launch) An `AF_INET` datagram socket (close-on-exec), for interface ioctls.
pub fn inet_dgram_socket() -> io::Result<OwnedFd> {
    // SAFETY: socket takes integers only and returns a new descriptor or -1.
    unsafe { new_fd(libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0).into()) }
}

/// A zeroed `struct ifreq` naming `name` (shorter than IFNAMSIZ, NUL included).
fn ifreq_named(name: &CStr) -> io::Result<libc::ifreq> {
    let bytes = name.to_bytes_with_nul();
    if bytes.len() > libc::IFNAMSIZ {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: ifreq is plain data (a name and a union of plain data), for which all-zero bytes
    // are a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    Ok(ifr)
}

/// (launch) The flags (`IFF_*`) of interface `name` (ioctl `SIOCGIFFLAGS` on `sock`).
pub fn interface_flags(sock: BorrowedFd<'_>, name: &CStr) -> io::Result<c_short> {
    let mut ifr = ifreq_named(name)?;
    // SAFETY: SIOCGIFFLAGS reads the name from and writes the flags into one struct ifreq,
    // valid and exclusively borrowed.
    check(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr) }.into())?;
    // SAFETY: the union's flags member is what SIOCGIFFLAGS writes; any bytes are a valid c_short.
    Ok(unsafe { ifr.ifr_ifru.ifru_flags })
}

/// (launch) Sets the flags of interface `name` (ioctl `SIOCSIFFLAGS`), e.g. `lo` up.
pub fn set_interface_flags(sock: BorrowedFd<'_>, name: &CStr, flags: c_short) -> io::Result<()> {
    let mut ifr = ifreq_named(name)?;
    ifr.ifr_ifru.ifru_flags = flags;
    // SAFETY: SIOCSIFFLAGS reads the name and flags from one valid struct ifreq.
    check(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &mut ifr) }.into()).map(drop)
}

/// (launch) One entry of [`poll`]: a borrowed descriptor and the events asked for. Laid out as
/// the kernel's `struct pollfd` (`repr(transparent)`), so a slice of them is the array poll
/// reads; the borrow keeps the descriptor open while the entry exists.
#[repr(transparent)]
pub struct PollFd<'fd> {
    raw: libc::pollfd,
    _fd: PhantomData<BorrowedFd<'fd>>,
}

impl<'fd> PollFd<'fd> {
    /// `events`: `libc::POLLIN` and friends.
    pub fn new(fd: BorrowedFd<'fd>, events: c_short) -> PollFd<'fd> {
        PollFd {
            raw: libc::pollfd {
                fd: fd.as_raw_fd(),
                events,
                revents: 0,
            },
            _fd: PhantomData,
        }
    }

    /// What the last [`poll`] reported for this entry.
    pub fn revents(&self) -> c_short {
        self.raw.revents
    }
}

/// (launch) poll(2) over `fds` for at most `timeout_ms` (-1: no limit): how many entries have
/// events. EINTR is returned as an error, for the caller to retry.
pub fn poll(fds: &mut [PollFd<'_>], timeout_ms: c_int) -> io::Result<usize> {
    let n = libc::nfds_t::try_from(fds.len())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: PollFd is repr(transparent) over libc::pollfd, so `fds` is an array of n pollfd,
    // exclusively borrowed, which the kernel reads and writes (revents) during the call.
    let r = unsafe { libc::poll(fds.as_mut_ptr().cast::<libc::pollfd>(), n, timeout_ms) };
    Ok(check(r.into())? as usize)
}

// ---- Mounts ----

/// `open_tree` flag: a detached copy of the mount at the path (not recursive).
pub const OPEN_TREE_CLONE: c_uint = 1;
/// `move_mount` flag: the source is the descriptor itself.
const MOVE_MOUNT_F_EMPTY_PATH: c_uint = 0x4;

/// open_tree(2) (Linux 5.2+) of `path` from the working directory, with `flags`
/// ([`OPEN_TREE_CLONE`], `O_CLOEXEC`, `AT_SYMLINK_NOFOLLOW`, ...).
pub fn open_tree(path: &CStr, flags: c_uint) -> io::Result<OwnedFd> {
    // SAFETY: AT_FDCWD and a NUL-terminated path; open_tree returns a new descriptor or -1.
    unsafe {
        new_fd(libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            path.as_ptr(),
            flags,
        ))
    }
}

/// Attaches the detached mount `tree` (from [`open_tree`]) at `target`, a path from the working
/// directory (move_mount(2) with `MOVE_MOUNT_F_EMPTY_PATH`).
pub fn move_mount_to(tree: BorrowedFd<'_>, target: &CStr) -> io::Result<()> {
    // SAFETY: a borrowed descriptor and two NUL-terminated paths (the empty one names the
    // descriptor itself), which the kernel only reads.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            target.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    check(r).map(drop)
}

/// pivot_root(2).
pub fn pivot_root(new_root: &CStr, put_old: &CStr) -> io::Result<()> {
    // SAFETY: two NUL-terminated paths, which the kernel only reads.
    let r = unsafe { libc::syscall(libc::SYS_pivot_root, new_root.as_ptr(), put_old.as_ptr()) };
    check(r).map(drop)
}

/// chroot(2).
pub fn chroot(path: &CStr) -> io::Result<()> {
    // SAFETY: a NUL-terminated path, which the kernel only reads.
    check(unsafe { libc::chroot(path.as_ptr()) }.into()).map(drop)
}

// ---- Project quotas: fsxattr ioctls and quotactl_fd ----

/// `struct fsxattr` of <linux/fs.h>.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct FsXattr {
    pub fsx_xflags: u32,
    pub fsx_extsize: u32,
    pub fsx_nextents: u32,
    pub fsx_projid: u32,
    pub fsx_cowextsize: u32,
    pub fsx_pad: [u8; 8],
}

nix::ioctl_read!(fs_ioc_fsgetxattr, b'X', 31, FsXattr);
nix::ioctl_write_ptr!(fs_ioc_fssetxattr, b'X', 32, FsXattr);

/// The inode's extended attributes (`FS_IOC_FSGETXATTR`): project id, `FS_XFLAG_*`.
pub fn fs_get_xattr(fd: BorrowedFd<'_>) -> io::Result<FsXattr> {
    let mut x = FsXattr::default();
    // SAFETY: FS_IOC_FSGETXATTR writes one struct fsxattr (FsXattr has its layout and size)
    // into the valid, exclusively borrowed buffer.
    unsafe { fs_ioc_fsgetxattr(fd.as_raw_fd(), &mut x) }.map_err(io::Error::from)?;
    Ok(x)
}

/// Sets the inode's extended attributes (`FS_IOC_FSSETXATTR`).
pub fn fs_set_xattr(fd: BorrowedFd<'_>, x: &FsXattr) -> io::Result<()> {
    // SAFETY: FS_IOC_FSSETXATTR reads one struct fsxattr from the valid buffer.
    unsafe { fs_ioc_fssetxattr(fd.as_raw_fd(), x) }.map_err(io::Error::from)?;
    Ok(())
}

const PRJQUOTA: i32 = 2;
const fn xqm_cmd(x: i32) -> i32 {
    ((b'X' as i32) << 8) + x
}
const fn qcmd(cmd: i32, kind: i32) -> i32 {
    (cmd << 8) | (kind & 0xff)
}
const Q_XSETQLIM: i32 = xqm_cmd(4);
const Q_XGETQUOTA: i32 = xqm_cmd(3);
const Q_XGETQSTATV: i32 = xqm_cmd(8);
const FS_DQUOT_VERSION: i8 = 1;
const FS_PROJ_QUOTA: i8 = 2;
const FS_DQ_BSOFT: u16 = 1 << 0;
const FS_DQ_BHARD: u16 = 1 << 1;
const FS_DQ_ISOFT: u16 = 1 << 2;
const FS_DQ_IHARD: u16 = 1 << 3;
const FS_QSTATV_VERSION1: i8 = 1;

/// `struct fs_disk_quota` of <linux/dqblk_xfs.h>; block counts in 512-byte units.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct FsDiskQuota {
    pub d_version: i8,
    pub d_flags: i8,
    pub d_fieldmask: u16,
    pub d_id: u32,
    pub d_blk_hardlimit: u64,
    pub d_blk_softlimit: u64,
    pub d_ino_hardlimit: u64,
    pub d_ino_softlimit: u64,
    pub d_bcount: u64,
    pub d_icount: u64,
    pub d_itimer: i32,
    pub d_btimer: i32,
    pub d_iwarns: u16,
    pub d_bwarns: u16,
    pub d_itimer_hi: i8,
    pub d_btimer_hi: i8,
    pub d_rtbtimer_hi: i8,
    pub d_padding2: i8,
    pub d_rtb_hardlimit: u64,
    pub d_rtb_softlimit: u64,
    pub d_rtbcount: u64,
    pub d_rtbtimer: i32,
    pub d_rtbwarns: u16,
    pub d_padding3: i16,
    pub d_padding4: [u8; 8],
}

/// `struct fs_qfilestatv` and `struct fs_quota_statv` of <linux/dqblk_xfs.h>.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct FsQfilestatv {
    qfs_ino: u64,
    qfs_nblks: u64,
    qfs_nextents: u32,
    qfs_pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct FsQuotaStatv {
    qs_version: i8,
    qs_pad1: u8,
    qs_flags: u16,
    qs_incoredqs: u32,
    qs_uquota: FsQfilestatv,
    qs_gquota: FsQfilestatv,
    qs_pquota: FsQfilestatv,
    qs_btimelimit: i32,
    qs_itimelimit: i32,
    qs_rtbtimelimit: i32,
    qs_bwarnlimit: u16,
    qs_iwarnlimit: u16,
    qs_rtbwarnlimit: u16,
    qs_pad3: u16,
    qs_pad4: u32,
    qs_pad2: [u64; 7],
}

/// The structs quotactl commands read or write, each tied to its command, so that the raw call
/// below can only be made with the struct its command defines.
trait QuotaArg: Default {}
impl QuotaArg for FsDiskQuota {}
impl QuotaArg for FsQuotaStatv {}

/// quotactl_fd(2) (Linux 5.14+): quota command `cmd` on the file system holding `fd`, no device
/// path. `T` must be the struct `cmd` defines (the callers below pair them).
fn quotactl_fd<T: QuotaArg>(fd: BorrowedFd<'_>, cmd: i32, id: u32, arg: &mut T) -> io::Result<()> {
    // SAFETY: the kernel reads/writes at most the struct `cmd` defines at `arg`, and every
    // caller in this module passes a valid, exclusively borrowed struct of that command.
    let r = unsafe {
        libc::syscall(
            libc::SYS_quotactl_fd,
            fd.as_raw_fd(),
            cmd,
            id,
            (arg as *mut T).cast::<libc::c_void>(),
        )
    };
    check(r).map(drop)
}

/// The project quota flags (`FS_QUOTA_PDQ_*`) of the file system holding `fd` (Q_XGETQSTATV).
pub fn project_quota_flags(fd: BorrowedFd<'_>) -> io::Result<u16> {
    let mut st = FsQuotaStatv {
        qs_version: FS_QSTATV_VERSION1,
        ..Default::default()
    };
    quotactl_fd(fd, qcmd(Q_XGETQSTATV, PRJQUOTA), 0, &mut st)?;
    Ok(st.qs_flags)
}

/// Usage and limits of `project` on the file system holding `fd` (Q_XGETQUOTA).
pub fn project_quota(fd: BorrowedFd<'_>, project: u32) -> io::Result<FsDiskQuota> {
    let mut q = FsDiskQuota::default();
    quotactl_fd(fd, qcmd(Q_XGETQUOTA, PRJQUOTA), project, &mut q)?;
    Ok(q)
}

/// Sets hard limits of `project` in 512-byte blocks and inodes, soft limits 0 (Q_XSETQLIM);
/// 0 and 0 removes the limit.
pub fn set_project_quota_limit(
    fd: BorrowedFd<'_>,
    project: u32,
    blocks: u64,
    inodes: u64,
) -> io::Result<()> {
    let mut q = FsDiskQuota {
        d_version: FS_DQUOT_VERSION,
        d_flags: FS_PROJ_QUOTA,
        d_fieldmask: FS_DQ_BSOFT | FS_DQ_BHARD | FS_DQ_ISOFT | FS_DQ_IHARD,
        d_id: project,
        d_blk_hardlimit: blocks,
        d_ino_hardlimit: inodes,
        ..Default::default()
    };
    quotactl_fd(fd, qcmd(Q_XSETQLIM, PRJQUOTA), project, &mut q)
}

// ---- Processes ----

/// kill(2) of one process. Refuses pid <= 0 (a process group, or every process we may signal),
/// which nothing here means to do.
pub fn kill(pid: pid_t, signal: c_int) -> io::Result<()> {
    if pid <= 0 {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: kill takes integers only; no memory is passed.
    check(unsafe { libc::kill(pid, signal) }.into()).map(drop)
}

/// (launch) pidfd_open(2) (Linux 5.3+): a descriptor that becomes readable when `pid` exits.
pub fn pidfd_open(pid: pid_t) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags (0) and returns a new descriptor or -1.
    unsafe { new_fd(libc::syscall(libc::SYS_pidfd_open, pid, 0)) }
}

/// (launch) An all-zero `rusage`, for a wait that reported nothing.
pub fn empty_rusage() -> libc::rusage {
    // SAFETY: rusage is plain data (timevals and longs), for which all-zero bytes are valid.
    unsafe { std::mem::zeroed() }
}

/// (launch) wait4(2) for `pid` with `options`: its wait status and resource usage. EINTR is
/// returned as an error, for the caller to retry.
pub fn wait4(pid: pid_t, options: c_int) -> io::Result<(c_int, libc::rusage)> {
    let mut status = 0;
    let mut ru = empty_rusage();
    // SAFETY: the kernel writes one int and one struct rusage into the valid, exclusively
    // borrowed locals.
    check(unsafe { libc::wait4(pid, &mut status, options, &mut ru) }.into())?;
    Ok((status, ru))
}

/// (launch) waitpid(-1, 0): waits for any child; its pid and wait status.
pub fn wait_any() -> io::Result<(pid_t, c_int)> {
    let mut status = 0;
    // SAFETY: the kernel writes one int into the valid, exclusively borrowed local.
    let pid = check(unsafe { libc::waitpid(-1, &mut status, 0) }.into())?;
    Ok((pid as pid_t, status))
}

/// True when this process has a single thread and shares its memory with no other process: the
/// condition under which a fork-like call is sound (the child gets only the calling thread, so
/// a lock another thread held would stay held in it forever). If it holds now, it holds until
/// our fork: no other thread exists to start one.
///
/// Asked of the kernel: `unshare(CLONE_VM)` changes nothing and fails with EINVAL exactly when
/// another task shares our memory (kernel/fork.c, check_unshare_flags). Where unshare is
/// filtered (a container's seccomp profile), the count in /proc/self/status decides, and an
/// unknown count means no.
fn single_threaded() -> bool {
    // SAFETY: unshare takes flags only; with CLONE_VM alone it unshares nothing (the kernel
    // only checks that we are alone in our address space).
    let r = unsafe { libc::unshare(libc::CLONE_VM) };
    if r == 0 {
        return true;
    }
    if io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
        return false;
    }
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:").map(|v| v.trim() == "1"))
        })
        .unwrap_or(false)
}

/// (launch) fork(2), refused (EDEADLK) unless this process is single-threaded (see
/// [`single_threaded`]): then the child is a plain copy of this process and may run any code.
/// The child should leave with [`exit_immediately`] or exec, not by returning into the
/// parent's callers (their destructors would run twice).
pub fn fork() -> nix::Result<ForkResult> {
    if !single_threaded() {
        return Err(nix::errno::Errno::EDEADLK);
    }
    // SAFETY: the process is single-threaded (checked just above, and nothing can start a
    // thread before the call), so the child is a consistent copy: no lock is held by a thread
    // that does not exist in it.
    unsafe { nix::unistd::fork() }
}

/// Namespace flags [`clone_process`] accepts.
const CLONE_NAMESPACES: c_int = libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWCGROUP
    | libc::CLONE_NEWNS;
/// The exit signal's bits of clone's flags (CSIGNAL).
const CLONE_EXIT_SIGNAL: c_int = 0xff;

/// (launch) A fork-like raw clone(2) into new namespaces: `flags` is namespace flags
/// (`CLONE_NEW*`) and the exit signal (`SIGCHLD`), nothing else: no `CLONE_VM`, `CLONE_FILES`,
/// `CLONE_SETTLS` or tid pointers (refused with EINVAL), so the child gets a copy of our memory
/// and descriptor table and the kernel writes into neither. E.g. the launch's user, PID,
/// network, IPC, UTS and cgroup namespaces, or `CLONE_NEWPID | SIGCHLD` for a nested PID
/// namespace. Like [`fork`], refused unless this process is single-threaded. Unlike glibc's
/// fork, no atfork handlers run; nothing here registers any.
pub fn clone_process(flags: c_int) -> io::Result<ForkResult> {
    if flags & !(CLONE_NAMESPACES | CLONE_EXIT_SIGNAL) != 0 {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    if !single_threaded() {
        return Err(io::Error::other(
            "clone: this process has other threads; a fork-like clone needs a single-threaded one",
        ));
    }
    // SAFETY: a fork-like clone (no CLONE_VM, no new stack, no tid or TLS pointers: checked
    // above) of a single-threaded process (checked above): the child continues below with its
    // own copy of the address space and descriptor table, as after fork().
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags as c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    Ok(match check(r)? {
        0 => ForkResult::Child,
        pid => ForkResult::Parent {
            child: Pid::from_raw(pid as pid_t),
        },
    })
}

/// (launch) _exit(2): ends the process now, without atexit handlers, stdio flushing or
/// destructors, which in a forked child belong to the parent's copy of the state.
pub fn exit_immediately(code: c_int) -> ! {
    // SAFETY: _exit takes an integer and does not return; skipping destructors leaks at worst.
    unsafe { libc::_exit(code) }
}

/// (launch) execve(2) of `program` with `argv` (argv[0] included) and the complete environment
/// `env` (`KEY=value`). Returns only on failure, with the error.
pub fn execve(program: &CStr, argv: &[CString], env: &[CString]) -> io::Error {
    let argv: Vec<*const libc::c_char> = argv
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let envp: Vec<*const libc::c_char> = env
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    // SAFETY: NUL-terminated strings, borrowed for the call, in arrays that end with a null
    // pointer, as execve requires; the kernel only reads them.
    unsafe { libc::execve(program.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    io::Error::last_os_error()
}

/// (launch) Spawns `cmd` with each `(source, target)` of `fds` open in the child at descriptor
/// number `target` (a number, because the child's interface is "your fd 3 is ..."), and with
/// `death_signal` as its parent-death signal when given. Targets must be 3 to 9 and distinct.
///
/// Takes the command by value and spawns it here, so the borrowed sources are open for the
/// whole spawn and the child-side closure can never run again later with stale numbers. In the
/// child, each source is first copied to 10 or above (close-on-exec), then onto its target, so
/// no dup2 overwrites a source a later pair still needs; dup2 leaves the target open across
/// exec, and the sources stay close-on-exec in the parent, so no other child inherits them.
pub fn spawn_with_fds(
    mut cmd: std::process::Command,
    fds: &[(BorrowedFd<'_>, RawFd)],
    death_signal: Option<c_int>,
) -> io::Result<std::process::Child> {
    use std::os::unix::process::CommandExt;
    const ABOVE: c_int = 10;
    let pairs: Vec<(RawFd, RawFd)> = fds.iter().map(|(s, t)| (s.as_raw_fd(), *t)).collect();
    for (i, (_, t)) in pairs.iter().enumerate() {
        if !(3..ABOVE).contains(t) || pairs[..i].iter().any(|(_, u)| u == t) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("descriptor target {t}: targets must be distinct, from 3 to 9"),
            ));
        }
    }
    let mut high = vec![0 as c_int; pairs.len()];
    // SAFETY: the closure runs in the child between fork and exec, where only async-signal-safe
    // calls are allowed: it makes fcntl, dup2 and prctl calls, writes only into `high` (its own
    // copy, allocated before the fork, never resized) and takes no lock; on failure it builds an
    // io::Error from errno, which does not allocate. The sources are borrowed, so open, until
    // spawn returns, and `cmd` is consumed here, so the closure never runs after that.
    unsafe {
        cmd.pre_exec(move || {
            for (h, (source, _)) in high.iter_mut().zip(&pairs) {
                *h = libc::fcntl(*source, libc::F_DUPFD_CLOEXEC, ABOVE);
                if *h < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            for (h, (_, target)) in high.iter().zip(&pairs) {
                if libc::dup2(*h, *target) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            if let Some(sig) = death_signal {
                if libc::prctl(libc::PR_SET_PDEATHSIG, sig as c_ulong, 0 as c_ulong) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    cmd.spawn()
}

/// prctl(2) with an option that takes one integer argument.
fn prctl_int(option: c_int, arg: c_ulong) -> io::Result<()> {
    // SAFETY: the options passed by the wrappers below take integers only (the unused ones are
    // passed as 0, as their man pages require); the kernel reads no memory of ours.
    let r = unsafe { libc::prctl(option, arg, 0 as c_ulong, 0 as c_ulong, 0 as c_ulong) };
    check(r.into()).map(drop)
}

/// The signal this process gets when its parent thread dies (`PR_SET_PDEATHSIG`). The kernel
/// clears it when credentials change: set it again after setresuid.
pub fn set_pdeathsig(signal: c_int) -> io::Result<()> {
    prctl_int(libc::PR_SET_PDEATHSIG, signal as c_ulong)
}

/// (launch) `PR_SET_NAME`: the name this thread shows in /proc/PID/comm (at most 15 bytes are
/// kept).
pub fn set_name(name: &CStr) -> io::Result<()> {
    // SAFETY: PR_SET_NAME reads a NUL-terminated string (at most 16 bytes of it) from the
    // borrowed, valid `name`; the other arguments are unused and passed as 0.
    let r = unsafe {
        libc::prctl(
            libc::PR_SET_NAME,
            name.as_ptr(),
            0 as c_ulong,
            0 as c_ulong,
            0 as c_ulong,
        )
    };
    check(r.into()).map(drop)
}

/// (launch) `PR_SET_DUMPABLE`: whether the process may be dumped or ptrace-attached (and who
/// owns its /proc files).
pub fn set_dumpable(dumpable: bool) -> io::Result<()> {
    prctl_int(libc::PR_SET_DUMPABLE, c_ulong::from(dumpable))
}

/// (launch) `PR_SET_NO_NEW_PRIVS`: exec can no longer grant privileges (setuid, file caps).
pub fn set_no_new_privs() -> io::Result<()> {
    prctl_int(libc::PR_SET_NO_NEW_PRIVS, 1)
}

/// Removes capability `cap` from the bounding set (`PR_CAPBSET_DROP`). EINVAL: the kernel does
/// not know that capability.
pub fn capbset_drop(cap: u32) -> io::Result<()> {
    prctl_int(libc::PR_CAPBSET_DROP, c_ulong::from(cap))
}

/// Empties the ambient capability set (`PR_CAP_AMBIENT_CLEAR_ALL`).
pub fn clear_ambient_caps() -> io::Result<()> {
    // SAFETY: PR_CAP_AMBIENT takes integers only; no memory is passed.
    let r = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as c_ulong,
            0 as c_ulong,
            0 as c_ulong,
            0 as c_ulong,
        )
    };
    check(r.into()).map(drop)
}

/// (launch) Keeps this process on at most the first `max` CPUs it may run on now
/// (sched_getaffinity, then sched_setaffinity of the first `max` of them).
pub fn keep_first_cpus(max: usize) -> io::Result<()> {
    let size = std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: cpu_set_t is a plain bit array, for which all-zero bytes are a valid value.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: the kernel writes at most `size` bytes into the valid, exclusively borrowed set.
    check(unsafe { libc::sched_getaffinity(0, size, &mut set) }.into())?;
    let mut kept = 0;
    for cpu in 0..libc::CPU_SETSIZE as usize {
        // SAFETY: CPU_ISSET and CPU_CLR index the set's bit array, and cpu < CPU_SETSIZE, the
        // number of bits it holds.
        unsafe {
            if libc::CPU_ISSET(cpu, &set) {
                if kept >= max {
                    libc::CPU_CLR(cpu, &mut set);
                } else {
                    kept += 1;
                }
            }
        }
    }
    // SAFETY: the kernel reads `size` bytes from the valid set.
    check(unsafe { libc::sched_setaffinity(0, size, &set) }.into()).map(drop)
}

/// The kernel's Landlock ABI version (`landlock_create_ruleset` with
/// `LANDLOCK_CREATE_RULESET_VERSION`): EOPNOTSUPP when Landlock is built in but disabled,
/// ENOSYS when absent.
pub fn landlock_abi_version() -> io::Result<i32> {
    const LANDLOCK_CREATE_RULESET_VERSION: u32 = 1;
    // SAFETY: with the VERSION flag the call takes a null attribute pointer and size 0 and
    // reads no memory.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    Ok(check(v)? as i32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn kernel_structs_have_the_kernels_sizes() {
        assert_eq!(std::mem::size_of::<FsXattr>(), 28);
        assert_eq!(std::mem::size_of::<FsDiskQuota>(), 112);
        assert_eq!(std::mem::size_of::<FsQuotaStatv>(), 160);
        assert_eq!(std::mem::size_of::<OpenHow>(), 24);
        assert_eq!(
            std::mem::size_of::<PollFd<'_>>(),
            std::mem::size_of::<libc::pollfd>()
        );
        assert_eq!(Q_XGETQSTATV, 0x5808);
        assert_eq!(qcmd(Q_XSETQLIM, PRJQUOTA), 0x0058_0402);
    }

    #[test]
    fn an_inherited_number_is_adopted_once_and_only_when_open() {
        assert!(matches!(adopt_inherited_fd(1), Err(AdoptError::Stdio)));
        assert!(matches!(
            adopt_inherited_fd(9876),
            Err(AdoptError::NotOpen(_))
        ));
        // A descriptor nobody owns any more, as an inherited one is.
        let raw = std::os::fd::IntoRawFd::into_raw_fd(OwnedFd::from(
            std::fs::File::open("/dev/null").expect("open /dev/null"),
        ));
        let owned = adopt_inherited_fd(raw).expect("adopt");
        assert_eq!(owned.as_raw_fd(), raw);
        let flags = nix::fcntl::fcntl(&owned, nix::fcntl::FcntlArg::F_GETFD).expect("F_GETFD");
        assert_ne!(
            flags & libc::FD_CLOEXEC,
            0,
            "adopted descriptors are close-on-exec"
        );
        assert!(matches!(adopt_inherited_fd(raw), Err(AdoptError::Taken)));
    }

    #[test]
    fn fork_like_calls_are_refused_in_a_threaded_process() {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let other = std::thread::spawn(move || {
            let _ = rx.recv();
        });
        assert!(!single_threaded());
        assert_eq!(fork().err(), Some(nix::errno::Errno::EDEADLK));
        assert!(clone_process(libc::SIGCHLD).is_err());
        drop(tx);
        let _ = other.join();
    }

    #[test]
    fn clone_refuses_flags_that_share_memory_or_descriptors() {
        for bad in [libc::CLONE_VM, libc::CLONE_FILES, libc::CLONE_SETTLS] {
            let e = clone_process(bad | libc::SIGCHLD).expect_err("refused");
            assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
        }
    }

    #[test]
    fn poll_and_read_see_a_pipe() {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe");
        let mut fds = [PollFd::new(r.as_fd(), libc::POLLIN)];
        assert_eq!(poll(&mut fds, 0).expect("poll"), 0);
        nix::unistd::write(&w, b"hi").expect("write");
        assert_eq!(poll(&mut fds, 0).expect("poll"), 1);
        assert_ne!(fds[0].revents() & libc::POLLIN, 0);
        let mut buf = [0u8; 8];
        assert_eq!(read(r.as_fd(), &mut buf).expect("read"), 2);
        drop(w);
        set_nonblocking(r.as_fd()).expect("O_NONBLOCK");
        assert_eq!(read(r.as_fd(), &mut buf).expect("read"), 0);
    }

    #[test]
    fn a_descriptor_travels_over_a_socket() {
        use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .expect("socketpair");
        let f = std::fs::File::open("/dev/null").expect("open /dev/null");
        send_with_fd(a.as_fd(), b"k", Some(f.as_fd())).expect("send");
        let mut buf = [0u8; 4];
        let (n, fd) = recv_with_fd(b.as_fd(), &mut buf).expect("recv");
        assert_eq!(&buf[..n], b"k");
        let (got, want) = (
            fstat(fd.expect("a descriptor").as_fd()).expect("fstat"),
            fstat(f.as_fd()).expect("fstat"),
        );
        assert_eq!((got.st_dev, got.st_ino), (want.st_dev, want.st_ino));
        send_with_fd(a.as_fd(), b"e", None).expect("send");
        let (n, fd) = recv_with_fd(b.as_fd(), &mut buf).expect("recv");
        assert_eq!((n, fd.is_none()), (1, true));
    }
}
