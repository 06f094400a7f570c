//! Seccomp filters compiled once per profile instead of once per container start.
//!
//! libseccomp turns a profile like Docker's default (~370 syscalls, three architectures)
//! into BPF in about 13 ms of CPU, more than the rest of a container start. The program
//! depends only on the spec's `linux.seccomp` section, the architecture and libseccomp's
//! version, so the runtime keeps it under `<root>/.seccomp/<sha256 of those>.bpf` and hands it
//! to libcontainer (vendor patch 9), which loads it with seccomp(2) as it is. The root is
//! root-only and per boot (`/run`), like the rest of the runtime's state.

use std::path::Path;

use libcontainer::seccomp as lc;
use oci_spec::runtime::LinuxSeccomp;
use sha2::{Digest, Sha256};

use crate::bundle::write_atomic;

/// Makes the filter for `seccomp` ready before libcontainer forks the container's
/// processes: from the cache when it is there, compiled (and stored) otherwise. Any failure
/// only costs speed: libcontainer then compiles the filter itself, as before.
pub fn prepare(root: &Path, seccomp: &LinuxSeccomp) {
    if lc::is_notify(seccomp) {
        return;
    }
    let Ok(section) = serde_json::to_vec(seccomp) else {
        return;
    };
    let mut h = Sha256::new();
    h.update(lc::libseccomp_version().as_bytes());
    h.update(b"\0");
    h.update(std::env::consts::ARCH.as_bytes());
    h.update(b"\0");
    h.update(&section);
    let key: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    let dir = root.join(".seccomp");
    let path = dir.join(format!("{key}.bpf"));
    let bpf = match std::fs::read(&path) {
        Ok(b) if !b.is_empty() && b.len() % 8 == 0 => b,
        _ => match lc::compile_bpf(seccomp) {
            Ok(b) => {
                let stored = std::fs::create_dir_all(&dir).and_then(|_| write_atomic(&path, &b));
                if let Err(e) = stored {
                    tracing::debug!(%e, path = %path.display(), "seccomp filter not cached");
                }
                b
            }
            Err(e) => {
                tracing::debug!(%e, "seccomp filter not precompiled");
                return;
            }
        },
    };
    lc::use_precompiled(seccomp, bpf);
}
