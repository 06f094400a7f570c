//! Reading an OCI bundle and turning its config into the spec libcontainer is given.
//!
//! libcontainer reports a bad bundle with long multi-line traces; a user deserves one line that
//! names the file and the problem. So the bundle is checked here first, and the adjustments
//! berth makes to a spec (see [`prepare_spec`]) are pure functions with unit tests.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

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
    /// Writing the prepared spec failed.
    #[error("write prepared spec {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
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

/// berth's adjustments to a spec before libcontainer sees it.
///
/// - `linux.cgroupsPath` defaults to [`default_cgroups_path`].
/// - A cgroup mount asked for read-only stays read-only. libcontainer 0.7 bind-mounts each v1
///   hierarchy read-write whatever the mount options say, which lets a container's root raise
///   its own limits. libcontainer applies `linux.readonlyPaths` after all mounts, with a
///   bind-remount per path, so listing the cgroup tmpfs and each hierarchy under it there
///   restores what the spec asked for. `v1_hierarchies` are the names of the host's v1 cgroup
///   mounts (`memory`, `cpu,cpuacct`, ...) as they appear under the container's cgroup mount,
///   plus the co-mount symlinks' targets.
pub fn prepare_spec(spec: &mut Spec, id: &str, v1_hierarchies: &[String]) {
    // Not `Linux::default()`: that one comes with oci-spec's default masked and read-only
    // paths, which a spec without a `linux` section did not ask for.
    let mut linux = spec
        .linux()
        .clone()
        .unwrap_or_else(|| serde_json::from_str("{}").expect("empty linux section"));
    if linux.cgroups_path().is_none() {
        linux.set_cgroups_path(Some(default_cgroups_path(id)));
    }
    let ro_cgroup_mounts: Vec<PathBuf> = spec
        .mounts()
        .iter()
        .flatten()
        .filter(|m| m.typ().as_deref() == Some("cgroup"))
        .filter(|m| {
            m.options()
                .iter()
                .flatten()
                .any(|o| o == "ro" || o == "rro")
        })
        .map(|m| m.destination().clone())
        .collect();
    if !ro_cgroup_mounts.is_empty() && !v1_hierarchies.is_empty() {
        let mut ro = linux.readonly_paths().clone().unwrap_or_default();
        for dest in &ro_cgroup_mounts {
            // The tmpfs first: its remount must not hide the hierarchies bound after it.
            let dest_s = dest.to_string_lossy().into_owned();
            if !ro.contains(&dest_s) {
                ro.push(dest_s);
            }
            for h in v1_hierarchies {
                let p = dest.join(h).to_string_lossy().into_owned();
                if !ro.contains(&p) {
                    ro.push(p);
                }
            }
        }
        linux.set_readonly_paths(Some(ro));
    }
    spec.set_linux(Some(linux));
}

/// Names of the host's cgroup v1 hierarchies mounted under /sys/fs/cgroup (empty on a pure v2
/// host), read from a mountinfo text.
pub fn v1_hierarchies_from_mountinfo(mountinfo: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in mountinfo.lines() {
        // mountinfo: id parent maj:min root mountpoint options [optional...] - fstype source superopts
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        if right.split_whitespace().next() != Some("cgroup") {
            continue;
        }
        let Some(mountpoint) = left.split_whitespace().nth(4) else {
            continue;
        };
        if let Some(name) = mountpoint.strip_prefix("/sys/fs/cgroup/") {
            if !name.is_empty() && !name.contains('/') && !out.iter().any(|n| n == name) {
                out.push(name.to_string());
            }
        }
    }
    out
}

/// The host's v1 hierarchies (see [`v1_hierarchies_from_mountinfo`]).
pub fn host_v1_hierarchies() -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|m| v1_hierarchies_from_mountinfo(&m))
        .unwrap_or_default()
}

/// Whether the spec asks for a namespace of this type (without a path to join).
pub fn has_new_namespace(spec: &Spec, typ: LinuxNamespaceType) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| ns.iter().any(|n| n.typ() == typ && n.path().is_none()))
}

/// Writes `spec` to `dir/config.json` atomically (write, rename; a scratch copy needs no fsync).
pub fn write_spec(spec: &Spec, dir: &Path) -> Result<PathBuf, BundleError> {
    let path = dir.join("config.json");
    let werr = |source| BundleError::Write {
        path: path.clone(),
        source,
    };
    let json = serde_json::to_vec(spec).map_err(|e| werr(e.into()))?;
    write_atomic(&path, &json, false).map_err(werr)?;
    Ok(path)
}

/// Writes a file so that a crash of this process leaves either the old or the new content,
/// never a mix: write a temporary sibling, then rename it over `path`.
///
/// `durable` adds an fsync before the rename, which is what survives a crash of the *machine*.
/// Runtime state lives on /run, which does not outlive a reboot, so it skips the fsync (a
/// few hundred microseconds on every container start on ext4).
pub fn write_atomic(path: &Path, data: &[u8], durable: bool) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        path.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(data)?;
    if durable {
        f.sync_all()?;
    }
    drop(f);
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
25 30 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
30 25 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw
34 30 0:30 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,memory
35 30 0:31 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,cpu,cpuacct
36 30 0:32 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,xattr,name=systemd
";

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
    fn v1_hierarchies_skip_cgroup2_and_tmpfs() {
        assert_eq!(
            v1_hierarchies_from_mountinfo(MOUNTINFO),
            vec!["memory", "cpu,cpuacct", "systemd"]
        );
        assert!(v1_hierarchies_from_mountinfo(
            "31 30 0:27 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw"
        )
        .is_empty());
    }

    #[test]
    fn default_cgroups_path_is_set_only_when_missing() {
        let mut spec = minimal_spec();
        prepare_spec(&mut spec, "c1", &[]);
        let linux = spec.linux().as_ref().unwrap();
        assert_eq!(linux.cgroups_path().as_deref(), Some(Path::new("/c1")));

        let mut spec = minimal_spec();
        let mut l = spec.linux().clone().unwrap();
        l.set_cgroups_path(Some("/mine/c1".into()));
        spec.set_linux(Some(l));
        prepare_spec(&mut spec, "c1", &[]);
        assert_eq!(
            spec.linux().as_ref().unwrap().cgroups_path().as_deref(),
            Some(Path::new("/mine/c1"))
        );
    }

    #[test]
    fn read_only_cgroup_mount_becomes_readonly_paths() {
        let mut spec = minimal_spec();
        let h = v1_hierarchies_from_mountinfo(MOUNTINFO);
        prepare_spec(&mut spec, "c1", &h);
        let ro = spec
            .linux()
            .as_ref()
            .unwrap()
            .readonly_paths()
            .clone()
            .unwrap();
        assert_eq!(
            ro,
            vec![
                "/proc/bus",
                "/sys/fs/cgroup",
                "/sys/fs/cgroup/memory",
                "/sys/fs/cgroup/cpu,cpuacct",
                "/sys/fs/cgroup/systemd"
            ]
        );
    }

    #[test]
    fn read_write_cgroup_mount_is_left_alone() {
        let mut spec = parse_spec(
            r#"{"ociVersion":"1.2.0","root":{"path":"rootfs"},
                "mounts":[{"destination":"/sys/fs/cgroup","type":"cgroup","source":"cgroup","options":["rw"]}]}"#,
        )
        .unwrap();
        prepare_spec(&mut spec, "c1", &["memory".to_string()]);
        assert!(spec.linux().as_ref().unwrap().readonly_paths().is_none());
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

    #[test]
    fn write_atomic_replaces_content() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        write_atomic(&p, b"one", true).unwrap();
        write_atomic(&p, b"two", false).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
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

            /// Spec-shaped input: parsing and preparing never panic, and preparing keeps
            /// every read-only path the spec had and only ever adds cgroup paths.
            #[test]
            fn prepare_spec_only_adds(text in spec_json(), hier in prop::collection::vec("[a-z,_]{1,12}", 0..5)) {
                if let Ok(mut spec) = parse_spec(&text) {
                    let before = spec.linux().as_ref().and_then(|l| l.readonly_paths().clone()).unwrap_or_default();
                    prepare_spec(&mut spec, "c", &hier);
                    let linux = spec.linux().as_ref().unwrap();
                    prop_assert!(linux.cgroups_path().is_some());
                    let after = linux.readonly_paths().clone().unwrap_or_default();
                    prop_assert!(before.iter().all(|p| after.contains(p)));
                    for added in after.iter().filter(|p| !before.contains(p)) {
                        let is_cgroup_mount = spec.mounts().iter().flatten().any(|m| {
                            m.typ().as_deref() == Some("cgroup")
                                && added.starts_with(&*m.destination().to_string_lossy())
                        });
                        prop_assert!(is_cgroup_mount, "added {added:?}");
                    }
                }
            }

            /// Mountinfo parsing survives arbitrary lines.
            #[test]
            fn mountinfo_never_panics(lines in prop::collection::vec(".{0,120}", 0..20)) {
                let text = lines.join("\n");
                for name in v1_hierarchies_from_mountinfo(&text) {
                    prop_assert!(!name.contains('/') && !name.is_empty());
                }
            }
        }
    }
}
