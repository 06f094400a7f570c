//! Layer extraction: what a layer may write, what it may not, and whiteouts. Runs as root
//! (whiteouts are 0/0 device nodes and `trusted.` xattrs).

use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use berth_image::layer::{unpack, LayerError, UnpackOptions};
use proptest::prelude::*;

/// One tar entry as a test describes it; names are written raw, bypassing the tar crate's
/// own path checks, so that hostile names can be built.
#[derive(Debug, Clone)]
enum E {
    File(&'static str, &'static [u8]),
    FileMode(&'static str, u32),
    Dir(&'static str),
    Symlink(&'static str, &'static str),
    Hardlink(&'static str, &'static str),
    CharDev(&'static str),
}

fn header(name: &[u8], kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(1_700_000_000);
    h.set_uid(0);
    h.set_gid(0);
    let field = &mut h.as_old_mut().name;
    field[..name.len()].copy_from_slice(name);
    h
}

fn link_header(name: &[u8], kind: tar::EntryType, target: &[u8]) -> tar::Header {
    let mut h = header(name, kind, 0, 0o777);
    h.as_old_mut().linkname[..target.len()].copy_from_slice(target);
    h
}

fn tar_of(entries: &[E]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let (mut h, data): (tar::Header, &[u8]) = match e {
            E::File(n, d) => (
                header(n.as_bytes(), tar::EntryType::Regular, d.len() as u64, 0o644),
                d,
            ),
            E::FileMode(n, m) => (header(n.as_bytes(), tar::EntryType::Regular, 0, *m), b""),
            E::Dir(n) => (
                header(n.as_bytes(), tar::EntryType::Directory, 0, 0o755),
                b"",
            ),
            E::Symlink(n, t) => (
                link_header(n.as_bytes(), tar::EntryType::Symlink, t.as_bytes()),
                b"",
            ),
            E::Hardlink(n, t) => (
                link_header(n.as_bytes(), tar::EntryType::Link, t.as_bytes()),
                b"",
            ),
            E::CharDev(n) => {
                let mut h = header(n.as_bytes(), tar::EntryType::Char, 0, 0o666);
                h.set_device_major(1).unwrap();
                h.set_device_minor(3).unwrap();
                (h, b"")
            }
        };
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

/// A sandbox: `outer/target` is where the layer goes; `outer/secret` must never change.
struct Sandbox {
    outer: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Self {
        let outer = tempfile::tempdir().unwrap();
        std::fs::create_dir(outer.path().join("target")).unwrap();
        std::fs::write(outer.path().join("secret"), "untouched").unwrap();
        Sandbox { outer }
    }
    fn target(&self) -> std::path::PathBuf {
        self.outer.path().join("target")
    }
    fn unpack(&self, tar: &[u8]) -> Result<berth_image::layer::UnpackStats, LayerError> {
        unpack(tar, &self.target(), &UnpackOptions::default())
    }
    /// Nothing outside the target was created or changed.
    fn assert_outside_intact(&self) {
        let names: Vec<_> = std::fs::read_dir(self.outer.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        let mut names = names;
        names.sort();
        assert_eq!(names, ["secret", "target"]);
        assert_eq!(
            std::fs::read_to_string(self.outer.path().join("secret")).unwrap(),
            "untouched"
        );
    }
}

#[test]
fn files_dirs_links_modes_and_times() {
    let s = Sandbox::new();
    let stats = s
        .unpack(&tar_of(&[
            E::Dir("etc/"),
            E::File("etc/hostname", b"box\n"),
            E::FileMode("bin/su", 0o4755),
            E::Symlink("bin/sh", "/bin/busybox"),
            E::Hardlink("etc/hostname2", "etc/hostname"),
            E::File("./usr/lib/x", b"deep"),
        ]))
        .unwrap();
    let t = s.target();
    assert_eq!(
        std::fs::read_to_string(t.join("etc/hostname")).unwrap(),
        "box\n"
    );
    assert_eq!(
        std::fs::read_to_string(t.join("usr/lib/x")).unwrap(),
        "deep"
    );
    assert_eq!(
        std::fs::read_link(t.join("bin/sh")).unwrap(),
        Path::new("/bin/busybox")
    );
    let su = std::fs::metadata(t.join("bin/su")).unwrap();
    assert_eq!(su.permissions().mode() & 0o7777, 0o4755, "setuid kept");
    let a = std::fs::metadata(t.join("etc/hostname")).unwrap();
    let b = std::fs::metadata(t.join("etc/hostname2")).unwrap();
    assert_eq!(a.ino(), b.ino(), "hard link");
    assert_eq!(a.mtime(), 1_700_000_000);
    assert_eq!(
        std::fs::metadata(t.join("etc")).unwrap().mtime(),
        1_700_000_000,
        "dir time set last"
    );
    assert_eq!(stats.bytes, 8);
    s.assert_outside_intact();
}

#[test]
fn whiteouts_become_overlay_whiteouts() {
    let s = Sandbox::new();
    s.unpack(&tar_of(&[
        E::Dir("etc/"),
        E::File("etc/.wh.passwd", b""),
        E::Dir("var/cache/"),
        E::File("var/cache/.wh..wh..opq", b""),
        E::File("var/cache/kept", b"k"),
        E::File(".wh..wh.plnk", b""),
    ]))
    .unwrap();
    let t = s.target();
    let wh = std::fs::symlink_metadata(t.join("etc/passwd")).unwrap();
    use std::os::unix::fs::FileTypeExt;
    assert!(wh.file_type().is_char_device());
    assert_eq!(wh.rdev(), 0);
    assert!(!t.join("etc/.wh.passwd").exists());
    let mut buf = [0u8; 8];
    let n = rustix::fs::getxattr(t.join("var/cache"), "trusted.overlay.opaque", &mut buf).unwrap();
    assert_eq!(&buf[..n], b"y");
    assert!(t.join("var/cache/kept").exists());
    assert!(!t.join(".wh..wh.plnk").exists());
}

fn refused(entries: &[E], want: &str) {
    let s = Sandbox::new();
    let err = s.unpack(&tar_of(entries)).unwrap_err().to_string();
    assert!(err.contains(want), "expected {want:?} in {err:?}");
    s.assert_outside_intact();
}

#[test]
fn dotdot_is_refused_and_named() {
    refused(
        &[E::File("../secret", b"pwned")],
        "layer entry \"../secret\": '..' in path refused",
    );
    refused(
        &[E::File("a/../../secret", b"pwned")],
        "\"a/../../secret\": '..'",
    );
}

#[test]
fn absolute_names_are_refused() {
    refused(
        &[E::File("/etc/passwd", b"pwned")],
        "\"/etc/passwd\": absolute path refused",
    );
}

#[test]
fn paths_through_symlinks_are_refused() {
    let s = Sandbox::new();
    let outer = s.outer.path().to_str().unwrap().to_string();
    let leak: &'static str = Box::leak(outer.into_boxed_str());
    let err = s
        .unpack(&tar_of(&[
            E::Symlink("out", leak),
            E::File("out/secret", b"pwned"),
        ]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("path goes through symlink \"out\""), "{err}");
    s.assert_outside_intact();
    // Relative symlinks that climb out are no different.
    refused(
        &[E::Symlink("up", ".."), E::File("up/secret", b"pwned")],
        "through symlink \"up\"",
    );
}

#[test]
fn hard_links_out_of_the_layer_are_refused() {
    refused(
        &[E::Hardlink("h", "../secret")],
        "hard link to \"../secret\" refused ('..' in path)",
    );
    refused(
        &[E::Hardlink("h", "/etc/passwd")],
        "hard link to \"/etc/passwd\" refused (absolute)",
    );
    refused(
        &[E::Hardlink("h", "nothing")],
        "no such entry earlier in the layer",
    );
    let s = Sandbox::new();
    let outer: &'static str = Box::leak(
        s.outer
            .path()
            .to_str()
            .unwrap()
            .to_string()
            .into_boxed_str(),
    );
    let err = s
        .unpack(&tar_of(&[
            E::Symlink("out", outer),
            E::Hardlink("h", "out/secret"),
        ]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("through symlink"), "{err}");
    s.assert_outside_intact();
}

#[test]
fn device_nodes_need_permission() {
    refused(
        &[E::CharDev("dev/null")],
        "\"dev/null\": device node refused",
    );
    let s = Sandbox::new();
    let opts = UnpackOptions {
        allow_devices: true,
        ..Default::default()
    };
    unpack(&tar_of(&[E::CharDev("dev/null")])[..], &s.target(), &opts).unwrap();
    let m = std::fs::symlink_metadata(s.target().join("dev/null")).unwrap();
    assert_eq!(m.rdev(), rustix::fs::makedev(1, 3));
}

#[test]
fn gzip_and_zstd_layers() {
    let tar = tar_of(&[E::File("a", b"compressed")]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();
    let zst = zstd::encode_all(&tar[..], 1).unwrap();
    for data in [gz, zst] {
        let s = Sandbox::new();
        s.unpack(&data).unwrap();
        assert_eq!(
            std::fs::read_to_string(s.target().join("a")).unwrap(),
            "compressed"
        );
    }
}

#[test]
fn truncated_or_corrupt_streams_fail() {
    let tar = tar_of(&[E::File("a", &[7u8; 4096])]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();
    let s = Sandbox::new();
    assert!(s.unpack(&gz[..gz.len() / 2]).is_err(), "truncated gzip");
    let s = Sandbox::new();
    assert!(s.unpack(&tar[..700]).is_err(), "truncated tar");
}

#[test]
fn later_entries_replace_earlier_ones() {
    let s = Sandbox::new();
    s.unpack(&tar_of(&[
        E::File("x", b"first"),
        E::File("x", b"second"),
        E::Dir("d/"),
        E::File("d/f", b""),
        E::File("d", b"now a file"),
    ]))
    .unwrap();
    assert_eq!(
        std::fs::read_to_string(s.target().join("x")).unwrap(),
        "second"
    );
    assert_eq!(
        std::fs::read_to_string(s.target().join("d")).unwrap(),
        "now a file"
    );
}

fn entry_strategy() -> impl Strategy<Value = E> {
    let name = prop::sample::select(vec![
        "a",
        "a/b",
        "../a",
        "/a",
        "a/../..",
        "l/x",
        "l",
        "./a/b/c",
        "a/.wh.b",
        ".wh..wh..opq",
        "a/.wh..wh..opq",
        "..",
        ".",
        "/",
        "a//b",
        "l/../../x",
    ]);
    let target = prop::sample::select(vec!["a", "/", "..", "../..", "/etc", "a/b", "l", "l/x"]);
    (0..5u8, name, target).prop_map(|(k, n, t)| match k {
        0 => E::File(n, b"data"),
        1 => E::Dir(n),
        2 => E::Symlink(n, t),
        3 => E::Hardlink(n, t),
        _ => E::FileMode(n, 0o755),
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    /// Whatever the entries, nothing outside the target is created or changed, and there is
    /// no panic: either the layer unpacks or it is refused with an error.
    #[test]
    fn never_writes_outside(entries in prop::collection::vec(entry_strategy(), 1..12)) {
        let s = Sandbox::new();
        let _ = s.unpack(&tar_of(&entries));
        s.assert_outside_intact();
    }
}
