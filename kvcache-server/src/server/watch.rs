//! The logger thread of `watch`: it owns the watcher connections, moves the event lines
//! out of the workers' buffers ([`crate::exec::watch::EventLog`]) into each watcher's
//! bounded buffer and writes them out without ever blocking. A watcher whose buffer is
//! full loses lines; the next line it gets is preceded by `skipped=N` (memcached's
//! format). A watcher that closes its side is dropped.

use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex};
use std::thread::Thread;
use std::time::Duration;

use super::stream::Stream;
use crate::exec::watch::EventLog;

/// What the logger thread reads of the server.
pub(crate) trait Source: Send + Sync + 'static {
    /// The event log.
    fn log(&self) -> &EventLog;
    /// Bytes a watcher's buffer holds.
    fn watcher_buf(&self) -> usize;
    /// The watchers.
    fn watchers(&self) -> &Watchers;
    /// The server is stopping.
    fn stopping(&self) -> bool;
}

/// How often the logger thread moves lines while someone watches.
const TICK: Duration = Duration::from_millis(5);

/// How long lines wait for a watcher that sent `watch` and is not yet here.
const HOLD: Duration = Duration::from_millis(200);

/// One watching connection.
#[derive(Debug)]
struct Watcher {
    stream: Stream,
    kinds: u8,
    pending: Vec<u8>,
    skipped: u64,
}

impl Watcher {
    /// Queues `line` if it fits in `cap` bytes, after a `skipped=N` line for what was
    /// lost before it.
    fn queue(&mut self, line: &[u8], cap: usize) {
        let skip = if self.skipped > 0 {
            format!("skipped={}\n", self.skipped)
        } else {
            String::new()
        };
        if self.pending.len() + skip.len() + line.len() > cap {
            self.skipped += 1;
            return;
        }
        self.pending.extend_from_slice(skip.as_bytes());
        self.pending.extend_from_slice(line);
        self.skipped = 0;
    }

    /// Writes what the socket takes; false when the watcher is gone.
    fn flush(&mut self) -> bool {
        let mut probe = [0u8; 256];
        match self.stream.read(&mut probe) {
            Ok(0) => return false,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return false,
        }
        loop {
            // TLS records the stream holds go out before more plaintext.
            match self.stream.flush_pending() {
                Ok(true) => {}
                Ok(false) => return true,
                Err(_) => return false,
            }
            if self.pending.is_empty() {
                break;
            }
            match self.stream.write(&self.pending) {
                Ok(0) => return false,
                Ok(n) => {
                    self.pending.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        true
    }
}

/// Watchers handed over by the workers, and the logger thread.
#[derive(Debug, Default)]
pub(crate) struct Watchers {
    incoming: Mutex<Vec<Watcher>>,
    thread: Mutex<Option<Thread>>,
}

impl Watchers {
    /// Takes over a connection that sent `watch` (its `OK` already written) as a watcher
    /// of `kinds`; starts the logger thread the first time.
    /// The stream is no longer registered with a worker's poll; it stays non-blocking.
    pub fn add<S: Source>(&self, shared: &Arc<S>, stream: Stream, kinds: u8) {
        let mut list = self.incoming.lock().unwrap_or_else(|e| e.into_inner());
        list.push(Watcher {
            stream,
            kinds,
            pending: Vec::new(),
            skipped: 0,
        });
        drop(list);
        shared.log().arrived();
        let mut t = self.thread.lock().unwrap_or_else(|e| e.into_inner());
        match &*t {
            Some(th) => th.unpark(),
            None => {
                let shared = shared.clone();
                let h = std::thread::Builder::new()
                    .name("kvcache-logger".into())
                    .spawn(move || run(&*shared))
                    .expect("spawn the logger thread");
                *t = Some(h.thread().clone());
            }
        }
    }
}

/// The logger thread.
fn run<S: Source>(shared: &S) {
    let log = shared.log();
    let cap = shared.watcher_buf();
    let mut watchers: Vec<Watcher> = Vec::new();
    let mut spare = Vec::new();
    let mut held = Duration::ZERO;
    loop {
        watchers.append(
            &mut shared
                .watchers()
                .incoming
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        let coming = log.set_active(watchers.iter().fold(0, |k, w| k | w.kinds));
        // Lines logged for a watcher on its way wait for it (for at most `HOLD`).
        if coming && held < HOLD {
            held += TICK;
        } else {
            held = Duration::ZERO;
            log.drain(&mut spare, |kind, line| {
                for w in watchers.iter_mut().filter(|w| w.kinds & kind != 0) {
                    w.queue(line, cap);
                }
            });
        }
        watchers.retain_mut(Watcher::flush);
        if watchers.is_empty() && !coming {
            log.set_active(0);
            std::thread::park_timeout(Duration::from_secs(1));
        } else {
            std::thread::sleep(TICK);
        }
        if shared.stopping() {
            return;
        }
    }
}
