//! `berth cp`: files between a container and the host, with the docker CLI's rules for what
//! lands where (copy into an existing directory, rename onto a new path, `SRC/.` for a
//! directory's contents, `-` for a tar on stdin or stdout).
//!
//! Extraction on the host refuses every entry (and hard link target) that would land outside
//! the destination: absolute names, `..`, paths through symlinks (the archive's own or ones
//! already there); an existing file or link is replaced, never written through. Files are
//! owned by the user running berth, as with `docker cp`.

use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context};
use base64::Engine as _;
use clap::Args;
use hyper::Method;
use serde_json::Value;
use tokio_util::io::SyncIoBridge;

use crate::client::{body_reader, query, seg, status_of, streamed, Api};
use crate::format;

/// `berth cp`.
#[derive(Args, Debug)]
pub struct CpArgs {
    /// Archive mode (copy all uid/gid information)
    #[arg(short, long)]
    pub archive: bool,
    /// Always follow symbol link in SRC_PATH
    #[arg(short = 'L', long)]
    pub follow_link: bool,
    /// Suppress progress output during copy
    #[arg(short, long)]
    pub quiet: bool,
    /// CONTAINER:SRC_PATH or SRC_PATH|-
    pub src: String,
    /// DEST_PATH|- or CONTAINER:DEST_PATH
    pub dest: String,
}

/// `CONTAINER:PATH` -> (Some(container), path); a local path -> (None, path). A path with a
/// `/` before the first `:` is local, as in Docker (`./a:b` names a file).
fn split(arg: &str) -> (Option<&str>, &str) {
    if arg.starts_with('/') || arg.starts_with('.') {
        return (None, arg);
    }
    match arg.split_once(':') {
        Some((c, p)) if !c.contains('/') && !c.is_empty() => (Some(c), p),
        _ => (None, arg),
    }
}

/// The container path stat Docker sends base64-encoded in `X-Docker-Container-Path-Stat`.
fn path_stat(headers: &hyper::HeaderMap) -> Option<Value> {
    let h = headers.get("X-Docker-Container-Path-Stat")?.to_str().ok()?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(h).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn is_dir_mode(stat: &Value) -> bool {
    stat["mode"].as_u64().unwrap_or(0) & (1 << 31) != 0
}

/// `SRC/.`: copy the directory's contents, not the directory.
fn wants_contents(p: &str) -> bool {
    p.ends_with("/.") || p == "."
}

/// `berth cp`.
pub async fn cp(api: &Api, a: CpArgs) -> anyhow::Result<()> {
    match (split(&a.src), split(&a.dest)) {
        ((Some(_), _), (Some(_), _)) => {
            bail!("copying between containers is not supported")
        }
        ((None, _), (None, _)) => {
            bail!("must specify at least one container source")
        }
        ((Some(c), src), (None, dest)) => from_container(api, c, src, dest, &a).await,
        ((None, src), (Some(c), dest)) => to_container(api, src, c, dest, &a).await,
    }
}

async fn from_container(
    api: &Api,
    c: &str,
    src: &str,
    dest: &str,
    a: &CpArgs,
) -> anyhow::Result<()> {
    let src_path = if a.follow_link && !src.ends_with('/') {
        format!("{src}/.")
    } else {
        src.to_string()
    };
    let resp = api
        .stream(
            Method::GET,
            &format!("/containers/{}/archive", seg(c)),
            &query(&[("path", src_path.clone())]),
            None,
        )
        .await?;
    let stat = path_stat(resp.headers()).unwrap_or_default();
    let src_is_dir = is_dir_mode(&stat);
    if dest == "-" {
        let mut out = tokio::io::stdout();
        tokio::io::copy(&mut body_reader(resp), &mut out).await?;
        return Ok(());
    }
    let dest_path = PathBuf::from(dest);
    // Where the archive is unpacked, and what its top entry is renamed to (if anything).
    let (dir, rename, strip_top) = match std::fs::metadata(&dest_path) {
        Ok(m) if m.is_dir() => (dest_path.clone(), None, wants_contents(src)),
        Ok(_) if src_is_dir => bail!("cannot copy a directory to a file: {dest}"),
        Ok(_) => (parent(&dest_path), file_name(&dest_path), false),
        Err(_) => {
            if dest.ends_with('/') && !src_is_dir {
                bail!("destination directory {dest} does not exist");
            }
            let p = parent(&dest_path);
            if !p.is_dir() {
                bail!("destination directory {} does not exist", p.display());
            }
            (p, file_name(&dest_path), false)
        }
    };
    let reader = SyncIoBridge::new(body_reader(resp));
    let total =
        tokio::task::spawn_blocking(move || unpack(reader, &dir, rename.as_deref(), strip_top))
            .await??;
    if !a.quiet {
        eprintln!(
            "Successfully copied {} to {dest}",
            format::human_size(total)
        );
    }
    Ok(())
}

fn parent(p: &Path) -> PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn file_name(p: &Path) -> Option<String> {
    p.file_name().map(|n| n.to_string_lossy().into_owned())
}

/// Unpacks `r` under `dir`; the top entry becomes `rename` when given, or is dropped with
/// `strip_top` (its contents land in `dir`). Returns the bytes written.
fn unpack(
    r: impl std::io::Read,
    dir: &Path,
    rename: Option<&str>,
    strip_top: bool,
) -> anyhow::Result<u64> {
    let mut archive = tar::Archive::new(r);
    archive.set_preserve_permissions(true);
    archive.set_overwrite(true);
    // An entry's name in the archive -> where it goes under `dir` (None: skip it).
    let map = |path: &Path| -> Option<PathBuf> {
        let comps: Vec<Component> = path
            .components()
            .filter(|c| *c != Component::CurDir)
            .collect();
        let (top, rest) = comps.split_first()?;
        let rest: PathBuf = rest.iter().collect();
        let under = |first: &Path| {
            if rest.as_os_str().is_empty() {
                first.to_path_buf()
            } else {
                first.join(&rest)
            }
        };
        match (rename, strip_top) {
            (_, true) if rest.as_os_str().is_empty() => None,
            (_, true) => Some(rest.clone()),
            (Some(n), _) => Some(under(Path::new(n))),
            (None, _) => Some(under(Path::new(top))),
        }
    };
    let root = dir.canonicalize()?;
    let mut total = 0;
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        let Some(target) = map(&path) else { continue };
        let escape = || {
            anyhow::anyhow!(
                "refusing to copy {}: it would land outside {}",
                path.display(),
                dir.display()
            )
        };
        let dst = inside(&root, &target)?.ok_or_else(escape)?;
        if let Ok(m) = std::fs::symlink_metadata(&dst) {
            // An existing file (or link) is replaced, not written through.
            if !m.is_dir() {
                std::fs::remove_file(&dst)?;
            }
        }
        if entry.header().entry_type() == tar::EntryType::Link {
            // A hard link names another entry of the archive: it must be inside too.
            let link = entry.link_name()?.ok_or_else(escape)?.into_owned();
            let src = map(&link)
                .map(|l| inside(&root, &l))
                .transpose()?
                .flatten()
                .ok_or_else(escape)?;
            std::fs::hard_link(&src, &dst).with_context(|| format!("link {}", dst.display()))?;
            continue;
        }
        total += entry.size();
        entry
            .unpack(&dst)
            .with_context(|| format!("write {}", dst.display()))?;
    }
    Ok(total)
}

/// `root/target`, once every existing ancestor of it is known to be a directory inside
/// `root` (no `..`, no symlink out); missing ancestors are made. None when it would escape.
fn inside(root: &Path, target: &Path) -> anyhow::Result<Option<PathBuf>> {
    if target
        .components()
        .any(|c| !matches!(c, Component::Normal(_)))
    {
        return Ok(None);
    }
    let mut cur = root.to_path_buf();
    let comps: Vec<_> = target.components().collect();
    for c in &comps[..comps.len().saturating_sub(1)] {
        cur.push(c);
        match std::fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() => {
                if !cur.canonicalize()?.starts_with(root) {
                    return Ok(None);
                }
            }
            Ok(_) => {}
            Err(_) => std::fs::create_dir_all(&cur)?,
        }
    }
    Ok(Some(root.join(target)))
}

async fn to_container(api: &Api, src: &str, c: &str, dest: &str, a: &CpArgs) -> anyhow::Result<()> {
    let archive_path = format!("/containers/{}/archive", seg(c));
    if src == "-" {
        api.stream(
            Method::PUT,
            &archive_path,
            &query(&[("path", dest.to_string())]),
            Some((streamed(tokio::io::stdin()), "application/x-tar")),
        )
        .await?;
        return Ok(());
    }
    let src_path = PathBuf::from(src);
    let meta = if a.follow_link {
        std::fs::metadata(&src_path)
    } else {
        std::fs::symlink_metadata(&src_path)
    }
    .with_context(|| format!("could not find the file {src} on the host"))?;
    let dest_stat = match api
        .head(&archive_path, &query(&[("path", dest.to_string())]))
        .await
    {
        Ok(h) => path_stat(&h),
        Err(e) if status_of(&e) == Some(404) => None,
        Err(e) => return Err(e),
    };
    let (upload_dir, name, contents) = match &dest_stat {
        Some(st) if is_dir_mode(st) => (
            dest.to_string(),
            file_name(&src_path).unwrap_or_else(|| ".".into()),
            wants_contents(src),
        ),
        Some(_) if meta.is_dir() => bail!("cannot copy a directory to a file: {c}:{dest}"),
        Some(_) => (parent_str(dest), base_str(dest), false),
        None => {
            if dest.ends_with('/') && !meta.is_dir() {
                bail!("destination directory {c}:{dest} does not exist");
            }
            (parent_str(dest), base_str(dest), false)
        }
    };
    let follow = a.follow_link;
    let keep_owner = a.archive;
    let (w, r) = tokio::io::duplex(256 * 1024);
    let src_owned = src_path.clone();
    let writer = tokio::task::spawn_blocking(move || -> anyhow::Result<u64> {
        let mut b = tar::Builder::new(SyncIoBridge::new(w));
        b.follow_symlinks(follow);
        let mut total = 0;
        if contents {
            for e in std::fs::read_dir(&src_owned)? {
                let e = e?;
                total += append(&mut b, &e.path(), Path::new(&e.file_name()), keep_owner)?;
            }
        } else {
            total += append(&mut b, &src_owned, Path::new(&name), keep_owner)?;
        }
        b.into_inner()?;
        Ok(total)
    });
    let q = query(&[
        ("path", upload_dir),
        ("noOverwriteDirNonDir", "true".into()),
    ]);
    let upload = api.stream(
        Method::PUT,
        &archive_path,
        &q,
        Some((streamed(r), "application/x-tar")),
    );
    let (uploaded, written) = tokio::join!(upload, writer);
    uploaded?;
    let total = written??;
    if !a.quiet {
        eprintln!(
            "Successfully copied {} to {c}:{dest}",
            format::human_size(total)
        );
    }
    Ok(())
}

fn parent_str(p: &str) -> String {
    let t = p.trim_end_matches('/');
    match t.rsplit_once('/') {
        Some(("", _)) => "/".into(),
        Some((d, _)) => d.into(),
        None => ".".into(),
    }
}

fn base_str(p: &str) -> String {
    let t = p.trim_end_matches('/');
    t.rsplit('/').next().unwrap_or(t).to_string()
}

/// Appends `path` (recursively) as `name`; owners become root unless `keep_owner` (`-a`), as
/// `docker cp` does. Returns the bytes of file data.
fn append<W: std::io::Write>(
    b: &mut tar::Builder<W>,
    path: &Path,
    name: &Path,
    keep_owner: bool,
) -> anyhow::Result<u64> {
    let meta = std::fs::symlink_metadata(path)?;
    let mut total = 0;
    let mut h = tar::Header::new_gnu();
    h.set_metadata(&meta);
    if !keep_owner {
        h.set_uid(0);
        h.set_gid(0);
    }
    if meta.is_dir() {
        b.append_data(&mut h, name, std::io::empty())?;
        let mut entries: Vec<_> = std::fs::read_dir(path)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            total += append(b, &e.path(), &name.join(e.file_name()), keep_owner)?;
        }
    } else if meta.file_type().is_symlink() {
        let target = std::fs::read_link(path)?;
        b.append_link(&mut h, name, target)?;
    } else if meta.is_file() {
        total += meta.len();
        b.append_data(&mut h, name, std::fs::File::open(path)?)?;
    } else {
        // Devices, fifos, sockets: their header only.
        b.append_data(&mut h, name, std::io::empty())?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_paths_are_told_from_local_ones() {
        assert_eq!(split("web:/etc/hosts"), (Some("web"), "/etc/hosts"));
        assert_eq!(split("/tmp/a:b"), (None, "/tmp/a:b"));
        assert_eq!(split("./x:y"), (None, "./x:y"));
        assert_eq!(split("file"), (None, "file"));
        assert_eq!(parent_str("/a/b/"), "/a");
        assert_eq!(parent_str("/b"), "/");
        assert_eq!(base_str("/a/b/"), "b");
    }

    #[test]
    fn unpacking_stays_inside_the_destination() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "top/link", outside.path()).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        h.set_mode(0o644);
        b.append_data(&mut h, "top/link/pwned", &b"hi"[..]).unwrap();
        let data = b.into_inner().unwrap();
        let e = unpack(&data[..], dir.path(), None, false).unwrap_err();
        assert!(e.to_string().contains("outside"), "{e}");
        assert!(!outside.path().join("pwned").exists());

        // A plain copy, renamed onto a new name.
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        h.set_mode(0o644);
        b.append_data(&mut h, "hosts", &b"ok"[..]).unwrap();
        let data = b.into_inner().unwrap();
        assert_eq!(
            unpack(&data[..], dir.path(), Some("copy"), false).unwrap(),
            2
        );
        assert_eq!(std::fs::read(dir.path().join("copy")).unwrap(), b"ok");
    }
}
