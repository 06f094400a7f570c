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

fn refused(archive: &[u8], want: &str) {
    let s = store();
    // An image already in the store must survive a refused load.
    let good = load(&docker_archive(false, None)[..], &s.content, &s.snaps).unwrap();
    let err = load(archive, &s.content, &s.snaps).unwrap_err();
    let mut chain = vec![err.to_string()];
    let mut src = std::error::Error::source(&err);
    while let Some(e) = src {
        chain.push(e.to_string());
        src = e.source();
    }
    let msg = chain.join(": ");
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
