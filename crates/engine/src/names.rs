//! Container names: Docker's rule for what is valid, and random `adjective_surname` names for
//! containers created without one.

/// Docker's rule: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn valid(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 2
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

const LEFT: &[&str] = &[
    "admiring",
    "bold",
    "brave",
    "busy",
    "calm",
    "clever",
    "cool",
    "dazzling",
    "eager",
    "elastic",
    "epic",
    "festive",
    "focused",
    "gallant",
    "gifted",
    "happy",
    "hopeful",
    "jolly",
    "keen",
    "kind",
    "lucid",
    "modest",
    "nifty",
    "optimistic",
    "peaceful",
    "quirky",
    "relaxed",
    "serene",
    "sharp",
    "stoic",
    "tender",
    "trusting",
    "vibrant",
    "wizardly",
    "youthful",
    "zen",
];

const RIGHT: &[&str] = &[
    "albattani",
    "babbage",
    "bohr",
    "curie",
    "darwin",
    "dijkstra",
    "einstein",
    "euler",
    "fermat",
    "feynman",
    "galileo",
    "goldberg",
    "hopper",
    "hypatia",
    "kepler",
    "knuth",
    "lamarr",
    "lovelace",
    "meitner",
    "newton",
    "noether",
    "pascal",
    "ritchie",
    "shannon",
    "thompson",
    "torvalds",
    "turing",
    "wozniak",
    "yalow",
];

/// A random `adjective_surname`.
pub fn random() -> String {
    let mut b = [0u8; 4];
    let _ = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b));
    let n = u32::from_le_bytes(b) as usize;
    format!(
        "{}_{}",
        LEFT[n % LEFT.len()],
        RIGHT[(n / LEFT.len()) % RIGHT.len()]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_dockers_rule() {
        assert!(valid("web-1"));
        assert!(valid("a.b_c"));
        assert!(!valid("x"));
        assert!(!valid("-web"));
        assert!(!valid("we b"));
        assert!(!valid("web/1"));
        assert!(valid(&random()));
    }
}
