//! Loading docker-archive and OCI-layout archives built here, good and corrupt.

mod common;

use berth_image::archive::load;
use berth_image::content::ContentStore;
use berth_image::snapshot::Snapshotter;
use berth_image::Digest;
use common::*;
use serde_json::json;

struct Store {
    _dir: tempfile::TempDir,
    content: ContentStore,
    snaps: Snapshotter,
}

fn store() -> Store {
    let dir = tempfile::tempdir().unwrap();
    let content = ContentStore::open(dir.path().join("content")).unwrap();
    let snaps = Snapshotter::open(dir.path().join("snapshots")).unwrap();
    Store {
        _dir: dir,
        content,
        snaps,
    }
}

fn check_loaded(s: &Store, images: &[berth_image::archive::LoadedImage]) {
    assert_eq!(images.len(), 1);
    let img = &images[0];
    assert_eq!(img.chain.len(), 2);
    let top = s.snaps.layer_dir(&img.chain[1]);
    assert_eq!(std::fs::read_to_string(top.join("bin/tool")).unwrap(), "v2");
    let bottom = s.snaps.layer_dir(&img.chain[0]);
    assert_eq!(
        std::fs::read_to_string(bottom.join("etc/os-release")).unwrap(),
        "berth"
    );
    assert!(s.content.contains(&img.config));
    let manifest: serde_json::Value =
        serde_json::from_slice(&s.content.read(&img.manifest).unwrap()).unwrap();
    assert_eq!(manifest["config"]["digest"], img.config.to_string());
    assert_eq!(manifest["layers"].as_array().unwrap().len(), 2);
}

#[test]
fn docker_archives_old_and_new_and_gzipped() {
    for (new_layout, gz) in [(false, false), (true, false), (false, true)] {
        let s = store();
        let mut archive = docker_archive(new_layout, None);
        if gz {
            archive = gzip(&archive);
        }
        let images = load(&archive[..], &s.content, &s.snaps).unwrap();
        check_loaded(&s, &images);
        let tags: Vec<String> = images[0].tags.iter().map(|t| t.to_string()).collect();
        assert_eq!(
            tags,
            [
                "docker.io/library/demo:1",
                "registry.local:5000/team/demo:latest"
            ]
        );
        // Loading again reuses the snapshots and blobs.
        let again = load(&archive[..], &s.content, &s.snaps).unwrap();
        assert_eq!(again[0].chain, images[0].chain);
        assert_eq!(s.snaps.list().len(), 2);
    }
}

/// An OCI layout whose index points at a multi-platform index; gzip layers.
fn oci_layout(tamper_layer: bool) -> Vec<u8> {
    let (l1, l2) = two_layers();
    let config = config_for(&[Digest::of(&l1), Digest::of(&l2)]);
    let (g1, mut g2) = (gzip(&l1), gzip(&l2));
    let desc = |media: &str, data: &[u8]| json!({"mediaType": media, "size": data.len(), "digest": Digest::of(data).to_string()});
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": desc("application/vnd.oci.image.config.v1+json", &config),
        "layers": [desc("application/vnd.oci.image.layer.v1.tar+gzip", &g1), desc("application/vnd.oci.image.layer.v1.tar+gzip", &g2)]
    }))
    .unwrap();
    let other = b"{\"schemaVersion\": 2}".to_vec();
    let mut amd = desc("application/vnd.oci.image.manifest.v1+json", &manifest);
    amd["platform"] = json!({"os": "linux", "architecture": "amd64"});
    let mut arm = desc("application/vnd.oci.image.manifest.v1+json", &other);
    arm["platform"] = json!({"os": "linux", "architecture": "arm64"});
    let inner = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [arm, amd]})).unwrap();
    let mut top = desc("application/vnd.oci.image.index.v1+json", &inner);
    top["annotations"] = json!({"io.containerd.image.name": "docker.io/library/demo:oci", "org.opencontainers.image.ref.name": "oci"});
    let index = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [top]})).unwrap();
    let blob = |d: &[u8]| format!("blobs/sha256/{}", Digest::of(d).hex());
    let g2_name = blob(&g2);
    if tamper_layer {
        let n = g2.len();
        g2[n / 2] ^= 0xff;
    }
    tar_of(&[
        ("oci-layout", br#"{"imageLayoutVersion": "1.0.0"}"#),
        ("index.json", &index),
        (&blob(&inner), &inner),
        (&blob(&manifest), &manifest),
        (&blob(&other), &other),
        (&blob(&config), &config),
        (&blob(&g1), &g1),
        (&g2_name, &g2),
    ])
}

#[test]
fn oci_layout_with_platform_index() {
    let s = store();
    let images = load(&oci_layout(false)[..], &s.content, &s.snaps).unwrap();
    check_loaded(&s, &images);
    assert_eq!(images[0].tags[0].to_string(), "docker.io/library/demo:oci");
}

/// An error and its sources, as `anyhow` prints them with `{:#}`.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut chain = vec![err.to_string()];
    let mut src = err.source();
    while let Some(e) = src {
        chain.push(e.to_string());
        src = e.source();
    }
    chain.join(": ")
}

fn refused(archive: &[u8], want: &str) {
    let s = store();
    // An image already in the store must survive a refused load.
    let good = load(&docker_archive(false, None)[..], &s.content, &s.snaps).unwrap();
    let msg = error_chain(&load(archive, &s.content, &s.snaps).unwrap_err());
    assert!(msg.contains(want), "expected {want:?} in {msg:?}");
    check_loaded(&s, &good);
}

#[test]
fn corrupt_archives_are_refused_precisely() {
    let good = docker_archive(false, None);
    refused(&good[..good.len() / 2], "read layer");
    refused(&gzip(&good)[..300], "read layer");
    refused(
        &tar_of(&[("manifest.json", b"[{\"Config\": ")]),
        "manifest.json: invalid JSON at line 1",
    );
    refused(
        &raw_tar("../escape", b"x"),
        "\"../escape\": '..' in path refused",
    );
    refused(
        &tar_of(&[(
            "manifest.json",
            br#"[{"Config": "../../etc/passwd", "Layers": []}]"#,
        )]),
        "\"../../etc/passwd\": path leaves the archive",
    );
    refused(&tar_of(&[("nothing", b"")]), "neither manifest.json");
    // A config whose diff IDs do not match the layers.
    let wrong = config_for(&[Digest::of(b"not layer 1"), Digest::of(b"not layer 2")]);
    refused(
        &docker_archive(false, Some(wrong)),
        "layer diff ID mismatch",
    );
    // A layer blob altered in transit.
    refused(&oci_layout(true), "digest mismatch");
}

/// Layers keep their owners and device nodes when loaded as root, as Docker's do.
#[test]
fn layers_keep_owners_and_devices_as_root() {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(2);
    h.set_mode(0o640);
    h.set_uid(1000);
    h.set_gid(1001);
    b.append_data(&mut h, "home/user/file", &b"hi"[..]).unwrap();
    let mut d = tar::Header::new_gnu();
    d.set_entry_type(tar::EntryType::Char);
    d.set_size(0);
    d.set_mode(0o666);
    d.set_device_major(1).unwrap();
    d.set_device_minor(3).unwrap();
    b.append_data(&mut d, "dev/null", &[][..]).unwrap();
    let layer = b.into_inner().unwrap();
    let s = store();
    let images = load(
        &docker_archive_of(&[layer], &["owned:1"])[..],
        &s.content,
        &s.snaps,
    )
    .unwrap();
    let fs = s.snaps.layer_dir(&images[0].chain[0]);
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(fs.join("home/user/file")).unwrap();
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (1000, 1001, 0o640));
    let n = std::fs::symlink_metadata(fs.join("dev/null")).unwrap();
    assert_eq!(n.rdev(), rustix::fs::makedev(1, 3));
}

/// Bytes that do not compress, so that a gzipped layer stays over the size from which a
/// load unpacks layers while they arrive (1 MiB).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// An archive in the layout Docker 25+ and berth write (blobs first, manifest.json last),
/// with the layer blobs given (compressed or not) and their diff IDs.
fn blob_archive(blobs: &[Vec<u8>], diff_ids: &[Digest], extra: &[Vec<u8>]) -> Vec<u8> {
    let config = config_for(diff_ids);
    let name = |b: &[u8]| format!("blobs/sha256/{}", Digest::of(b).hex());
    let layers: Vec<String> = blobs.iter().map(|b| name(b)).collect();
    let manifest = serde_json::to_vec(&json!([
        {"Config": name(&config), "RepoTags": ["big:1"], "Layers": layers}
    ]))
    .unwrap();
    let mut files: Vec<(String, &[u8])> = vec![(name(&config), &config)];
    for b in blobs.iter().chain(extra) {
        files.push((name(b), b));
    }
    files.push(("manifest.json".into(), &manifest));
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (n.as_str(), *b)).collect();
    tar_of(&refs)
}

/// Nothing but snapshots under the snapshotter: no staged layer left behind.
fn no_staged_left(s: &Store) {
    let root = s._dir.path().join("snapshots");
    let names: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(names.is_empty(), "left in {}: {names:?}", root.display());
}

/// Layers of over 1 MiB are unpacked while the archive streams in, before its manifest says
/// which blobs are layers; what comes out must be exactly what unpacking the stored blobs
/// gives, for uncompressed and gzipped layers, and a large blob that only looks like a
/// layer must change nothing.
#[test]
fn large_layers_unpacked_while_they_arrive() {
    let big1 = noise(1_500_000, 1);
    let big2 = noise(1_300_000, 2);
    let l1 = tar_of(&[("etc/os-release", b"berth"), ("data/one", &big1)]);
    let l2 = tar_of(&[("data/two", &big2), ("etc/.wh.os-release", b"")]);
    let ids = [Digest::of(&l1), Digest::of(&l2)];
    let decoy = tar_of(&[("not/a/layer", &noise(1_200_000, 3))]);
    for gz in [false, true] {
        let s = store();
        let blobs = if gz {
            vec![gzip(&l1), gzip(&l2)]
        } else {
            vec![l1.clone(), l2.clone()]
        };
        let images = load(
            &blob_archive(&blobs, &ids, std::slice::from_ref(&decoy))[..],
            &s.content,
            &s.snaps,
        )
        .unwrap();
        let img = &images[0];
        let bottom = s.snaps.layer_dir(&img.chain[0]);
        let top = s.snaps.layer_dir(&img.chain[1]);
        assert_eq!(
            std::fs::read(bottom.join("data/one")).unwrap(),
            big1,
            "gz {gz}"
        );
        assert_eq!(std::fs::read(top.join("data/two")).unwrap(), big2);
        assert_eq!(
            std::fs::read_to_string(bottom.join("etc/os-release")).unwrap(),
            "berth"
        );
        // The whiteout, as overlayfs expects it: a 0/0 character device.
        let wh = std::fs::symlink_metadata(top.join("etc/os-release")).unwrap();
        assert!(std::os::unix::fs::FileTypeExt::is_char_device(
            &wh.file_type()
        ));
        assert_eq!(s.snaps.list().len(), 2, "the decoy is no snapshot");
        assert!(s.content.contains(&Digest::of(&decoy)));
        no_staged_left(&s);
    }
}

/// A large layer unpacked while it arrived is still held to its diff ID and to the entry
/// rules: the load fails with the same precise error as from the store, and leaves nothing.
#[test]
fn large_layers_unpacked_while_they_arrive_are_still_checked() {
    let l1 = tar_of(&[("data/one", &noise(1_500_000, 4))]);
    let wrong = [Digest::of(b"some other layer")];
    for gz in [false, true] {
        let s = store();
        let blob = if gz { gzip(&l1) } else { l1.clone() };
        let err = error_chain(
            &load(
                &blob_archive(&[blob], &wrong, &[])[..],
                &s.content,
                &s.snaps,
            )
            .unwrap_err(),
        );
        assert!(err.contains("layer diff ID mismatch"), "gz {gz}: {err}");
        assert!(s.snaps.list().is_empty());
        no_staged_left(&s);
    }
    let evil = raw_tar("../../escape", &noise(1_200_000, 5));
    let s = store();
    let err = load(
        &blob_archive(std::slice::from_ref(&evil), &[Digest::of(&evil)], &[])[..],
        &s.content,
        &s.snaps,
    )
    .unwrap_err();
    let msg = error_chain(&err);
    assert!(
        msg.contains("\"../../escape\": '..' in path refused"),
        "{msg}"
    );
    assert!(s.snaps.list().is_empty());
    no_staged_left(&s);
    assert!(!s._dir.path().join("escape").exists());
}
