//! The escape suite's only `unsafe`: the SysV calls the harness makes on the host (nix has no
//! SysV IPC), to prove that a segment the host holds is out of the sandbox's reach.

/// A SysV shared-memory segment of 4 KiB under `key`, created on the host and removed on drop.
pub struct HostShm(i32);

impl HostShm {
    pub fn create(key: i32) -> std::io::Result<HostShm> {
        // SAFETY: shmget takes integers only and returns an id or -1; no memory is passed.
        let id = unsafe { libc::shmget(key, 4096, libc::IPC_CREAT | 0o666) };
        if id < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(HostShm(id))
    }
}

impl Drop for HostShm {
    fn drop(&mut self) {
        // SAFETY: IPC_RMID on our own segment id; the null buffer is allowed for IPC_RMID.
        unsafe { libc::shmctl(self.0, libc::IPC_RMID, std::ptr::null_mut()) };
    }
}
