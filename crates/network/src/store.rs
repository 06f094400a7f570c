//! The networks on disk: `<state_dir>/networks.json`, replaced atomically (temp file, fsync,
//! rename, directory fsync) at every change, so a crash leaves the old list or the new one.

use std::io::Write;
use std::path::Path;

use crate::{NetError, Network};

const FILE: &str = "networks.json";

/// The networks kept in `dir` (none yet: empty).
pub fn load(dir: &Path) -> Result<Vec<Network>, NetError> {
    let p = dir.join(FILE);
    match std::fs::read(&p) {
        Ok(b) => {
            serde_json::from_slice(&b).map_err(|e| NetError::Host(format!("{}: {e}", p.display())))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(NetError::Host(format!("read {}: {e}", p.display()))),
    }
}

/// Replaces the list in `dir`.
pub fn save(dir: &Path, nets: &[Network]) -> Result<(), NetError> {
    let p = dir.join(FILE);
    let err = |e: std::io::Error| NetError::Host(format!("write {}: {e}", p.display()));
    let data = serde_json::to_vec_pretty(nets).map_err(|e| err(e.into()))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(err)?;
    tmp.write_all(&data).map_err(err)?;
    tmp.as_file().sync_all().map_err(err)?;
    tmp.persist(&p).map_err(|e| err(e.error))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(err)
}
