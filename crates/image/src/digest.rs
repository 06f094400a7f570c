//! Content digests: `sha256:<64 lowercase hex>`, the only algorithm images use in practice.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

/// A validated sha256 content digest; serialized as its `sha256:…` string.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct Digest {
    hex: String,
}

/// Why a string is not a digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// No `algorithm:` prefix.
    #[error("invalid digest {0:?}: expected sha256:<64 hex digits>")]
    Format(String),
    /// An algorithm other than sha256.
    #[error("unsupported digest algorithm {0:?} (only sha256)")]
    Algorithm(String),
    /// The hex part has the wrong length or characters.
    #[error("invalid sha256 digest {0:?}: expected 64 lowercase hex digits")]
    Hex(String),
}

impl Digest {
    /// The digest of `data`.
    pub fn of(data: &[u8]) -> Self {
        Digest {
            hex: hex::encode(Sha256::digest(data)),
        }
    }

    /// Wraps a finished hasher.
    pub fn from_hasher(h: Sha256) -> Self {
        Digest {
            hex: hex::encode(h.finalize()),
        }
    }

    /// The digest a store file is named after (`<64 hex>`), if the name is one.
    pub fn from_file_name(name: &std::ffi::OsStr) -> Option<Self> {
        format!("sha256:{}", name.to_str()?).parse().ok()
    }

    /// Every digest-named entry of a directory, sorted (other names are ignored).
    pub fn list_dir(dir: &std::path::Path) -> std::io::Result<Vec<Self>> {
        let mut out: Vec<Digest> = std::fs::read_dir(dir)?
            .flatten()
            .filter_map(|e| Self::from_file_name(&e.file_name()))
            .collect();
        out.sort();
        Ok(out)
    }

    /// The 64 hex digits.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The algorithm, always `sha256`.
    pub fn algorithm(&self) -> &'static str {
        "sha256"
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, DigestError> {
        let (alg, hex) = s
            .split_once(':')
            .ok_or_else(|| DigestError::Format(s.to_string()))?;
        if alg != "sha256" {
            return Err(DigestError::Algorithm(alg.to_string()));
        }
        if hex.len() != 64
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(DigestError::Hex(s.to_string()));
        }
        Ok(Digest {
            hex: hex.to_string(),
        })
    }
}

impl TryFrom<String> for Digest {
    type Error = DigestError;
    fn try_from(s: String) -> Result<Self, DigestError> {
        s.parse()
    }
}

impl From<Digest> for String {
    fn from(d: Digest) -> String {
        d.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display_round_trip() {
        let d = Digest::of(b"");
        assert_eq!(
            d.to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(d.to_string().parse::<Digest>().unwrap(), d);
    }

    #[test]
    fn bad_digests_are_named() {
        assert!(matches!(
            "abc".parse::<Digest>(),
            Err(DigestError::Format(_))
        ));
        assert!(matches!(
            "md5:00".parse::<Digest>(),
            Err(DigestError::Algorithm(_))
        ));
        assert!(matches!(
            "sha256:00".parse::<Digest>(),
            Err(DigestError::Hex(_))
        ));
        let upper = format!("sha256:{}", "A".repeat(64));
        assert!(matches!(upper.parse::<Digest>(), Err(DigestError::Hex(_))));
        let path = format!("sha256:../{}", "a".repeat(61));
        assert!(
            path.parse::<Digest>().is_err(),
            "a digest never carries a path"
        );
    }
}
