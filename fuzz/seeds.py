#!/usr/bin/env python3
"""Writes small seed inputs for the fuzz targets into fuzz/corpus/<target>/: random bytes
rarely make a valid tar or manifest, so libFuzzer starts from a few that are (and from
hostile ones: `..`, absolute names, links out, whiteouts). Generated, not stored: no binary
files in the repository."""
import gzip, hashlib, io, json, os, sys, tarfile

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def put(target, name, data):
    d = os.path.join(root, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def tar_of(entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as t:
        for name, kind, data, link in entries:
            i = tarfile.TarInfo(name)
            i.type = kind
            i.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
            i.linkname = link or ""
            i.size = len(data) if kind == tarfile.REGTYPE else 0
            t.addfile(i, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
    return buf.getvalue()


R, D, S, L = tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE
layers = {
    "plain": [("etc/", D, b"", None), ("etc/os-release", R, b"ID=x\n", None), ("bin/sh", R, b"#!", None)],
    "links": [("a", R, b"hi", None), ("b", L, b"", "a"), ("c", S, b"", "/etc/passwd"), ("d/", D, b"", None)],
    "whiteouts": [("etc/", D, b"", None), ("etc/.wh.gone", R, b"", None), ("var/.wh..wh..opq", R, b"", None)],
    "dotdot": [("../escape", R, b"x", None)],
    "absolute": [("/etc/evil", R, b"x", None)],
    "through-symlink": [("l", S, b"", "/tmp"), ("l/x", R, b"x", None)],
    "link-out": [("h", L, b"", "../../etc/passwd")],
}
for name, entries in layers.items():
    t = tar_of(entries)
    put("layer", name, t)
    put("layer", name + ".gz", gzip.compress(t))

# A one-layer `docker save` archive, old layout (manifest.json) and an OCI layout.
layer = tar_of(layers["plain"])
diff = "sha256:" + hashlib.sha256(layer).hexdigest()
config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/sh"]},
                     "rootfs": {"type": "layers", "diff_ids": [diff]}}).encode()
cfg_hex = hashlib.sha256(config).hexdigest()
lay_hex = hashlib.sha256(layer).hexdigest()
docker = tar_of([
    (f"{cfg_hex}.json", R, config, None),
    (f"{lay_hex}/layer.tar", R, layer, None),
    ("manifest.json", R, json.dumps([{"Config": f"{cfg_hex}.json", "RepoTags": ["seed:1"],
                                      "Layers": [f"{lay_hex}/layer.tar"]}]).encode(), None),
])
put("archive", "docker", docker)
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                  "size": len(config), "digest": "sha256:" + cfg_hex},
                       "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                                   "size": len(layer), "digest": "sha256:" + lay_hex}]}).encode()
man_hex = hashlib.sha256(manifest).hexdigest()
index = json.dumps({"schemaVersion": 2, "manifests": [{
    "mediaType": "application/vnd.oci.image.manifest.v1+json", "size": len(manifest),
    "digest": "sha256:" + man_hex,
    "annotations": {"org.opencontainers.image.ref.name": "seed:1"}}]}).encode()
oci = tar_of([
    ("oci-layout", R, b'{"imageLayoutVersion":"1.0.0"}', None),
    ("index.json", R, index, None),
    (f"blobs/sha256/{cfg_hex}", R, config, None),
    (f"blobs/sha256/{lay_hex}", R, layer, None),
    (f"blobs/sha256/{man_hex}", R, manifest, None),
])
put("archive", "oci", oci)
put("archive", "traversal", tar_of([("manifest.json", R, b'[{"Config":"../x","Layers":[]}]', None)]))
put("manifest", "manifest", manifest)
put("manifest", "index", index)
put("manifest", "config", config)

for i, r in enumerate(["busybox", "docker.io/library/busybox:latest", "localhost:5000/a/b:c",
                       "ghcr.io/o/r@sha256:" + "a" * 64, "a:b@sha256:" + "0" * 64, "UPPER", "x//y"]):
    put("reference", str(i), r.encode())

for i, f in enumerate(['{"label":["a=1","b"],"name":{"web":true}}', '{"until":["24h"]}',
                       '{"dangling":["true"],"id":["^0123"]}', '{"label!":["x"],"name":["(a|b)+"]}']):
    put("filters", str(i), f.encode())

bodies = [
    {"Image": "busybox", "Cmd": ["sh", "-c", "true"], "Env": ["A=1"], "User": "1000:1000",
     "HostConfig": {"Binds": ["/tmp:/data:ro,rslave", "vol:/v"], "Memory": 1 << 26,
                    "CapAdd": ["NET_ADMIN"], "CapDrop": ["ALL"], "Privileged": False,
                    "Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/n",
                                 "CgroupPermissions": "rwm"}],
                    "Ulimits": [{"Name": "nofile", "Soft": 10, "Hard": 20}],
                    "Sysctls": {"net.ipv4.ip_forward": "1"}, "Tmpfs": {"/run": "size=1m"},
                    "SecurityOpt": ["no-new-privileges", "seccomp=unconfined"],
                    "ReadonlyRootfs": True, "PidsLimit": 10, "NanoCpus": 500000000}},
    {"Image": "busybox", "Entrypoint": [], "Tty": True, "HostConfig": {"Privileged": True}},
]
for i, b in enumerate(bodies):
    put("create_body", str(i), json.dumps(b).encode())
print("seeds written to", root, file=sys.stderr)
