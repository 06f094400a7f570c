//! `docker top`: the host's `ps` with the user's arguments (default `-ef`), its rows kept
//! for the container's processes, as dockerd does. `ps` is run rather than reimplemented:
//! its columns, formats and options (`aux`, `-o pid,comm`, `-eo user,pid,etime`) are what
//! users pass, and only procps knows them all.

use crate::{Engine, EngineError, Result};

/// `ps`'s output for the container: the header's titles and one row per process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Top {
    /// The column titles (`UID`, `PID`, ...).
    pub titles: Vec<String>,
    /// One row per process of the container, a field per title.
    pub processes: Vec<Vec<String>>,
}

impl Engine {
    /// `GET /containers/{id}/top?ps_args=`.
    pub async fn top(&self, key: &str, ps_args: &str) -> Result<Top> {
        let pids = self.pids(key).await?;
        let args: Vec<&str> = match ps_args.split_whitespace().collect::<Vec<_>>() {
            a if a.is_empty() => vec!["-ef"],
            a => a,
        };
        let only: String = pids
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(",");
        // With `-q <pids>` ps lists just those; some options (BSD `f`) refuse it, so as
        // dockerd does, a failure is retried without it (the rows are filtered anyway).
        let mut out = ps(&args, Some(&only)).await?;
        if !out.status.success() {
            out = ps(&args, None).await?;
        }
        if !out.status.success() {
            return Err(EngineError::InvalidParameter(format!(
                "ps: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        parse_ps(&String::from_utf8_lossy(&out.stdout), &pids)
    }
}

async fn ps(args: &[&str], pids: Option<&str>) -> Result<std::process::Output> {
    let mut cmd = tokio::process::Command::new("ps");
    cmd.args(args);
    if let Some(p) = pids {
        cmd.args(["-q", p]);
    }
    cmd.output()
        .await
        .map_err(|e| EngineError::Internal(format!("run ps: {e}")))
}

/// Splits `ps` output into titles and the rows of `pids`: a row has as many fields as there
/// are titles, the last one taking the rest of the line (a command with spaces).
pub fn parse_ps(output: &str, pids: &[i32]) -> Result<Top> {
    let mut lines = output.lines();
    let titles: Vec<String> = lines
        .next()
        .unwrap_or("")
        .split_whitespace()
        .map(String::from)
        .collect();
    let pid_at = titles.iter().position(|t| t == "PID").ok_or_else(|| {
        EngineError::InvalidParameter("Couldn't find PID field in ps output".into())
    })?;
    let mut processes = Vec::new();
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let mut fields: Vec<String> = Vec::with_capacity(titles.len());
        let mut rest = line.trim_start();
        while fields.len() + 1 < titles.len() {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            fields.push(rest[..end].to_string());
            rest = rest[end..].trim_start();
        }
        fields.push(rest.to_string());
        let pid: i32 = fields[pid_at].parse().map_err(|_| {
            EngineError::InvalidParameter(format!(
                "Unexpected pid '{}': not a number",
                fields[pid_at]
            ))
        })?;
        if pids.contains(&pid) {
            processes.push(fields);
        }
    }
    Ok(Top { titles, processes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_of_the_containers_pids_with_the_command_whole() {
        let out = "UID          PID    PPID  C STIME TTY          TIME CMD\n\
                   root           1       0  0 10:00 ?        00:00:01 /sbin/init splash\n\
                   root        4242       1  0 10:01 ?        00:00:00 sleep 300\n";
        let top = parse_ps(out, &[4242]).unwrap();
        assert_eq!(top.titles.len(), 8);
        assert_eq!(
            top.processes,
            [[
                "root",
                "4242",
                "1",
                "0",
                "10:01",
                "?",
                "00:00:00",
                "sleep 300"
            ]]
        );
        let e = parse_ps("USER COMMAND\nroot sh\n", &[1]).unwrap_err();
        assert_eq!(e.to_string(), "Couldn't find PID field in ps output");
    }

    proptest::proptest! {
        #[test]
        fn any_output_parses_or_errs_without_panicking(s in ".{0,300}") {
            let _ = parse_ps(&s, &[1, 2]);
        }
    }
}
