//! Manifests, indexes and image configs (OCI and Docker v2 schema 2 share a shape), parsed
//! with precise errors, and platform selection from an index / manifest list.

use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest, MediaType};

/// Docker's manifest list media type (an index by another name).
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker's image manifest media type.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// A parse error that says what, where and why.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Not valid JSON or not the expected shape.
    #[error("{what}: invalid JSON at line {line} column {column}: {message}")]
    Json {
        /// Which document (e.g. "manifest sha256:…" or "manifest.json").
        what: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// serde's message.
        message: String,
    },
    /// Schema 1 or another unsupported version.
    #[error("{what}: unsupported schemaVersion {version} (only 2)")]
    SchemaVersion {
        /// Which document.
        what: String,
        /// Its version.
        version: u32,
    },
    /// No manifest in an index matches the platform.
    #[error("no manifest for platform {0} in the index")]
    NoPlatform(String),
}

/// A manifest or an index, as a registry or an archive may hand either.
#[derive(Debug, Clone)]
pub enum AnyManifest {
    /// A single-platform image manifest.
    Image(Box<ImageManifest>),
    /// An index / manifest list.
    Index(Box<ImageIndex>),
}

fn json<T: serde::de::DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, ManifestError> {
    serde_json::from_slice(bytes).map_err(|e| {
        let message = e.to_string();
        let message = match message.rfind(" at line ") {
            Some(i) => message[..i].to_string(),
            None => message,
        };
        ManifestError::Json {
            what: what.to_string(),
            line: e.line(),
            column: e.column(),
            message,
        }
    })
}

/// Parses a manifest or an index (told apart by `mediaType`, or by a `manifests` array).
pub fn parse_manifest(what: &str, bytes: &[u8]) -> Result<AnyManifest, ManifestError> {
    let probe: serde_json::Value = json(what, bytes)?;
    let version = probe
        .get("schemaVersion")
        .and_then(|v| v.as_u64())
        .unwrap_or(0) as u32;
    if version != 2 {
        return Err(ManifestError::SchemaVersion {
            what: what.to_string(),
            version,
        });
    }
    let media = probe
        .get("mediaType")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    let is_index = media == DOCKER_MANIFEST_LIST
        || media == MediaType::ImageIndex.to_string()
        || (media.is_empty() && probe.get("manifests").is_some());
    Ok(if is_index {
        AnyManifest::Index(json(what, bytes)?)
    } else {
        AnyManifest::Image(json(what, bytes)?)
    })
}

/// Parses an image config.
pub fn parse_config(what: &str, bytes: &[u8]) -> Result<ImageConfiguration, ManifestError> {
    json(what, bytes)
}

/// The platform this machine runs: `linux/amd64`, `linux/arm64`, ...
pub fn host_platform() -> (&'static str, &'static str) {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    };
    ("linux", arch)
}

/// Picks the manifest for `os/arch` (and `variant`, when given) from an index, as Docker
/// does: an exact variant match wins over one without a variant.
pub fn select_platform<'a>(
    index: &'a ImageIndex,
    os: &str,
    arch: &str,
    variant: Option<&str>,
) -> Result<&'a Descriptor, ManifestError> {
    let candidates: Vec<&Descriptor> = index
        .manifests()
        .iter()
        .filter(|d| {
            d.platform()
                .as_ref()
                .is_some_and(|p| p.os().to_string() == os && p.architecture().to_string() == arch)
        })
        .collect();
    let exact = candidates
        .iter()
        .find(|d| d.platform().as_ref().and_then(|p| p.variant().as_deref()) == variant);
    exact.or(candidates.first()).copied().ok_or_else(|| {
        ManifestError::NoPlatform(match variant {
            Some(v) => format!("{os}/{arch}/{v}"),
            None => format!("{os}/{arch}"),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCKER_V2: &str = r#"{
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 1469,
                   "digest": "sha256:beae173ccac6ad749f76713cf4440fe3d21d1043fe616dfbe30775815d1d0f6a"},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 2811478,
                    "digest": "sha256:2db29710123e3e53a794f2694094b9b4338aa9ee5c40b930cb8063a1be392c54"}]
    }"#;

    const LIST: &str = r#"{
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
        "manifests": [
          {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "size": 528,
           "digest": "sha256:1111111111111111111111111111111111111111111111111111111111111111",
           "platform": {"architecture": "arm", "os": "linux", "variant": "v6"}},
          {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "size": 528,
           "digest": "sha256:2222222222222222222222222222222222222222222222222222222222222222",
           "platform": {"architecture": "arm", "os": "linux", "variant": "v7"}},
          {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "size": 528,
           "digest": "sha256:3333333333333333333333333333333333333333333333333333333333333333",
           "platform": {"architecture": "amd64", "os": "linux"}}
        ]
    }"#;

    #[test]
    fn docker_v2_manifest_parses() {
        let AnyManifest::Image(m) = parse_manifest("m", DOCKER_V2.as_bytes()).unwrap() else {
            panic!("not an image manifest")
        };
        assert_eq!(m.layers().len(), 1);
        assert_eq!(m.config().size(), 1469);
    }

    #[test]
    fn manifest_list_and_platforms() {
        let AnyManifest::Index(i) = parse_manifest("l", LIST.as_bytes()).unwrap() else {
            panic!("not an index")
        };
        let pick = |a, v| select_platform(&i, "linux", a, v).map(|d| d.digest().to_string());
        assert!(pick("amd64", None).unwrap().contains("3333"));
        assert!(pick("arm", Some("v7")).unwrap().contains("2222"));
        assert!(
            pick("arm", Some("v8")).unwrap().contains("1111"),
            "falls back to the first arm"
        );
        let err = pick("s390x", None).unwrap_err().to_string();
        assert_eq!(err, "no manifest for platform linux/s390x in the index");
    }

    #[test]
    fn errors_say_where() {
        let err = parse_manifest(
            "manifest.json",
            b"{\n \"schemaVersion\": 2,\n \"layers\": [",
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("manifest.json: invalid JSON at line 3"),
            "{err}"
        );
        let err = parse_manifest("m", br#"{"schemaVersion": 1, "fsLayers": []}"#).unwrap_err();
        assert!(
            err.to_string().contains("unsupported schemaVersion 1"),
            "{err}"
        );
        let err = parse_config("config", br#"{"architecture": 5}"#).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("config: invalid JSON at line 1"),
            "{err}"
        );
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
                let _ = parse_manifest("m", &bytes);
                let _ = parse_config("c", &bytes);
            }

            /// Valid JSON with random values in the known fields: an error or a value.
            #[test]
            fn shaped_input_never_panics(v in 0u32..4, media in "[a-z./+-]{0,40}", size in any::<i64>(), digest in "[a-z0-9:]{0,80}") {
                let doc = serde_json::json!({
                    "schemaVersion": v, "mediaType": media,
                    "config": {"mediaType": media, "size": size, "digest": digest},
                    "layers": [{"mediaType": media, "size": size, "digest": digest}],
                    "manifests": [{"mediaType": media, "size": size, "digest": digest, "platform": {"os": "linux", "architecture": media}}]
                });
                let _ = parse_manifest("m", doc.to_string().as_bytes());
            }
        }
    }
}
