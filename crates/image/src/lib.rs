//! berth's image store, the data half: layer extraction onto overlayfs-ready directories.
//! Pure data handling; no HTTP, no daemon.
#![forbid(unsafe_code)]

pub mod layer;
