//! Docker's output conventions: `--format` templates (the Go-template forms people use:
//! `{{.Field}}`, `{{json .}}`, `table ...`), aligned tables, human sizes and ages.

use serde_json::{Map, Value};

/// Renders rows either as Docker's default table (`columns`), or through a `--format`
/// template. Each row is an object whose keys are the template's field names.
pub fn render(
    rows: &[Map<String, Value>],
    columns: &[(&str, &str)],
    template: Option<&str>,
) -> String {
    let mut out = String::new();
    match template {
        None => out.push_str(&table(rows, columns)),
        Some(t) if t.trim() == "json" || t.trim() == "{{json .}}" => {
            for r in rows {
                out.push_str(&Value::Object(r.clone()).to_string());
                out.push('\n');
            }
        }
        Some(t) => {
            if let Some(rest) = t.strip_prefix("table") {
                let rest = rest.trim_start();
                let header: Vec<String> = split_fields(rest)
                    .iter()
                    .map(|p| match p {
                        Part::Text(s) => s.clone(),
                        Part::Field(f) => header_of(f, columns),
                    })
                    .collect();
                let mut lines = vec![header.concat()];
                lines.extend(rows.iter().map(|r| fill(rest, r)));
                out.push_str(&align_tabs(&lines));
            } else {
                for r in rows {
                    out.push_str(&fill(t, r).replace("\\t", "\t"));
                    out.push('\n');
                }
            }
        }
    }
    out
}

enum Part {
    Text(String),
    Field(String),
}

fn split_fields(t: &str) -> Vec<Part> {
    let mut parts = Vec::new();
    let mut rest = t;
    while let Some(i) = rest.find("{{") {
        parts.push(Part::Text(rest[..i].replace("\\t", "\t")));
        let Some(j) = rest[i..].find("}}") else {
            parts.push(Part::Text(rest[i..].to_string()));
            return parts;
        };
        parts.push(Part::Field(rest[i + 2..i + j].trim().to_string()));
        rest = &rest[i + j + 2..];
    }
    parts.push(Part::Text(rest.replace("\\t", "\t")));
    parts
}

fn fill(t: &str, row: &Map<String, Value>) -> String {
    split_fields(t)
        .into_iter()
        .map(|p| match p {
            Part::Text(s) => s,
            Part::Field(f) if f == "json ." => Value::Object(row.clone()).to_string(),
            Part::Field(f) => {
                let (json, path) = match f.strip_prefix("json ") {
                    Some(p) => (true, p.trim()),
                    None => (false, f.as_str()),
                };
                let mut v = &Value::Object(row.clone());
                let owned;
                for key in path
                    .trim_start_matches('.')
                    .split('.')
                    .filter(|k| !k.is_empty())
                {
                    match v.get(key) {
                        Some(x) => v = x,
                        None => {
                            owned = Value::String("<no value>".into());
                            v = &owned;
                            break;
                        }
                    }
                }
                match (json, v) {
                    (false, Value::String(s)) => s.clone(),
                    (_, other) => other.to_string(),
                }
            }
        })
        .collect()
}

fn header_of(field: &str, columns: &[(&str, &str)]) -> String {
    let key = field.trim_start_matches('.');
    columns
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, h)| h.to_string())
        .unwrap_or_else(|| key.to_uppercase())
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
fn align_tabs(lines: &[String]) -> String {
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

/// Docker's sizes: decimal units, three significant digits (`4.26MB`, `1.2GB`, `512B`).
pub fn human_size(bytes: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < units.len() {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        return format!("{bytes}B");
    }
    let s = if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    };
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    format!("{s}{}", units[i])
}

/// Docker's ages: "2 weeks ago", "About an hour ago", "5 seconds ago".
pub fn human_age(created: &str, now: chrono::DateTime<chrono::Utc>) -> String {
    let Ok(t) = chrono::DateTime::parse_from_rfc3339(created) else {
        return "N/A".into();
    };
    let secs = (now - t.with_timezone(&chrono::Utc)).num_seconds().max(0);
    let (n, unit) = match secs {
        s if s < 1 => return "Less than a second ago".into(),
        s if s < 60 => (s, "second"),
        s if s < 3600 => {
            if s / 60 == 1 {
                return "About a minute ago".into();
            }
            (s / 60, "minute")
        }
        s if s < 86400 => {
            if s / 3600 == 1 {
                return "About an hour ago".into();
            }
            (s / 3600, "hour")
        }
        s if s < 86400 * 14 => (s / 86400, "day"),
        s if s < 86400 * 60 => (s / (86400 * 7), "week"),
        s if s < 86400 * 365 * 2 => (s / (86400 * 30), "month"),
        s => (s / (86400 * 365), "year"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
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
        let t = render(&rows(), COLS, None);
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
            render(&rows(), COLS, Some("{{.Repository}}:{{.Tag}}")),
            "busybox:latest\nregistry.local:5000/app:v1\n"
        );
        let t = render(&rows(), COLS, Some("table {{.ID}}\\t{{.Tag}}"));
        assert_eq!(t.lines().next().unwrap(), "IMAGE ID       TAG");
        let j = render(&rows()[..1], COLS, Some("{{json .}}"));
        assert_eq!(
            serde_json::from_str::<Value>(j.trim()).unwrap()["Tag"],
            "latest"
        );
        assert_eq!(
            render(&rows()[..1], COLS, Some("{{.Nope}}")),
            "<no value>\n"
        );
    }

    #[test]
    fn sizes_and_ages_like_docker() {
        assert_eq!(human_size(512), "512B");
        assert_eq!(human_size(4_261_000), "4.26MB");
        assert_eq!(human_size(1_200_000_000), "1.2GB");
        assert_eq!(human_size(123_456_789), "123MB");
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-24T12:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(human_age("2026-11-24T11:59:55Z", now), "5 seconds ago");
        assert_eq!(human_age("2026-11-24T11:00:00Z", now), "About an hour ago");
        assert_eq!(human_age("2026-11-10T12:00:00Z", now), "2 weeks ago");
        assert_eq!(human_age("garbage", now), "N/A");
    }
}
