//! Loading image archives (`docker save` output of old and new Docker, OCI image layouts,
//! gzip-compressed or not) into the content store and the snapshotter.
//!
//! The archive is itself a tar of untrusted names, so it is first unpacked with the same
//! refusing extractor as layers ([`crate::layer::unpack`]) into a scratch directory; every
//! file it names is then looked up inside that directory only. Blobs are checked against the
//! digests and sizes the manifests give, layers against the config's diff IDs.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Component, Path, PathBuf};

use oci_spec::image::{Descriptor, DescriptorBuilder, ImageManifestBuilder, MediaType};

use crate::content::{ContentError, ContentStore, Expected};
use crate::digest::Digest;
use crate::layer::{self, detect_compression, Compression, LayerError, UnpackOptions};
use crate::manifest::{self, AnyManifest, ManifestError};
use crate::reference::{Reference, ReferenceError};
use crate::snapshot::{SnapshotError, Snapshotter};

/// One image an archive held.
#[derive(Debug, Clone)]
pub struct LoadedImage {
    /// The manifest's digest in the content store.
    pub manifest: Digest,
    /// The config's digest: the image ID.
    pub config: Digest,
    /// Chain IDs of its layers, bottom first.
    pub chain: Vec<Digest>,
    /// Tags the archive gave it.
    pub tags: Vec<Reference>,
}

/// Why an archive was refused; each names the file or entry.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The archive's own tar was unreadable or held a refused entry.
    #[error("archive")]
    Unpack(#[from] LayerError),
    /// Neither manifest.json nor index.json.
    #[error("archive has neither manifest.json (docker save) nor index.json (OCI layout)")]
    UnknownFormat,
    /// A file the manifests name is absent or outside the archive.
    #[error("archive: {0}")]
    Missing(String),
    /// A manifest, index or config is malformed.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// A blob failed its digest or size check, or could not be stored.
    #[error("archive blob")]
    Content(#[from] ContentError),
    /// A layer failed its diff ID check or could not be unpacked.
    #[error("archive layer")]
    Snapshot(#[from] SnapshotError),
    /// A tag in the archive is not a valid reference.
    #[error("archive tag")]
    Reference(#[from] ReferenceError),
    /// Anything else that contradicts itself.
    #[error("archive: {0}")]
    Invalid(String),
}

/// `manifest.json` of `docker save`.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// Loads every image in an archive stream.
pub fn load<R: Read>(
    reader: R,
    content: &ContentStore,
    snapshots: &Snapshotter,
    scratch: &Path,
) -> Result<Vec<LoadedImage>, ArchiveError> {
    let dir = tempfile::Builder::new()
        .prefix("load-")
        .tempdir_in(scratch)
        .map_err(|e| {
            ArchiveError::Invalid(format!("scratch directory in {}: {e}", scratch.display()))
        })?;
    // The archive's own entries are plain files: no devices, no owners needed.
    layer::unpack(reader, dir.path(), &UnpackOptions::default())?;
    let root = dir.path();
    if root.join("manifest.json").is_file() {
        load_docker(root, content, snapshots)
    } else if root.join("index.json").is_file() {
        load_oci(root, content, snapshots)
    } else {
        Err(ArchiveError::UnknownFormat)
    }
}

/// Old (`<id>/layer.tar`) and new (`blobs/sha256/<hex>`) `docker save` archives.
fn load_docker(
    root: &Path,
    content: &ContentStore,
    snaps: &Snapshotter,
) -> Result<Vec<LoadedImage>, ArchiveError> {
    let text = read_file(root, "manifest.json")?;
    let entries: Vec<DockerEntry> =
        serde_json::from_slice(&text).map_err(|e| ManifestError::Json {
            what: "manifest.json".into(),
            line: e.line(),
            column: e.column(),
            message: e
                .to_string()
                .split(" at line ")
                .next()
                .unwrap_or_default()
                .to_string(),
        })?;
    let mut out = Vec::new();
    for entry in entries {
        let config_bytes = read_file(root, &entry.config)?;
        let config = manifest::parse_config(&entry.config, &config_bytes)?;
        let config_digest = content.put(&config_bytes)?;
        let diff_ids = parse_diff_ids(&entry.config, config.rootfs().diff_ids())?;
        if diff_ids.len() != entry.layers.len() {
            return Err(ArchiveError::Invalid(format!(
                "{}: {} layers listed but the config has {} diff IDs",
                entry.config,
                entry.layers.len(),
                diff_ids.len()
            )));
        }
        let mut chain: Vec<Digest> = Vec::new();
        let mut layer_descs = Vec::new();
        for (path, diff_id) in entry.layers.iter().zip(&diff_ids) {
            let file = open_inside(root, path)?;
            let (digest, size) = content.write(BufReader::new(file), &Expected::default())?;
            let media = layer_media_type(&content.blob_path(&digest))?;
            layer_descs.push(descriptor(media, size, &digest)?);
            chain.push(unpack_layer(
                content,
                snaps,
                chain.last(),
                &digest,
                diff_id,
            )?);
        }
        let manifest = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .config(descriptor(
                MediaType::ImageConfig,
                config_bytes.len() as u64,
                &config_digest,
            )?)
            .layers(layer_descs)
            .build()
            .map_err(|e| ArchiveError::Invalid(format!("build manifest: {e}")))?;
        let manifest_bytes =
            serde_json::to_vec(&manifest).map_err(|e| ArchiveError::Invalid(e.to_string()))?;
        let manifest_digest = content.put(&manifest_bytes)?;
        let tags = entry
            .repo_tags
            .unwrap_or_default()
            .iter()
            .map(|t| Reference::parse(t))
            .collect::<Result<Vec<_>, _>>()?;
        out.push(LoadedImage {
            manifest: manifest_digest,
            config: config_digest,
            chain,
            tags,
        });
    }
    Ok(out)
}

/// An OCI image layout: `index.json` and `blobs/sha256/`.
fn load_oci(
    root: &Path,
    content: &ContentStore,
    snaps: &Snapshotter,
) -> Result<Vec<LoadedImage>, ArchiveError> {
    let index_bytes = read_file(root, "index.json")?;
    let AnyManifest::Index(index) = manifest::parse_manifest("index.json", &index_bytes)? else {
        return Err(ArchiveError::Invalid("index.json is not an index".into()));
    };
    let (os, arch) = manifest::host_platform();
    let mut out = Vec::new();
    for desc in index.manifests() {
        let tags = oci_tags(desc)?;
        let mut desc = desc.clone();
        let mut manifest_bytes = import_blob(root, content, &desc)?;
        // A nested index (multi-platform image): take this host's manifest.
        if let AnyManifest::Index(inner) =
            manifest::parse_manifest(desc.digest().as_ref(), &manifest_bytes)?
        {
            desc = manifest::select_platform(&inner, os, arch, None)?.clone();
            manifest_bytes = import_blob(root, content, &desc)?;
        }
        let what = desc.digest().to_string();
        let AnyManifest::Image(m) = manifest::parse_manifest(&what, &manifest_bytes)? else {
            return Err(ArchiveError::Invalid(format!(
                "{what}: an index inside an index inside an index"
            )));
        };
        let config_bytes = import_blob(root, content, m.config())?;
        let config = manifest::parse_config(m.config().digest().as_ref(), &config_bytes)?;
        let diff_ids = parse_diff_ids(&what, config.rootfs().diff_ids())?;
        if diff_ids.len() != m.layers().len() {
            return Err(ArchiveError::Invalid(format!(
                "{what}: {} layers but the config has {} diff IDs",
                m.layers().len(),
                diff_ids.len()
            )));
        }
        let mut chain: Vec<Digest> = Vec::new();
        for (layer_desc, diff_id) in m.layers().iter().zip(&diff_ids) {
            import_blob_stream(root, content, layer_desc)?;
            let digest = digest_of(layer_desc)?;
            chain.push(unpack_layer(
                content,
                snaps,
                chain.last(),
                &digest,
                diff_id,
            )?);
        }
        out.push(LoadedImage {
            manifest: digest_of(&desc)?,
            config: digest_of(m.config())?,
            chain,
            tags,
        });
    }
    Ok(out)
}

/// Unpacks a stored layer blob on top of `parent` unless that snapshot exists already.
fn unpack_layer(
    content: &ContentStore,
    snaps: &Snapshotter,
    parent: Option<&Digest>,
    blob: &Digest,
    diff_id: &Digest,
) -> Result<Digest, ArchiveError> {
    let chain = crate::snapshot::chain_id(parent, diff_id);
    if !snaps.has(&chain) {
        let file = content.open_blob(blob)?;
        snaps.unpack(
            parent,
            BufReader::new(file),
            Some(diff_id),
            &UnpackOptions::for_image_layers(),
        )?;
    }
    Ok(chain)
}

fn oci_tags(desc: &Descriptor) -> Result<Vec<Reference>, ArchiveError> {
    let Some(ann) = desc.annotations() else {
        return Ok(Vec::new());
    };
    // Docker 25+ and containerd put the full name here; plain OCI tools only a tag.
    if let Some(full) = ann.get("io.containerd.image.name") {
        return Ok(vec![Reference::parse(full)?]);
    }
    match ann.get("org.opencontainers.image.ref.name") {
        Some(name) if name.contains('/') || name.contains(':') => Ok(vec![Reference::parse(name)?]),
        _ => Ok(Vec::new()), // a bare tag with no repository names no image
    }
}

fn parse_diff_ids(what: &str, ids: &[String]) -> Result<Vec<Digest>, ArchiveError> {
    ids.iter()
        .map(|d| {
            d.parse()
                .map_err(|e| ArchiveError::Invalid(format!("{what}: diff ID {d:?}: {e}")))
        })
        .collect()
}

fn digest_of(desc: &Descriptor) -> Result<Digest, ArchiveError> {
    desc.digest()
        .to_string()
        .parse()
        .map_err(|e| ArchiveError::Invalid(format!("descriptor digest: {e}")))
}

fn descriptor(media: MediaType, size: u64, digest: &Digest) -> Result<Descriptor, ArchiveError> {
    let d: oci_spec::image::Digest = digest
        .to_string()
        .parse()
        .map_err(|e| ArchiveError::Invalid(format!("digest {digest}: {e}")))?;
    DescriptorBuilder::default()
        .media_type(media)
        .size(size)
        .digest(d)
        .build()
        .map_err(|e| ArchiveError::Invalid(format!("descriptor: {e}")))
}

fn layer_media_type(blob: &Path) -> Result<MediaType, ArchiveError> {
    let mut head = [0u8; 4];
    let n = File::open(blob)
        .and_then(|mut f| f.read(&mut head))
        .map_err(|e| ArchiveError::Invalid(format!("{}: {e}", blob.display())))?;
    Ok(match detect_compression(&head[..n]) {
        Compression::None => MediaType::ImageLayer,
        Compression::Gzip => MediaType::ImageLayerGzip,
        Compression::Zstd => MediaType::ImageLayerZstd,
    })
}

/// Reads a blob of the layout into the store, checking digest and size; returns its bytes
/// (for manifests and configs, which are small).
fn import_blob(
    root: &Path,
    content: &ContentStore,
    desc: &Descriptor,
) -> Result<Vec<u8>, ArchiveError> {
    import_blob_stream(root, content, desc)?;
    Ok(content.read(&digest_of(desc)?)?)
}

fn import_blob_stream(
    root: &Path,
    content: &ContentStore,
    desc: &Descriptor,
) -> Result<(), ArchiveError> {
    let digest = digest_of(desc)?;
    if content.contains(&digest) {
        return Ok(());
    }
    let file = open_inside(root, &format!("blobs/sha256/{}", digest.hex()))?;
    let expected = Expected {
        digest: Some(digest),
        size: Some(desc.size()),
    };
    content.write(BufReader::new(file), &expected)?;
    Ok(())
}

fn read_file(root: &Path, name: &str) -> Result<Vec<u8>, ArchiveError> {
    let mut data = Vec::new();
    open_inside(root, name)?
        .read_to_end(&mut data)
        .map_err(|e| ArchiveError::Missing(format!("{name}: {e}")))?;
    Ok(data)
}

/// Opens a file the archive's manifests name, refusing names that leave the archive. The
/// archive was unpacked by the refusing extractor, so its tree holds no symlinked directories
/// leading out; a symlink as the file itself is refused here.
fn open_inside(root: &Path, name: &str) -> Result<File, ArchiveError> {
    let rel = Path::new(name);
    if rel
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(ArchiveError::Missing(format!(
            "{name:?}: path leaves the archive"
        )));
    }
    let path: PathBuf = root.join(rel);
    let meta = std::fs::symlink_metadata(&path)
        .map_err(|_| ArchiveError::Missing(format!("{name}: not in the archive")))?;
    if !meta.is_file() {
        return Err(ArchiveError::Missing(format!("{name}: not a regular file")));
    }
    File::open(&path).map_err(|e| ArchiveError::Missing(format!("{name}: {e}")))
}
