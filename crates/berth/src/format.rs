//! Docker's output conventions: `--format` Go templates (`{{.ID}}`, `{{json .}}`,
//! `{{.State.Status}}`, `{{range .Mounts}}...{{end}}`, `table ...`), aligned tables, human sizes
//! and ages.
//!
//! Templates run on `gtmpl` (Go's text/template in Rust) with the functions Docker adds
//! (`json`, `join`, `split`, `lower`, `upper`, `title`, `truncate`, `pad`). gtmpl prints lists
//! and maps in Rust's debug form, so every printing action is routed through `_print`, which
//! prints them as Go does (`[a b]`, `map[k:v]`).

use std::collections::HashMap;

use anyhow::Context;
use gtmpl_value::{FuncError, Value as G};
use serde_json::{Map, Value};

/// Renders rows either as Docker's default table (`columns`: field name and header), or
/// through a `--format` template (`table ...`, `json`, or any template, one line per row).
pub fn render(
    rows: &[Map<String, Value>],
    columns: &[(&str, &str)],
    template: Option<&str>,
) -> anyhow::Result<String> {
    let Some(t) = template.filter(|t| !t.is_empty()) else {
        return Ok(table(rows, columns));
    };
    let t = t.replace("\\t", "\t").replace("\\n", "\n");
    if t.trim() == "json" {
        return Ok(rows
            .iter()
            .map(|r| {
                let mut r = r.clone();
                r.remove(LABELS_KEY);
                Value::Object(r).to_string() + "\n"
            })
            .collect());
    }
    if let Some(rest) = t.strip_prefix("table") {
        let rest = rest.trim();
        let tmpl = Template::new(rest)?;
        let mut lines = vec![headers(rest, columns)];
        for r in rows {
            lines.push(tmpl.execute(&Value::Object(r.clone()))?);
        }
        return Ok(align_tabs(&lines));
    }
    let tmpl = Template::new(&t)?;
    let mut out = String::new();
    for r in rows {
        out.push_str(&tmpl.execute(&Value::Object(r.clone()))?);
        out.push('\n');
    }
    Ok(out)
}

/// A parsed `--format` template.
pub struct Template(gtmpl::Template);

impl Template {
    /// Parses `text`, with Docker's functions; the error says what is wrong with it.
    pub fn new(text: &str) -> anyhow::Result<Self> {
        let mut t = gtmpl::Template::default();
        t.add_funcs(&[
            ("_print", go_print as gtmpl_value::Func),
            ("json", json),
            ("join", join),
            ("split", split),
            ("lower", lower),
            ("upper", upper),
            ("title", title),
            ("truncate", truncate),
            ("pad", pad),
            ("_label", label),
        ]);
        t.parse(route_prints(&label_calls(text)))
            .map_err(|e| anyhow::anyhow!("template parsing error: {e}"))?;
        Ok(Template(t))
    }

    /// Executes the template on `v`.
    pub fn execute(&self, v: &Value) -> anyhow::Result<String> {
        self.0
            .render(&gtmpl::Context::from(to_gtmpl(v)))
            .map_err(|e| anyhow::anyhow!("template: {e}"))
    }
}

/// Executes `template` once on `v` (`inspect --format`).
pub fn execute(template: &str, v: &Value) -> anyhow::Result<String> {
    Template::new(template)?
        .execute(v)
        .with_context(|| format!("executing {template:?}"))
}

/// The key under which a row carries its labels as a map, for `.Label "k"`; left out of
/// `--format json`, which shows Docker's fields only.
pub const LABELS_KEY: &str = "_labels";

/// Docker's `{{.Label "k"}}` is a method call with an argument, which gtmpl cannot make on
/// a field: it becomes `{{_label . "k"}}`, a function given the row.
fn label_calls(t: &str) -> String {
    let mut out = String::with_capacity(t.len());
    let mut rest = t;
    while let Some(at) = rest.find(".Label") {
        let before = rest[..at].chars().last();
        let after = rest[at + ".Label".len()..].chars().next();
        let is_call = !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.')
            && after.is_some_and(char::is_whitespace);
        out.push_str(&rest[..at]);
        out.push_str(if is_call { "_label ." } else { ".Label" });
        rest = &rest[at + ".Label".len()..];
    }
    out.push_str(rest);
    out
}

/// `_label ROW "k"`: the value of the row's label `k`, or nothing.
fn label(args: &[G]) -> Result<G, FuncError> {
    let row = arg("Label", args, 0)?;
    let key = text(arg("Label", args, 1)?);
    Ok(match row {
        G::Object(o) | G::Map(o) => match o.get(LABELS_KEY) {
            Some(G::Object(l) | G::Map(l)) => l.get(&key).cloned().unwrap_or(G::from("")),
            _ => G::from(""),
        },
        _ => G::from(""),
    })
}

/// Appends `| _print` to every action that prints (not to `if`, `range`, `end`, ...,
/// declarations or comments), so that printed values look as Go prints them.
fn route_prints(t: &str) -> String {
    const CONTROL: &[&str] = &[
        "if", "else", "end", "range", "with", "define", "template", "block", "break", "continue",
    ];
    let mut out = String::new();
    let mut rest = t;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let Some(j) = find_close(&rest[i + 2..]) else {
            out.push_str(&rest[i..]);
            return out;
        };
        let inner = &rest[i + 2..i + 2 + j];
        let (lead, body) = match inner.strip_prefix('-') {
            Some(b) if b.starts_with(char::is_whitespace) => ("-", b),
            _ => ("", inner),
        };
        let (body, trail) = match body.strip_suffix('-') {
            Some(b) if b.ends_with(char::is_whitespace) => (b, "-"),
            _ => (body, ""),
        };
        let word = body.split_whitespace().next().unwrap_or("");
        let prints = !body.trim().is_empty()
            && !body.trim_start().starts_with("/*")
            && !CONTROL.contains(&word)
            && !is_declaration(body);
        out.push_str("{{");
        out.push_str(lead);
        if prints {
            out.push_str(body.trim_end());
            out.push_str(" | _print ");
        } else {
            out.push_str(body);
        }
        out.push_str(trail);
        out.push_str("}}");
        rest = &rest[i + 2 + j + 2..];
    }
    out.push_str(rest);
    out
}

/// The end of an action, skipping `}}` inside string literals.
fn find_close(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut quote: Option<u8> = None;
    let mut i = 0;
    while i < b.len() {
        match (quote, b[i]) {
            (Some(q), c) if c == q => quote = None,
            (Some(b'"'), b'\\') => i += 1,
            (Some(_), _) => {}
            (None, c @ (b'"' | b'`')) => quote = Some(c),
            (None, b'}') if b.get(i + 1) == Some(&b'}') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

/// `$x := ...` or `$x = ...`.
fn is_declaration(body: &str) -> bool {
    let b = body.trim_start();
    b.starts_with('$')
        && b.split_whitespace()
            .take(3)
            .any(|w| w == ":=" || w == "=" || w.ends_with(":=") || w.starts_with(":="))
}

/// Headers of a `table` template: each action's first field, named as the command's columns
/// name it (`{{.ID}}` -> `CONTAINER ID`), or upper-cased.
fn headers(t: &str, columns: &[(&str, &str)]) -> String {
    let mut out = String::new();
    let mut rest = t;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let Some(j) = find_close(&rest[i + 2..]) else {
            break;
        };
        let action = &rest[i + 2..i + 2 + j];
        if let Some(field) = action
            .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
            .find(|w| w.starts_with('.') && w.len() > 1)
        {
            let key = field.trim_start_matches('.');
            let key = key.split('.').next().unwrap_or(key);
            out.push_str(
                &columns
                    .iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, h)| h.to_string())
                    .unwrap_or_else(|| key.to_uppercase()),
            );
        }
        rest = &rest[i + 2 + j + 2..];
    }
    out.push_str(rest);
    out
}

fn to_gtmpl(v: &Value) -> G {
    match v {
        Value::Null => G::Nil,
        Value::Bool(b) => G::Bool(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                G::from(i)
            } else if let Some(u) = n.as_u64() {
                G::from(u)
            } else {
                G::from(n.as_f64().unwrap_or(0.0))
            }
        }
        Value::String(s) => G::String(s.clone()),
        Value::Array(a) => G::Array(a.iter().map(to_gtmpl).collect()),
        Value::Object(o) => G::Map(
            o.iter()
                .map(|(k, v)| (k.clone(), to_gtmpl(v)))
                .collect::<HashMap<_, _>>(),
        ),
    }
}

fn to_json(v: &G) -> Value {
    match v {
        G::NoValue | G::Nil | G::Function(_) => Value::Null,
        G::Bool(b) => Value::Bool(*b),
        G::String(s) => Value::String(s.clone()),
        G::Number(n) => n
            .as_i64()
            .map(Value::from)
            .or_else(|| n.as_u64().map(Value::from))
            .unwrap_or_else(|| Value::from(n.as_f64().unwrap_or(0.0))),
        G::Array(a) => Value::Array(a.iter().map(to_json).collect()),
        G::Object(m) | G::Map(m) => {
            Value::Object(m.iter().map(|(k, v)| (k.clone(), to_json(v))).collect())
        }
    }
}

/// A value as Go's fmt prints it with `%v`.
fn go_string(v: &G) -> String {
    match v {
        G::NoValue => "<no value>".into(),
        G::Nil => "<nil>".into(),
        G::Array(a) => format!(
            "[{}]",
            a.iter().map(go_string).collect::<Vec<_>>().join(" ")
        ),
        G::Object(m) | G::Map(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let items: Vec<String> = keys
                .iter()
                .map(|k| format!("{k}:{}", go_string(&m[*k])))
                .collect();
            format!("map[{}]", items.join(" "))
        }
        other => other.to_string(),
    }
}

fn arg<'a>(name: &str, args: &'a [G], n: usize) -> Result<&'a G, FuncError> {
    args.get(n)
        .ok_or_else(|| FuncError::AtLeastXArgs(name.into(), n + 1))
}

fn text(v: &G) -> String {
    match v {
        G::String(s) => s.clone(),
        other => go_string(other),
    }
}

fn go_print(args: &[G]) -> Result<G, FuncError> {
    Ok(G::String(go_string(arg("_print", args, 0)?)))
}

fn json(args: &[G]) -> Result<G, FuncError> {
    Ok(G::String(to_json(arg("json", args, 0)?).to_string()))
}

fn join(args: &[G]) -> Result<G, FuncError> {
    let sep = text(arg("join", args, 1)?);
    match arg("join", args, 0)? {
        G::Array(a) => Ok(G::String(a.iter().map(text).collect::<Vec<_>>().join(&sep))),
        other => Ok(G::String(text(other))),
    }
}

fn split(args: &[G]) -> Result<G, FuncError> {
    let s = text(arg("split", args, 0)?);
    let sep = text(arg("split", args, 1)?);
    Ok(G::Array(
        s.split(sep.as_str()).map(|p| G::String(p.into())).collect(),
    ))
}

fn lower(args: &[G]) -> Result<G, FuncError> {
    Ok(G::String(text(arg("lower", args, 0)?).to_lowercase()))
}

fn upper(args: &[G]) -> Result<G, FuncError> {
    Ok(G::String(text(arg("upper", args, 0)?).to_uppercase()))
}

fn title(args: &[G]) -> Result<G, FuncError> {
    let s = text(arg("title", args, 0)?);
    let mut out = String::new();
    let mut start = true;
    for c in s.chars() {
        if start {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        start = c.is_whitespace();
    }
    Ok(G::String(out))
}

fn count(name: &str, v: &G) -> Result<usize, FuncError> {
    match v {
        G::Number(n) => n
            .as_u64()
            .map(|n| n as usize)
            .ok_or(FuncError::UnableToConvertFromValue),
        _ => Err(FuncError::Generic(format!("{name}: expected a number"))),
    }
}

fn truncate(args: &[G]) -> Result<G, FuncError> {
    let s = text(arg("truncate", args, 0)?);
    let n = count("truncate", arg("truncate", args, 1)?)?;
    Ok(G::String(s.chars().take(n).collect()))
}

fn pad(args: &[G]) -> Result<G, FuncError> {
    let s = text(arg("pad", args, 0)?);
    let before = count("pad", arg("pad", args, 1)?)?;
    let after = count("pad", arg("pad", args, 2)?)?;
    Ok(G::String(format!(
        "{}{s}{}",
        " ".repeat(before),
        " ".repeat(after)
    )))
}

fn table(rows: &[Map<String, Value>], columns: &[(&str, &str)]) -> String {
    let mut lines = vec![columns
        .iter()
        .map(|(_, h)| *h)
        .collect::<Vec<_>>()
        .join("\t")];
    for r in rows {
        lines.push(
            columns
                .iter()
                .map(|(k, _)| match r.get(*k) {
                    Some(Value::String(s)) => s.clone(),
                    Some(v) => v.to_string(),
                    None => String::new(),
                })
                .collect::<Vec<_>>()
                .join("\t"),
        );
    }
    align_tabs(&lines)
}

/// Aligns tab-separated cells like Go's tabwriter with Docker's settings (minimum cell width
/// 10, padding 3).
pub fn align_tabs(lines: &[String]) -> String {
    let cells: Vec<Vec<&str>> = lines.iter().map(|l| l.split('\t').collect()).collect();
    let cols = cells.iter().map(|c| c.len()).max().unwrap_or(0);
    let mut widths = vec![0; cols];
    for row in &cells {
        for (i, c) in row.iter().enumerate() {
            if i + 1 < row.len() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
    }
    let mut out = String::new();
    for row in &cells {
        let mut line = String::new();
        for (i, c) in row.iter().enumerate() {
            line.push_str(c);
            if i + 1 < row.len() {
                let width = (widths[i] + 3).max(10);
                line.push_str(&" ".repeat(width - c.chars().count()));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Go's `%.<precision>g`: `precision` significant digits, no trailing zeros.
fn go_g(v: f64, precision: usize) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let exp = v.abs().log10().floor() as i32;
    if exp < -4 || exp >= precision as i32 {
        let s = format!("{:.*e}", precision.saturating_sub(1), v);
        // Rust writes 1.23e3; Go writes 1.23e+03.
        let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
        let m = trim_zeros(m);
        let e: i32 = e.parse().unwrap_or(0);
        return format!("{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs());
    }
    let decimals = (precision as i32 - 1 - exp).max(0) as usize;
    trim_zeros(&format!("{v:.decimals$}"))
}

fn trim_zeros(s: &str) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s.to_string()
    }
}

fn scaled(mut v: f64, base: f64, units: &[&str], precision: usize) -> String {
    let mut i = 0;
    while v >= base && i + 1 < units.len() {
        v /= base;
        i += 1;
    }
    format!("{}{}", go_g(v, precision), units[i])
}

/// Docker's sizes (go-units `HumanSize`): decimal units, three significant digits (`4.26MB`,
/// `1.2GB`, `512B`).
pub fn human_size(bytes: u64) -> String {
    scaled(
        bytes as f64,
        1000.0,
        &["B", "kB", "MB", "GB", "TB", "PB"],
        3,
    )
}

/// Docker's memory sizes (go-units `BytesSize`): binary units, four significant digits
/// (`1.5MiB`, `7.763GiB`).
pub fn bytes_size(bytes: u64) -> String {
    scaled(
        bytes as f64,
        1024.0,
        &["B", "KiB", "MiB", "GiB", "TiB", "PiB"],
        4,
    )
}

/// Docker's durations (go-units `HumanDuration`): "Less than a second", "About a minute",
/// "3 hours", "2 weeks".
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    let hours = (s as f64 / 3600.0 + 0.5) as i64;
    match s {
        0 => "Less than a second".into(),
        1 => "1 second".into(),
        s if s < 60 => format!("{s} seconds"),
        s if s / 60 == 1 => "About a minute".into(),
        s if s < 3600 => format!("{} minutes", s / 60),
        _ if hours == 1 => "About an hour".into(),
        _ if hours < 48 => format!("{hours} hours"),
        _ if hours < 24 * 7 * 2 => format!("{} days", hours / 24),
        _ if hours < 24 * 30 * 2 => format!("{} weeks", hours / 24 / 7),
        _ if hours < 24 * 365 * 2 => format!("{} months", hours / 24 / 30),
        s => format!("{} years", s / 3600 / 24 / 365),
    }
}

/// How long ago a Unix time was: "5 seconds ago".
pub fn ago(unix: i64) -> String {
    format!(
        "{} ago",
        human_duration(chrono::Utc::now().timestamp() - unix)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rows() -> Vec<Map<String, Value>> {
        vec![
            json!({"Repository": "busybox", "Tag": "latest", "ID": "a416a98b71e2", "Size": "4.26MB"}).as_object().unwrap().clone(),
            json!({"Repository": "registry.local:5000/app", "Tag": "v1", "ID": "0123456789ab", "Size": "1.2GB"}).as_object().unwrap().clone(),
        ]
    }

    const COLS: &[(&str, &str)] = &[
        ("Repository", "REPOSITORY"),
        ("Tag", "TAG"),
        ("ID", "IMAGE ID"),
        ("Size", "SIZE"),
    ];

    #[test]
    fn default_table_is_aligned() {
        let t = render(&rows(), COLS, None).unwrap();
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0],
            "REPOSITORY                TAG       IMAGE ID       SIZE"
        );
        assert_eq!(
            lines[1],
            "busybox                   latest    a416a98b71e2   4.26MB"
        );
    }

    #[test]
    fn templates() {
        assert_eq!(
            render(&rows(), COLS, Some("{{.Repository}}:{{.Tag}}")).unwrap(),
            "busybox:latest\nregistry.local:5000/app:v1\n"
        );
        let t = render(&rows(), COLS, Some("table {{.ID}}\\t{{.Tag}}")).unwrap();
        assert_eq!(t.lines().next().unwrap(), "IMAGE ID       TAG");
        assert_eq!(t.lines().nth(1).unwrap(), "a416a98b71e2   latest");
        let j = render(&rows()[..1], COLS, Some("{{json .}}")).unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(j.trim()).unwrap()["Tag"],
            "latest"
        );
        assert_eq!(
            render(&rows()[..1], COLS, Some("{{.Nope}}")).unwrap(),
            "<no value>\n"
        );
        assert!(render(&rows(), COLS, Some("{{.Tag")).is_err());
    }

    #[test]
    fn label_calls_read_a_rows_labels() {
        let mut row = Map::new();
        row.insert("Labels".into(), json!("a=1,com.x=y"));
        row.insert(LABELS_KEY.into(), json!({"a": "1", "com.x": "y"}));
        let rows = [row];
        let out = render(
            &rows,
            &[],
            Some(r#"{{.Label "com.x"}}|{{.Label "none"}}|{{.Labels}}"#),
        )
        .unwrap();
        assert_eq!(out, "y||a=1,com.x=y\n");
        let out = render(&rows, &[], Some(r#"{{.Label "a" | upper}}"#)).unwrap();
        assert_eq!(out, "1\n");
        // json shows Docker's fields only.
        let out = render(&rows, &[], Some("json")).unwrap();
        assert_eq!(out, "{\"Labels\":\"a=1,com.x=y\"}\n");
        assert_eq!(
            label_calls(r#"{{.Labels}} {{.Label "k"}}"#),
            r#"{{.Labels}} {{_label . "k"}}"#
        );
    }

    #[test]
    fn go_template_forms_people_use() {
        let v = json!({
            "State": {"Status": "running", "Running": true, "Health": null},
            "Config": {"Cmd": ["sh", "-c", "x"], "Labels": {"b": "2", "a.b": "1"}},
            "Mounts": [{"Source": "/s1"}, {"Source": "/s2"}],
            "Size": 67108864
        });
        for (t, want) in [
            ("{{.State.Status}}", "running"),
            ("{{json .Config.Cmd}}", r#"["sh","-c","x"]"#),
            ("{{.Config.Cmd}}", "[sh -c x]"),
            ("{{.Config.Labels}}", "map[a.b:1 b:2]"),
            (r#"{{index .Config.Labels "a.b"}}"#, "1"),
            ("{{range .Mounts}}{{.Source}} {{end}}", "/s1 /s2 "),
            (
                "{{range $i, $m := .Mounts}}{{$i}}={{$m.Source}};{{end}}",
                "0=/s1;1=/s2;",
            ),
            ("{{if .State.Running}}up{{else}}down{{end}}", "up"),
            ("{{- .State.Status -}}", "running"),
            (r#"{{join .Config.Cmd " "}}"#, "sh -c x"),
            ("{{upper .State.Status}} {{len .Mounts}}", "RUNNING 2"),
            ("{{.State.Health}}", "<nil>"),
            ("{{.Size}}", "67108864"),
            (r#"{{with .State}}{{.Status}}{{end}}"#, "running"),
            (r#"{{/* a comment */}}x"#, "x"),
            (r#"{{printf "%s!" .State.Status}}"#, "running!"),
        ] {
            assert_eq!(execute(t, &v).unwrap(), want, "{t}");
        }
    }

    #[test]
    fn sizes_and_ages_like_docker() {
        assert_eq!(human_size(512), "512B");
        assert_eq!(human_size(4_261_000), "4.26MB");
        assert_eq!(human_size(1_200_000_000), "1.2GB");
        assert_eq!(human_size(123_456_789), "123MB");
        assert_eq!(human_size(0), "0B");
        assert_eq!(bytes_size(1_572_864), "1.5MiB");
        assert_eq!(bytes_size(8_335_261_696), "7.763GiB");
        assert_eq!(human_duration(5), "5 seconds");
        assert_eq!(human_duration(3600), "About an hour");
        assert_eq!(human_duration(5 * 3600), "5 hours");
        assert_eq!(human_duration(14 * 86400), "2 weeks");
        assert_eq!(go_g(1234.5, 3), "1.23e+03");
    }
}
