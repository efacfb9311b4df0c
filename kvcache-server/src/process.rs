//! The process side of memcached's flags: `-d` (daemonize), `-P` (pidfile), `-u` (drop
//! privileges), `-k` (lock memory), `-r` (core dumps). System calls go through
//! `cvt`, which turns `-1` into the `errno` error.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};

/// `-1` to the last OS error.
fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// The child's end of `-d`: tells the waiting parent whether the server came up.
#[derive(Debug)]
pub struct Daemon {
    ready: File,
}

impl Daemon {
    /// The server listens: stdio goes to `/dev/null` and the parent exits 0.
    pub fn ready(mut self) -> io::Result<()> {
        let null = File::options().read(true).write(true).open("/dev/null")?;
        for fd in 0..3 {
            // SAFETY: `dup2` of a file we own onto the standard descriptors, which this
            // process owns; nothing holds Rust objects over fds 0 to 2.
            cvt(unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), fd) })?;
        }
        self.ready.write_all(b"1")
    }
}

/// `-d`: forks; the parent waits until the child reports (with [`Daemon::ready`]) that
/// it listens, then exits 0 (1 if the child exited first). The child detaches with
/// `setsid` and goes on. Call before any thread is started.
pub fn daemonize() -> io::Result<Daemon> {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a writable array of two ints, as `pipe` requires.
    cvt(unsafe { libc::pipe(fds.as_mut_ptr()) })?;
    // SAFETY: the two descriptors were just created by `pipe` and are owned by nobody else.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: no other thread exists yet (the caller's contract), so the child may go on
    // running Rust code after `fork`.
    let pid = cvt(unsafe { libc::fork() })?;
    if pid > 0 {
        drop(w);
        let mut b = [0u8; 1];
        let ok = File::from(r).read(&mut b).unwrap_or(0) == 1;
        std::process::exit(if ok { 0 } else { 1 });
    }
    drop(r);
    // SAFETY: `setsid` takes no arguments; the child of a fork is never a group leader.
    cvt(unsafe { libc::setsid() })?;
    Ok(Daemon {
        ready: File::from(w),
    })
}

/// `-P`: the PID file, removed when dropped.
#[derive(Debug)]
pub struct PidFile(String);

impl PidFile {
    /// Writes this process's PID to `path`.
    pub fn write(path: &str) -> io::Result<PidFile> {
        std::fs::write(path, format!("{}\n", std::process::id()))?;
        Ok(PidFile(path.to_owned()))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `-k`: locks every page mapped now and later. On failure the message names
/// `RLIMIT_MEMLOCK` and its value.
pub fn lock_memory() -> Result<(), String> {
    // SAFETY: `mlockall` takes flags only.
    match cvt(unsafe { libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE) }) {
        Ok(_) => Ok(()),
        Err(e) => {
            let mut lim = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: `lim` is a writable rlimit.
            unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) };
            Err(format!(
                "-k: mlockall() failed: {e} (RLIMIT_MEMLOCK is {} bytes; raise it with \
                 `ulimit -l unlimited` or LimitMEMLOCK=infinity in the service unit)",
                lim.rlim_cur
            ))
        }
    }
}

/// `-r`: raises the core file limit to its hard maximum (memcached's `-r`).
pub fn enable_core_dumps() -> io::Result<()> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a writable rlimit.
    cvt(unsafe { libc::getrlimit(libc::RLIMIT_CORE, &mut lim) })?;
    lim.rlim_cur = lim.rlim_max;
    // SAFETY: `lim` is a valid rlimit.
    cvt(unsafe { libc::setrlimit(libc::RLIMIT_CORE, &lim) })?;
    Ok(())
}

/// Whether the process runs as root.
pub fn is_root() -> bool {
    // SAFETY: `getuid` takes nothing and cannot fail.
    unsafe { libc::getuid() == 0 }
}

/// `-u <user>`: when running as root, switches to `user`'s group and uid (memcached's
/// messages on failure). Does nothing when not root.
pub fn drop_privileges(user: &str) -> Result<(), String> {
    if !is_root() {
        return Ok(());
    }
    let name = std::ffi::CString::new(user).map_err(|_| "can't find the user".to_string())?;
    // SAFETY: `name` is a NUL-terminated string; the result is read before any other
    // call that could overwrite getpwnam's static buffer.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    if pw.is_null() {
        return Err(format!("can't find the user {user} to switch to"));
    }
    // SAFETY: `pw` is non-null and points to getpwnam's record.
    let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
    // SAFETY: plain system calls on ids; `setgroups(0, null)` clears the groups.
    let r = unsafe {
        cvt(libc::setgroups(0, std::ptr::null()))
            .and_then(|_| cvt(libc::setgid(gid)))
            .and_then(|_| cvt(libc::setuid(uid)))
    };
    r.map(|_| ())
        .map_err(|e| format!("failed to assume identity of user {user}: {e}"))
}
