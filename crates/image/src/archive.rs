//! Loading image archives (`docker save` output of old and new Docker, OCI image layouts,
//! gzip-compressed or not) into the content store and the snapshotter.
//!
//! The archive is read once, as a stream: every file in it goes straight into the content
//! store under the digest it hashes to (small metadata files stay in memory), so loading
//! needs no scratch copy of the archive. The archive's names are untrusted: absolute names and
//! `..` are refused as in layers, and the manifests may only name files the archive held.
//! Blobs are checked against the digests and sizes the manifests give, layers against the
//! config's diff IDs. Files stored but not used by any image (`<id>/json` of old archives,
//! say) are left for the garbage collector.

use std::collections::HashMap;
use std::io::{BufReader, Read};
use std::path::Path;

use oci_spec::image::{Descriptor, DescriptorBuilder, ImageManifestBuilder, MediaType};

use crate::content::{ContentError, ContentStore, Expected};
use crate::digest::Digest;
use crate::layer::{self, detect_compression, Compression, LayerError, UnpackOptions};
use crate::manifest::{self, AnyManifest, ManifestError};
use crate::reference::{Reference, ReferenceError};
use crate::snapshot::{SnapshotError, Snapshotter, Staged};

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

/// Metadata files kept in memory rather than stored: JSON under this size.
const SMALL: u64 = 4 << 20;

/// What the archive held, by name.
struct Files {
    /// Small JSON files (manifest.json, index.json, configs of old archives, ...).
    small: HashMap<String, Vec<u8>>,
    /// Everything else, already in the content store: name -> (digest, size).
    stored: HashMap<String, (Digest, u64)>,
    /// Symlinks (old `docker save` links a repeated layer to its first copy).
    links: HashMap<String, String>,
    /// Layers unpacked while the archive was read, by their blob's digest (see
    /// [`speculate`]); taken by the layer they turn out to be, removed with `Files` if none.
    staged: std::sync::Mutex<HashMap<Digest, Staged>>,
}

impl Files {
    fn resolve<'a>(&'a self, name: &'a str) -> &'a str {
        let mut n = name;
        for _ in 0..8 {
            match self.links.get(n) {
                Some(t) => n = t,
                None => break,
            }
        }
        n
    }

    fn bytes(&self, content: &ContentStore, name: &str) -> Result<Vec<u8>, ArchiveError> {
        let n = self.resolve(name);
        if let Some(b) = self.small.get(n) {
            return Ok(b.clone());
        }
        match self.stored.get(n) {
            Some((d, _)) => Ok(content.read(d)?),
            None => Err(ArchiveError::Missing(format!("{name}: not in the archive"))),
        }
    }

    /// The digest and size of a file, storing it now if it was kept in memory.
    fn blob(&self, content: &ContentStore, name: &str) -> Result<(Digest, u64), ArchiveError> {
        let n = self.resolve(name);
        if let Some(b) = self.small.get(n) {
            return Ok((content.put(b)?, b.len() as u64));
        }
        self.stored
            .get(n)
            .cloned()
            .ok_or_else(|| ArchiveError::Missing(format!("{name}: not in the archive")))
    }
}

/// Loads every image in an archive stream.
pub fn load<R: Read>(
    reader: R,
    content: &ContentStore,
    snapshots: &Snapshotter,
) -> Result<Vec<LoadedImage>, ArchiveError> {
    let files = read_archive(reader, content, snapshots)?;
    if files.small.contains_key("manifest.json") {
        load_docker(&files, content, snapshots)
    } else if files.small.contains_key("index.json") {
        load_oci(&files, content, snapshots)
    } else {
        Err(ArchiveError::UnknownFormat)
    }
}

/// How many stored blobs may wait for their fsync at once while the archive is read on.
const COMMITS_IN_FLIGHT: usize = 4;

/// Blobs smaller than this are not unpacked while they arrive (see [`speculate`]).
const SPECULATE_MIN: u64 = 1 << 20;

/// Whether a blob is worth unpacking while it arrives, before the manifest (which comes
/// after the blobs in the archives Docker and berth write) says which blobs are layers: a
/// blob of some size that starts like a tar, gzip or zstd stream, and is not one the store
/// already has (whose layer is then most likely unpacked already). Such a layer is unpacked
/// by a second thread from a copy of the bytes being stored, so a load reads and writes
/// its layers once, both at the same time, instead of storing them all and then unpacking
/// them. A guess that proves wrong costs the work of one unpack, thrown away: a blob that is
/// no layer, or that fails to unpack, is unpacked again from the store if an image names it
/// as a layer, and gives its precise error then.
fn speculate(content: &ContentStore, name: &str, size: u64, head: &[u8]) -> bool {
    if size < SPECULATE_MIN {
        return false;
    }
    if let Some(hex) = name.strip_prefix("blobs/sha256/") {
        if let Ok(d) = format!("sha256:{hex}").parse::<Digest>() {
            if content.contains(&d) {
                return false;
            }
        }
    }
    match detect_compression(head) {
        Compression::Gzip | Compression::Zstd => true,
        Compression::None => head.get(257..262) == Some(b"ustar".as_slice()),
    }
}

/// Copies what a reader yields to a channel as it goes, until the other end goes away.
struct Tee<R> {
    inner: R,
    copy: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            if let Some(tx) = &self.copy {
                if tx.send(buf[..n].to_vec()).is_err() {
                    self.copy = None; // the unpacker stopped (a bad guess): store on alone
                }
            }
        }
        Ok(n)
    }
}

/// The receiving end of a [`Tee`], as a stream that ends when the sender is dropped.
struct Received {
    rx: std::sync::mpsc::Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    at: usize,
}

impl Read for Received {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.chunk.len() {
            match self.rx.recv() {
                Ok(c) => (self.chunk, self.at) = (c, 0),
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

fn read_archive<R: Read>(
    reader: R,
    content: &ContentStore,
    snaps: &Snapshotter,
) -> Result<Files, ArchiveError> {
    let mut archive = tar::Archive::new(layer::decompress(reader).map_err(LayerError::Read)?);
    let mut files = Files {
        small: HashMap::new(),
        stored: HashMap::new(),
        links: HashMap::new(),
        staged: Default::default(),
    };
    // Each blob is committed (fsync, rename) in a thread of its own while the next one is
    // read: the fsyncs of a load then overlap its transfer instead of adding to it.
    std::thread::scope(|scope| {
        type Commit<'s> = std::thread::ScopedJoinHandle<'s, Result<(Digest, u64), ContentError>>;
        let mut commits: std::collections::VecDeque<(String, Commit<'_>)> = Default::default();
        type Unpack<'s> = std::thread::ScopedJoinHandle<'s, Result<Staged, SnapshotError>>;
        let mut unpacks: Vec<(Digest, Unpack<'_>)> = Vec::new();
        let finish = |files: &mut Files, (name, commit): (String, Commit<'_>)| {
            let stored = commit
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
            files.stored.insert(name, stored);
            Ok::<(), ArchiveError>(())
        };
        for entry in archive.entries().map_err(LayerError::Read)? {
            let mut entry = entry.map_err(LayerError::Read)?;
            let raw = entry.path_bytes().into_owned();
            let shown = String::from_utf8_lossy(&raw).into_owned();
            let Some(rel) = layer::clean_path(&raw, &shown)? else {
                continue;
            };
            let name = rel.to_string_lossy().into_owned();
            match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    let size = entry.header().size().map_err(LayerError::Read)?;
                    if name.ends_with(".json")
                        || name == "oci-layout"
                        || name == "repositories"
                        || name.ends_with("/VERSION")
                    {
                        if size > SMALL {
                            return Err(ArchiveError::Invalid(format!(
                                "{name}: {size} bytes is too large for metadata"
                            )));
                        }
                        let mut b = Vec::with_capacity(size as usize);
                        entry
                            .read_to_end(&mut b)
                            .map_err(|source| LayerError::ReadEntry {
                                entry: shown.clone(),
                                source,
                            })?;
                        files.small.insert(name, b);
                    } else {
                        let mut head = Vec::with_capacity(512);
                        (&mut entry)
                            .take(512)
                            .read_to_end(&mut head)
                            .map_err(|source| LayerError::ReadEntry {
                                entry: shown.clone(),
                                source,
                            })?;
                        let mut copy = None;
                        let mut unpack = None;
                        if speculate(content, &name, size, &head) {
                            let (tx, rx) = std::sync::mpsc::sync_channel(16);
                            let opts = UnpackOptions {
                                // An uncompressed layer's diff ID is its blob's digest, which
                                // the content store computes anyway.
                                diff_id_known: detect_compression(&head) == Compression::None,
                                ..UnpackOptions::for_image_layers()
                            };
                            let stream = Received {
                                rx,
                                chunk: Vec::new(),
                                at: 0,
                            };
                            copy = Some(tx);
                            unpack = Some(scope.spawn(move || {
                                snaps.stage(BufReader::with_capacity(256 * 1024, stream), &opts)
                            }));
                        }
                        let tee = Tee {
                            inner: std::io::Cursor::new(head).chain(&mut entry),
                            copy,
                        };
                        let unsynced = content
                            .write_unsynced(
                                tee,
                                &Expected {
                                    digest: None,
                                    size: Some(size),
                                },
                            )
                            .map_err(|e| match e {
                                ContentError::Io { source, .. }
                                    if source.kind() != std::io::ErrorKind::Other =>
                                {
                                    ArchiveError::Unpack(LayerError::ReadEntry {
                                        entry: shown.clone(),
                                        source,
                                    })
                                }
                                other => ArchiveError::Content(other),
                            })?;
                        if let Some(u) = unpack {
                            unpacks.push((unsynced.digest.clone(), u));
                        }
                        if commits.len() >= COMMITS_IN_FLIGHT {
                            finish(&mut files, commits.pop_front().expect("not empty"))?;
                        }
                        commits.push_back((name, scope.spawn(move || unsynced.commit())));
                    }
                }
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    let target = entry
                        .link_name_bytes()
                        .map(|t| t.into_owned())
                        .unwrap_or_default();
                    let target_s = String::from_utf8_lossy(&target).into_owned();
                    // Relative to the link's directory for symlinks, to the archive root for hard
                    // links; either way it must stay inside.
                    let base = if entry.header().entry_type() == tar::EntryType::Symlink {
                        rel.parent().unwrap_or(Path::new("")).join(&target_s)
                    } else {
                        Path::new(&target_s).to_path_buf()
                    };
                    let mut norm = std::path::PathBuf::new();
                    for c in base.components() {
                        match c {
                            std::path::Component::Normal(p) => norm.push(p),
                            std::path::Component::ParentDir if norm.pop() => {}
                            std::path::Component::CurDir => {}
                            _ => return Err(ArchiveError::Unpack(LayerError::DotDot(shown))),
                        }
                    }
                    files
                        .links
                        .insert(name, norm.to_string_lossy().into_owned());
                }
                _ => {} // directories and anything else carry nothing an image needs
            }
        }
        for c in commits {
            finish(&mut files, c)?;
        }
        let staged = files.staged.get_mut().expect("lock");
        for (digest, u) in unpacks {
            // A failed guess is no error (see `speculate`).
            if let Ok(s) = u.join().unwrap_or_else(|p| std::panic::resume_unwind(p)) {
                staged.insert(digest, s);
            }
        }
        Ok(files)
    })
}

/// Old (`<id>/layer.tar`) and new (`blobs/sha256/<hex>`) `docker save` archives.
fn load_docker(
    files: &Files,
    content: &ContentStore,
    snaps: &Snapshotter,
) -> Result<Vec<LoadedImage>, ArchiveError> {
    let text = files.bytes(content, "manifest.json")?;
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
        check_name(&entry.config)?;
        let config_bytes = files.bytes(content, &entry.config)?;
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
        let mut layer_descs = Vec::new();
        let mut blobs = Vec::new();
        for (path, diff_id) in entry.layers.iter().zip(&diff_ids) {
            check_name(path)?;
            let (digest, size) = files.blob(content, path)?;
            let blob_path = content.blob_path(&digest);
            let media = layer_media_type(&blob_path)
                .map_err(|e| ArchiveError::Invalid(format!("{}: {e}", blob_path.display())))?;
            layer_descs.push(descriptor(media, size, &digest)?);
            blobs.push((digest, diff_id.clone()));
        }
        let chain = unpack_layers(files, content, snaps, &blobs)?;
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
    files: &Files,
    content: &ContentStore,
    snaps: &Snapshotter,
) -> Result<Vec<LoadedImage>, ArchiveError> {
    let index_bytes = files.bytes(content, "index.json")?;
    let AnyManifest::Index(index) = manifest::parse_manifest("index.json", &index_bytes)? else {
        return Err(ArchiveError::Invalid("index.json is not an index".into()));
    };
    let (os, arch) = manifest::host_platform();
    let mut out = Vec::new();
    for desc in index.manifests() {
        let tags = oci_tags(desc)?;
        let mut desc = desc.clone();
        let mut manifest_bytes = import_blob(files, content, &desc)?;
        // A nested index (multi-platform image): take this host's manifest.
        if let AnyManifest::Index(inner) =
            manifest::parse_manifest(desc.digest().as_ref(), &manifest_bytes)?
        {
            desc = manifest::select_platform(&inner, os, arch, None)?.clone();
            manifest_bytes = import_blob(files, content, &desc)?;
        }
        let what = desc.digest().to_string();
        let AnyManifest::Image(m) = manifest::parse_manifest(&what, &manifest_bytes)? else {
            return Err(ArchiveError::Invalid(format!(
                "{what}: an index inside an index inside an index"
            )));
        };
        let config_bytes = import_blob(files, content, m.config())?;
        let config = manifest::parse_config(m.config().digest().as_ref(), &config_bytes)?;
        let diff_ids = parse_diff_ids(&what, config.rootfs().diff_ids())?;
        if diff_ids.len() != m.layers().len() {
            return Err(ArchiveError::Invalid(format!(
                "{what}: {} layers but the config has {} diff IDs",
                m.layers().len(),
                diff_ids.len()
            )));
        }
        let mut blobs = Vec::new();
        for (layer_desc, diff_id) in m.layers().iter().zip(&diff_ids) {
            import_blob_stream(files, content, layer_desc)?;
            blobs.push((digest_of(layer_desc)?, diff_id.clone()));
        }
        let chain = unpack_layers(files, content, snaps, &blobs)?;
        out.push(LoadedImage {
            manifest: digest_of(&desc)?,
            config: digest_of(m.config())?,
            chain,
            tags,
        });
    }
    Ok(out)
}

/// Unpacks an image's layers (stored blobs with their diff IDs, bottom first) that are not
/// unpacked yet, several at a time: each layer's tree is independent of the others, and the
/// chain IDs follow from the diff IDs alone. Returns the chain IDs.
fn unpack_layers(
    files: &Files,
    content: &ContentStore,
    snaps: &Snapshotter,
    layers: &[(Digest, Digest)],
) -> Result<Vec<Digest>, ArchiveError> {
    let mut chains: Vec<Digest> = Vec::with_capacity(layers.len());
    for (_, diff_id) in layers {
        chains.push(crate::snapshot::chain_id(chains.last(), diff_id));
    }
    let todo: Vec<usize> = (0..layers.len())
        .filter(|&i| !snaps.has(&chains[i]))
        .collect();
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(todo.len());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let first_error: std::sync::Mutex<Option<ArchiveError>> = std::sync::Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(&i) = todo.get(k) else { break };
                if first_error.lock().expect("lock").is_some() {
                    break;
                }
                let (blob, diff_id) = &layers[i];
                let parent = i.checked_sub(1).map(|p| &chains[p]);
                let staged = files.staged.lock().expect("lock").remove(blob);
                // Unpacked while it arrived: hashed then, or an uncompressed blob whose
                // digest (verified by the content store) must then be the diff ID.
                if let Some(s) = staged.filter(|s| s.stats().diff_id.is_some() || blob == diff_id) {
                    if let Err(e) = snaps.adopt(s, parent, Some(diff_id)) {
                        first_error.lock().expect("lock").get_or_insert(e.into());
                    }
                    continue;
                }
                // An uncompressed layer's blob digest is its diff ID, and the content store
                // has verified the blob: no need to hash it a second time while unpacking.
                let opts = UnpackOptions {
                    diff_id_known: blob == diff_id,
                    ..UnpackOptions::for_image_layers()
                };
                let result = content
                    .open_blob(blob)
                    .map_err(ArchiveError::from)
                    .and_then(|file| {
                        snaps
                            .unpack_unchecked(parent, BufReader::new(file), Some(diff_id), &opts)
                            .map_err(ArchiveError::from)
                    });
                if let Err(e) = result {
                    first_error.lock().expect("lock").get_or_insert(e);
                }
            });
        }
    });
    match first_error.into_inner().expect("lock") {
        Some(e) => Err(e),
        None => Ok(chains),
    }
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

/// The media type of a stored layer blob, from its first bytes (shared with `import`).
pub(crate) fn layer_media_type(blob: &Path) -> std::io::Result<MediaType> {
    let mut head = [0u8; 4];
    let n = std::fs::File::open(blob).and_then(|mut f| f.read(&mut head))?;
    Ok(match detect_compression(&head[..n]) {
        Compression::None => MediaType::ImageLayer,
        Compression::Gzip => MediaType::ImageLayerGzip,
        Compression::Zstd => MediaType::ImageLayerZstd,
    })
}

/// A layout blob, checked against its descriptor's digest and size; returns its bytes (for
/// manifests and configs, which are small).
fn import_blob(
    files: &Files,
    content: &ContentStore,
    desc: &Descriptor,
) -> Result<Vec<u8>, ArchiveError> {
    import_blob_stream(files, content, desc)?;
    Ok(content.read(&digest_of(desc)?)?)
}

/// Makes sure the blob a descriptor names is in the store with the right digest and size.
fn import_blob_stream(
    files: &Files,
    content: &ContentStore,
    desc: &Descriptor,
) -> Result<(), ArchiveError> {
    let want = digest_of(desc)?;
    let name = format!("blobs/sha256/{}", want.hex());
    let (got, size) = match files.blob(content, &name) {
        Ok(b) => b,
        // Not in this archive, but the store may already have it (a shared base layer).
        Err(ArchiveError::Missing(_)) if content.contains(&want) => return Ok(()),
        Err(e) => return Err(e),
    };
    if got != want {
        return Err(ArchiveError::Content(ContentError::DigestMismatch {
            expected: want,
            actual: got,
        }));
    }
    if size != desc.size() {
        return Err(ArchiveError::Content(ContentError::SizeMismatch {
            digest: want,
            expected: desc.size(),
            actual: size,
        }));
    }
    Ok(())
}

/// Refuses names in manifest.json that leave the archive.
fn check_name(name: &str) -> Result<(), ArchiveError> {
    let rel = Path::new(name);
    if rel.components().any(|c| {
        !matches!(
            c,
            std::path::Component::Normal(_) | std::path::Component::CurDir
        )
    }) {
        return Err(ArchiveError::Missing(format!(
            "{name:?}: path leaves the archive"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first bytes of a tar stream, as the tar crate writes them (GNU header).
    fn tar_head() -> Vec<u8> {
        let mut h = tar::Header::new_gnu();
        h.set_path("etc/hostname").unwrap();
        h.set_size(0);
        h.set_cksum();
        h.as_bytes().to_vec()
    }

    #[test]
    fn speculates_on_large_new_blobs_that_look_like_layers() {
        let dir = tempfile::tempdir().unwrap();
        let content = ContentStore::open(dir.path()).unwrap();
        let mb = 1 << 20;
        let tar = tar_head();
        assert!(speculate(&content, "l0/layer.tar", mb, &tar));
        assert!(speculate(&content, "blobs/sha256/ab", 5 * mb, &tar));
        assert!(speculate(&content, "x", mb, &[0x1f, 0x8b, 8, 0]), "gzip");
        assert!(
            speculate(&content, "x", mb, &[0x28, 0xb5, 0x2f, 0xfd]),
            "zstd"
        );
        assert!(!speculate(&content, "x", mb - 1, &tar), "small");
        assert!(
            !speculate(&content, "x", mb, b"{\"config\": {}}"),
            "not a layer"
        );
        assert!(
            !speculate(&content, "x", mb, &tar[..200]),
            "too short to tell"
        );
        let have = content.put(b"a layer the store has").unwrap();
        let name = format!("blobs/sha256/{}", have.hex());
        assert!(!speculate(&content, &name, mb, &tar), "already stored");
    }
}
