//! Image references with Docker's normalization: `busybox` is
//! `docker.io/library/busybox:latest`, `host:5000/a/b:tag` keeps its registry,
//! `name@sha256:…` pins a digest.
//!
//! The grammar is distribution/reference's (the one the docker CLI and dockerd use): a domain
//! is recognised only when the first component has a `.` or `:` or is `localhost` (or has
//! upper-case letters, which a repository path may not); path components are lower-case
//! alphanumerics joined by `.`, `_`, `__` or runs of `-`; a tag is `[\w][\w.-]{0,127}`; the
//! name is at most 255 characters. Written by hand: the grammar is small and a regex crate
//! would be the only dependency it needed.

use std::fmt;
use std::str::FromStr;

use crate::digest::{Digest, DigestError};

/// Docker Hub's canonical domain.
pub const DEFAULT_DOMAIN: &str = "docker.io";
/// Docker Hub's namespace for official images.
pub const OFFICIAL_NAMESPACE: &str = "library";
/// The tag of a reference that names neither tag nor digest.
pub const DEFAULT_TAG: &str = "latest";

/// A normalized image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

/// Why a string is not a reference; the messages follow Docker's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// Nothing to parse.
    #[error("invalid reference format: empty reference")]
    Empty,
    /// Upper case in the repository path.
    #[error("invalid reference format: repository name ({0}) must be lowercase")]
    Uppercase(String),
    /// A 64-hex-digit name, which Docker reserves for image ids.
    #[error("invalid repository name ({0}), cannot specify 64-byte hexadecimal strings")]
    HexName(String),
    /// The name is longer than 255 characters.
    #[error(
        "invalid reference format: repository name ({0}) must not be more than 255 characters"
    )]
    TooLong(String),
    /// Anything else that breaks the grammar.
    #[error("invalid reference format: {reference:?} ({why})")]
    Format {
        /// The input.
        reference: String,
        /// What is wrong.
        why: &'static str,
    },
    /// The `@` part is not a digest.
    #[error("invalid reference format: {0}")]
    Digest(#[from] DigestError),
}

impl Reference {
    /// Parses and normalizes (`ParseNormalizedNamed` + `TagNameOnly` in Docker's terms).
    pub fn parse(s: &str) -> Result<Self, ReferenceError> {
        s.parse()
    }

    /// The registry host (and port).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path within the registry (`library/busybox`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The tag, if any (`latest` when neither tag nor digest was given).
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The pinned digest, if any.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// `domain/path`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The short form Docker prints (`busybox:latest`, `user/app:1`, `host:5000/a:b`).
    pub fn familiar(&self) -> String {
        let mut s = self.familiar_name();
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(&d.to_string());
        }
        s
    }

    /// The short repository name (`busybox`, `user/app`, `host:5000/a`).
    pub fn familiar_name(&self) -> String {
        if self.domain == DEFAULT_DOMAIN {
            match self.path.strip_prefix("library/") {
                Some(rest) if !rest.contains('/') => rest.to_string(),
                _ => self.path.clone(),
            }
        } else {
            self.name()
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, ReferenceError> {
        let bad = |why| ReferenceError::Format {
            reference: s.to_string(),
            why,
        };
        if s.is_empty() {
            return Err(ReferenceError::Empty);
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => (r, Some(d.parse::<Digest>()?)),
            None => (s, None),
        };
        // A tag is after the last ':' that comes after the last '/'.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(t) = tag {
            if !valid_tag(t) {
                return Err(bad("invalid tag"));
            }
        }
        if name.is_empty() {
            return Err(bad("empty name"));
        }
        if name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ReferenceError::HexName(name.to_string()));
        }
        let (domain, path) = split_domain(name);
        if path.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(ReferenceError::Uppercase(path.to_string()));
        }
        if !valid_domain(&domain) {
            return Err(bad("invalid registry host"));
        }
        if !path.split('/').all(valid_path_component) {
            return Err(bad("invalid repository path"));
        }
        let domain = if domain == "index.docker.io" {
            DEFAULT_DOMAIN.to_string()
        } else {
            domain
        };
        let path = if domain == DEFAULT_DOMAIN && !path.contains('/') {
            format!("{OFFICIAL_NAMESPACE}/{path}")
        } else {
            path.to_string()
        };
        if domain.len() + 1 + path.len() > 255 {
            return Err(ReferenceError::TooLong(format!("{domain}/{path}")));
        }
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, None) => Some(DEFAULT_TAG.to_string()),
            (None, Some(_)) => None,
        };
        Ok(Reference {
            domain,
            path,
            tag,
            digest,
        })
    }
}

/// Docker's `splitDockerDomain`: the first component is a domain only if it looks like one.
fn split_domain(name: &str) -> (String, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains('.')
                || first.contains(':')
                || first == "localhost"
                || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            (first.to_string(), rest)
        }
        _ => (DEFAULT_DOMAIN.to_string(), name),
    }
}

fn valid_domain(d: &str) -> bool {
    let (host, port) = match d.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (h, Some(p)),
        _ => (d, None),
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !host.is_empty()
        && host.split('.').all(|c| {
            !c.is_empty()
                && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !c.starts_with('-')
                && !c.ends_with('-')
        })
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator: ".", "_", "__" or a run of "-".
        let start = i;
        if b[i] == b'-' {
            while i < b.len() && b[i] == b'-' {
                i += 1;
            }
        } else if b[i] == b'_' && i + 1 < b.len() && b[i + 1] == b'_' {
            i += 2;
        } else if b[i] == b'.' || b[i] == b'_' {
            i += 1;
        } else {
            return false;
        }
        if i == start || i >= b.len() || !is_alnum(b[i]) {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// `[\w][\w.-]{0,127}`
fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'_' || c == b'.' || c == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        Reference::parse(s).unwrap().to_string()
    }

    #[test]
    fn docker_normalization() {
        assert_eq!(norm("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(norm("busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(norm("user/app"), "docker.io/user/app:latest");
        assert_eq!(
            norm("docker.io/busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            norm("index.docker.io/library/busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(norm("localhost/app"), "localhost/app:latest");
        assert_eq!(norm("localhost:5000/a/b:tag"), "localhost:5000/a/b:tag");
        assert_eq!(norm("host:5000/a/b:tag"), "host:5000/a/b:tag");
        assert_eq!(
            norm("registry.example.com/team/app"),
            "registry.example.com/team/app:latest"
        );
        assert_eq!(norm("[::1]:5000/app:v1"), "[::1]:5000/app:v1");
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            norm(&format!("busybox@{d}")),
            format!("docker.io/library/busybox@{d}")
        );
        assert_eq!(
            norm(&format!("busybox:1@{d}")),
            format!("docker.io/library/busybox:1@{d}")
        );
        assert_eq!(norm("a/b-c__d---e.f"), "docker.io/a/b-c__d---e.f:latest");
        assert!(
            Reference::parse("a.b_c/f").is_err(),
            "a domain has no underscores"
        );
    }

    #[test]
    fn familiar_forms() {
        let f = |s: &str| Reference::parse(s).unwrap().familiar();
        assert_eq!(f("docker.io/library/busybox:latest"), "busybox:latest");
        assert_eq!(f("user/app:1"), "user/app:1");
        assert_eq!(f("docker.io/library/a/b"), "library/a/b:latest");
        assert_eq!(f("host:5000/a"), "host:5000/a:latest");
    }

    #[test]
    fn invalid_references_say_why() {
        let e = |s: &str| Reference::parse(s).unwrap_err().to_string();
        assert!(e("").contains("empty"));
        assert!(
            e("Busybox").contains("must be lowercase"),
            "{}",
            e("Busybox")
        );
        assert!(e("docker.io/Library/busybox").contains("must be lowercase"));
        assert!(e(&"a".repeat(64)).contains("64-byte hexadecimal"));
        assert!(e("busybox:").contains("invalid tag"));
        assert!(e("busybox:-x").contains("invalid tag"));
        assert!(e(&format!("busybox:{}", "t".repeat(129))).contains("invalid tag"));
        assert!(e("a//b").contains("invalid repository path"));
        assert!(e("a/b_").contains("invalid repository path"));
        assert!(e("a/-b").contains("invalid repository path"));
        assert!(e("a/b..c").contains("invalid repository path"));
        assert!(e("a/b___c").contains("invalid repository path"));
        assert!(e("host:port/a").contains("invalid registry host"));
        assert!(e("busybox@sha256:abc").contains("64 lowercase hex"));
        assert!(e(&format!("a/{}", "b".repeat(260))).contains("255 characters"));
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// Any string: a reference or an error, never a panic; a parsed reference
            /// re-parses to itself (normalization is idempotent), also from its familiar form.
            #[test]
            fn parse_is_total_and_idempotent(s in "[a-zA-Z0-9._:/@-]{0,80}") {
                if let Ok(r) = Reference::parse(&s) {
                    let again = Reference::parse(&r.to_string()).unwrap();
                    prop_assert_eq!(&again, &r);
                    let from_familiar = Reference::parse(&r.familiar()).unwrap();
                    prop_assert_eq!(&from_familiar, &r);
                }
            }
        }
    }
}
