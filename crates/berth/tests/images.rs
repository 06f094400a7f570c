//! The image commands end to end, as a user types them, on a private data root.

use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_berth");

struct Berth {
    root: tempfile::TempDir,
}

impl Berth {
    fn new() -> Self {
        Berth {
            root: tempfile::tempdir().unwrap(),
        }
    }
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--data-root")
            .arg(self.root.path().join("data"))
            .args(args);
        c.stdin(Stdio::null());
        c
    }
    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "berth {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
    fn file(&self, name: &str, data: &[u8]) -> String {
        let p = self.root.path().join(name);
        std::fs::write(&p, data).unwrap();
        p.to_str().unwrap().to_string()
    }
}

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

#[test]
fn import_images_tag_history_inspect_rmi() {
    let b = Berth::new();
    let rootfs = b.file(
        "rootfs.tar",
        &tar_of(&[
            ("bin/hello", b"#!/bin/sh\necho hi\n"),
            ("etc/hostname", b"x"),
        ]),
    );
    let id = b.ok(&[
        "import",
        "--change",
        "CMD [\"/bin/hello\"]",
        "-c",
        "ENV GREETING=hi",
        &rootfs,
        "hello:1",
    ]);
    assert!(id.trim().starts_with("sha256:"), "{id}");

    let table = b.ok(&["images"]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("REPOSITORY   TAG       IMAGE ID       CREATED"),
        "{table}"
    );
    assert!(lines[1].starts_with("hello        1         "), "{table}");
    assert!(lines[1].contains(&id.trim()["sha256:".len()..][..12]));
    assert!(lines[1].ends_with("19B"), "size of the files: {table}");

    b.ok(&["tag", "hello:1", "registry.local:5000/team/hello:latest"]);
    assert_eq!(
        b.ok(&["images", "-q"]).lines().count(),
        1,
        "one image, two tags"
    );
    assert_eq!(
        b.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]),
        "hello:1\nregistry.local:5000/team/hello:latest\n"
    );
    assert_eq!(
        b.ok(&["images", "--filter", "reference=hello"])
            .lines()
            .count(),
        2
    );
    assert_eq!(
        b.ok(&["images", "--filter", "dangling=true"])
            .lines()
            .count(),
        1,
        "header only"
    );

    let hist = b.ok(&["history", "hello:1"]);
    assert!(hist.starts_with("IMAGE          CREATED"), "{hist}");
    assert!(
        hist.contains("berth import") && hist.contains("Imported from tarball"),
        "{hist}"
    );

    let inspect: serde_json::Value =
        serde_json::from_str(&b.ok(&["image", "inspect", "hello:1"])).unwrap();
    assert_eq!(inspect[0]["Id"], id.trim());
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
        b.ok(&[
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
    let out = b.run(&["rmi", &id.trim()["sha256:".len()..][..12]]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("must be forced"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(b.ok(&["rmi", "hello:1"]), "Untagged: hello:1\n");
    let out = b.ok(&["rmi", "registry.local:5000/team/hello"]);
    assert_eq!(
        out,
        format!(
            "Untagged: registry.local:5000/team/hello:latest\nDeleted: {}\n",
            id.trim()
        )
    );
    assert_eq!(b.ok(&["images", "-q"]), "");
    // Its blobs and layer are gone too.
    let blobs = std::fs::read_dir(b.root.path().join("data/content/blobs/sha256"))
        .unwrap()
        .count();
    assert_eq!(blobs, 0);

    let out = b.run(&["rmi", "nothing:here"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "Error response from berth: No such image: nothing:here"
    );
}

#[test]
fn save_load_round_trip_and_bad_archives() {
    let a = Berth::new();
    let rootfs = a.file("rootfs.tar", &tar_of(&[("bin/app", b"v1")]));
    let id = a.ok(&["import", &rootfs, "app:1"]);
    let saved = a.root.path().join("app.tar");
    a.ok(&["save", "-o", saved.to_str().unwrap(), "app:1"]);

    let b = Berth::new();
    assert_eq!(
        b.ok(&["load", "-i", saved.to_str().unwrap()]),
        "Loaded image: app:1\n"
    );
    assert_eq!(b.ok(&["images", "-q", "--no-trunc"]).trim(), id.trim());
    // From stdin, gzip-compressed, as `docker save app | gzip | docker load` does.
    let c = Berth::new();
    let gz_path = c.file("app.tar.gz", &gzip(&std::fs::read(&saved).unwrap()));
    let out = c
        .cmd(&["load"])
        .stdin(std::fs::File::open(&gz_path).unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A truncated archive is refused precisely and the stored image still lists and saves.
    let bytes = std::fs::read(&saved).unwrap();
    let cut = b.file("cut.tar", &bytes[..bytes.len() / 2]);
    let out = b.run(&["load", "-i", &cut]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("read layer"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(b.ok(&["images", "-q", "--no-trunc"]).trim(), id.trim());
    b.ok(&[
        "save",
        "-o",
        b.root.path().join("again.tar").to_str().unwrap(),
        "app:1",
    ]);

    // An unknown image fails before anything is written.
    let out = b.run(&[
        "save",
        "-o",
        b.root.path().join("none.tar").to_str().unwrap(),
        "missing",
    ]);
    assert!(!out.status.success());
    assert!(!b.root.path().join("none.tar").exists());
    let stray: Vec<_> = std::fs::read_dir(b.root.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".berth-save"))
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
fn daemonless_rmi_and_prune_respect_berthds_containers() {
    let b = Berth::new();
    let tar = b.file("rootfs.tar", &tar_of(&[("hello", b"hi")]));
    let id = b.ok(&["import", &tar, "used:1"]).trim().to_string();
    // A container record as berthd writes it, made from that image.
    let ctr = b.root.path().join("data/containers/abc");
    std::fs::create_dir_all(&ctr).unwrap();
    std::fs::write(
        ctr.join("config.v2.json"),
        serde_json::json!({"id": "abc", "image": id}).to_string(),
    )
    .unwrap();
    let out = b.run(&["rmi", "used:1"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("being used by a container"));
    b.ok(&["rmi", "-f", "used:1"]);
    b.ok(&["image", "prune", "-a", "-f"]);
    assert_eq!(
        b.ok(&["images", "-aq"]).trim(),
        &id[7..19],
        "kept while in use"
    );
    std::fs::remove_dir_all(&ctr).unwrap();
    b.ok(&["image", "prune", "-f"]);
    assert_eq!(b.ok(&["images", "-aq"]), "");
}
