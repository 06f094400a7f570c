//! Layers as overlayfs sees them: unpacked snapshots mounted as lower layers, whiteouts and
//! opaque directories honoured by the kernel, and a container's changes turned back into a
//! layer that reproduces them. Runs as root.

use std::path::{Path, PathBuf};

use berth_image::diff::write_diff;
use berth_image::layer::UnpackOptions;
use berth_image::snapshot::{chain_id, mount_overlay, unmount, Snapshotter, Upper};
use berth_image::Digest;

/// Unmounts on drop, so a failed assertion leaves no mount behind.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = unmount(&self.0);
    }
}

fn layer(entries: &[(&str, Option<&str>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, content) in entries {
        let mut h = tar::Header::new_gnu();
        match content {
            Some(c) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(c.len() as u64);
                h.set_mode(0o644);
                b.append_data(&mut h, name, c.as_bytes()).unwrap();
            }
            None => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                h.set_mode(0o755);
                b.append_data(&mut h, name, &[][..]).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

fn ls(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

#[test]
fn whiteouts_hide_lower_files_and_diffs_round_trip() {
    let work = tempfile::tempdir().unwrap();
    let snaps = Snapshotter::open(work.path().join("snapshots")).unwrap();
    let opts = UnpackOptions::default();

    let base = layer(&[
        ("etc/", None),
        ("etc/a", Some("a")),
        ("etc/b", Some("b")),
        ("dir/", None),
        ("dir/x", Some("x")),
        ("dir/y", Some("y")),
    ]);
    let (c1, s1) = snaps
        .unpack(None, &base[..], Some(&Digest::of(&base)), &opts)
        .unwrap();
    assert_eq!(
        c1,
        Digest::of(&base),
        "the bottom layer's chain ID is its diff ID"
    );
    assert_eq!(s1.diff_id.as_ref(), Some(&c1));

    let top = layer(&[
        ("etc/.wh.a", Some("")),
        ("etc/c", Some("c")),
        ("dir/.wh..wh..opq", Some("")),
        ("dir/z", Some("z")),
    ]);
    let (c2, _) = snaps.unpack(Some(&c1), &top[..], None, &opts).unwrap();
    assert_eq!(c2, chain_id(Some(&c1), &Digest::of(&top)));
    assert_eq!(snaps.list(), {
        let mut v = vec![c1.clone(), c2.clone()];
        v.sort();
        v
    });

    // A wrong diff ID is refused and leaves nothing.
    let err = snaps
        .unpack(Some(&c1), &top[..], Some(&Digest::of(b"other")), &opts)
        .unwrap_err();
    assert!(err.to_string().contains("diff ID mismatch"), "{err}");
    assert_eq!(snaps.list().len(), 2);
    assert_eq!(
        std::fs::read_dir(work.path().join("snapshots"))
            .unwrap()
            .count(),
        2,
        "no temp dir left"
    );

    // The container's rootfs: both layers plus an upper.
    let rootfs = work.path().join("rootfs");
    let upper = Upper {
        upper: work.path().join("upper"),
        work: work.path().join("work"),
        volatile: false,
    };
    for d in [&rootfs, &upper.upper, &upper.work] {
        std::fs::create_dir(d).unwrap();
    }
    mount_overlay(
        &rootfs,
        &[snaps.layer_dir(&c2), snaps.layer_dir(&c1)],
        Some(&upper),
    )
    .unwrap();
    let guard = Mounted(rootfs.clone());
    assert_eq!(ls(&rootfs.join("etc")), ["b", "c"], "etc/a whited out");
    assert_eq!(ls(&rootfs.join("dir")), ["z"], "dir made opaque");

    // The container changes things.
    std::fs::remove_file(rootfs.join("etc/b")).unwrap();
    std::fs::write(rootfs.join("etc/new"), "fresh").unwrap();
    std::fs::hard_link(rootfs.join("etc/new"), rootfs.join("etc/same")).unwrap();
    std::fs::remove_dir_all(rootfs.join("dir")).unwrap();
    std::fs::create_dir(rootfs.join("dir")).unwrap();
    std::fs::write(rootfs.join("dir/only"), "1").unwrap();
    drop(guard);

    // Its upper directory becomes a layer...
    let mut diff = Vec::new();
    write_diff(&upper.upper, &mut diff).unwrap();
    let (c3, _) = snaps.unpack(Some(&c2), &diff[..], None, &opts).unwrap();

    // ... that reproduces the changes over the same lower layers, read-only.
    let view = work.path().join("view");
    std::fs::create_dir(&view).unwrap();
    mount_overlay(
        &view,
        &[
            snaps.layer_dir(&c3),
            snaps.layer_dir(&c2),
            snaps.layer_dir(&c1),
        ],
        None,
    )
    .unwrap();
    let _guard = Mounted(view.clone());
    assert_eq!(ls(&view.join("etc")), ["c", "new", "same"]);
    // The hard link is one in the layer too, not a second copy.
    {
        use std::os::unix::fs::MetadataExt;
        let layer = snaps.layer_dir(&c3);
        let (a, b) = (
            std::fs::metadata(layer.join("etc/new")).unwrap(),
            std::fs::metadata(layer.join("etc/same")).unwrap(),
        );
        assert_eq!((a.ino(), a.nlink()), (b.ino(), 2));
    }
    assert_eq!(
        std::fs::read_to_string(view.join("etc/new")).unwrap(),
        "fresh"
    );
    assert_eq!(ls(&view.join("dir")), ["only"]);
    assert!(
        std::fs::write(view.join("etc/x"), "no").is_err(),
        "read-only without an upper"
    );

    // The same changes make the same layer.
    let mut again = Vec::new();
    write_diff(&upper.upper, &mut again).unwrap();
    assert_eq!(Digest::of(&again), Digest::of(&diff));
}

#[test]
fn missing_parent_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let snaps = Snapshotter::open(work.path()).unwrap();
    let l = layer(&[("a", Some("a"))]);
    let err = snaps
        .unpack(
            Some(&Digest::of(b"nope")),
            &l[..],
            None,
            &UnpackOptions::default(),
        )
        .unwrap_err();
    assert!(err.to_string().contains("parent snapshot"), "{err}");
    assert!(snaps.list().is_empty());
}

#[test]
fn a_volatile_upper_mounts_again_after_it_was_used() {
    let work = tempfile::tempdir().unwrap();
    let lower = work.path().join("lower");
    let upper = Upper {
        upper: work.path().join("upper"),
        work: work.path().join("work"),
        volatile: true,
    };
    let target = work.path().join("m");
    for d in [&lower, &upper.upper, &upper.work, &target] {
        std::fs::create_dir(d).unwrap();
    }
    std::fs::write(lower.join("base"), "b").unwrap();
    for round in 0..2 {
        mount_overlay(&target, std::slice::from_ref(&lower), Some(&upper)).unwrap();
        let guard = Mounted(target.clone());
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let line = info
            .lines()
            .find(|l| l.contains(target.to_str().unwrap()))
            .unwrap();
        assert!(line.contains("volatile"), "{line}");
        std::fs::write(target.join(format!("r{round}")), "x").unwrap();
        drop(guard);
        // overlayfs marks the work dir; the next mount must still succeed.
        assert!(upper.work.join("work/incompat/volatile").exists());
    }
    assert_eq!(ls(&upper.upper), ["r0", "r1"]);
}
