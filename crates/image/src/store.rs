//! The image store: content, snapshots and the metadata that ties them together (images,
//! tags), with Docker's `rmi` rules and a mark-and-sweep garbage collector.
//!
//! Metadata are small JSON files replaced atomically (write, fsync, rename, fsync the
//! directory): `images/<id hex>.json` per image and `tags.json` for all tags. Writes happen in
//! an order that keeps the store consistent after a crash at any point: blobs and snapshots
//! first, then the image record, then its tags; removal goes the other way. Anything a crash
//! leaves unreferenced is what [`ImageStore::gc`] sweeps. Mutations take an exclusive lock on
//! `<root>/lock`, so several processes can share a store.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::archive::{self, ArchiveError, LoadedImage};
use crate::content::{ContentError, ContentStore};
use crate::digest::Digest;
use crate::manifest::{self, AnyManifest, ManifestError};
use crate::reference::{Reference, ReferenceError};
use crate::snapshot::{SnapshotError, Snapshotter};

/// What the store records about an image; everything else is in its blobs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The image ID: its config's digest.
    pub id: Digest,
    /// Its manifest's digest.
    pub manifest: Digest,
    /// Chain IDs of its layers, bottom first.
    pub chain: Vec<Digest>,
}

/// Store errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No image by that name or ID.
    #[error("No such image: {0}")]
    NoSuchImage(String),
    /// A short ID that matches more than one image.
    #[error("image ID prefix {0:?} is ambiguous")]
    Ambiguous(String),
    /// Docker's refusals of `rmi` (message as Docker words it).
    #[error("conflict: unable to delete {id} (must be forced) - {why}")]
    Conflict {
        /// Short image ID.
        id: String,
        /// Why.
        why: String,
    },
    /// Blob trouble.
    #[error(transparent)]
    Content(#[from] ContentError),
    /// Snapshot trouble.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// Archive trouble.
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// A stored manifest no longer parses.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// A bad reference.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// A metadata file is unreadable or malformed.
    #[error("{}: {why}", path.display())]
    Metadata {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
}

/// What [`ImageStore::remove`] did, in Docker's words (`Untagged:` / `Deleted:` lines).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Removed {
    /// Tags removed.
    pub untagged: Vec<Reference>,
    /// Image IDs deleted.
    pub deleted: Vec<Digest>,
}

/// What [`ImageStore::gc`] swept.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GcStats {
    /// Blobs removed.
    pub blobs: usize,
    /// Snapshots removed.
    pub snapshots: usize,
    /// Leftovers of loads, imports or commits that never finished (a crash): temporary blob
    /// files and half-unpacked layer trees.
    pub unfinished: usize,
    /// The sweep was put off: a load, import or commit was storing content no record names
    /// yet. The next collection sweeps what this one would have.
    pub deferred: bool,
}

/// The image store under one root.
#[derive(Debug, Clone)]
pub struct ImageStore {
    root: PathBuf,
    content: ContentStore,
    snapshots: Snapshotter,
    /// A collection was put off by an ingest in this process: the last ingest to finish runs
    /// it (one put off by another process's ingest waits for the next rmi or prune).
    gc_pending: std::sync::Arc<std::sync::atomic::AtomicBool>,
    trash: std::sync::Arc<Trash>,
}

/// Where collected blobs and snapshots wait to be deleted: `<root>/trash/gc-*/`. A sweep
/// only renames what it collects in here (the store no longer has it the moment the rename
/// is done); freeing the blocks is slow on ext4 (a 100 MB image's files take a quarter of a
/// second once written back), so it happens outside the store's locks, in the background
/// when the store is set up so ([`ImageStore::delete_in_background`]). Whatever a crash
/// leaves here is deleted the next time the trash is emptied (by the next collection, or
/// when a daemon sets its store up): nothing in the trash is ever used again.
#[derive(Debug)]
struct Trash {
    dir: PathBuf,
    /// Empty it in a thread of its own rather than in the caller of `gc`.
    background: std::sync::atomic::AtomicBool,
    /// Held by whoever is emptying it.
    busy: std::sync::Mutex<()>,
    /// More was put in since the emptier last looked.
    dirty: std::sync::atomic::AtomicBool,
}

/// The shared ingest lock, held while a load, import or commit stores content; released,
/// it runs a collection that was put off meanwhile.
struct Ingest<'a> {
    store: &'a ImageStore,
    lock: Option<File>,
}

impl Drop for Ingest<'_> {
    fn drop(&mut self) {
        drop(self.lock.take());
        if self
            .store
            .gc_pending
            .swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            // Best effort: another ingest still running puts it off again.
            let _ = self.store.gc();
        }
    }
}

impl ImageStore {
    /// Opens (creating if needed) a store.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let root = root.into();
        let images = root.join("images");
        std::fs::create_dir_all(&images).map_err(|e| meta_err(&images, e))?;
        let trash = root.join("trash");
        std::fs::create_dir_all(&trash).map_err(|e| meta_err(&trash, e))?;
        Ok(ImageStore {
            content: ContentStore::open(root.join("content"))?,
            snapshots: Snapshotter::open(root.join("snapshots"))?,
            root,
            gc_pending: Default::default(),
            trash: std::sync::Arc::new(Trash {
                dir: trash,
                background: Default::default(),
                busy: Default::default(),
                dirty: Default::default(),
            }),
        })
    }

    /// From now on, what [`ImageStore::gc`] collects is deleted in a background thread, so
    /// that `rmi` and `image prune` answer once the images are gone from the store rather
    /// than once their files are freed (containerd's collector is lazy the same way).
    /// Starts by emptying what a crash left in the trash.
    pub fn delete_in_background(self) -> Result<Self, StoreError> {
        self.trash
            .background
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.empty_trash_soon()?;
        Ok(self)
    }

    /// Deletes everything in the trash; returns how many sweeps' worth it deleted. If
    /// another thread of this process is emptying it, leaves the job to that one (which
    /// looks again before it stops) and returns 0 at once.
    pub fn empty_trash(&self) -> Result<usize, StoreError> {
        use std::sync::atomic::Ordering::SeqCst;
        let t = &self.trash;
        t.dirty.store(true, SeqCst);
        let mut deleted = 0;
        loop {
            let Ok(_busy) = t.busy.try_lock() else {
                return Ok(deleted);
            };
            while t.dirty.swap(false, SeqCst) {
                // Listed under the metadata lock, under which a sweep makes and fills its
                // directory: a sweep still moving things into one is never deleted under it.
                let entries: Vec<PathBuf> = {
                    let _lock = self.lock()?;
                    std::fs::read_dir(&t.dir)
                        .and_then(|r| r.map(|e| e.map(|e| e.path())).collect())
                        .map_err(|e| meta_err(&t.dir, e))?
                };
                for path in entries {
                    match std::fs::remove_dir_all(&path) {
                        Ok(()) => deleted += 1,
                        // Another process sharing the store emptied it first.
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(meta_err(&path, e)),
                    }
                }
            }
            drop(_busy);
            // Something put in between the last look and the unlock is still ours.
            if !t.dirty.load(SeqCst) {
                return Ok(deleted);
            }
        }
    }

    /// Empties the trash now or, for a store that deletes in the background, in a thread.
    fn empty_trash_soon(&self) -> Result<(), StoreError> {
        let dir = &self.trash.dir;
        if std::fs::read_dir(dir)
            .map_err(|e| meta_err(dir, e))?
            .next()
            .is_none()
        {
            return Ok(());
        }
        if !self
            .trash
            .background
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            return self.empty_trash().map(drop);
        }
        let store = self.clone();
        std::thread::Builder::new()
            .name("image-trash".into())
            .spawn(move || {
                // Best effort: what fails stays in the trash for the next emptying.
                let _ = store.empty_trash();
            })
            .map_err(|e| meta_err(&self.trash.dir, e))?;
        Ok(())
    }

    /// The blobs.
    pub fn content(&self) -> &ContentStore {
        &self.content
    }

    /// The layer snapshots.
    pub fn snapshots(&self) -> &Snapshotter {
        &self.snapshots
    }

    /// Loads an archive (`docker save` or OCI layout) and records and tags its images.
    ///
    /// Reading the archive (as slow as whoever sends it) holds only the ingest lock, which
    /// other loads, imports and commits share and which only puts off garbage collection;
    /// the metadata lock is taken just to record the images at the end.
    pub fn load<R: Read>(
        &self,
        reader: R,
    ) -> Result<Vec<(ImageRecord, Vec<Reference>)>, StoreError> {
        let _ingest = self.ingest_lock()?;
        let loaded = archive::load(reader, &self.content, &self.snapshots)?;
        let _lock = self.lock()?;
        let mut out = Vec::new();
        for LoadedImage {
            manifest,
            config,
            chain,
            tags,
        } in loaded
        {
            let record = ImageRecord {
                id: config,
                manifest,
                chain,
            };
            self.write_record(&record)?;
            let mut all = self.read_tags()?;
            for t in &tags {
                all.insert(t.to_string(), record.id.clone());
            }
            self.write_tags(&all)?;
            out.push((record, tags));
        }
        Ok(out)
    }

    /// Every image, sorted by ID.
    pub fn images(&self) -> Result<Vec<ImageRecord>, StoreError> {
        let dir = self.root.join("images");
        let mut out = Vec::new();
        for e in std::fs::read_dir(&dir)
            .map_err(|e| meta_err(&dir, e))?
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(hex) = name.strip_suffix(".json") {
                if format!("sha256:{hex}").parse::<Digest>().is_ok() {
                    out.push(self.read_record(&e.path())?);
                }
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// All tags, by normalized reference.
    pub fn tags(&self) -> Result<BTreeMap<String, Digest>, StoreError> {
        self.read_tags()
    }

    /// The tags of one image.
    pub fn tags_of(&self, id: &Digest) -> Result<Vec<Reference>, StoreError> {
        Ok(self
            .read_tags()?
            .into_iter()
            .filter(|(_, d)| d == id)
            .filter_map(|(r, _)| Reference::parse(&r).ok())
            .collect())
    }

    /// Finds an image as Docker does: a reference (`busybox`, `busybox:1`), a full ID
    /// (`sha256:…`), or an unambiguous ID prefix (at least 4 hex digits, like `docker rmi`).
    pub fn resolve(&self, name: &str) -> Result<ImageRecord, StoreError> {
        let hex = name.strip_prefix("sha256:").unwrap_or(name);
        if hex.len() >= 4
            && hex.len() <= 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        {
            let matches: Vec<ImageRecord> = self
                .images()?
                .into_iter()
                .filter(|i| i.id.hex().starts_with(hex))
                .collect();
            match matches.len() {
                1 => return Ok(matches.into_iter().next().expect("one")),
                0 => {}
                _ => return Err(StoreError::Ambiguous(name.to_string())),
            }
        }
        let r = Reference::parse(name).map_err(|_| StoreError::NoSuchImage(name.to_string()))?;
        let id = self
            .read_tags()?
            .get(&r.to_string())
            .cloned()
            .ok_or_else(|| StoreError::NoSuchImage(r.familiar()))?;
        self.record(&id)
    }

    /// The record of an image ID.
    pub fn record(&self, id: &Digest) -> Result<ImageRecord, StoreError> {
        let path = self.record_path(id);
        if !path.exists() {
            return Err(StoreError::NoSuchImage(id.to_string()));
        }
        self.read_record(&path)
    }

    /// The image's manifest and config, read back and verified from the content store.
    pub fn config_of(
        &self,
        image: &ImageRecord,
    ) -> Result<oci_spec::image::ImageConfiguration, StoreError> {
        let bytes = self.content.read(&image.id)?;
        Ok(manifest::parse_config(&image.id.to_string(), &bytes)?)
    }

    /// An image's config blob as JSON, with the fields Docker adds to the OCI ones
    /// (`container`, `container_config`, `docker_version`).
    pub fn raw_config(&self, image: &ImageRecord) -> Result<serde_json::Value, StoreError> {
        let bytes = self.content.read(&image.id)?;
        serde_json::from_slice(&bytes)
            .map_err(|e| meta_err(&self.content.blob_path(&image.id), e.into()))
    }

    /// Tags an image (`docker tag`); moves the tag if it named another image.
    pub fn tag(&self, id: &Digest, r: &Reference) -> Result<(), StoreError> {
        let _lock = self.lock()?;
        self.record(id)?;
        let mut all = self.read_tags()?;
        all.insert(r.to_string(), id.clone());
        self.write_tags(&all)
    }

    /// `docker rmi`: a reference removes that tag, and the image once no tag is left; an ID
    /// removes the image if it has at most one tag (more need `force`). An image that
    /// `in_use` says a container uses is refused unless `force`, and then only untagged: it
    /// stays (dangling) while a container needs its layers.
    pub fn remove(
        &self,
        name: &str,
        force: bool,
        in_use: &dyn Fn(&Digest) -> bool,
    ) -> Result<Removed, StoreError> {
        let _lock = self.lock()?;
        let image = self.resolve(name)?;
        let short = image.id.hex()[..12].to_string();
        let mut tags = self.read_tags()?;
        let mine: Vec<String> = tags
            .iter()
            .filter(|(_, d)| **d == image.id)
            .map(|(r, _)| r.clone())
            .collect();
        let by_ref = Reference::parse(name)
            .ok()
            .filter(|r| mine.contains(&r.to_string()));
        let mut removed = Removed::default();
        if let Some(r) = &by_ref {
            if mine.len() > 1 {
                tags.remove(&r.to_string());
                self.write_tags(&tags)?;
                removed.untagged.push(r.clone());
                return Ok(removed);
            }
        } else if mine.len() > 1 && !force {
            return Err(StoreError::Conflict {
                id: short,
                why: "image is referenced in multiple repositories".into(),
            });
        }
        if in_use(&image.id) && !force {
            return Err(StoreError::Conflict {
                id: short,
                why: "image is being used by a container".into(),
            });
        }
        for r in &mine {
            tags.remove(r);
            removed.untagged.extend(Reference::parse(r).ok());
        }
        self.write_tags(&tags)?;
        if in_use(&image.id) {
            // Forced while a container uses it: the tags go, the image stays (dangling) for
            // as long as the container needs its layers; prune and gc skip it.
            return Ok(removed);
        }
        let path = self.record_path(&image.id);
        std::fs::remove_file(&path).map_err(|e| meta_err(&path, e))?;
        sync_dir(&self.root.join("images"))?;
        removed.deleted.push(image.id);
        Ok(removed)
    }

    /// Removes images without tags (`docker image prune`), except those `in_use`; then
    /// collects garbage. Returns the removed IDs.
    pub fn prune_dangling(
        &self,
        in_use: &dyn Fn(&Digest) -> bool,
    ) -> Result<(Vec<Digest>, GcStats), StoreError> {
        let removed = {
            let _lock = self.lock()?;
            let tagged: BTreeSet<Digest> = self.read_tags()?.into_values().collect();
            let mut removed = Vec::new();
            for img in self.images()? {
                if !tagged.contains(&img.id) && !in_use(&img.id) {
                    let path = self.record_path(&img.id);
                    std::fs::remove_file(&path).map_err(|e| meta_err(&path, e))?;
                    removed.push(img.id);
                }
            }
            sync_dir(&self.root.join("images"))?;
            removed
        };
        Ok((removed, self.gc()?))
    }

    /// Mark and sweep: every blob and snapshot no image record reaches is removed. A blob or
    /// snapshot an image needs is never touched, nor one a load, import or commit under way
    /// has stored for an image it has not recorded yet: while one is, the sweep is put off
    /// ([`GcStats::deferred`]) rather than waiting for it.
    pub fn gc(&self) -> Result<GcStats, StoreError> {
        let path = self.root.join("ingest.lock");
        let ingest = File::create(&path).map_err(|e| meta_err(&path, e))?;
        match rustix::fs::flock(
            &ingest,
            rustix::fs::FlockOperation::NonBlockingLockExclusive,
        ) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => {
                self.gc_pending
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                return Ok(GcStats {
                    deferred: true,
                    ..GcStats::default()
                });
            }
            Err(e) => return Err(meta_err(&path, e.into())),
        }
        let _lock = self.lock()?;
        let mut blobs: BTreeSet<Digest> = BTreeSet::new();
        let mut snaps: BTreeSet<Digest> = BTreeSet::new();
        for img in self.images()? {
            blobs.insert(img.id.clone());
            blobs.insert(img.manifest.clone());
            let bytes = self.content.read(&img.manifest)?;
            if let AnyManifest::Image(m) =
                manifest::parse_manifest(&img.manifest.to_string(), &bytes)?
            {
                for l in m.layers() {
                    if let Ok(d) = l.digest().to_string().parse() {
                        blobs.insert(d);
                    }
                }
            }
            snaps.extend(img.chain.iter().cloned());
        }
        let mut stats = GcStats::default();
        // One directory in the trash per sweep, made when the first thing is collected.
        let mut bin: Option<PathBuf> = None;
        let mut make_bin = || -> std::io::Result<PathBuf> {
            if bin.is_none() {
                let dir = tempfile::Builder::new()
                    .prefix("gc-")
                    .tempdir_in(&self.trash.dir)?
                    .keep();
                bin = Some(dir);
            }
            Ok(bin.clone().expect("made above"))
        };
        let trash_dir = &self.trash.dir;
        let mut bin = || make_bin().map_err(|e| meta_err(trash_dir, e));
        for d in self.content.list()? {
            if !blobs.contains(&d) && self.content.move_out(&d, &bin()?)? {
                stats.blobs += 1;
            }
        }
        for s in self.snapshots.list() {
            if !snaps.contains(&s) {
                self.snapshots.move_out(&s, &bin()?)?;
                stats.snapshots += 1;
            }
        }
        // Holding the ingest lock exclusively, no load, import or commit of any process is
        // under way: whatever temporaries they left are from one that died.
        stats.unfinished = self.content.move_out_unfinished(&mut make_bin)?
            + self.snapshots.move_out_unfinished(&mut make_bin)?;
        drop(_lock);
        drop(ingest);
        self.empty_trash_soon()?;
        Ok(stats)
    }

    fn record_path(&self, id: &Digest) -> PathBuf {
        self.root.join("images").join(format!("{}.json", id.hex()))
    }

    fn read_record(&self, path: &Path) -> Result<ImageRecord, StoreError> {
        let bytes = std::fs::read(path).map_err(|e| meta_err(path, e))?;
        serde_json::from_slice(&bytes).map_err(|e| StoreError::Metadata {
            path: path.to_path_buf(),
            why: e.to_string(),
        })
    }

    fn write_record(&self, r: &ImageRecord) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec_pretty(r).expect("record serializes");
        write_durable(&self.record_path(&r.id), &bytes)
    }

    fn read_tags(&self) -> Result<BTreeMap<String, Digest>, StoreError> {
        let path = self.root.join("tags.json");
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| StoreError::Metadata {
                path: path.clone(),
                why: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(meta_err(&path, e)),
        }
    }

    fn write_tags(&self, tags: &BTreeMap<String, Digest>) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec_pretty(tags).expect("tags serialize");
        write_durable(&self.root.join("tags.json"), &bytes)
    }

    /// The metadata lock (records and tags), exclusive and held briefly. Never taken
    /// before the ingest lock, so the two cannot deadlock.
    fn lock(&self) -> Result<File, StoreError> {
        self.flock("lock", rustix::fs::FlockOperation::LockExclusive)
    }

    /// The ingest lock, shared: held while content for an image not yet recorded is stored,
    /// so that garbage collection (which takes it exclusively) leaves that content alone.
    fn ingest_lock(&self) -> Result<Ingest<'_>, StoreError> {
        let lock = self.flock("ingest.lock", rustix::fs::FlockOperation::LockShared)?;
        Ok(Ingest {
            store: self,
            lock: Some(lock),
        })
    }

    fn flock(&self, name: &str, how: rustix::fs::FlockOperation) -> Result<File, StoreError> {
        let path = self.root.join(name);
        let f = File::create(&path).map_err(|e| meta_err(&path, e))?;
        rustix::fs::flock(&f, how).map_err(|e| meta_err(&path, e.into()))?;
        Ok(f)
    }
}

fn meta_err(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Metadata {
        path: path.to_path_buf(),
        why: e.to_string(),
    }
}

/// Write, fsync, rename, fsync the directory: the file is either old or new after any crash.
fn write_durable(path: &Path, data: &[u8]) -> Result<(), StoreError> {
    berth_atomic::write(path, data, berth_atomic::Durability::Durable)
        .map_err(|e| meta_err(path, e))
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    berth_atomic::sync_dir(dir).map_err(|e| meta_err(dir, e))
}

impl ImageStore {
    /// `docker save`: writes the named images as one tar in the layout Docker 25+ writes, which
    /// older Docker, skopeo and OCI tools all read: `manifest.json` and `repositories` for
    /// `docker load`, and an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/`).
    pub fn save<W: Write>(&self, names: &[&str], out: W) -> Result<(), StoreError> {
        let mut images: Vec<(ImageRecord, Vec<Reference>)> = Vec::new();
        for name in names {
            let img = self.resolve(name)?;
            // `save busybox:1` saves that tag; `save <id>` saves the image with all its tags.
            let tags = match Reference::parse(name) {
                Ok(r) if self.read_tags()?.get(&r.to_string()) == Some(&img.id) => vec![r],
                _ => self.tags_of(&img.id)?,
            };
            match images.iter_mut().find(|(i, _)| i.id == img.id) {
                Some((_, t)) => t.extend(tags),
                None => images.push((img, tags)),
            }
        }
        let mut tar = tar::Builder::new(out);
        let mut written: BTreeSet<Digest> = BTreeSet::new();
        let mut docker_manifest = Vec::new();
        let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        let mut index_entries = Vec::new();
        for (img, tags) in &images {
            let manifest_bytes = self.content.read(&img.manifest)?;
            let AnyManifest::Image(m) =
                manifest::parse_manifest(&img.manifest.to_string(), &manifest_bytes)?
            else {
                return Err(StoreError::Metadata {
                    path: self.content.blob_path(&img.manifest),
                    why: "an image's manifest is an index".into(),
                });
            };
            let mut layer_paths = Vec::new();
            let mut blobs = vec![img.manifest.clone(), img.id.clone()];
            for l in m.layers() {
                let d: Digest =
                    l.digest()
                        .to_string()
                        .parse()
                        .map_err(|e: crate::digest::DigestError| StoreError::Metadata {
                            path: self.content.blob_path(&img.manifest),
                            why: e.to_string(),
                        })?;
                layer_paths.push(format!("blobs/sha256/{}", d.hex()));
                blobs.push(d);
            }
            for d in blobs {
                if written.insert(d.clone()) {
                    append_blob(&mut tar, &self.content, &d)?;
                }
            }
            let familiar: Vec<String> = tags.iter().map(|t| t.familiar()).collect();
            docker_manifest.push(serde_json::json!({
                "Config": format!("blobs/sha256/{}", img.id.hex()),
                "RepoTags": if familiar.is_empty() { serde_json::Value::Null } else { familiar.clone().into() },
                "Layers": layer_paths,
            }));
            let top = layer_paths
                .last()
                .map(|p| p.trim_start_matches("blobs/sha256/").to_string());
            for t in tags {
                if let (Some(tag), Some(top)) = (t.tag(), &top) {
                    repositories
                        .entry(t.familiar_name())
                        .or_default()
                        .insert(tag.to_string(), top.clone());
                }
            }
            let base = serde_json::json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": img.manifest.to_string(),
                "size": manifest_bytes.len(),
            });
            if tags.is_empty() {
                index_entries.push(base.clone());
            }
            for t in tags {
                let mut e = base.clone();
                e["annotations"] = serde_json::json!({
                    "io.containerd.image.name": t.to_string(),
                    "org.opencontainers.image.ref.name": t.tag().unwrap_or("latest"),
                });
                index_entries.push(e);
            }
        }
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": index_entries,
        });
        let files: [(&str, Vec<u8>); 4] = [
            ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()),
            ("index.json", serde_json::to_vec(&index).expect("json")),
            (
                "manifest.json",
                serde_json::to_vec(&docker_manifest).expect("json"),
            ),
            (
                "repositories",
                serde_json::to_vec(&repositories).expect("json"),
            ),
        ];
        for (name, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            tar.append_data(&mut h, name, &data[..])
                .map_err(|e| meta_err(Path::new(name), e))?;
        }
        tar.finish().map_err(|e| meta_err(Path::new("archive"), e))
    }
}

fn append_blob<W: Write>(
    tar: &mut tar::Builder<W>,
    content: &ContentStore,
    d: &Digest,
) -> Result<(), StoreError> {
    let file = content.open_blob(d)?;
    let len = file
        .metadata()
        .map_err(|e| meta_err(&content.blob_path(d), e))?
        .len();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(len);
    h.set_mode(0o644);
    let name = format!("blobs/sha256/{}", d.hex());
    tar.append_data(&mut h, &name, file)
        .map_err(|e| meta_err(Path::new(&name), e))
}

impl ImageStore {
    /// `docker import`: a root filesystem tarball (plain, gzip or zstd) becomes a one-layer
    /// image with `changes` applied to its config, tagged `reference` if given.
    pub fn import<R: Read>(
        &self,
        reader: R,
        reference: Option<&Reference>,
        changes: &[String],
        created: &str,
    ) -> Result<ImageRecord, StoreError> {
        let mut config_section = serde_json::Map::new();
        for c in changes {
            crate::change::apply(&mut config_section, c).map_err(|e| StoreError::Metadata {
                path: PathBuf::from("--change"),
                why: e.to_string(),
            })?;
        }
        let _ingest = self.ingest_lock()?;
        let (blob, size) = self
            .content
            .write(reader, &crate::content::Expected::default())?;
        // A rootfs tarball holds device nodes under /dev; as root they are recreated.
        let opts = crate::layer::UnpackOptions::for_image_layers();
        let file = self.content.open_blob(&blob)?;
        // On failure the blob stays: another image may have the same one, and gc() sweeps it
        // if none does.
        let (chain, stats) =
            self.snapshots
                .unpack(None, std::io::BufReader::new(file), None, &opts)?;
        let diff_id = stats.diff_id.expect("unpack sets it");
        let (os, arch) = manifest::host_platform();
        let config = serde_json::json!({
            "architecture": arch,
            "os": os,
            "created": created,
            "config": config_section,
            "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string()]},
            "history": [{"created": created, "created_by": "berth import", "comment": "Imported from tarball"}],
        });
        let blob_path = self.content.blob_path(&blob);
        let layer_media = crate::archive::layer_media_type(&blob_path)
            .map_err(|e| meta_err(&blob_path, e))?
            .to_string();
        let layers = vec![
            serde_json::json!({"mediaType": layer_media, "size": size, "digest": blob.to_string()}),
        ];
        self.add_image(&config, layers, vec![chain], reference)
    }

    /// Stores an image made here (import, commit): its config and an OCI manifest over
    /// `layers` (descriptors of blobs already stored), the record, the tag. The caller holds
    /// the ingest lock; the metadata lock is taken here.
    fn add_image(
        &self,
        config: &serde_json::Value,
        layers: Vec<serde_json::Value>,
        chain: Vec<Digest>,
        reference: Option<&Reference>,
    ) -> Result<ImageRecord, StoreError> {
        let config_bytes = serde_json::to_vec(config).expect("json");
        let config_digest = self.content.put(&config_bytes)?;
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": config_bytes.len(), "digest": config_digest.to_string()},
            "layers": layers,
        });
        let manifest_digest = self
            .content
            .put(&serde_json::to_vec(&manifest).expect("json"))?;
        let _lock = self.lock()?;
        let record = ImageRecord {
            id: config_digest,
            manifest: manifest_digest,
            chain,
        };
        self.write_record(&record)?;
        if let Some(r) = reference {
            let mut all = self.read_tags()?;
            all.insert(r.to_string(), record.id.clone());
            self.write_tags(&all)?;
        }
        Ok(record)
    }

    /// `docker commit`: a new image made of `parent`'s layers plus `layer` (a tar, e.g. a
    /// container's changes from [`crate::diff::write_diff`]), with `config` as its runtime
    /// config section and one more history entry; tagged `reference` if given. `container`
    /// (its ID) and its config are recorded as Docker records them (`container`,
    /// `container_config`).
    #[allow(clippy::too_many_arguments)]
    pub fn commit<R: Read>(
        &self,
        parent: &ImageRecord,
        layer: R,
        container: &str,
        config: serde_json::Value,
        reference: Option<&Reference>,
        comment: &str,
        author: &str,
        created_by: &str,
        created: &str,
    ) -> Result<ImageRecord, StoreError> {
        let _ingest = self.ingest_lock()?;
        let parent_config: serde_json::Value =
            serde_json::from_slice(&self.content.read(&parent.id)?)
                .map_err(|e| meta_err(&self.content.blob_path(&parent.id), e.into()))?;
        let parent_manifest: serde_json::Value =
            serde_json::from_slice(&self.content.read(&parent.manifest)?)
                .map_err(|e| meta_err(&self.content.blob_path(&parent.manifest), e.into()))?;
        let (blob, size) = self
            .content
            .write(layer, &crate::content::Expected::default())?;
        let opts = crate::layer::UnpackOptions::for_image_layers();
        let file = self.content.open_blob(&blob)?;
        let (chain, stats) = self.snapshots.unpack(
            parent.chain.last(),
            std::io::BufReader::new(file),
            None,
            &opts,
        )?;
        let diff_id = stats.diff_id.expect("unpack sets it");
        let mut cfg = parent_config.clone();
        cfg["created"] = serde_json::json!(created);
        cfg["container"] = serde_json::json!(container);
        cfg["container_config"] = config.clone();
        cfg["config"] = config;
        if !author.is_empty() {
            cfg["author"] = serde_json::json!(author);
        }
        let mut diff_ids = cfg["rootfs"]["diff_ids"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        diff_ids.push(serde_json::json!(diff_id.to_string()));
        cfg["rootfs"] = serde_json::json!({"type": "layers", "diff_ids": diff_ids});
        let mut history = cfg["history"].as_array().cloned().unwrap_or_default();
        let mut h = serde_json::json!({"created": created, "created_by": created_by});
        if !comment.is_empty() {
            h["comment"] = serde_json::json!(comment);
        }
        if !author.is_empty() {
            h["author"] = serde_json::json!(author);
        }
        history.push(h);
        cfg["history"] = serde_json::json!(history);
        let mut layers = parent_manifest["layers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        layers.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "size": size,
            "digest": blob.to_string(),
        }));
        let mut chains = parent.chain.clone();
        chains.push(chain);
        self.add_image(&cfg, layers, chains, reference)
    }

    /// Total unpacked size of an image's layers.
    pub fn size_of(&self, image: &ImageRecord) -> u64 {
        image.chain.iter().map(|c| self.snapshots.size(c)).sum()
    }
}
