# Sourced by the fuzz scripts: cargo-fuzz needs unstable compiler flags, so use the
# nightly toolchain when there is one, else let the stable compiler accept them. Sets
# `toolchain` (`+nightly` or empty) for `cargo $toolchain fuzz ...`.
if rustup run nightly rustc --version >/dev/null 2>&1; then
    toolchain=+nightly
else
    toolchain=
    export RUSTC_BOOTSTRAP=1
fi
