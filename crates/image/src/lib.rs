//! berth's image store, the data half: digests, image references with Docker's
//! normalization, a content-addressed blob store, and layer extraction onto
//! overlayfs-ready directories. Pure data handling; no HTTP, no daemon.
#![forbid(unsafe_code)]

pub mod archive;
pub mod change;
pub mod content;
pub mod diff;
pub mod digest;
pub mod layer;
pub mod manifest;
pub mod reference;
pub mod snapshot;
pub mod store;

pub use digest::Digest;
pub use reference::Reference;
