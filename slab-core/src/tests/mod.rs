//! Loom models of the magazine layer (`RUSTFLAGS="--cfg loom"`, see `scripts/loom.sh`).

mod loom_lazy;
mod loom_magazines;
