//! Reading an OCI bundle and turning its config into the spec libcontainer is given.
//!
//! libcontainer reports a bad bundle with long multi-line traces; a user deserves one line that
//! names the file and the problem. So the bundle is checked here first, and the adjustments
//! berth makes to a spec (see [`prepare_spec`]) are pure functions with unit tests.

use std::io;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;

/// A problem with the bundle; each variant's message names the file and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// The bundle directory itself is missing.
    #[error("bundle {0}: no such directory")]
    NoBundle(PathBuf),
    /// `config.json` is missing.
    #[error("bundle {0}: config.json not found")]
    NoConfig(PathBuf),
    /// `config.json` exists but cannot be read.
    #[error("{path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// `config.json` is not valid JSON or not a valid OCI runtime spec.
    #[error("{path}: invalid runtime spec at line {line} column {column}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// What serde said, e.g. "unknown variant `foo`, expected one of ...".
        message: String,
    },
    /// The spec names an OCI version this runtime does not implement.
    #[error("{path}: unsupported ociVersion {version:?} (berth-runtime implements 1.x)")]
    Version {
        /// The file.
        path: PathBuf,
        /// The version in the file.
        version: String,
    },
    /// The spec has no `root`.
    #[error("{0}: the spec has no root (root.path is required)")]
    NoRoot(PathBuf),
    /// The spec has no `process` (required for create/run).
    #[error("{0}: the spec has no process to run")]
    NoProcess(PathBuf),
    /// The root filesystem directory does not exist.
    #[error("rootfs {0}: no such directory")]
    NoRootfs(PathBuf),
}

/// A loaded bundle: its canonical path and its parsed, checked config.
#[derive(Debug)]
pub struct Bundle {
    /// Absolute path of the bundle directory.
    pub path: PathBuf,
    /// The runtime spec from `config.json`, with `root.path` made absolute.
    pub spec: Spec,
}

impl Bundle {
    /// Loads and checks `dir/config.json`.
    pub fn load(dir: &Path) -> Result<Self, BundleError> {
        let path = dir
            .canonicalize()
            .map_err(|_| BundleError::NoBundle(dir.to_path_buf()))?;
        let config = path.join("config.json");
        let text = match std::fs::read_to_string(&config) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(BundleError::NoConfig(path))
            }
            Err(e) => {
                return Err(BundleError::Read {
                    path: config,
                    source: e,
                })
            }
        };
        let mut spec = parse_spec(&text).map_err(|e| BundleError::Parse {
            path: config.clone(),
            line: e.line(),
            column: e.column(),
            message: strip_position(&e.to_string()),
        })?;
        if !spec.version().starts_with("1.") {
            return Err(BundleError::Version {
                path: config,
                version: spec.version().clone(),
            });
        }
        let root = spec
            .root()
            .as_ref()
            .ok_or_else(|| BundleError::NoRoot(config.clone()))?;
        let rootfs = if root.path().is_absolute() {
            root.path().clone()
        } else {
            path.join(root.path())
        };
        let rootfs = rootfs
            .canonicalize()
            .ok()
            .filter(|p| p.is_dir())
            .ok_or(BundleError::NoRootfs(rootfs))?;
        if let Some(mut r) = spec.root().clone() {
            r.set_path(rootfs);
            spec.set_root(Some(r));
        }
        Ok(Bundle { path, spec })
    }

    /// Requires a `process` (create and run need one; `spec` output may lack it).
    pub fn require_process(&self) -> Result<(), BundleError> {
        if self.spec.process().is_none() {
            return Err(BundleError::NoProcess(self.path.join("config.json")));
        }
        Ok(())
    }
}

/// Parses a runtime spec from JSON text.
pub fn parse_spec(text: &str) -> Result<Spec, serde_json::Error> {
    serde_json::from_str(text)
}

/// serde_json appends " at line L column C"; we print the position in our own words.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// Where the container's cgroup lives when the spec does not say: `/<id>` under each hierarchy,
/// as runc does with its cgroupfs driver. (libcontainer's own default is `:youki:<id>`, a
/// systemd-style name that lands at the root of every v1 hierarchy.)
pub fn default_cgroups_path(id: &str) -> PathBuf {
    PathBuf::from(format!("/{id}"))
}

/// berth's adjustments to a spec before libcontainer sees it: `linux.cgroupsPath` defaults
/// to [`default_cgroups_path`].
pub fn prepare_spec(spec: &mut Spec, id: &str) {
    // Not `Linux::default()`: that one comes with oci-spec's default masked and read-only
    // paths, which a spec without a `linux` section did not ask for.
    let mut linux = spec
        .linux()
        .clone()
        .unwrap_or_else(|| serde_json::from_str("{}").expect("empty linux section"));
    if linux.cgroups_path().is_none() {
        linux.set_cgroups_path(Some(default_cgroups_path(id)));
    }
    spec.set_linux(Some(linux));
}

/// Replaces a file atomically, without fsync: runtime state lives on /run, which does not
/// outlive a reboot, so the fsyncs that survive a crash of the machine would only cost every
/// container start a few hundred microseconds on ext4.
pub fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    berth_atomic::write(path, data, berth_atomic::Durability::Atomic)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal_spec() -> Spec {
        parse_spec(
            r#"{"ociVersion":"1.2.0","root":{"path":"rootfs"},
                "mounts":[{"destination":"/sys/fs/cgroup","type":"cgroup","source":"cgroup",
                           "options":["nosuid","noexec","nodev","relatime","ro"]}],
                "linux":{"readonlyPaths":["/proc/bus"]}}"#,
        )
        .unwrap()
    }

    #[test]
    fn default_cgroups_path_is_set_only_when_missing() {
        let mut spec = minimal_spec();
        prepare_spec(&mut spec, "c1");
        let linux = spec.linux().as_ref().unwrap();
        assert_eq!(linux.cgroups_path().as_deref(), Some(Path::new("/c1")));

        let mut spec = minimal_spec();
        let mut l = spec.linux().clone().unwrap();
        l.set_cgroups_path(Some("/mine/c1".into()));
        spec.set_linux(Some(l));
        prepare_spec(&mut spec, "c1");
        assert_eq!(
            spec.linux().as_ref().unwrap().cgroups_path().as_deref(),
            Some(Path::new("/mine/c1"))
        );
    }

    #[test]
    fn bad_bundles_get_precise_errors() {
        let dir = tempfile::tempdir().unwrap();
        let err = Bundle::load(&dir.path().join("nope")).unwrap_err();
        assert!(err.to_string().contains("no such directory"), "{err}");

        let err = Bundle::load(dir.path()).unwrap_err();
        assert!(err.to_string().ends_with("config.json not found"), "{err}");

        std::fs::write(
            dir.path().join("config.json"),
            "{\"ociVersion\": \"1.2.0\",\n \"root\": {",
        )
        .unwrap();
        let err = Bundle::load(dir.path()).unwrap_err();
        assert!(err.to_string().contains("line 2 column"), "{err}");

        std::fs::write(
            dir.path().join("config.json"),
            r#"{"ociVersion":"1.2.0","root":{"path":"rootfs"},"linux":{"namespaces":[{"type":"bogus"}]}}"#,
        )
        .unwrap();
        let err = Bundle::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("unknown variant `bogus`"), "{err}");

        std::fs::write(
            dir.path().join("config.json"),
            r#"{"ociVersion":"1.2.0","root":{"path":"rootfs"}}"#,
        )
        .unwrap();
        let err = Bundle::load(dir.path()).unwrap_err().to_string();
        assert!(
            err.starts_with("rootfs ") && err.ends_with("no such directory"),
            "{err}"
        );

        std::fs::create_dir(dir.path().join("rootfs")).unwrap();
        let b = Bundle::load(dir.path()).unwrap();
        assert!(b.spec.root().as_ref().unwrap().path().is_absolute());
        assert!(b.require_process().is_err());
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn spec_json() -> impl Strategy<Value = String> {
            // Specs that are valid JSON and roughly spec-shaped, with random pieces in the
            // places a hostile bundle would vary: mounts, namespaces, paths, options.
            let ns = prop::sample::select(vec![
                "pid", "network", "ipc", "uts", "mount", "user", "cgroup", "time", "bogus",
            ]);
            let opt = prop::sample::select(vec![
                "ro", "rw", "rro", "nosuid", "bind", "rbind", "x=y", "",
            ]);
            (
                prop::collection::vec(ns, 0..8),
                prop::collection::vec(("[a-z/.]{0,12}", "[a-z0-9]{0,8}", prop::collection::vec(opt, 0..4)), 0..6),
                "[a-z0-9./-]{0,16}",
                "1\\.[0-9]\\.[0-9]|2\\.0|[0-9a-z.]{0,5}",
            )
                .prop_map(|(nss, mounts, cg, version)| {
                    let nss: Vec<_> = nss.iter().map(|n| serde_json::json!({"type": n})).collect();
                    let mounts: Vec<_> = mounts
                        .iter()
                        .map(|(d, t, o)| serde_json::json!({"destination": d, "type": t, "options": o}))
                        .collect();
                    serde_json::json!({
                        "ociVersion": version,
                        "root": {"path": "rootfs"},
                        "process": {"args": ["true"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
                        "mounts": mounts,
                        "linux": {"namespaces": nss, "cgroupsPath": cg}
                    })
                    .to_string()
                })
        }

        proptest! {
            /// Any bytes as config.json: an error or a spec, never a panic.
            #[test]
            fn arbitrary_text_never_panics(text in ".{0,400}") {
                let _ = parse_spec(&text);
            }

            /// Spec-shaped input: parsing and preparing never panic; preparing sets a
            /// cgroups path and keeps one the spec had.
            #[test]
            fn prepare_spec_sets_cgroups_path(text in spec_json()) {
                if let Ok(mut spec) = parse_spec(&text) {
                    let before = spec.linux().as_ref().and_then(|l| l.cgroups_path().clone());
                    let ro_before = spec.linux().as_ref().and_then(|l| l.readonly_paths().clone());
                    prepare_spec(&mut spec, "c");
                    let linux = spec.linux().as_ref().unwrap();
                    prop_assert!(linux.cgroups_path().is_some());
                    if before.is_some() {
                        prop_assert_eq!(linux.cgroups_path(), &before);
                    }
                    prop_assert_eq!(linux.readonly_paths(), &ro_before);
                }
            }
        }
    }
}
