//! berth's OCI runtime as a library: bundles in, isolated processes out.
//!
//! The heavy lifting (namespaces, mounts, pivot_root, capabilities, seccomp, cgroups) is
//! youki's `libcontainer` and `libcgroups` (vendored with fixes, see `vendor/*/BERTH-PATCHES.md`);
//! this crate adds what berth needs around them: precise bundle errors and spec defaults
//! ([`bundle`]), protection of the runtime binary ([`sealed`]), a lock per container,
//! foreground waiting with signal forwarding ([`foreground`]), and runc's command surface.
//!
//! libcontainer forks and runs Rust code in its children, so everything here must be called
//! from a single-threaded process: the `berth-runtime` binary or a per-container monitor.

pub mod bundle;
pub mod console;
pub mod error;
pub mod events;
pub mod exec;
pub mod features;
pub mod foreground;
pub mod logging;
pub mod runtime;
pub mod seccomp;
pub mod update;

pub use berth_seal as sealed;
pub use error::{Result, RuntimeError};
pub use runtime::{CreateOptions, Runtime};
