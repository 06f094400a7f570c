//! Links the `berth-runtime` binary as a position-dependent executable.
//!
//! Measured on these VMs (perf stat, 60 runs of a busybox bundle): a PIE build pays for its
//! relocations on every start, even packed (DT_RELR), because fixing them up writes ~100 pages
//! of `.data.rel.ro` and each write is a copy-on-write page fault; the runtime starts twice
//! per container (exec, then its re-exec from a read-only overlay). Without PIE the linker
//! resolves them once: 867 → 678 page faults and ~1.5 ms less per `run` (17.7 → 15.9 ms).
//! The cost is that the binary's own image is not address-randomised (libraries, heap and
//! stack still are); it is a short-lived, memory-safe process whose input (the bundle) comes
//! from its root caller, which we judge a fair trade on the hot path of every container.
//!
//! `-no-pie` is passed to the binaries of this package only: proc-macro and build-script
//! dylibs must stay position-independent, so it cannot go in RUSTFLAGS.
fn main() {
    println!("cargo:rustc-link-arg-bins=-no-pie");
}
