//! Archive builders shared by the image tests.
#![allow(dead_code)]

use std::io::Write;

use berth_image::Digest;
use serde_json::json;

pub fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

/// A one-entry tar whose name is written raw (the tar crate refuses to build hostile names).
pub fn raw_tar(name: &str, data: &[u8]) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_cksum();
    let mut b = tar::Builder::new(Vec::new());
    b.append(&h, data).unwrap();
    b.into_inner().unwrap()
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

pub fn config_for(diff_ids: &[Digest]) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["sh"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids.iter().map(|d| d.to_string()).collect::<Vec<_>>()}
    }))
    .unwrap()
}

pub fn two_layers() -> (Vec<u8>, Vec<u8>) {
    (
        tar_of(&[("bin/tool", b"v1"), ("etc/os-release", b"berth")]),
        tar_of(&[("bin/tool", b"v2"), ("etc/.wh.os-release", b"")]),
    )
}

/// `docker save` as Docker before 25 wrote it (`<id>/layer.tar`), or after (`blobs/sha256`).
pub fn docker_archive(new_layout: bool, config_override: Option<Vec<u8>>) -> Vec<u8> {
    let (l1, l2) = two_layers();
    let config = config_override.unwrap_or_else(|| config_for(&[Digest::of(&l1), Digest::of(&l2)]));
    let cfg_name = if new_layout {
        format!("blobs/sha256/{}", Digest::of(&config).hex())
    } else {
        format!("{}.json", Digest::of(&config).hex())
    };
    let names: Vec<String> = [&l1, &l2]
        .iter()
        .enumerate()
        .map(|(i, l)| {
            if new_layout {
                format!("blobs/sha256/{}", Digest::of(l).hex())
            } else {
                format!("layer{i}/layer.tar")
            }
        })
        .collect();
    let manifest = serde_json::to_vec(&json!([
        {"Config": cfg_name, "RepoTags": ["demo:1", "registry.local:5000/team/demo:latest"], "Layers": names}
    ]))
    .unwrap();
    tar_of(&[
        (cfg_name.as_str(), &config),
        (names[0].as_str(), &l1),
        (names[1].as_str(), &l2),
        ("manifest.json", &manifest),
    ])
}

/// A `docker save` archive (old layout) of one image made of `layers`, tagged `tags`.
pub fn docker_archive_of(layers: &[Vec<u8>], tags: &[&str]) -> Vec<u8> {
    let ids: Vec<Digest> = layers.iter().map(|l| Digest::of(l)).collect();
    let config = config_for(&ids);
    let cfg_name = format!("{}.json", Digest::of(&config).hex());
    let names: Vec<String> = (0..layers.len())
        .map(|i| format!("l{i}/layer.tar"))
        .collect();
    let manifest =
        serde_json::to_vec(&json!([{"Config": cfg_name, "RepoTags": tags, "Layers": names}]))
            .unwrap();
    let mut files: Vec<(&str, &[u8])> =
        vec![(cfg_name.as_str(), &config), ("manifest.json", &manifest)];
    for (n, l) in names.iter().zip(layers) {
        files.push((n.as_str(), l));
    }
    tar_of(&files)
}
