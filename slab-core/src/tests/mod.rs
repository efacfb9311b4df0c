//! Loom models of the magazine layer and the memory limit (`RUSTFLAGS="--cfg loom"`, see `scripts/loom.sh`).

mod loom_lazy;
mod loom_limit;
mod loom_magazines;
