//! Detach keys: the key sequence (Docker's default ctrl-p ctrl-q) that a client attached to a
//! container's or an exec's stdin types to let go of it, leaving the process running. The
//! daemon watches the client's input for it, as dockerd does; the bytes of the sequence never
//! reach the process, a partial match that then differs is passed on.
//!
//! Hand-written: it is a dozen lines of state machine, and the crates that have it (moby's
//! `term` is Go) do not come as Rust. A crate of its own because both sides watch: berthd
//! (for every client) and the berth CLI (which, as the docker CLI, consumes the keys itself
//! and must not link the daemon).

#![forbid(unsafe_code)]

use std::fmt;

/// Docker's default: ctrl-p, ctrl-q.
pub const DEFAULT: [u8; 2] = [0x10, 0x11];

/// The `detachKeys` value was not in Docker's format.
#[derive(Debug, PartialEq, Eq)]
pub struct InvalidKeys(pub String);

impl fmt::Display for InvalidKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Invalid detach keys ({}) provided", self.0)
    }
}

/// Parses Docker's format: comma-separated keys, each a single character or `ctrl-<c>` with
/// `<c>` one of `a`–`z`, `@`, `[`, `\`, `]`, `^`, `_`. Empty means the default.
pub fn parse(keys: &str) -> Result<Vec<u8>, InvalidKeys> {
    if keys.is_empty() {
        return Ok(DEFAULT.to_vec());
    }
    let bad = || InvalidKeys(keys.to_string());
    keys.split(',')
        .map(|k| {
            if k.len() == 1 {
                return Ok(k.as_bytes()[0]);
            }
            let lower = k.to_ascii_lowercase();
            let c = lower.strip_prefix("ctrl-").ok_or_else(bad)?;
            match c.as_bytes() {
                [c @ b'a'..=b'z'] => Ok(c - b'a' + 1),
                [b'@'] => Ok(0),
                [c @ (b'[' | b'\\' | b']' | b'^' | b'_')] => Ok(c - b'@'),
                _ => Err(bad()),
            }
        })
        .collect()
}

/// Watches a stream of input for the sequence.
#[derive(Debug)]
pub struct Watch {
    keys: Vec<u8>,
    matched: usize,
}

impl Watch {
    /// A watch for `keys` (never empty: [`parse`] gives the default for "").
    pub fn new(keys: Vec<u8>) -> Self {
        Watch { keys, matched: 0 }
    }

    /// Feeds a chunk of input; what should reach the process is appended to `out`. Returns
    /// true when the sequence is complete: the client detaches, and the rest of `input` is
    /// dropped. A prefix of the sequence at the end of a chunk is held until the next one
    /// shows whether it continues.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> bool {
        for &b in input {
            if b == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    self.matched = 0;
                    return true;
                }
                continue;
            }
            // Not the sequence after all: what was held goes through, and this byte may
            // start a new match.
            out.extend_from_slice(&self.keys[..self.matched]);
            self.matched = 0;
            if b == self.keys[0] {
                self.matched = 1;
                if self.keys.len() == 1 {
                    self.matched = 0;
                    return true;
                }
            } else {
                out.push(b);
            }
        }
        false
    }

    /// What is held at the end of the input (a partial sequence), to pass on at EOF.
    pub fn held(&self) -> &[u8] {
        &self.keys[..self.matched]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_dockers_format() {
        assert_eq!(parse("").unwrap(), DEFAULT);
        assert_eq!(parse("ctrl-p,ctrl-q").unwrap(), DEFAULT);
        assert_eq!(parse("CTRL-A,x").unwrap(), [1, b'x']);
        assert_eq!(
            parse("ctrl-@,ctrl-[,ctrl-\\,ctrl-],ctrl-^,ctrl-_").unwrap(),
            [0, 27, 28, 29, 30, 31]
        );
        for bad in ["ctrl-", "ctrl-1", "ctrl-ab", "alt-x", "xy", "a,,b"] {
            assert_eq!(parse(bad), Err(InvalidKeys(bad.into())), "{bad}");
        }
        assert_eq!(
            InvalidKeys("xy".into()).to_string(),
            "Invalid detach keys (xy) provided"
        );
    }

    #[test]
    fn the_sequence_detaches_and_near_misses_pass() {
        let mut w = Watch::new(DEFAULT.to_vec());
        let mut out = Vec::new();
        assert!(!w.feed(b"ab\x10c\x10", &mut out));
        assert_eq!(out, b"ab\x10c");
        assert_eq!(w.held(), [0x10]);
        // The held ctrl-p and the next chunk's ctrl-q complete it; the rest is dropped.
        assert!(w.feed(b"\x11zz", &mut out));
        assert_eq!(out, b"ab\x10c");
        // ctrl-p ctrl-p ctrl-q: the first ctrl-p passes, the second starts the match.
        let mut w = Watch::new(DEFAULT.to_vec());
        let mut out = Vec::new();
        assert!(w.feed(b"\x10\x10\x11", &mut out));
        assert_eq!(out, [0x10]);
    }

    proptest! {
        /// Without the sequence in it, every byte of the input comes out, in order, whatever
        /// the chunking; with it, exactly what came before it does.
        #[test]
        fn nothing_is_lost_or_invented(
            input in proptest::collection::vec(prop_oneof![Just(0x10u8), Just(0x11u8), any::<u8>()], 0..200),
            cut in 0usize..200,
        ) {
            let keys = DEFAULT.to_vec();
            let pos = input.windows(2).position(|w| w == keys.as_slice());
            let mut w = Watch::new(keys);
            let mut out = Vec::new();
            let cut = cut.min(input.len());
            let detached = w.feed(&input[..cut], &mut out) || w.feed(&input[cut..], &mut out);
            match pos {
                Some(p) => {
                    prop_assert!(detached);
                    prop_assert_eq!(&out[..], &input[..p]);
                }
                None => {
                    prop_assert!(!detached);
                    out.extend_from_slice(w.held());
                    prop_assert_eq!(out, input);
                }
            }
        }
    }
}
