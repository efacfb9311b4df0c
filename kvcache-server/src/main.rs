//! The `kvcache-server` binary: parses memcached's flags, builds the store and serves.

use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use kvcache_server::config::{self, Action};
use kvcache_server::process;
use kvcache_server::server::{self, auth::AuthFile, Server, StopHandle};
use kvcache_server::store::Store;

/// Sets glibc's malloc up so freed memory can go back to the OS. By default its thresholds
/// adapt: freeing a large mapped block (an index table outgrown by a resize) raises the mmap
/// threshold to its size and the trim threshold to twice that, so later tables land in the
/// heap and what they leave when freed (after a flush) stays resident. Fixed thresholds keep
/// every index table over 64 KiB in a mapping of its own, unmapped when freed. One arena: the
/// request path does not allocate (items live in slabs, the index in its tables), and
/// `malloc_trim` can shrink only the main arena's top, so worker threads' arenas would
/// otherwise keep their freed tops resident.
fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only sets glibc's malloc parameters; called before any other
    // thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 64 << 10);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 128 << 10);
    }
}

/// SIGUSR1 stops the server as SIGTERM does and sets the returned flag: after the stop,
/// the store saves what a warm restart needs (with `-e`).
fn save_on_sigusr1(handle: StopHandle) -> std::io::Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    let set = flag.clone();
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGUSR1])?;
    std::thread::Builder::new()
        .name("sigusr1".into())
        .spawn(move || {
            if signals.forever().next().is_some() {
                eprintln!("Gracefully stopping");
                set.store(true, Ordering::SeqCst);
                handle.stop();
            }
        })?;
    Ok(flag)
}

fn main() -> ExitCode {
    tune_malloc();
    let cfg = match config::parse(std::env::args().skip(1)) {
        Ok(Action::Run(cfg)) => cfg,
        Ok(Action::Help) => {
            print!("{}", config::usage());
            return ExitCode::SUCCESS;
        }
        Ok(Action::Version) => {
            println!(
                "kvcache-server {} (memcached 1.6.18 compatible)",
                env!("CARGO_PKG_VERSION")
            );
            return ExitCode::SUCCESS;
        }
        Ok(Action::License) => {
            println!(
                "kvcache-server is licensed under {}.",
                env!("CARGO_PKG_LICENSE")
            );
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("kvcache-server: {e}");
            eprintln!("Try 'kvcache-server -h' for the list of options.");
            return ExitCode::from(2);
        }
    };
    // memcached's rule: root must name the user to run as (`-u root` keeps root).
    if process::is_root() && cfg.operator.user.is_none() {
        eprintln!("can't run as root without the -u switch");
        return ExitCode::from(64); // EX_USAGE
    }
    // Before any thread exists: the fork of `-d`.
    let daemon = if cfg.operator.daemonize {
        match process::daemonize() {
            Ok(d) => Some(d),
            Err(e) => {
                eprintln!("kvcache-server: failed to daemon() in order to daemonize: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        None
    };
    if cfg.operator.core_dumps {
        if let Err(e) = process::enable_core_dumps() {
            eprintln!("kvcache-server: failed to set the core file limit: {e}");
            return ExitCode::FAILURE;
        }
    }
    if cfg.operator.lock_memory {
        if let Err(msg) = process::lock_memory() {
            eprintln!("kvcache-server: {msg}");
            return ExitCode::FAILURE;
        }
    }
    let store_cfg = match cfg.store_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("kvcache-server: {e}");
            return ExitCode::from(2);
        }
    };
    if cfg.verbose >= 2 {
        // memcached's class table, as `-vv` prints it.
        for (class, size) in store_cfg.classes.iter() {
            eprintln!(
                "slab class {:3}: chunk size {:9} perslab {:7}",
                class.display_id(),
                size,
                store_cfg.classes.chunks_per_slab(class)
            );
        }
    }
    // memcached's checks, messages and exit codes (1 for the auth file, 71 = EX_OSERR for
    // the file limit).
    let auth = match cfg.auth_file.as_deref().map(AuthFile::load) {
        None => None,
        Some(Ok(a)) => Some(a),
        Some(Err(e)) => {
            eprint!("{e}");
            if matches!(e, server::auth::AuthFileError::Open(..)) {
                eprintln!();
            }
            return ExitCode::FAILURE;
        }
    };
    if let Err(msg) = server::raise_fd_limit(cfg.max_conns, cfg.threads) {
        eprintln!("{msg}");
        return ExitCode::from(71);
    }
    let built = match cfg.memory_file.as_deref() {
        // `-e`: a clear error and exit 2 when the file cannot serve (see `open_file`).
        Some(path) => match Store::open_file(store_cfg, Path::new(path)) {
            Ok(s) => Ok(s),
            Err(e) => {
                eprintln!("kvcache-server: {e}");
                return ExitCode::from(2);
            }
        },
        None => Store::new(store_cfg),
    };
    let store = match built {
        Ok(s) => {
            let s = Arc::new(s);
            // Reclaims expired items, refreshes ages, returns idle memory to the OS.
            s.spawn_maintenance(std::time::Duration::from_secs(u64::from(cfg.reap_interval)));
            s
        }
        Err(e) => {
            eprintln!("kvcache-server: cannot create the store: {e}");
            return ExitCode::FAILURE;
        }
    };
    let verbose = cfg.verbose;
    let unix = cfg.transport.unix_socket.is_some();
    let cfg_user = cfg.operator.user.clone();
    let pid_path = cfg.operator.pid_file.clone();
    let announce = verbose > 0 || cfg.port == 0;
    let kept = store.clone();
    let server = match Server::start(cfg, store, auth) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("kvcache-server: failed to listen: {e}");
            // A live server on the unix socket path: a usage error, as a bad flag.
            if unix && e.kind() == std::io::ErrorKind::AddrInUse {
                return ExitCode::from(2);
            }
            return ExitCode::FAILURE;
        }
    };
    if announce {
        match server.listen_name().strip_prefix("tcp:") {
            Some(_) => eprintln!("kvcache-server listening on {}", server.local_addr()),
            None => eprintln!("kvcache-server listening on {}", server.listen_name()),
        }
    }
    match server.start_metrics() {
        Ok(Some(addr)) if announce => eprintln!("kvcache-server metrics on http://{addr}/metrics"),
        Ok(_) => {}
        Err(e) => {
            eprintln!("kvcache-server: failed to listen for metrics: {e}");
            return ExitCode::FAILURE;
        }
    }
    let _pid_file = match pid_path.as_deref().map(process::PidFile::write) {
        None => None,
        Some(Ok(p)) => Some(p),
        Some(Err(e)) => {
            eprintln!("kvcache-server: could not open the pid file: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(user) = cfg_user.as_deref() {
        if let Err(msg) = process::drop_privileges(user) {
            eprintln!("kvcache-server: {msg}");
            return ExitCode::FAILURE;
        }
    }
    if let Some(d) = daemon {
        if let Err(e) = d.ready() {
            eprintln!("kvcache-server: {e}");
            return ExitCode::FAILURE;
        }
    }
    if let Err(e) = server.stop_on_signals() {
        eprintln!("kvcache-server: cannot install signal handlers: {e}");
        return ExitCode::FAILURE;
    }
    let save = match save_on_sigusr1(server.stop_handle()) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("kvcache-server: cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    match server.run() {
        Ok(()) if save.load(Ordering::SeqCst) => match kept.save_restart() {
            Ok(saved) => {
                if let (Some(meta), true) = (saved, verbose > 0) {
                    eprintln!("kvcache-server: restart data saved to {}", meta.display());
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("kvcache-server: restart: cannot save the metadata: {e}");
                ExitCode::FAILURE
            }
        },
        Ok(()) => {
            if verbose > 0 {
                eprintln!("kvcache-server: stopped");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("kvcache-server: {e}");
            ExitCode::FAILURE
        }
    }
}
