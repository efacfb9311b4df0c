//! Warm restart (`-e <file>`): the engine's slabs are the pages of a file on tmpfs; on
//! SIGUSR1 the server stops and [`Store::save_restart`] writes a small metadata file next
//! to it; the next start with the same settings ([`Store::open_file`]) maps the same
//! slabs again and rebuilds the index by walking them, since every chunk says what it
//! holds.
//!
//! # The metadata file (`<file>.meta`)
//!
//! Text, one `name value` per line: `kvcache-restart <version>` first, then the settings
//! the layout depends on (memory limit, item size max, slab size, CAS, the class list),
//! the file's length, the clock (Unix start, server time and Unix time at the stop), the
//! CAS counter, the flush horizon, the slab table (`s <slot> <class> <carved>` lines) and
//! last `crc32 <hex>` over every byte before it. It is written to a temporary name,
//! synced and renamed into place, and deleted as soon as a start has read it: a process
//! that dies without SIGUSR1 (SIGKILL, a crash) leaves none, so the next start is cold
//! and never trusts memory that may hold half-written items.
//!
//! # The walk
//!
//! The engine takes the slab table up with every carved chunk in use. Each chunk whose tag
//! says `LIVE` and not `SEGMENT` is an item head; it is kept if its header is consistent
//! with its chunk (key length 1 to 250, head within the chunk; for a chained value, the
//! segment count matches its length and every segment is a carved chunk of the largest
//! class, tagged `SEGMENT`, claimed by no other item), it has not expired or been flushed
//! by the saved clock, and its key is not already indexed. Its tag gets the key's hash
//! under this process's hasher and it is linked. Every other chunk is freed, which
//! rebuilds the free lists; slabs that end up empty go to the pool and back to the OS
//! (their blocks punched out of the file) at the next reap.
//!
//! # Time and CAS
//!
//! The server clock continues the saved one: it resumes at the saved server time plus
//! the wall-clock seconds the server was down, so stored expiry times keep their meaning
//! and items that expired meanwhile are dropped. Unlike memcached, a restart within the
//! second of the stop is fine. CAS uniques continue above the saved counter.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use slab_core::engine::size_class::ClassId;
use slab_core::engine::{Backing, SlabRecord};

use super::clock::Clock;
use super::index::table_hash;
use super::restart_state::{settings_lines, MODE_COLD, MODE_OFF, MODE_WARM};
use super::{lock, Store, StoreConfig, StoreError};
use crate::item::{
    key_offset, tag_atomic, ItemRef, CHAINED, HAS_FLAGS, KEY_MAX, LIVE, SEGMENT, SEGMENT_DATA,
};

/// The metadata format's version.
pub const RESTART_VERSION: u32 = 1;

/// Why `-e` cannot be served at all (the server exits 2).
#[derive(Debug, thiserror::Error)]
pub enum RestartError {
    /// The path exists and is not a regular file.
    #[error("-e {0}: not a regular file")]
    NotRegular(PathBuf),
    /// The file system cannot hold `-m` bytes.
    #[error(
        "-e {path}: the file system has {free} bytes free for the memory file, -m needs {need}"
    )]
    NoSpace {
        /// The memory file.
        path: PathBuf,
        /// Bytes the file could still get.
        free: u64,
        /// Bytes `-m` needs.
        need: u64,
    },
    /// Opening, sizing or checking the file failed.
    #[error("-e {0}: {1}")]
    Io(PathBuf, io::Error),
    /// The store could not be built.
    #[error("cannot create the store: {0}")]
    Store(#[from] StoreError),
}

/// What `stats` shows of a warm restart.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RestartInfo {
    /// `off` (no `-e`), `cold` or `warm`.
    pub state: &'static str,
    /// The memory file.
    pub memory_file: Option<PathBuf>,
    /// Items taken up at start.
    pub restored: u64,
    /// Items found at start and not taken up (expired, flushed, inconsistent, duplicate).
    pub dropped: u64,
}

/// The saved state, as read from a metadata file.
#[derive(Debug)]
struct Meta {
    file_len: u64,
    /// `<device>:<inode>` of the memory file.
    file_id: String,
    process_started: i64,
    current_time: u32,
    stop_time: i64,
    cas: u64,
    oldest_live: u32,
    oldest_cas: u64,
    table: Vec<SlabRecord>,
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// `<file>.meta`.
pub fn meta_path(file: &Path) -> PathBuf {
    let mut s = file.as_os_str().to_owned();
    s.push(".meta");
    PathBuf::from(s)
}

/// Parses and checks a metadata file against `expect` (the settings lines).
fn parse_meta(text: &str, expect: &str) -> Result<Meta, String> {
    let body_end = text
        .rfind("crc32 ")
        .ok_or("the metadata file has no checksum (truncated?)")?;
    let (body, tail) = text.split_at(body_end);
    let want = u32::from_str_radix(tail["crc32 ".len()..].trim(), 16)
        .map_err(|_| "the metadata checksum line is malformed")?;
    if crc32fast::hash(body.as_bytes()) != want {
        return Err("the metadata checksum does not match (corrupt file)".into());
    }
    let mut lines = body.lines();
    let version = lines
        .next()
        .and_then(|l| l.strip_prefix("kvcache-restart "))
        .ok_or("not a kvcache-server metadata file")?;
    if version.trim() != RESTART_VERSION.to_string() {
        return Err(format!(
            "metadata version {} (this server writes {RESTART_VERSION})",
            version.trim()
        ));
    }
    let mut rest = body.split_once('\n').map_or("", |(_, r)| r);
    for want_line in expect.lines() {
        let (line, r) = rest.split_once('\n').unwrap_or((rest, ""));
        if line != want_line {
            let name = want_line.split(' ').next().unwrap_or("");
            return Err(format!(
                "the settings differ from the saved ones ({name}: saved '{}', now '{}')",
                line.strip_prefix(name).unwrap_or(line).trim(),
                want_line[name.len()..].trim()
            ));
        }
        rest = r;
    }
    let mut m = Meta {
        file_len: 0,
        file_id: String::new(),
        process_started: 0,
        current_time: 0,
        stop_time: 0,
        cas: 0,
        oldest_live: 0,
        oldest_cas: 0,
        table: Vec::new(),
    };
    let bad = |l: &str| format!("malformed metadata line '{l}'");
    for line in rest.lines() {
        let mut w = line.split(' ');
        let (name, a) = (w.next().unwrap_or(""), w.next().unwrap_or(""));
        let n = |s: &str| s.parse::<i64>().map_err(|_| bad(line));
        match name {
            "file_len" => m.file_len = n(a)? as u64,
            "file_id" => m.file_id = a.to_owned(),
            "process_started" => m.process_started = n(a)?,
            "current_time" => m.current_time = n(a)? as u32,
            "stop_time" => m.stop_time = n(a)?,
            "cas" => m.cas = a.parse().map_err(|_| bad(line))?,
            "oldest_live" => m.oldest_live = n(a)? as u32,
            "oldest_cas" => m.oldest_cas = a.parse().map_err(|_| bad(line))?,
            "slabs" => m.table.reserve(n(a)?.clamp(0, 1 << 20) as usize),
            "s" => {
                let b = w.next().ok_or_else(|| bad(line))?;
                let c = w.next().ok_or_else(|| bad(line))?;
                let p = |s: &str| s.parse::<u32>().map_err(|_| bad(line));
                let class = u16::try_from(p(b)?).map_err(|_| bad(line))?;
                m.table.push(SlabRecord {
                    slot: p(a)?,
                    class: ClassId(class),
                    carved: p(c)?,
                });
            }
            _ => return Err(bad(line)),
        }
    }
    Ok(m)
}

/// Checks a metadata file's bytes against `cfg` the way a start does, without touching
/// any file: `Ok(n)` with the number of slabs it lists if a start would take it up (as
/// far as the metadata goes), else the reason it would start cold. For tools and fuzzing.
pub fn check_restart_meta(bytes: &[u8], cfg: &StoreConfig) -> Result<usize, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "the metadata file is not text")?;
    let expect = settings_lines(
        cfg.memory_limit,
        cfg.item_size_max,
        &cfg.classes,
        cfg.cas_enabled,
    );
    parse_meta(text, &expect).map(|m| m.table.len())
}

/// `<device>:<inode>`: which file the memory file is.
fn file_id(md: &std::fs::Metadata) -> String {
    format!("{}:{}", md.dev(), md.ino())
}

/// Bytes the file system holding `path` can still give (to an unprivileged writer).
fn free_bytes(path: &Path) -> io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `statvfs` reads the NUL-terminated path and writes one struct we own.
    let st = unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(c.as_ptr(), &mut st) != 0 {
            return Err(io::Error::last_os_error());
        }
        st
    };
    Ok(st.f_bavail as u64 * st.f_frsize as u64)
}

impl Store {
    /// Builds a store whose slabs are the pages of the file at `path` (`-e`): warm from
    /// the file if a matching metadata file is there, else cold with the file emptied.
    /// Every reason for a cold start is logged in one line on stderr. Fails (the server
    /// exits 2) only when the path is not a regular file, cannot be opened, or its file
    /// system cannot hold `-m`.
    pub fn open_file(cfg: StoreConfig, path: &Path) -> Result<Store, RestartError> {
        let io_err = |e| RestartError::Io(path.to_owned(), e);
        if let Ok(md) = std::fs::metadata(path) {
            if !md.is_file() {
                return Err(RestartError::NotRegular(path.to_owned()));
            }
        }
        let meta = Self::take_meta(&cfg, path);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(io_err)?;
        let md = file.metadata().map_err(io_err)?;
        let (len, id) = (md.len(), file_id(&md));
        let meta = meta.and_then(|m| {
            if m.file_len == len && m.file_id == id {
                Ok(m)
            } else if m.file_len == len {
                Err(format!(
                    "the memory file is another file than the one saved ({id}, saved {})",
                    m.file_id
                ))
            } else {
                Err(format!(
                    "the memory file is {len} bytes, {} were saved (truncated or replaced)",
                    m.file_len
                ))
            }
        });
        let file = Arc::new(file);
        let meta = match meta {
            Ok(m) => Some(m),
            Err(reason) => {
                eprintln!("kvcache-server: restart: {reason}; starting with an empty cache");
                None
            }
        };
        if meta.is_none() {
            file.set_len(0).map_err(io_err)?;
        }
        let held = file.metadata().map_err(io_err)?.blocks() * 512;
        let free = free_bytes(path).map_err(io_err)? + held;
        if free < cfg.memory_limit as u64 {
            return Err(RestartError::NoSpace {
                path: path.to_owned(),
                free,
                need: cfg.memory_limit as u64,
            });
        }
        if let Some(m) = meta {
            let backing = Backing::File(file.clone());
            match Store::build(cfg.clone(), backing, m.table.clone()) {
                Ok(mut store) => {
                    store.resume(&m);
                    store.set_mode(MODE_WARM, path);
                    store.walk_restored(&m.table);
                    return Ok(store);
                }
                Err(e) => {
                    eprintln!("kvcache-server: restart: {e}; starting with an empty cache");
                    file.set_len(0).map_err(io_err)?;
                }
            }
        }
        let store = Store::build(cfg, Backing::File(file), Vec::new())?;
        store.set_mode(MODE_COLD, path);
        Ok(store)
    }

    /// Reads, deletes and checks `<path>.meta`.
    fn take_meta(cfg: &StoreConfig, path: &Path) -> Result<Meta, String> {
        let mp = meta_path(path);
        let text = match std::fs::read(&mp) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(
                    "no metadata file (first start, or the last stop was not SIGUSR1)".into(),
                )
            }
            Err(e) => return Err(format!("cannot read {}: {e}", mp.display())),
        };
        // Read once: a crash after this start must not find it again.
        let _ = std::fs::remove_file(&mp);
        let text = String::from_utf8(text).map_err(|_| "the metadata file is not text")?;
        parse_meta(
            &text,
            &settings_lines(
                cfg.memory_limit,
                cfg.item_size_max,
                &cfg.classes,
                cfg.cas_enabled,
            ),
        )
    }

    /// Continues the saved clock, CAS counter and flush horizon.
    fn resume(&mut self, m: &Meta) {
        let down = (unix_now() - m.stop_time).clamp(0, i64::from(u32::MAX / 2)) as u32;
        let clock = Clock::resumed(m.process_started, m.current_time.saturating_add(down));
        self.expiry
            .resume(clock, m.cas, m.oldest_live, m.oldest_cas);
    }

    fn set_mode(&self, mode: u8, path: &Path) {
        self.restart.mode.store(mode, Ordering::Relaxed);
        *lock(&self.restart.path) = Some(path.to_owned());
    }

    /// What `stats` shows of the warm restart.
    pub fn restart_info(&self) -> RestartInfo {
        let r = &self.restart;
        RestartInfo {
            state: match r.mode.load(Ordering::Relaxed) {
                MODE_OFF => "off",
                MODE_COLD => "cold",
                _ => "warm",
            },
            memory_file: lock(&r.path).clone(),
            restored: r.restored.load(Ordering::Relaxed),
            dropped: r.dropped.load(Ordering::Relaxed),
        }
    }

    /// Rebuilds the index from the restored slabs and frees every chunk that holds no
    /// item kept (see the [module docs](self)). Runs before anything else uses the store.
    fn walk_restored(&self, table: &[SlabRecord]) {
        let engine = self.engine();
        let slab = engine.slab_size();
        let now = self.now();
        let mut carved = vec![0u32; engine.reservation().1 / slab];
        for r in table {
            carved[r.slot as usize] = r.carved;
        }
        let mut claimed: HashSet<usize> = HashSet::new();
        // Segment chunks, of any class: kept if a kept head claims them.
        let mut segments: Vec<(ClassId, NonNull<u8>)> = Vec::new();
        let (mut restored, mut dropped, mut max_cas) = (0u64, 0u64, 0u64);
        for r in table {
            let cs = self.classes().chunk_size(r.class);
            let base = engine.ptr_at(r.slot as usize * slab);
            let mut free = Vec::new();
            for i in 0..r.carved as usize {
                let p = NonNull::new(base.as_ptr().wrapping_add(i * cs)).expect("in slab");
                let bits = tag_atomic(p).load(Ordering::Acquire) & 0xff;
                if bits & SEGMENT != 0 {
                    segments.push((r.class, p));
                    continue;
                }
                if bits & LIVE == 0 {
                    free.push(p);
                    continue;
                }
                match self.take_up(p, cs, now, &carved, &mut claimed) {
                    Some(cas) => {
                        restored += 1;
                        max_cas = max_cas.max(cas);
                    }
                    None => {
                        dropped += 1;
                        tag_atomic(p).fetch_and(!LIVE, Ordering::AcqRel);
                        free.push(p);
                    }
                }
            }
            // SAFETY: every chunk in `free` is a carved chunk of this restored slab, in use
            // by the engine's count and referenced by nothing kept; each is freed once.
            unsafe { engine.free_batch(r.class, &free) };
        }
        segments.retain(|(_, p)| !claimed.contains(&engine.offset_of(p.as_ptr())));
        segments.sort_unstable_by_key(|(c, _)| c.0);
        for group in segments.chunk_by(|a, b| a.0 == b.0) {
            let ptrs: Vec<NonNull<u8>> = group.iter().map(|&(_, p)| p).collect();
            for p in &ptrs {
                tag_atomic(*p).store(0, Ordering::Release);
            }
            // SAFETY: as above: carved segment chunks of one class that no kept item
            // claims, each freed once.
            unsafe { engine.free_batch(group[0].0, &ptrs) };
        }
        // The walk's reads mapped whole 64 KiB windows of the file; RSS follows use again.
        engine.forget_uncarved_pages();
        self.expiry.cas_at_least(max_cas);
        self.restart.restored.store(restored, Ordering::Relaxed);
        self.restart.dropped.store(dropped, Ordering::Relaxed);
    }

    /// Checks the item head at `p` (a chunk of `cs` bytes) and links it; returns its CAS,
    /// or `None` if it is not taken up (nothing was claimed or linked then).
    fn take_up(
        &self,
        p: NonNull<u8>,
        cs: usize,
        now: u32,
        carved: &[u32],
        claimed: &mut HashSet<usize>,
    ) -> Option<u64> {
        let cas_on = self.cfg.cas_enabled;
        // Check the header against the chunk before any view reads beyond it.
        // SAFETY: bytes 4..8 of a carved chunk of a mapped slab; nothing else runs yet.
        let lens = unsafe { p.as_ptr().add(4).cast::<u32>().read_unaligned() };
        let (klen, vfield) = ((lens >> 24) as usize, (lens & 0xff_ffff) as usize);
        let bits = tag_atomic(p).load(Ordering::Acquire);
        let body = key_offset(cas_on, bits & HAS_FLAGS != 0) + klen;
        let chained = bits & CHAINED != 0;
        let head = if chained {
            body + 4 + 4 * vfield
        } else {
            body + vfield
        };
        if klen == 0 || klen > KEY_MAX || head > cs {
            return None;
        }
        // SAFETY: the head lies within the chunk (checked above) and nothing else touches
        // the store's memory during the walk.
        let it = unsafe { ItemRef::new(p, cas_on) };
        if self.expiry.is_dead(&it, now).is_some() {
            return None;
        }
        let mut segs = Vec::new();
        if chained {
            let payload = self.mem.payload();
            if it.chained_len().div_ceil(payload) != vfield || vfield == 0 {
                return None;
            }
            let engine = self.engine();
            let slab = engine.slab_size();
            let (_, reserved) = engine.reservation();
            let mut left = it.chained_len();
            for i in 0..vfield {
                let off = crate::item::unpack_handle(it.segment(i), self.index.handle_shift);
                if off >= reserved || claimed.contains(&off) || segs.contains(&off) {
                    return None;
                }
                let sp = engine.ptr_at(off);
                let class = engine.class_of(sp.as_ptr())?;
                let scs = self.classes().chunk_size(class);
                let n = left.min(payload);
                left -= n;
                if (off % slab) / scs >= carved[off / slab] as usize
                    || scs < SEGMENT_DATA + n
                    || tag_atomic(sp).load(Ordering::Acquire) & SEGMENT == 0
                {
                    return None;
                }
                segs.push(off);
            }
        }
        let kh = self.index.hash_key(it.key());
        let mut shard = self.index.lock(kh.shard);
        if shard
            .table
            .find(kh.th, |&h| self.item(h).key() == it.key())
            .is_some()
        {
            return None;
        }
        let t = tag_atomic(p);
        t.store(
            (t.load(Ordering::Acquire) & 0xff) | (kh.h24 << 8),
            Ordering::Release,
        );
        let handle = self.handle_of(p);
        shard
            .table
            .insert_unique(kh.th, handle, |&h| table_hash(self.item(h).tag() >> 8));
        drop(shard);
        let class = self.class_of(handle);
        self.counters.linked(class, it.stored_size());
        self.counters.chunks_taken(class, 1);
        for &off in &segs {
            let sp = self.engine().ptr_at(off);
            // A slab walk finds a segment's item from the hash bits in its tag.
            tag_atomic(sp).store(SEGMENT | (kh.h24 << 8), Ordering::Release);
            let seg_class = self.engine().slab_class_of(sp.as_ptr());
            self.counters
                .chunks_taken(seg_class.expect("checked above"), 1);
        }
        claimed.extend(segs);
        Some(it.cas())
    }

    /// Stops maintenance for good and writes `<file>.meta` for the next start (SIGUSR1).
    /// Call it once the server has stopped and no request runs any more. Does nothing
    /// without `-e`.
    pub fn save_restart(&self) -> io::Result<Option<PathBuf>> {
        let Some(path) = lock(&self.restart.path).clone() else {
            return Ok(None);
        };
        let _gate = self.restart.gate();
        self.restart.halted.store(true, Ordering::Release);
        // Cached free chunks go back to the engine, so the table leaves out the ones at
        // the end of each slab.
        self.mem.alloc.drain_depots();
        let table = self.engine().slab_table();
        let md = std::fs::metadata(&path)?;
        let (file_len, id) = (md.len(), file_id(&md));
        let clock = self.clock();
        let (cas, oldest_live, oldest_cas) = self.expiry.saved();
        let mut s = format!("kvcache-restart {RESTART_VERSION}\n");
        s.push_str(&self.restart.settings);
        let _ = write!(
            s,
            "file_len {file_len}\nfile_id {id}\nprocess_started {}\ncurrent_time {}\nstop_time {}\n\
             cas {cas}\noldest_live {oldest_live}\noldest_cas {oldest_cas}\nslabs {}\n",
            clock.process_started(),
            clock.now(),
            unix_now(),
            table.len()
        );
        for r in &table {
            let _ = writeln!(s, "s {} {} {}", r.slot, r.class.0, r.carved);
        }
        let crc = crc32fast::hash(s.as_bytes());
        let _ = writeln!(s, "crc32 {crc:08x}");
        let mp = meta_path(&path);
        let mut tmp = mp.clone().into_os_string();
        tmp.push(".tmp");
        let mut f = File::create(&tmp)?;
        f.write_all(s.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &mp)?;
        Ok(Some(mp))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A metadata file the server wrote (`-m 64`, default classes, two items).
    const SAVED: &[u8] = include_bytes!("../../fuzz/seeds/restart_meta/saved.meta");

    #[test]
    fn a_saved_file_is_accepted_and_every_change_refused() {
        let cfg = StoreConfig::new(64 << 20);
        let n = check_restart_meta(SAVED, &cfg).unwrap();
        assert!(n >= 2, "{n} slabs");
        let mut flipped = SAVED.to_vec();
        let at = flipped.len() / 2;
        flipped[at] ^= 1;
        let e = check_restart_meta(&flipped, &cfg).unwrap_err();
        assert!(e.contains("checksum"), "{e}");
        let e = check_restart_meta(SAVED, &StoreConfig::new(32 << 20)).unwrap_err();
        assert!(e.contains("memory_limit"), "{e}");
        let mut no_cas = cfg.clone();
        no_cas.cas_enabled = false;
        assert!(check_restart_meta(SAVED, &no_cas).is_err());
        assert!(check_restart_meta(&SAVED[..SAVED.len() - 3], &cfg).is_err());
        assert!(check_restart_meta(b"", &cfg).is_err());
    }
}
