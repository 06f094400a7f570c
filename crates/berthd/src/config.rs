//! berthd's settings: flags, then the config file (`/etc/berth/daemon.json`, dockerd's
//! `daemon.json` keys), then defaults. A setting given both as a flag and in the file is an
//! error, as in dockerd. SIGHUP re-reads the file; the log level is applied at once, the
//! rest needs a restart (berthd says which).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::Deserialize;

/// The config file's keys (a subset of dockerd's `daemon.json`).
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct File {
    /// `--root`.
    pub data_root: Option<PathBuf>,
    /// `--exec-root`.
    pub exec_root: Option<PathBuf>,
    /// `--host` (the first unix socket).
    pub hosts: Option<Vec<String>>,
    /// `--log-level`.
    pub log_level: Option<String>,
    /// `--cgroup-parent`.
    pub cgroup_parent: Option<String>,
    /// `--runtime` (berth's own key: dockerd's `runtimes` map is not supported).
    pub runtime: Option<PathBuf>,
    /// `--init-path`.
    pub init_path: Option<PathBuf>,
    /// `--init`.
    pub init: Option<bool>,
    /// `--cgroup-favordynmods`.
    pub cgroup_favordynmods: Option<bool>,
    /// `--bip`.
    pub bip: Option<String>,
    /// `--mtu`.
    pub mtu: Option<u32>,
    /// `--network-prefix` (berth's own key).
    pub network_prefix: Option<String>,
}

/// Reads the config file; a missing default file is an empty one.
pub fn read(path: &Path, explicit: bool) -> anyhow::Result<File> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
            return Ok(File::default())
        }
        Err(e) => return Err(e).with_context(|| format!("read {}", path.display())),
    };
    if text.trim().is_empty() {
        return Ok(File::default());
    }
    serde_json::from_str(&text)
        .with_context(|| format!("{}: invalid configuration", path.display()))
}

/// `flag` or `file`, not both.
pub fn pick<T>(name: &str, flag: Option<T>, file: Option<T>) -> anyhow::Result<Option<T>> {
    match (flag, file) {
        (Some(_), Some(_)) => bail!(
            "the following directives are specified both as a flag and in the configuration file: {name}"
        ),
        (a, b) => Ok(a.or(b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_parse_and_refuse_what_they_do_not_know() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("daemon.json");
        std::fs::write(&p, r#"{"log-level": "debug", "hosts": ["unix:///x.sock"]}"#).unwrap();
        let f = read(&p, true).unwrap();
        assert_eq!(f.log_level.as_deref(), Some("debug"));
        assert_eq!(f.hosts.unwrap(), ["unix:///x.sock"]);
        std::fs::write(&p, r#"{"bogus": 1}"#).unwrap();
        let e = format!("{:#}", read(&p, true).unwrap_err());
        assert!(e.contains("unknown field `bogus`"), "{e}");
        std::fs::write(&p, "{\n  \"log-level\": ,\n}").unwrap();
        let e = format!("{:#}", read(&p, true).unwrap_err());
        assert!(e.contains("line 2"), "{e}");
        assert_eq!(
            read(&d.path().join("none"), false).unwrap(),
            File::default()
        );
        assert!(read(&d.path().join("none"), true).is_err());
        assert!(pick("log-level", Some(1), Some(2)).is_err());
        assert_eq!(pick("x", None, Some(2)).unwrap(), Some(2));
    }
}
