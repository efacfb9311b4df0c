//! What the execution layer asks of the server: `stats` groups, `verbosity`, `shutdown`.

use std::sync::atomic::Ordering;

use super::report;
use super::shared::Shared;
use crate::exec::{Control, Counters};
use crate::protocol::text::StatsKind;

/// One worker's [`Control`].
#[derive(Debug)]
pub(crate) struct ServerControl<'a> {
    pub shared: &'a Shared,
    pub worker: usize,
    /// The connection being served (for `watch` lines).
    pub fd: i32,
}

impl Control for ServerControl<'_> {
    fn publish(&self, counters: &Counters) {
        self.shared.stats.worker(self.worker).publish(counters);
    }

    fn stats(&self, kind: StatsKind, out: &mut Vec<u8>) {
        report::lines(self.shared, kind, out);
    }

    fn set_verbosity(&self, level: u32) {
        self.shared.verbosity.store(level, Ordering::Relaxed);
    }

    fn ops(&self) -> &crate::exec::ops::OpsState {
        &self.shared.ops
    }

    fn worker(&self) -> usize {
        self.worker
    }

    fn conn_fd(&self) -> i32 {
        self.fd
    }

    fn stop(&self, graceful: bool) {
        if graceful {
            eprintln!("Gracefully stopping");
        }
        self.shared.request_stop();
    }

    fn refresh_certs(&self) -> Result<(), String> {
        match &self.shared.tls {
            Some(tls) => tls.refresh(self.shared.store.now()),
            None => Err("Error TLS not enabled".into()),
        }
    }
}
