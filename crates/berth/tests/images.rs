//! The image commands end to end, as a user types them, through a private berthd.

use std::process::{Command, Stdio};

use berth_testkit::Daemon;

fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(data.len() as u64);
        h.set_mode(0o755);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

fn file(d: &Daemon, name: &str, data: &[u8]) -> String {
    let p = d.dir.path().join(name);
    std::fs::write(&p, data).unwrap();
    p.to_str().unwrap().to_string()
}

#[test]
fn import_images_tag_history_inspect_rmi() {
    let d = Daemon::start();
    let rootfs = file(
        &d,
        "rootfs.tar",
        &tar_of(&[
            ("bin/hello", b"#!/bin/sh\necho hi\n"),
            ("etc/hostname", b"x"),
        ]),
    );
    let id = d.berth_ok(&[
        "import",
        "--change",
        "CMD [\"/bin/hello\"]",
        "-c",
        "ENV GREETING=hi",
        &rootfs,
        "hello:1",
    ]);
    let id = id.trim();
    assert!(id.starts_with("sha256:"), "{id}");
    let short = &id["sha256:".len()..][..12];

    let table = d.berth_ok(&["images"]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("REPOSITORY   TAG       IMAGE ID       CREATED"),
        "{table}"
    );
    assert!(lines[1].starts_with("hello        1         "), "{table}");
    assert!(lines[1].contains(short));
    assert!(lines[1].ends_with("19B"), "size of the files: {table}");

    d.berth_ok(&["tag", "hello:1", "registry.local:5000/team/hello:latest"]);
    assert_eq!(
        d.berth_ok(&["images", "-q"]).lines().count(),
        1,
        "one image, two tags"
    );
    assert_eq!(
        d.berth_ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]),
        "hello:1\nregistry.local:5000/team/hello:latest\n"
    );
    assert_eq!(
        d.berth_ok(&["images", "--filter", "reference=hello"])
            .lines()
            .count(),
        2
    );
    assert_eq!(
        d.berth_ok(&["images", "-q", "registry.local:5000/team/*"])
            .trim(),
        short
    );
    assert_eq!(
        d.berth_ok(&["images", "--filter", "dangling=true"])
            .lines()
            .count(),
        1,
        "header only"
    );
    let err = d.berth_fails(&["images", "--filter", "colour=red"]);
    assert!(err.contains("invalid filter 'colour'"), "{err}");

    let hist = d.berth_ok(&["history", "hello:1"]);
    assert!(hist.starts_with("IMAGE          CREATED"), "{hist}");
    assert!(
        hist.contains("berth import")
            && hist.contains("Imported from tarball")
            && hist.contains("19B"),
        "{hist}"
    );

    let inspect: serde_json::Value =
        serde_json::from_str(&d.berth_ok(&["image", "inspect", "hello:1"])).unwrap();
    assert_eq!(inspect[0]["Id"], id);
    assert_eq!(
        inspect[0]["Config"]["Cmd"],
        serde_json::json!(["/bin/hello"])
    );
    assert_eq!(
        inspect[0]["Config"]["Env"],
        serde_json::json!(["GREETING=hi"])
    );
    assert_eq!(inspect[0]["RootFS"]["Layers"].as_array().unwrap().len(), 1);
    assert_eq!(
        d.berth_ok(&[
            "image",
            "inspect",
            "--format",
            "{{.Os}}/{{.Architecture}}",
            "hello:1"
        ])
        .trim(),
        "linux/amd64"
    );

    // rmi: by ID with two tags is a conflict, by tag untags, the last tag deletes.
    let err = d.berth_fails(&["rmi", short]);
    assert!(err.contains("must be forced"), "{err}");
    assert_eq!(d.berth_ok(&["rmi", "hello:1"]), "Untagged: hello:1\n");
    assert_eq!(
        d.berth_ok(&["rmi", "registry.local:5000/team/hello"]),
        format!("Untagged: registry.local:5000/team/hello:latest\nDeleted: {id}\n")
    );
    assert_eq!(d.berth_ok(&["images", "-q"]), "");
    // Its blobs and layer are gone too.
    let blobs = std::fs::read_dir(d.root().join("content/blobs/sha256"))
        .unwrap()
        .count();
    assert_eq!(blobs, 0);

    let err = d.berth_fails(&["rmi", "nothing:here"]);
    assert_eq!(
        err.trim(),
        "Error response from daemon: No such image: nothing:here"
    );
}

#[test]
fn save_load_round_trip_and_bad_archives() {
    let a = Daemon::start();
    let rootfs = file(&a, "rootfs.tar", &tar_of(&[("bin/app", b"v1")]));
    let id = a.berth_ok(&["import", &rootfs, "app:1"]);
    let saved = a.dir.path().join("app.tar");
    a.berth_ok(&["save", "-o", saved.to_str().unwrap(), "app:1"]);
    // save to a pipe, as `berth save app | gzip` does.
    let piped = a
        .cmd_with(berth_testkit::bin("berth"), &["save", "app:1"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(piped.status.success());
    assert_eq!(piped.stdout, std::fs::read(&saved).unwrap());

    let b = Daemon::start();
    assert_eq!(
        b.berth_ok(&["load", "-i", saved.to_str().unwrap()]),
        "Loaded image: app:1\n"
    );
    assert_eq!(
        b.berth_ok(&["images", "-q", "--no-trunc"]).trim(),
        id.trim()
    );
    // From stdin, gzip-compressed, as `docker save app | gzip | docker load` does.
    let c = Daemon::start();
    let gz_path = file(&c, "app.tar.gz", &gzip(&std::fs::read(&saved).unwrap()));
    let out = c
        .cmd_with(berth_testkit::bin("berth"), &["load"])
        .stdin(std::fs::File::open(&gz_path).unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Loaded image: app:1\n"
    );

    // A truncated archive is refused precisely and the stored image still lists and saves.
    let bytes = std::fs::read(&saved).unwrap();
    let cut = file(&b, "cut.tar", &bytes[..bytes.len() / 2]);
    let err = b.berth_fails(&["load", "-i", &cut]);
    assert!(err.contains("read layer"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(
        b.berth_ok(&["images", "-q", "--no-trunc"]).trim(),
        id.trim()
    );
    b.berth_ok(&[
        "save",
        "-o",
        b.dir.path().join("again.tar").to_str().unwrap(),
        "app:1",
    ]);

    // An unknown image fails before anything is written.
    let err = b.berth_fails(&[
        "save",
        "-o",
        b.dir.path().join("none.tar").to_str().unwrap(),
        "missing",
    ]);
    assert!(err.contains("No such image: missing"), "{err}");
    assert!(!b.dir.path().join("none.tar").exists());
    let stray: Vec<_> = std::fs::read_dir(b.dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".berth-"))
        .collect();
    assert!(stray.is_empty(), "temporary archive left behind");
}

/// gzip through the system tool, so this test needs no compression crate of its own.
fn gzip(data: &[u8]) -> Vec<u8> {
    let mut child = Command::new("gzip")
        .arg("-c")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(data).unwrap();
    }
    child.wait_with_output().unwrap().stdout
}

#[test]
fn images_in_use_are_kept_and_prune_removes_the_rest() {
    let d = Daemon::start();
    d.berth_load_busybox();
    let tar = file(&d, "rootfs.tar", &tar_of(&[("hello", b"hi")]));
    let unused = d.berth_ok(&["import", &tar, "unused:1"]).trim().to_string();
    let ctr = d.berth_ok(&["create", "busybox", "true"]);
    let err = d.berth_fails(&["rmi", "busybox"]);
    assert!(err.contains("being used by"), "{err}");
    // A forced removal only untags what a container uses.
    d.berth_ok(&["rmi", "-f", "busybox"]);
    let out = d.berth_ok(&["image", "prune", "-a", "-f"]);
    assert!(out.contains(&format!("deleted: {unused}")), "{out}");
    assert!(out.contains("Total reclaimed space:"), "{out}");
    assert_eq!(
        d.berth_ok(&["images", "-aq"]).lines().count(),
        1,
        "kept while in use"
    );
    d.berth_ok(&["rm", ctr.trim()]);
    d.berth_ok(&["image", "prune", "-f"]);
    assert_eq!(d.berth_ok(&["images", "-aq"]), "");
}
