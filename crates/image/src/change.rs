//! `--change` instructions for `import` and `commit`: the Dockerfile instructions that only
//! touch the image config (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, WORKDIR, VOLUME,
//! STOPSIGNAL), applied to a config as JSON.

use serde_json::{json, Map, Value};

/// A `--change` that is not one of the instructions above, or is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid --change {change:?}: {why}")]
pub struct ChangeError {
    /// The instruction as given.
    pub change: String,
    /// What is wrong.
    pub why: String,
}

/// Applies one instruction to `config` (the image config's `config` object).
pub fn apply(config: &mut Map<String, Value>, change: &str) -> Result<(), ChangeError> {
    let err = |why: &str| ChangeError {
        change: change.to_string(),
        why: why.to_string(),
    };
    let trimmed = change.trim();
    let (word, rest) = trimmed
        .split_once(char::is_whitespace)
        .unwrap_or((trimmed, ""));
    let rest = rest.trim();
    match word.to_ascii_uppercase().as_str() {
        "CMD" | "ENTRYPOINT" => {
            let value = exec_or_shell(rest).ok_or_else(|| err("expected a JSON array or a command"))?;
            let key = if word.eq_ignore_ascii_case("CMD") { "Cmd" } else { "Entrypoint" };
            config.insert(key.into(), json!(value));
        }
        "ENV" => {
            let env = config.entry("Env").or_insert_with(|| json!([])).as_array_mut().ok_or_else(|| err("Env is not a list"))?;
            for (k, v) in key_values(rest).ok_or_else(|| err("expected KEY=VALUE or KEY VALUE"))? {
                env.retain(|e| e.as_str().and_then(|s| s.split_once('=')).map(|(ek, _)| ek) != Some(k.as_str()));
                env.push(json!(format!("{k}={v}")));
            }
        }
        "LABEL" => {
            let labels = config.entry("Labels").or_insert_with(|| json!({}));
            if labels.is_null() {
                *labels = json!({});
            }
            let labels = labels.as_object_mut().ok_or_else(|| err("Labels is not an object"))?;
            for (k, v) in key_values(rest).ok_or_else(|| err("expected KEY=VALUE"))? {
                labels.insert(k, json!(v));
            }
        }
        "EXPOSE" => {
            let ports = config.entry("ExposedPorts").or_insert_with(|| json!({}));
            if ports.is_null() {
                *ports = json!({});
            }
            let ports = ports.as_object_mut().ok_or_else(|| err("ExposedPorts is not an object"))?;
            for p in rest.split_whitespace() {
                let (num, proto) = p.split_once('/').unwrap_or((p, "tcp"));
                if num.parse::<u16>().is_err() || !matches!(proto, "tcp" | "udp" | "sctp") {
                    return Err(err("expected PORT[/tcp|udp|sctp]"));
                }
                ports.insert(format!("{num}/{proto}"), json!({}));
            }
        }
        "VOLUME" => {
            let list = exec_or_shell(rest).ok_or_else(|| err("expected paths"))?;
            let vols = config.entry("Volumes").or_insert_with(|| json!({}));
            if vols.is_null() {
                *vols = json!({});
            }
            let vols = vols.as_object_mut().ok_or_else(|| err("Volumes is not an object"))?;
            let list = if rest.starts_with('[') { list } else { rest.split_whitespace().map(String::from).collect() };
            for v in list {
                vols.insert(v, json!({}));
            }
        }
        "USER" | "WORKDIR" | "STOPSIGNAL" if !rest.is_empty() => {
            let key = match word.to_ascii_uppercase().as_str() {
                "USER" => "User",
                "WORKDIR" => "WorkingDir",
                _ => "StopSignal",
            };
            config.insert(key.into(), json!(rest));
        }
        "USER" | "WORKDIR" | "STOPSIGNAL" => return Err(err("needs a value")),
        _ => return Err(err("only CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, WORKDIR, VOLUME and STOPSIGNAL can be changed")),
    }
    Ok(())
}

/// `["a","b"]` (exec form) or `a b` (shell form, run by /bin/sh -c).
fn exec_or_shell(rest: &str) -> Option<Vec<String>> {
    if rest.starts_with('[') {
        serde_json::from_str::<Vec<String>>(rest).ok()
    } else if rest.is_empty() {
        None
    } else {
        Some(vec!["/bin/sh".into(), "-c".into(), rest.into()])
    }
}

/// `K=V K2="v 2"` or the legacy single `K V`.
fn key_values(rest: &str) -> Option<Vec<(String, String)>> {
    if !rest.contains('=') {
        let (k, v) = rest.split_once(char::is_whitespace)?;
        return Some(vec![(k.to_string(), v.trim().to_string())]);
    }
    let mut out = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Some(out);
        }
        let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            let mut escaped = false;
            for c in chars.by_ref() {
                match (escaped, c) {
                    (false, '\\') => escaped = true,
                    (false, '"') => break,
                    (_, c) => {
                        value.push(c);
                        escaped = false;
                    }
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        if key.is_empty() {
            return None;
        }
        out.push((key, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(changes: &[&str]) -> Value {
        let mut c = Map::new();
        for ch in changes {
            apply(&mut c, ch).unwrap();
        }
        Value::Object(c)
    }

    #[test]
    fn instructions_land_in_the_config() {
        let c = applied(&[
            "CMD [\"sh\", \"-c\", \"echo hi\"]",
            "ENTRYPOINT /init",
            "ENV A=1 B=\"two words\"",
            "ENV A=3",
            "ENV LEGACY value with spaces",
            "LABEL org.example=yes",
            "EXPOSE 80 53/udp",
            "USER nobody",
            "WORKDIR /srv",
            "VOLUME [\"/data\"]",
            "STOPSIGNAL SIGINT",
        ]);
        assert_eq!(c["Cmd"], json!(["sh", "-c", "echo hi"]));
        assert_eq!(c["Entrypoint"], json!(["/bin/sh", "-c", "/init"]));
        assert_eq!(
            c["Env"],
            json!(["B=two words", "A=3", "LEGACY=value with spaces"])
        );
        assert_eq!(c["Labels"]["org.example"], "yes");
        assert!(
            c["ExposedPorts"].get("80/tcp").is_some() && c["ExposedPorts"].get("53/udp").is_some()
        );
        assert_eq!(c["User"], "nobody");
        assert_eq!(c["WorkingDir"], "/srv");
        assert!(c["Volumes"].get("/data").is_some());
        assert_eq!(c["StopSignal"], "SIGINT");
    }

    #[test]
    fn bad_changes_say_why() {
        let e = |s: &str| apply(&mut Map::new(), s).unwrap_err().to_string();
        assert!(e("RUN rm -rf /").contains("only CMD, ENTRYPOINT"));
        assert!(e("CMD [\"unclosed\"").contains("JSON array"));
        assert!(e("EXPOSE http").contains("PORT"));
        assert!(e("USER").contains("needs a value"));
    }
}
