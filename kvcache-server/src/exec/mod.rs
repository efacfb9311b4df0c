//! Execution: runs parsed requests of the three protocols against the
//! [`Store`](crate::store::Store) and appends their replies to the connection's output
//! buffer.
//!
//! ```text
//!   bytes in ──> step::run ──> protocol::{text, meta, binary}::parse  (once per request)
//!                   │                 │
//!                   │       a request │ a value's head, value still to come
//!                   v                 v
//!   text / meta / binary::execute   value::Receiving (kept by the connection; the value
//!                   │               goes into its item or waits in the read buffer)
//!                   v                 │
//!              store::Store <─────────┘
//!                   │
//!   bytes out <─────┘ (+ After: what the connection does next)
//! ```
//!
//! Every executor takes the same context, [`Ctx`]: the store, the [`Settings`] requests
//! depend on, this worker's [`Counters`] (a plain struct: counting costs a register
//! increment) and a [`Control`] for the few things only the server knows (`stats`
//! groups, `verbosity`, `shutdown`), called by those rare commands only. Nothing here
//! does I/O or knows about sockets: what the connection must do next comes back as an
//! [`After`] (go on, count replies as sent, discard bytes, close).
//!
//! - [`step`]: the front: parses the request at the front of a connection's bytes (a
//!   text connection's meta lines go to the meta parser directly) and executes it, or
//!   starts receiving its value;
//! - [`text`], [`meta`], [`binary`]: one executor per protocol;
//! - [`value`]: a storage request whose value is still arriving, received into its
//!   item or waiting in the read buffer, with its parsed head;
//! - [`stats`]: the per-worker counters and their sums;
//! - [`context`]: the context, settings, control and [`After`] shared by the above.

pub mod binary;
pub mod context;
pub mod meta;
pub mod operator;
pub mod ops;
pub mod stats;
pub mod step;
pub mod text;
pub mod value;
pub mod watch;

pub use context::{After, Control, Ctx, Direct, Settings, Step};
pub use stats::Counters;
pub use step::{run, Protocol};
pub use value::Receiving;
