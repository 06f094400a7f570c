//! The networks on disk, in two files:
//! - `networks.json`, the networks themselves, replaced atomically and durably (temp file,
//!   fsync, rename, directory fsync) whenever one is created or removed;
//! - `endpoints.json`, which containers are attached where and which addresses they hold,
//!   replaced atomically (temp file, rename) at every start and stop, but not fsynced: an
//!   fsync waits for a journal commit (1 to 40 ms here), and what this file records only
//!   matters while the containers run, which a machine crash ends anyway. A process crash
//!   cannot lose it (the page cache keeps it); after a machine crash a stale or torn copy is
//!   ignored, and the restore tears down whatever it names.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{Endpoint, NetError, Network};

const NETWORKS: &str = "networks.json";
const ENDPOINTS: &str = "endpoints.json";

/// One network's attachments: its endpoints, and the addresses held in all of its pools
/// (which do not overlap, so one map per family says it; `allocated6` is absent in files
/// written before IPv6, and an older berth ignores it).
#[derive(Debug, Default, Serialize, Deserialize)]
struct Attached {
    endpoints: BTreeMap<String, Endpoint>,
    allocated: BTreeMap<Ipv4Addr, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    allocated6: BTreeMap<Ipv6Addr, String>,
}

/// The networks kept in `dir` (none yet: empty), with their attachments.
pub fn load(dir: &Path) -> Result<Vec<Network>, NetError> {
    let p = dir.join(NETWORKS);
    let mut nets: Vec<Network> = match std::fs::read(&p) {
        Ok(b) => serde_json::from_slice(&b)
            .map_err(|e| NetError::Host(format!("{}: {e}", p.display())))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(NetError::Host(format!("read {}: {e}", p.display()))),
    };
    let e = dir.join(ENDPOINTS);
    let attached: BTreeMap<String, Attached> = match std::fs::read(&e) {
        Ok(b) => serde_json::from_slice(&b).unwrap_or_else(|err| {
            tracing::warn!("{}: {err}: ignored (no container is attached)", e.display());
            BTreeMap::new()
        }),
        Err(_) => BTreeMap::new(),
    };
    for n in &mut nets {
        if let Some(a) = attached.get(&n.id) {
            n.endpoints = a.endpoints.clone();
            for p in n.pools_mut() {
                p.allocated = a
                    .allocated
                    .iter()
                    .filter(|(ip, _)| p.subnet.contains(**ip))
                    .map(|(ip, o)| (*ip, o.clone()))
                    .collect();
            }
            for p in &mut n.pools6 {
                p.allocated = a
                    .allocated6
                    .iter()
                    .filter(|(ip, _)| p.subnet.contains(**ip))
                    .map(|(ip, o)| (*ip, o.clone()))
                    .collect();
            }
        }
    }
    Ok(nets)
}

fn replace(dir: &Path, name: &str, data: &[u8], durable: bool) -> Result<(), NetError> {
    let p = dir.join(name);
    let err = |e: std::io::Error| NetError::Host(format!("write {}: {e}", p.display()));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(err)?;
    tmp.write_all(data).map_err(err)?;
    if durable {
        tmp.as_file().sync_all().map_err(err)?;
    }
    tmp.persist(&p).map_err(|e| err(e.error))?;
    if durable {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(err)?;
    }
    Ok(())
}

/// Records a change of the networks themselves (and their attachments).
pub fn save(dir: &Path, nets: &[Network]) -> Result<(), NetError> {
    let data = serde_json::to_vec_pretty(nets)
        .map_err(|e| NetError::Host(format!("encode the networks: {e}")))?;
    replace(dir, NETWORKS, &data, true)?;
    save_attachments(dir, nets)
}

/// Records a change of who is attached where (a start, a stop, a connect).
pub fn save_attachments(dir: &Path, nets: &[Network]) -> Result<(), NetError> {
    let a: BTreeMap<&str, Attached> = nets
        .iter()
        .filter(|n| n.pool.is_some() || !n.endpoints.is_empty())
        .map(|n| {
            (
                n.id.as_str(),
                Attached {
                    endpoints: n.endpoints.clone(),
                    allocated: n
                        .pools()
                        .flat_map(|p| p.allocated.iter().map(|(ip, o)| (*ip, o.clone())))
                        .collect(),
                    allocated6: n
                        .pools6
                        .iter()
                        .flat_map(|p| p.allocated.iter().map(|(ip, o)| (*ip, o.clone())))
                        .collect(),
                },
            )
        })
        .collect();
    let data =
        serde_json::to_vec(&a).map_err(|e| NetError::Host(format!("encode the endpoints: {e}")))?;
    replace(dir, ENDPOINTS, &data, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attachments_override_and_a_torn_file_is_ignored() {
        let d = tempfile::tempdir().unwrap();
        let pool = crate::Pool::new("10.1.0.0/24".parse().unwrap(), None, None).unwrap();
        let mut n = Network {
            bridge: Some("b".into()),
            pool: Some(pool),
            ..Network::for_test(&"a".repeat(64), "n")
        };
        save(d.path(), std::slice::from_ref(&n)).unwrap();
        n.pool
            .as_mut()
            .unwrap()
            .allocated
            .insert(Ipv4Addr::new(10, 1, 0, 2), "c".into());
        save_attachments(d.path(), std::slice::from_ref(&n)).unwrap();
        let back = load(d.path()).unwrap();
        assert_eq!(back[0].pool.as_ref().unwrap().allocated.len(), 1);
        std::fs::write(d.path().join(ENDPOINTS), b"{\"a").unwrap();
        let back = load(d.path()).unwrap();
        assert!(back[0].pool.as_ref().unwrap().allocated.is_empty());
        assert_eq!(back[0].name, "n");
    }

    #[test]
    fn several_pools_of_both_families_keep_their_allocations() {
        let d = tempfile::tempdir().unwrap();
        let pool = |s: &str| crate::Pool::new(s.parse().unwrap(), None, None).unwrap();
        let mut n = Network {
            bridge: Some("b".into()),
            pool: Some(pool("10.1.0.0/24")),
            more_pools: vec![pool("10.2.0.0/24")],
            ipv6: true,
            pools6: vec![crate::Pool6::new("fd00:1::/64".parse().unwrap(), None, None).unwrap()],
            ..Network::for_test(&"a".repeat(64), "n")
        };
        save(d.path(), std::slice::from_ref(&n)).unwrap();
        n.more_pools[0].allocate("c", None).unwrap();
        n.pool.as_mut().unwrap().allocate("d", None).unwrap();
        n.pools6[0].allocate("c", None).unwrap();
        save_attachments(d.path(), std::slice::from_ref(&n)).unwrap();
        let back = load(d.path()).unwrap();
        assert_eq!(back[0].pool, n.pool);
        assert_eq!(back[0].more_pools, n.more_pools);
        assert_eq!(back[0].pools6, n.pools6);
        assert!(back[0].ipv6);
        // An endpoints.json of an older berth (no allocated6) still loads.
        std::fs::write(
            d.path().join(ENDPOINTS),
            format!(
                r#"{{"{}":{{"endpoints":{{}},"allocated":{{"10.1.0.2":"d"}}}}}}"#,
                n.id
            ),
        )
        .unwrap();
        let back = load(d.path()).unwrap();
        assert_eq!(back[0].pool.as_ref().unwrap().allocated.len(), 1);
        assert!(back[0].more_pools[0].allocated.is_empty());
        assert!(back[0].pools6[0].allocated.is_empty());
    }
}
