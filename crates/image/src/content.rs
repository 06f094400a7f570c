//! The content store: blobs (layers, configs, manifests) addressed by their sha256 digest.
//!
//! `<root>/blobs/sha256/<hex>` holds a blob; nothing else is ever under such a name. A write
//! streams into a private temporary file under `<root>/ingest/`, hashing as it goes, is
//! checked against the expected digest and size, fsynced, and only then renamed into place
//! (and the directory fsynced). A crash or a bad download therefore never leaves a partial blob
//! under a valid name, and concurrent writers of the same blob each write their own file and
//! rename identical content over one another.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::digest::Digest;

/// Content store errors.
#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    /// No blob with this digest.
    #[error("blob {0} not found")]
    NotFound(Digest),
    /// The data does not hash to the digest it was announced with.
    #[error("digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// What the caller said it would be.
        expected: Digest,
        /// What the data hashed to.
        actual: Digest,
    },
    /// The data is not as long as announced.
    #[error("size mismatch for {digest}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// The blob.
        digest: Digest,
        /// Announced size.
        expected: u64,
        /// Bytes received.
        actual: u64,
    },
    /// Reading the source or writing the store failed.
    #[error("{what} {}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// Where.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// A blob written and checked but not yet in the store ([`ContentStore::write_unsynced`]).
#[derive(Debug)]
pub struct Unsynced {
    tmp: tempfile::NamedTempFile,
    dest: PathBuf,
    /// What the blob hashes to.
    pub digest: Digest,
    /// Its length.
    pub size: u64,
}

impl Unsynced {
    /// fsyncs the blob, renames it into place and fsyncs the directory; returns its digest
    /// and size.
    pub fn commit(self) -> Result<(Digest, u64), ContentError> {
        self.tmp
            .as_file()
            .sync_all()
            .map_err(io_err("sync", self.tmp.path()))?;
        self.tmp
            .persist(&self.dest)
            .map_err(|e| io_err("rename into", &self.dest)(e.error))?;
        let dir = self.dest.parent().expect("blob has a directory");
        berth_atomic::sync_dir(dir).map_err(io_err("sync", dir))?;
        Ok((self.digest, self.size))
    }
}

/// An I/O error's mapping to [`ContentError::Io`]: what was being done, to which path.
fn io_err(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> ContentError {
    let path = path.to_path_buf();
    move |source| ContentError::Io { what, path, source }
}

/// A blob store rooted at a directory.
#[derive(Debug, Clone)]
pub struct ContentStore {
    root: PathBuf,
}

/// What a caller expects a blob to be; anything else is refused.
#[derive(Debug, Clone, Default)]
pub struct Expected {
    /// The digest it must hash to.
    pub digest: Option<Digest>,
    /// The size it must have.
    pub size: Option<u64>,
}

impl ContentStore {
    /// Opens (creating if needed) a store under `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, ContentError> {
        let root = root.into();
        for dir in [root.join("blobs/sha256"), root.join("ingest")] {
            std::fs::create_dir_all(&dir).map_err(|source| ContentError::Io {
                what: "create",
                path: dir.clone(),
                source,
            })?;
        }
        Ok(ContentStore { root })
    }

    /// Where a blob lives (whether or not it is there).
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(d.hex())
    }

    /// Whether the store has a blob.
    pub fn contains(&self, d: &Digest) -> bool {
        self.blob_path(d).is_file()
    }

    /// Opens a blob for reading.
    pub fn open_blob(&self, d: &Digest) -> Result<File, ContentError> {
        File::open(self.blob_path(d)).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => ContentError::NotFound(d.clone()),
            _ => ContentError::Io {
                what: "open",
                path: self.blob_path(d),
                source: e,
            },
        })
    }

    /// Reads a whole blob and checks it still hashes to its name (small blobs: manifests,
    /// configs).
    pub fn read(&self, d: &Digest) -> Result<Vec<u8>, ContentError> {
        let mut data = Vec::new();
        self.open_blob(d)?
            .read_to_end(&mut data)
            .map_err(|source| ContentError::Io {
                what: "read",
                path: self.blob_path(d),
                source,
            })?;
        let actual = Digest::of(&data);
        if &actual != d {
            return Err(ContentError::DigestMismatch {
                expected: d.clone(),
                actual,
            });
        }
        Ok(data)
    }

    /// Stores bytes and returns their digest.
    pub fn put(&self, data: &[u8]) -> Result<Digest, ContentError> {
        self.write(data, &Expected::default()).map(|(d, _)| d)
    }

    /// Streams a blob into the store; returns its digest and size. With `expected`, data that
    /// does not match is refused and nothing is stored.
    pub fn write<R: Read>(
        &self,
        reader: R,
        expected: &Expected,
    ) -> Result<(Digest, u64), ContentError> {
        self.write_unsynced(reader, expected)?.commit()
    }

    /// [`ContentStore::write`] up to the fsync: the blob is written and checked, but not in
    /// the store until [`Unsynced::commit`] (dropped, it is removed). A caller storing several
    /// blobs commits one in a thread while it writes the next: an fsync here waits ~60 ms
    /// for the disk whatever the blob's size, time the next blob's transfer can use.
    pub fn write_unsynced<R: Read>(
        &self,
        mut reader: R,
        expected: &Expected,
    ) -> Result<Unsynced, ContentError> {
        let ingest = self.root.join("ingest");
        let mut tmp = tempfile::Builder::new()
            .prefix("ingest-")
            .tempfile_in(&ingest)
            .map_err(io_err("create temporary file in", &ingest))?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_err("read source for", &ingest)(e)),
            };
            hasher.update(&buf[..n]);
            tmp.write_all(&buf[..n])
                .map_err(io_err("write", tmp.path()))?;
            size += n as u64;
        }
        let digest = Digest::from_hasher(hasher);
        if let Some(want) = &expected.digest {
            if want != &digest {
                return Err(ContentError::DigestMismatch {
                    expected: want.clone(),
                    actual: digest,
                });
            }
        }
        if let Some(want) = expected.size {
            if want != size {
                return Err(ContentError::SizeMismatch {
                    digest,
                    expected: want,
                    actual: size,
                });
            }
        }
        Ok(Unsynced {
            dest: self.blob_path(&digest),
            tmp,
            digest,
            size,
        })
    }

    /// Moves a blob out of the store into `dir` (same filesystem), to be deleted later;
    /// returns whether it was there. A rename: the blob is gone from the store at once,
    /// freeing its blocks is left to whoever empties `dir`.
    pub fn move_out(&self, d: &Digest, dir: &Path) -> Result<bool, ContentError> {
        let dest = dir.join(format!("blob-{}", d.hex()));
        match std::fs::rename(self.blob_path(d), &dest) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(ContentError::Io {
                what: "move out",
                path: self.blob_path(d),
                source,
            }),
        }
    }

    /// Moves the temporary files of writes that never finished (a crash) into `dir`;
    /// returns how many. Only for a caller that knows no write is under way (the image
    /// store's collector, holding the ingest lock).
    /// `dir` is asked for only if there is something to move.
    pub fn move_out_unfinished(
        &self,
        dir: &mut dyn FnMut() -> io::Result<PathBuf>,
    ) -> Result<usize, ContentError> {
        let ingest = self.root.join("ingest");
        crate::snapshot::move_out_prefixed(&ingest, "", dir).map_err(|(path, source)| {
            ContentError::Io {
                what: "move out",
                path,
                source,
            }
        })
    }

    /// Every blob's digest (names that are not digests are ignored).
    pub fn list(&self) -> Result<Vec<Digest>, ContentError> {
        let dir = self.root.join("blobs/sha256");
        Digest::list_dir(&dir).map_err(|source| ContentError::Io {
            what: "list",
            path: dir,
            source,
        })
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, ContentStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = ContentStore::open(dir.path()).unwrap();
        (dir, s)
    }

    fn ingest_is_empty(dir: &Path) -> bool {
        std::fs::read_dir(dir.join("ingest")).unwrap().count() == 0
    }

    #[test]
    fn put_read_list_move_out() {
        let (dir, s) = store();
        let trash = tempfile::tempdir_in(dir.path()).unwrap();
        let d = s.put(b"hello").unwrap();
        assert_eq!(d, Digest::of(b"hello"));
        assert_eq!(s.read(&d).unwrap(), b"hello");
        assert_eq!(s.list().unwrap(), vec![d.clone()]);
        assert!(s.move_out(&d, trash.path()).unwrap());
        assert!(!s.move_out(&d, trash.path()).unwrap());
        assert_eq!(std::fs::read_dir(trash.path()).unwrap().count(), 1);
        assert!(matches!(s.read(&d), Err(ContentError::NotFound(_))));
        assert!(ingest_is_empty(dir.path()));
    }

    #[test]
    fn wrong_digest_or_size_stores_nothing() {
        let (dir, s) = store();
        let claimed = Digest::of(b"what the registry promised");
        let err = s
            .write(
                &b"what arrived"[..],
                &Expected {
                    digest: Some(claimed.clone()),
                    size: None,
                },
            )
            .unwrap_err();
        assert!(matches!(err, ContentError::DigestMismatch { .. }), "{err}");
        assert!(!s.contains(&claimed));
        assert!(!s.contains(&Digest::of(b"what arrived")));
        let err = s
            .write(
                &b"12345"[..],
                &Expected {
                    digest: None,
                    size: Some(4),
                },
            )
            .unwrap_err();
        assert!(err.to_string().contains("expected 4 bytes, got 5"), "{err}");
        assert!(s.list().unwrap().is_empty());
        assert!(ingest_is_empty(dir.path()));
    }

    #[test]
    fn a_failing_source_stores_nothing() {
        struct Broken(usize);
        impl Read for Broken {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::ConnectionReset,
                        "peer went away",
                    ));
                }
                self.0 -= 1;
                buf[0] = b'x';
                Ok(1)
            }
        }
        let (dir, s) = store();
        assert!(s.write(Broken(10), &Expected::default()).is_err());
        assert!(s.list().unwrap().is_empty());
        assert!(ingest_is_empty(dir.path()));
    }

    #[test]
    fn concurrent_writers_of_one_blob() {
        let (_dir, s) = store();
        let data = vec![42u8; 3 << 20];
        let want = Digest::of(&data);
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    let exp = Expected {
                        digest: Some(want.clone()),
                        size: Some(data.len() as u64),
                    };
                    s.write(&data[..], &exp).unwrap();
                });
            }
        });
        assert_eq!(s.read(&want).unwrap(), data);
    }

    #[test]
    fn corruption_on_disk_is_detected_on_read() {
        let (_dir, s) = store();
        let d = s.put(b"intact").unwrap();
        std::fs::write(s.blob_path(&d), b"flipped").unwrap();
        assert!(matches!(
            s.read(&d),
            Err(ContentError::DigestMismatch { .. })
        ));
    }
}
