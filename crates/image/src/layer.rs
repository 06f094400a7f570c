//! Unpacking an image layer (a tar stream, gzip- or zstd-compressed or not) into an empty
//! directory that becomes one overlayfs lower layer.
//!
//! Layers come from registries and archives: untrusted input. Nothing an entry says may make
//! the extraction write outside the target directory:
//! - names that are absolute or contain `..` are refused;
//! - no path is resolved through a symlink: every parent directory is opened with `O_NOFOLLOW`
//!   relative to the one above it, so an entry `link/x` where `link` is a symlink (to `/etc`,
//!   say) is refused rather than followed;
//! - hard links must name a target inside the layer by the same rules;
//! - device nodes are refused unless the caller allows them (an image import as root).
//!
//! The refusal names the entry. Whiteouts become what overlayfs expects: `.wh.NAME` a 0/0
//! character device named NAME, `.wh..wh..opq` the `trusted.overlay.opaque=y` xattr on its
//! directory.
//!
//! Written by hand rather than with `tar::Archive::unpack`: that follows symlinks in parent
//! directories inside the target and has no notion of overlay whiteouts.

use std::ffi::OsStr;
use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{self as rfs, AtFlags, Mode, OFlags, Timestamps};
use sha2::{Digest as _, Sha256};

use crate::digest::Digest;

/// The prefix of a whiteout entry.
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// The name of the entry that makes its directory opaque.
pub const OPAQUE_WHITEOUT: &str = ".wh..wh..opq";

/// What can go wrong unpacking a layer. Entry errors name the entry.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    /// The stream is not a readable tar (or its compression is corrupt or truncated).
    #[error("read layer")]
    Read(#[source] io::Error),
    /// The stream broke off or is corrupt inside an entry's content.
    #[error("read layer entry {entry:?}")]
    ReadEntry {
        /// The entry being read.
        entry: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// An entry's name is absolute.
    #[error("layer entry {0:?}: absolute path refused")]
    Absolute(String),
    /// An entry's name (or a hard link's target) climbs out with `..`.
    #[error("layer entry {0:?}: '..' in path refused")]
    DotDot(String),
    /// An entry would be written through a symlink.
    #[error("layer entry {entry:?}: path goes through symlink {through:?}, refused")]
    ThroughSymlink {
        /// The entry.
        entry: String,
        /// The symlink on its way.
        through: String,
    },
    /// A hard link points outside the layer.
    #[error("layer entry {entry:?}: hard link to {target:?} refused ({why})")]
    BadHardlink {
        /// The entry.
        entry: String,
        /// Its link target.
        target: String,
        /// Why.
        why: &'static str,
    },
    /// A device node where devices are not allowed.
    #[error("layer entry {0:?}: device node refused")]
    Device(String),
    /// An entry type this extractor does not know.
    #[error("layer entry {entry:?}: unsupported entry type {kind}")]
    Unsupported {
        /// The entry.
        entry: String,
        /// The tar type byte.
        kind: u8,
    },
    /// Creating the entry failed.
    #[error("layer entry {entry:?}")]
    Write {
        /// The entry.
        entry: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// Choices for [`unpack`].
#[derive(Debug, Clone, Default)]
pub struct UnpackOptions {
    /// Create character and block device nodes (otherwise they are refused).
    pub allow_devices: bool,
    /// Apply the entries' owners (needs CAP_CHOWN; off to unpack as the caller).
    pub preserve_owners: bool,
    /// The caller has already verified the uncompressed stream's digest (an uncompressed
    /// layer whose blob digest is its diff ID): skip hashing it again.
    pub diff_id_known: bool,
}

impl UnpackOptions {
    /// What image layers get, as Docker does it: as root, device nodes and owners are
    /// recreated (images carry both: /dev entries, files of service users); otherwise neither
    /// can be, and device nodes are refused.
    pub fn for_image_layers() -> Self {
        let root = rustix::process::geteuid().is_root();
        UnpackOptions {
            allow_devices: root,
            preserve_owners: root,
            diff_id_known: false,
        }
    }
}

/// What an unpack produced.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct UnpackStats {
    /// Entries written (files, directories, links, nodes).
    pub entries: u64,
    /// Bytes of regular-file content written.
    pub bytes: u64,
    /// Whiteouts turned into overlay whiteouts or opaque markers.
    pub whiteouts: u64,
    /// The digest of the uncompressed tar stream: the layer's "diff ID" in an image config
    /// (`None` when the caller said it knew it).
    pub diff_id: Option<Digest>,
}

/// Hashes what passes through it (unless the caller already knows the digest).
struct HashingReader<R> {
    inner: R,
    hasher: Option<Sha256>,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(h) = &mut self.hasher {
            h.update(&buf[..n]);
        }
        Ok(n)
    }
}

/// Compression of a layer stream, detected from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip (`1f 8b`).
    Gzip,
    /// zstd (`28 b5 2f fd`).
    Zstd,
}

/// Looks at the first bytes of a stream.
pub fn detect_compression(head: &[u8]) -> Compression {
    if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// Wraps `reader` in the decompressor its first bytes call for.
pub fn decompress<'a, R: Read + 'a>(reader: R) -> io::Result<Box<dyn Read + 'a>> {
    let mut buffered = BufReader::with_capacity(256 * 1024, reader);
    let kind = detect_compression(buffered.fill_buf()?);
    Ok(match kind {
        Compression::None => Box::new(buffered),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buffered)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(buffered)?),
    })
}

/// Unpacks a layer stream into `target`, an existing (normally empty) directory.
///
/// On error the target is left partly filled; the caller owns it and removes it (the image
/// store unpacks into a temporary directory and renames it into place only on success).
pub fn unpack<R: Read>(
    reader: R,
    target: &Path,
    opts: &UnpackOptions,
) -> Result<UnpackStats, LayerError> {
    let root: OwnedFd = rfs::open(
        target,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
    )
    .map_err(|e| LayerError::Write {
        entry: ".".into(),
        source: e.into(),
    })?;
    let hashing = HashingReader {
        inner: decompress(reader).map_err(LayerError::Read)?,
        hasher: (!opts.diff_id_known).then(Sha256::new),
    };
    let mut archive = tar::Archive::new(hashing);
    let mut stats = UnpackStats::default();
    // Directory times are set last: creating their children would change them again.
    let mut dir_times: Vec<(PathBuf, u64)> = Vec::new();
    for entry in archive.entries().map_err(LayerError::Read)? {
        let mut entry = entry.map_err(LayerError::Read)?;
        let raw = entry.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&raw).into_owned();
        let Some(rel) = clean_path(&raw, &name)? else {
            continue; // "." or "/": the root itself
        };
        let file_name = rel.file_name().expect("clean path has a name").to_owned();
        let parent = open_parent(&root, &rel, &name)?;
        let header = entry.header().clone();
        let werr = |source: io::Error| LayerError::Write {
            entry: name.clone(),
            source,
        };

        // Whiteouts.
        let fname = file_name.as_bytes();
        if fname == OPAQUE_WHITEOUT.as_bytes() {
            rfs::setxattr(
                proc_path(&parent).as_path(),
                "trusted.overlay.opaque",
                b"y",
                rfs::XattrFlags::empty(),
            )
            .map_err(|e| werr(e.into()))?;
            stats.whiteouts += 1;
            continue;
        }
        if let Some(hidden) = fname.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
            if hidden.starts_with(b".wh.") {
                continue; // other AUFS metadata (.wh..wh.plnk, ...): not for overlayfs
            }
            let hidden = OsStr::from_bytes(hidden);
            remove_any(&parent, hidden).map_err(werr)?;
            rfs::mknodat(
                &parent,
                hidden,
                rfs::FileType::CharacterDevice,
                Mode::empty(),
                0,
            )
            .map_err(|e| werr(e.into()))?;
            stats.whiteouts += 1;
            continue;
        }

        let mode = Mode::from_bits_truncate(header.mode().map_err(werr)? & 0o7777);
        let kind = header.entry_type();
        match kind {
            tar::EntryType::Directory => {
                match rfs::mkdirat(&parent, &file_name, mode) {
                    Ok(()) => {}
                    Err(rustix::io::Errno::EXIST) => {
                        let st = rfs::statat(&parent, &file_name, AtFlags::SYMLINK_NOFOLLOW)
                            .map_err(|e| werr(e.into()))?;
                        if rfs::FileType::from_raw_mode(st.st_mode) != rfs::FileType::Directory {
                            remove_any(&parent, &file_name).map_err(werr)?;
                            rfs::mkdirat(&parent, &file_name, mode).map_err(|e| werr(e.into()))?;
                        }
                    }
                    Err(e) => return Err(werr(e.into())),
                }
                rfs::chmodat(&parent, &file_name, mode, AtFlags::empty())
                    .map_err(|e| werr(e.into()))?;
                dir_times.push((rel.clone(), header.mtime().unwrap_or(0)));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                remove_any(&parent, &file_name).map_err(werr)?;
                let fd = rfs::openat(
                    &parent,
                    &file_name,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_bits_truncate(0o600),
                )
                .map_err(|e| werr(e.into()))?;
                let mut file = std::fs::File::from(fd);
                stats.bytes += copy_entry(&mut entry, &mut file, &name)?;
                // After the content: chmod of a setuid file must come last (a write clears it).
                rfs::fchmod(&file, mode).map_err(|e| werr(e.into()))?;
            }
            tar::EntryType::Symlink => {
                let target_bytes = entry
                    .link_name_bytes()
                    .map(|l| l.into_owned())
                    .unwrap_or_default();
                remove_any(&parent, &file_name).map_err(werr)?;
                rfs::symlinkat(OsStr::from_bytes(&target_bytes), &parent, &file_name)
                    .map_err(|e| werr(e.into()))?;
            }
            tar::EntryType::Link => {
                let target_bytes = entry
                    .link_name_bytes()
                    .map(|l| l.into_owned())
                    .unwrap_or_default();
                let target_name = String::from_utf8_lossy(&target_bytes).into_owned();
                let bad = |why| LayerError::BadHardlink {
                    entry: name.clone(),
                    target: target_name.clone(),
                    why,
                };
                let target_rel = match clean_path(&target_bytes, &target_name) {
                    Ok(Some(t)) => t,
                    Ok(None) => return Err(bad("the layer root")),
                    Err(LayerError::Absolute(_)) => return Err(bad("absolute")),
                    Err(LayerError::DotDot(_)) => return Err(bad("'..' in path")),
                    Err(e) => return Err(e),
                };
                let target_parent = open_parent(&root, &target_rel, &target_name)?;
                let target_file = target_rel.file_name().expect("named");
                let st = rfs::statat(&target_parent, target_file, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|_| bad("no such entry earlier in the layer"))?;
                if rfs::FileType::from_raw_mode(st.st_mode) == rfs::FileType::Directory {
                    return Err(bad("a directory"));
                }
                remove_any(&parent, &file_name).map_err(werr)?;
                rfs::linkat(
                    &target_parent,
                    target_file,
                    &parent,
                    &file_name,
                    AtFlags::empty(),
                )
                .map_err(|e| werr(e.into()))?;
                stats.entries += 1;
                continue; // a hard link shares its target's metadata
            }
            tar::EntryType::Char | tar::EntryType::Block => {
                if !opts.allow_devices {
                    return Err(LayerError::Device(name));
                }
                let dev = rfs::makedev(
                    header.device_major().ok().flatten().unwrap_or(0),
                    header.device_minor().ok().flatten().unwrap_or(0),
                );
                let ft = if kind == tar::EntryType::Char {
                    rfs::FileType::CharacterDevice
                } else {
                    rfs::FileType::BlockDevice
                };
                remove_any(&parent, &file_name).map_err(werr)?;
                rfs::mknodat(&parent, &file_name, ft, mode, dev).map_err(|e| werr(e.into()))?;
            }
            tar::EntryType::Fifo => {
                remove_any(&parent, &file_name).map_err(werr)?;
                rfs::mknodat(&parent, &file_name, rfs::FileType::Fifo, mode, 0)
                    .map_err(|e| werr(e.into()))?;
            }
            // Metadata entries the tar crate has already folded into the next entry.
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader => continue,
            other => {
                return Err(LayerError::Unsupported {
                    entry: name,
                    kind: other.as_byte(),
                })
            }
        }

        if let Some(exts) = entry.pax_extensions().ok().flatten() {
            for ext in exts.flatten() {
                if let Some(attr) = ext.key_bytes().strip_prefix(b"SCHILY.xattr.") {
                    let attr = String::from_utf8_lossy(attr).into_owned();
                    let path = proc_path(&parent).join(&file_name);
                    if let Err(e) = rfs::lsetxattr(
                        &path,
                        attr.as_str(),
                        ext.value_bytes(),
                        rfs::XattrFlags::empty(),
                    ) {
                        tracing::debug!(entry = %name, %attr, %e, "xattr not applied");
                    }
                }
            }
        }
        if opts.preserve_owners {
            // An empty owner field (some tar writers leave it blank) means root.
            let uid = header.uid().unwrap_or(0) as u32;
            let gid = header.gid().unwrap_or(0) as u32;
            let (uid, gid) = (rfs::Uid::from_raw(uid), rfs::Gid::from_raw(gid));
            rfs::chownat(
                &parent,
                &file_name,
                Some(uid),
                Some(gid),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(|e| werr(e.into()))?;
            if !matches!(kind, tar::EntryType::Symlink | tar::EntryType::Directory) {
                // chown clears setuid/setgid bits; put them back.
                rfs::chmodat(&parent, &file_name, mode, AtFlags::empty())
                    .map_err(|e| werr(e.into()))?;
            }
        }
        if kind != tar::EntryType::Directory {
            set_mtime(&parent, &file_name, header.mtime().unwrap_or(0)).map_err(werr)?;
        }
        stats.entries += 1;
    }
    for (rel, mtime) in dir_times.iter().rev() {
        if let Ok(parent) = open_parent(&root, rel, "") {
            let _ = set_mtime(&parent, rel.file_name().expect("named"), *mtime);
        }
    }
    // The diff ID covers the whole uncompressed stream, padding after the end blocks included.
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(LayerError::Read)?;
    stats.diff_id = rest.hasher.map(Digest::from_hasher);
    Ok(stats)
}

/// Copies an entry's content, telling a broken stream (read) from a failing disk (write).
fn copy_entry<R: Read, W: io::Write>(
    from: &mut R,
    to: &mut W,
    name: &str,
) -> Result<u64, LayerError> {
    let mut buf = [0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(LayerError::ReadEntry {
                    entry: name.to_string(),
                    source,
                })
            }
        };
        to.write_all(&buf[..n])
            .map_err(|source| LayerError::Write {
                entry: name.to_string(),
                source,
            })?;
        total += n as u64;
    }
}

/// Turns an entry name into a relative path of normal components, or refuses it.
/// `Ok(None)` is the root itself (".", "./", "/").
pub(crate) fn clean_path(raw: &[u8], name: &str) -> Result<Option<PathBuf>, LayerError> {
    let path = Path::new(OsStr::from_bytes(raw));
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::RootDir => {
                // "/" alone is the root; "/x" is an absolute name.
                if path.components().count() > 1 {
                    return Err(LayerError::Absolute(name.to_string()));
                }
            }
            Component::Prefix(_) => return Err(LayerError::Absolute(name.to_string())),
            Component::ParentDir => return Err(LayerError::DotDot(name.to_string())),
            Component::CurDir => {}
            Component::Normal(p) => out.push(p),
        }
    }
    Ok(if out.as_os_str().is_empty() {
        None
    } else {
        Some(out)
    })
}

/// Opens (creating as needed) the parent directory of `rel` below `root`, one component at a
/// time and never following a symlink.
fn open_parent(root: &OwnedFd, rel: &Path, name: &str) -> Result<OwnedFd, LayerError> {
    let mut dir = root.try_clone().map_err(|e| LayerError::Write {
        entry: name.to_string(),
        source: e,
    })?;
    let mut walked = PathBuf::new();
    let parent = rel.parent().unwrap_or(Path::new(""));
    for comp in parent.components() {
        let Component::Normal(c) = comp else { continue };
        walked.push(c);
        let werr = |e: rustix::io::Errno| LayerError::Write {
            entry: name.to_string(),
            source: e.into(),
        };
        let flags = OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let next = match rfs::openat(&dir, c, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) => {
                match rfs::mkdirat(&dir, c, Mode::from_bits_truncate(0o755)) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(werr(e)),
                }
                rfs::openat(&dir, c, flags, Mode::empty()).map_err(werr)?
            }
            Err(rustix::io::Errno::LOOP) | Err(rustix::io::Errno::NOTDIR) => {
                let st = rfs::statat(&dir, c, AtFlags::SYMLINK_NOFOLLOW).map_err(werr)?;
                if rfs::FileType::from_raw_mode(st.st_mode) == rfs::FileType::Symlink {
                    return Err(LayerError::ThroughSymlink {
                        entry: name.to_string(),
                        through: walked.to_string_lossy().into_owned(),
                    });
                }
                // A file where a directory is needed: the later entry wins, as with tar.
                remove_any(&dir, c).map_err(|e| LayerError::Write {
                    entry: name.to_string(),
                    source: e,
                })?;
                rfs::mkdirat(&dir, c, Mode::from_bits_truncate(0o755)).map_err(werr)?;
                rfs::openat(&dir, c, flags, Mode::empty()).map_err(werr)?
            }
            Err(e) => return Err(werr(e)),
        };
        dir = next;
    }
    Ok(dir)
}

/// Removes whatever is at `name` in `dir` (a file, a link, or a whole directory tree).
fn remove_any(dir: &OwnedFd, name: &OsStr) -> io::Result<()> {
    match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(e) => Err(e.into()),
        Ok(st) if rfs::FileType::from_raw_mode(st.st_mode) == rfs::FileType::Directory => {
            let sub = rfs::openat(
                dir,
                name,
                OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            let names: Vec<std::ffi::OsString> = rfs::Dir::read_from(&sub)?
                .filter_map(|e| e.ok())
                .map(|e| OsStr::from_bytes(e.file_name().to_bytes()).to_owned())
                .filter(|n| n != "." && n != "..")
                .collect();
            for n in names {
                remove_any(&sub, &n)?;
            }
            rfs::unlinkat(dir, name, AtFlags::REMOVEDIR)?;
            Ok(())
        }
        Ok(_) => Ok(rfs::unlinkat(dir, name, AtFlags::empty())?),
    }
}

fn set_mtime(dir: &OwnedFd, name: &OsStr, mtime: u64) -> io::Result<()> {
    let t = rfs::Timespec {
        tv_sec: mtime as i64,
        tv_nsec: 0,
    };
    let times = Timestamps {
        last_access: t,
        last_modification: t,
    };
    Ok(rfs::utimensat(
        dir,
        name,
        &times,
        AtFlags::SYMLINK_NOFOLLOW,
    )?)
}

/// A path naming an open directory, for the calls that only take paths (setxattr).
fn proc_path(fd: &OwnedFd) -> PathBuf {
    let b: BorrowedFd<'_> = fd.as_fd();
    PathBuf::from(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&b)
    ))
}
