//! The image store: load, tags, Docker's rmi rules, prune and garbage collection.

mod common;

use berth_image::store::{ImageStore, StoreError};
use berth_image::Digest;
use common::*;

fn store() -> (tempfile::TempDir, ImageStore) {
    let dir = tempfile::tempdir().unwrap();
    let s = ImageStore::open(dir.path()).unwrap();
    (dir, s)
}

fn base() -> Vec<u8> {
    tar_of(&[("bin/sh", b"shell"), ("etc/os-release", b"base")])
}

fn app(n: &str) -> Vec<u8> {
    tar_of(&[("app/version", n.as_bytes())])
}

const NOBODY: &dyn Fn(&Digest) -> bool = &|_| false;

#[test]
fn load_list_resolve_and_tag() {
    let (_d, s) = store();
    let loaded = s
        .load(&docker_archive_of(&[base(), app("1")], &["demo:1"])[..])
        .unwrap();
    let id = loaded[0].0.id.clone();
    assert_eq!(s.images().unwrap().len(), 1);
    assert_eq!(s.resolve("demo:1").unwrap().id, id);
    assert_eq!(s.resolve("docker.io/library/demo:1").unwrap().id, id);
    assert_eq!(s.resolve(&id.hex()[..12]).unwrap().id, id);
    assert_eq!(s.resolve(&id.to_string()).unwrap().id, id);
    let err = s.resolve("demo:2").unwrap_err().to_string();
    assert_eq!(err, "No such image: demo:2");
    s.tag(&id, &"registry.local:5000/demo:v1".parse().unwrap())
        .unwrap();
    let tags: Vec<String> = s
        .tags_of(&id)
        .unwrap()
        .iter()
        .map(|t| t.familiar())
        .collect();
    assert_eq!(tags, ["demo:1", "registry.local:5000/demo:v1"]);
    let cfg = s.config_of(&loaded[0].0).unwrap();
    assert_eq!(cfg.rootfs().diff_ids().len(), 2);
}

#[test]
fn rmi_follows_dockers_rules() {
    let (_d, s) = store();
    let id = s
        .load(&docker_archive_of(&[base(), app("1")], &["demo:1", "demo:latest"])[..])
        .unwrap()[0]
        .0
        .id
        .clone();
    // By ID with two tags: refused without force.
    let err = s.remove(&id.hex()[..12], false, NOBODY).unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("referenced in multiple repositories"),
        "{err}"
    );
    // By tag: only that tag goes.
    let r = s.remove("demo:1", false, NOBODY).unwrap();
    assert_eq!(r.untagged.len(), 1);
    assert!(r.deleted.is_empty());
    assert!(s.resolve(&id.to_string()).is_ok());
    // In use by a container: refused unless forced.
    let used = |d: &Digest| d == &id;
    let err = s.remove("demo", false, &used).unwrap_err().to_string();
    assert!(err.contains("image is being used by a container"), "{err}");
    // Forced: untagged, but kept (dangling) while in use, so its layers stay.
    let r = s.remove("demo", true, &used).unwrap();
    assert!(r.deleted.is_empty());
    assert_eq!(r.untagged.len(), 1);
    assert!(s.tags().unwrap().is_empty());
    assert_eq!(s.images().unwrap().len(), 1);
    let (pruned, _) = s.prune_dangling(&used).unwrap();
    assert!(pruned.is_empty(), "prune keeps what is in use");
    // No longer in use: removed.
    let r = s.remove(&id.to_string(), false, NOBODY).unwrap();
    assert_eq!(r.deleted, vec![id.clone()]);
    assert!(s.images().unwrap().is_empty());
}

#[test]
fn gc_keeps_what_images_share_and_sweeps_the_rest() {
    let (_d, s) = store();
    let a = s
        .load(&docker_archive_of(&[base(), app("a")], &["a:1"])[..])
        .unwrap()[0]
        .0
        .clone();
    let b = s
        .load(&docker_archive_of(&[base(), app("b")], &["b:1"])[..])
        .unwrap()[0]
        .0
        .clone();
    assert_eq!(a.chain[0], b.chain[0], "the base layer is shared");
    assert_eq!(s.snapshots().list().len(), 3);
    // Leftovers of a load that crashed before recording its image.
    let orphan = s.content().put(b"orphan blob").unwrap();
    s.remove("a:1", false, NOBODY).unwrap();
    let stats = s.gc().unwrap();
    assert_eq!(stats.snapshots, 1, "a's own layer");
    assert!(
        stats.blobs >= 4,
        "a's config, manifest, layer, and the orphan: {stats:?}"
    );
    assert!(!s.content().contains(&orphan));
    // b is whole: its blobs verify and its layers are there.
    assert!(s.content().read(&b.manifest).is_ok());
    for c in &b.chain {
        assert!(s.snapshots().has(c));
    }
    assert_eq!(
        std::fs::read_to_string(s.snapshots().layer_dir(&b.chain[1]).join("app/version")).unwrap(),
        "b"
    );
    // Nothing else to collect.
    assert_eq!(s.gc().unwrap(), Default::default());
}

#[test]
fn prune_removes_dangling_images_only() {
    let (_d, s) = store();
    let keep = s
        .load(&docker_archive_of(&[base()], &["keep:1"])[..])
        .unwrap()[0]
        .0
        .id
        .clone();
    let dangling = s.load(&docker_archive_of(&[app("x")], &[])[..]).unwrap()[0]
        .0
        .id
        .clone();
    let used = s.load(&docker_archive_of(&[app("y")], &[])[..]).unwrap()[0]
        .0
        .id
        .clone();
    let in_use = |d: &Digest| d == &used;
    let (removed, _) = s.prune_dangling(&in_use).unwrap();
    assert_eq!(removed, vec![dangling]);
    let left: Vec<Digest> = s.images().unwrap().into_iter().map(|i| i.id).collect();
    assert!(left.contains(&keep) && left.contains(&used) && left.len() == 2);
}

#[test]
fn a_refused_load_changes_nothing_stored() {
    let (_d, s) = store();
    s.load(&docker_archive_of(&[base()], &["keep:1"])[..])
        .unwrap();
    let before = (s.images().unwrap(), s.tags().unwrap());
    let good = docker_archive_of(&[app("z")], &["z:1"]);
    assert!(s.load(&good[..good.len() - 700]).is_err());
    assert_eq!((s.images().unwrap(), s.tags().unwrap()), before);
}

#[test]
fn corrupt_metadata_is_reported_with_its_file() {
    let (d, s) = store();
    s.load(&docker_archive_of(&[base()], &["keep:1"])[..])
        .unwrap();
    std::fs::write(d.path().join("tags.json"), "{ not json").unwrap();
    let err = s.resolve("keep:1").unwrap_err().to_string();
    assert!(err.contains("tags.json"), "{err}");
}

#[test]
fn save_then_load_round_trips() {
    let (_d, s) = store();
    let a = s
        .load(&docker_archive_of(&[base(), app("a")], &["demo:1", "demo:latest"])[..])
        .unwrap()[0]
        .0
        .clone();
    s.load(&docker_archive_of(&[base(), app("b")], &["other:2"])[..])
        .unwrap();
    let mut saved = Vec::new();
    s.save(&["demo:1", "other:2"], &mut saved).unwrap();

    let (_d2, fresh) = store();
    let loaded = fresh.load(&saved[..]).unwrap();
    assert_eq!(loaded.len(), 2);
    let again = fresh.resolve("demo:1").unwrap();
    assert_eq!(again.id, a.id, "same config, same image ID");
    assert_eq!(again.chain, a.chain, "same layers, same chain");
    assert!(
        fresh.resolve("demo:latest").is_err(),
        "only the tag that was asked for"
    );
    assert!(fresh.resolve("other:2").is_ok());
    assert_eq!(
        std::fs::read_to_string(
            fresh
                .snapshots()
                .layer_dir(&again.chain[1])
                .join("app/version")
        )
        .unwrap(),
        "a"
    );
    // Shared blobs are written once.
    let mut names = std::collections::HashSet::new();
    for e in tar::Archive::new(&saved[..]).entries().unwrap() {
        let p = e.unwrap().path().unwrap().into_owned();
        assert!(names.insert(p.clone()), "{p:?} twice");
    }
    assert!(names.contains(std::path::Path::new("oci-layout")));
    assert!(names.contains(std::path::Path::new("repositories")));
}

/// skopeo (containers/image) reads what berth saves, both as a docker archive and as an OCI
/// archive. Skipped with a message where skopeo is not installed, except under CI, which
/// installs it (scripts/install-deps.sh).
#[test]
fn skopeo_reads_saved_archives() {
    assert!(
        std::process::Command::new("skopeo")
            .arg("--version")
            .output()
            .is_ok(),
        "this test reads berth's save with skopeo: install it (scripts/install-deps.sh)"
    );
    let (d, s) = store();
    s.load(&docker_archive_of(&[base(), app("a")], &["demo:1"])[..])
        .unwrap();
    let tar_path = d.path().join("saved.tar");
    s.save(&["demo:1"], std::fs::File::create(&tar_path).unwrap())
        .unwrap();
    for (src, dest) in [
        ("docker-archive", "oci-from-docker"),
        ("oci-archive", "oci-from-oci"),
    ] {
        let out = std::process::Command::new("skopeo")
            .args(["--insecure-policy", "copy", "-q"])
            .arg(format!("{src}:{}", tar_path.display()))
            .arg(format!("oci:{}:demo", d.path().join(dest).display()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{src}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // And what skopeo wrote loads back as an OCI layout.
        let mut relayout = tar::Builder::new(Vec::new());
        relayout.append_dir_all(".", d.path().join(dest)).unwrap();
        let (_d3, fresh) = store();
        let back = fresh.load(&relayout.into_inner().unwrap()[..]).unwrap();
        // skopeo rewrites the config into OCI's format (a new image ID); the layers, and so
        // the chain of snapshots, are the same.
        assert_eq!(back[0].0.chain, s.resolve("demo:1").unwrap().chain, "{src}");
    }
}

#[test]
fn import_makes_a_one_layer_image_with_changes() {
    let (_d, s) = store();
    let rootfs = gzip(&tar_of(&[
        ("bin/sh", b"shell"),
        ("etc/hostname", b"imported"),
    ]));
    let r = "imported:v1".parse().unwrap();
    let changes = vec![
        "CMD [\"/bin/sh\"]".to_string(),
        "ENV A=1".to_string(),
        "WORKDIR /srv".to_string(),
    ];
    let img = s
        .import(&rootfs[..], Some(&r), &changes, "2026-11-24T00:00:00Z")
        .unwrap();
    assert_eq!(s.resolve("imported:v1").unwrap(), img);
    assert_eq!(img.chain.len(), 1);
    assert_eq!(
        std::fs::read_to_string(s.snapshots().layer_dir(&img.chain[0]).join("etc/hostname"))
            .unwrap(),
        "imported"
    );
    assert_eq!(s.size_of(&img), 13);
    let cfg = serde_json::to_value(s.config_of(&img).unwrap()).unwrap();
    assert_eq!(cfg["config"]["Cmd"], serde_json::json!(["/bin/sh"]));
    assert_eq!(cfg["config"]["Env"], serde_json::json!(["A=1"]));
    assert_eq!(cfg["config"]["WorkingDir"], "/srv");
    // A bad change or a hostile tarball is refused and adds no image.
    let err = s
        .import(&rootfs[..], None, &["RUN x".to_string()], "t")
        .unwrap_err()
        .to_string();
    assert!(err.contains("only CMD"), "{err}");
    let evil = raw_tar("../../escape", b"x");
    assert!(s.import(&evil[..], None, &[], "t").is_err());
    assert_eq!(s.images().unwrap().len(), 1);
}

/// A reader that hands out `data` up to `hold` bytes, then waits for a go before the rest:
/// a client uploading slowly.
struct Slow {
    data: Vec<u8>,
    at: usize,
    hold: usize,
    go: Option<std::sync::mpsc::Receiver<()>>,
    reached: Option<std::sync::mpsc::Sender<()>>,
}

impl std::io::Read for Slow {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.at == self.hold {
            if let Some(tx) = self.reached.take() {
                let _ = tx.send(());
            }
            if let Some(rx) = self.go.take() {
                let _ = rx.recv();
            }
        }
        let end = if self.at < self.hold {
            self.hold
        } else {
            self.data.len()
        };
        let n = buf.len().min(end - self.at);
        buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[test]
fn a_slow_load_holds_up_neither_other_changes_nor_its_own_content() {
    let (_d, s) = store();
    let first = s
        .load(&docker_archive_of(&[base(), app("1")], &["one:1"])[..])
        .unwrap()[0]
        .0
        .clone();
    let archive = docker_archive_of(&[base(), app("slow")], &["slow:1"]);
    let (go_tx, go_rx) = std::sync::mpsc::channel();
    let (reached_tx, reached_rx) = std::sync::mpsc::channel();
    let slow = Slow {
        hold: archive.len() * 3 / 4,
        data: archive,
        at: 0,
        go: Some(go_rx),
        reached: Some(reached_tx),
    };
    let loading = {
        let s = s.clone();
        std::thread::spawn(move || s.load(slow))
    };
    reached_rx.recv().unwrap();
    // Three quarters in, the load waits for its client. Meanwhile other changes go ahead
    // at once: a tag, another load, a removal; collection is put off, not waited for.
    let t0 = std::time::Instant::now();
    s.tag(&first.id, &"one:2".parse().unwrap()).unwrap();
    s.load(&docker_archive_of(&[base(), app("2")], &["two:1"])[..])
        .unwrap();
    s.remove("two:1", false, NOBODY).unwrap();
    let stats = s.gc().unwrap();
    assert!(stats.deferred, "{stats:?}");
    assert!(t0.elapsed() < std::time::Duration::from_secs(5));
    // The slow load finishes whole: its layers were not collected from under it.
    go_tx.send(()).unwrap();
    let loaded = loading.join().unwrap().unwrap();
    let img = &loaded[0].0;
    for c in &img.chain {
        assert!(s.snapshots().has(c));
    }
    assert_eq!(s.resolve("slow:1").unwrap().id, img.id);
    // The collection put off ran when the load finished: two's own layer is gone already.
    assert_eq!(
        s.snapshots().list().len(),
        3,
        "base, one's and slow's layers"
    );
    let stats = s.gc().unwrap();
    assert!(!stats.deferred);
    assert_eq!(stats, Default::default(), "nothing left to collect");
    assert!(s.config_of(img).is_ok());
    assert!(s.config_of(&first).is_ok());
}

/// Files under `dir`, recursively (directories not counted).
fn files_under(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                files_under(&e.path())
            } else {
                1
            }
        })
        .sum()
}

/// A collection takes what it sweeps out of the store at once (a rename into the trash)
/// and frees it after: in the caller by default, in a thread of its own for a store set up
/// with `delete_in_background` (berthd's). What a crash left in the trash goes too.
#[test]
fn gc_empties_its_trash_now_or_in_the_background() {
    let (d, s) = store();
    let trash = d.path().join("trash");
    s.load(&docker_archive_of(&[base(), app("1")], &["demo:1"])[..])
        .unwrap();
    s.remove("demo:1", false, NOBODY).unwrap();
    let stats = s.gc().unwrap();
    assert_eq!((stats.snapshots, stats.blobs >= 4), (2, true), "{stats:?}");
    assert!(s.snapshots().list().is_empty());
    assert_eq!(files_under(&trash), 0, "emptied before gc returned");

    // Background: gone from the store when gc returns, freed soon after.
    let s = s.delete_in_background().unwrap();
    let img = s
        .load(&docker_archive_of(&[base(), app("2")], &["demo:2"])[..])
        .unwrap()[0]
        .0
        .clone();
    // And a sweep a crash interrupted, with a layer tree in it.
    let crashed = trash.join("gc-crashed/snapshot-x/fs/etc");
    std::fs::create_dir_all(&crashed).unwrap();
    std::fs::write(crashed.join("os-release"), b"old").unwrap();
    s.remove("demo:2", false, NOBODY).unwrap();
    let stats = s.gc().unwrap();
    assert_eq!(stats.snapshots, 2, "{stats:?}");
    for c in &img.chain {
        assert!(!s.snapshots().has(c), "swept at once");
    }
    assert!(!s.content().contains(&img.id));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::fs::read_dir(&trash).unwrap().count() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "trash not emptied: {} files left",
            files_under(&trash)
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // The same layers load again (nothing of theirs is taken from the trash).
    let again = s
        .load(&docker_archive_of(&[base(), app("2")], &["demo:2"])[..])
        .unwrap()[0]
        .0
        .clone();
    assert_eq!(again.chain, img.chain);
    assert_eq!(
        std::fs::read_to_string(s.snapshots().layer_dir(&again.chain[1]).join("app/version"))
            .unwrap(),
        "2"
    );
}

/// A load, import or commit killed midway leaves a temporary blob and a half-unpacked
/// layer; the next collection (which runs only while none is under way) takes both.
#[test]
fn gc_sweeps_what_a_killed_load_left() {
    let (d, s) = store();
    let img = s
        .load(&docker_archive_of(&[base()], &["demo:1"])[..])
        .unwrap()[0]
        .0
        .clone();
    let blob = d.path().join("content/ingest/ingest-killed");
    std::fs::write(&blob, b"half a layer").unwrap();
    let tree = d.path().join("snapshots/.tmp-killed/fs/etc");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(tree.join("hostname"), b"half").unwrap();
    let stats = s.gc().unwrap();
    assert_eq!(stats.unfinished, 2, "{stats:?}");
    assert!(!blob.exists() && !d.path().join("snapshots/.tmp-killed").exists());
    assert_eq!(files_under(&d.path().join("trash")), 0);
    // The image is untouched.
    assert!(s.snapshots().has(&img.chain[0]));
    assert!(s.content().read(&img.manifest).is_ok());
    assert_eq!(s.gc().unwrap(), Default::default());
}
