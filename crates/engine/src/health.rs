//! Health checks (`HEALTHCHECK` in the image, `--health-*` at create): a probe run in the
//! container every interval through the runtime's `exec`; `starting` until the first success
//! (failures in the start period do not count), `unhealthy` after `retries` failures in a
//! row. The state is in the record (inspect shows it) and changes are `health_status` events.

use std::sync::Arc;
use std::time::Duration;

use bollard_stubs::models::{
    ExecConfig, Health, HealthConfig, HealthStatusEnum, HealthcheckResult,
};

use crate::{Ctr, Engine};

/// Docker's defaults (moby `container/health.go`).
const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_RETRIES: i64 = 3;
/// Output kept per probe, as Docker.
const MAX_OUTPUT: usize = 4096;
/// Probe results kept, as Docker.
const MAX_LOG: usize = 5;

/// The probe's argv, or None when the check is disabled (`NONE`, or no test).
pub fn probe_argv(h: &HealthConfig) -> Option<Vec<String>> {
    let t = h.test.as_ref()?;
    match t.first().map(String::as_str) {
        Some("CMD") => Some(t[1..].to_vec()).filter(|a| !a.is_empty()),
        Some("CMD-SHELL") => Some(vec!["/bin/sh".into(), "-c".into(), t[1..].join(" ")]),
        _ => None,
    }
}

fn ns(v: Option<i64>, default: Duration) -> Duration {
    v.filter(|n| *n > 0)
        .map(|n| Duration::from_nanos(n as u64))
        .unwrap_or(default)
}

impl Engine {
    /// Starts the health loop of a container that has just started, if it has a check.
    pub(crate) fn start_health(self: &Arc<Self>, ctr: &Arc<Ctr>) {
        let rec = ctr.snapshot();
        let Some(h) = rec.config.healthcheck.clone() else {
            return;
        };
        let Some(argv) = probe_argv(&h) else { return };
        {
            let mut r = ctr.rec.lock().expect("record lock");
            r.state.health = Some(Health {
                status: Some(HealthStatusEnum::STARTING),
                failing_streak: Some(0),
                log: Some(Vec::new()),
            });
        }
        let this = self.clone();
        let ctr = ctr.clone();
        tokio::spawn(async move { this.health_loop(ctr, h, argv).await });
    }

    async fn health_loop(self: Arc<Self>, ctr: Arc<Ctr>, h: HealthConfig, argv: Vec<String>) {
        let interval = ns(h.interval, DEFAULT_INTERVAL);
        let start_interval = ns(h.start_interval, Duration::from_secs(5));
        let timeout = ns(h.timeout, DEFAULT_TIMEOUT);
        let retries = h.retries.filter(|r| *r > 0).unwrap_or(DEFAULT_RETRIES);
        let start_period = ns(h.start_period, Duration::ZERO);
        let started = tokio::time::Instant::now();
        let mut phase = ctr.phase.subscribe();
        let runs = phase.borrow().exits;
        loop {
            let starting = matches!(
                ctr.snapshot().state.health.as_ref().and_then(|x| x.status),
                Some(HealthStatusEnum::STARTING)
            );
            let wait = if starting && started.elapsed() < start_period {
                start_interval.min(interval)
            } else {
                interval
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                // This run of the container ended: the loop ends with it.
                _ = phase.wait_for(|p| !p.running || p.exits != runs) => return,
            }
            if !phase.borrow().running || phase.borrow().exits != runs {
                return;
            }
            let begin = crate::now();
            let (code, output) = self.probe(&ctr.id, &argv, timeout).await;
            let end = crate::now();
            let in_start_period = started.elapsed() < start_period;
            let (rec, changed) = {
                let mut r = ctr.rec.lock().expect("record lock");
                if !r.state.status.is_running() {
                    return;
                }
                let health = r.state.health.get_or_insert_with(Health::default);
                let before = health.status;
                let log = health.log.get_or_insert_with(Vec::new);
                log.push(HealthcheckResult {
                    start: Some(begin),
                    end: Some(end),
                    exit_code: Some(code),
                    output: Some(output),
                });
                if log.len() > MAX_LOG {
                    log.remove(0);
                }
                if code == 0 {
                    health.failing_streak = Some(0);
                    health.status = Some(HealthStatusEnum::HEALTHY);
                } else if !(in_start_period && before == Some(HealthStatusEnum::STARTING)) {
                    let streak = health.failing_streak.unwrap_or(0) + 1;
                    health.failing_streak = Some(streak);
                    if streak >= retries {
                        health.status = Some(HealthStatusEnum::UNHEALTHY);
                    }
                }
                let changed = health.status != before;
                (r.clone(), changed)
            };
            let _ = self.persist(&ctr);
            if changed {
                let status = rec
                    .state
                    .health
                    .as_ref()
                    .and_then(|x| x.status)
                    .map(|s| s.to_string())
                    .unwrap_or_default();
                self.emit(&rec, &format!("health_status: {status}"), &[]);
            }
        }
    }

    /// Runs the probe once: its exit code (-1 on timeout or failure to run) and output.
    async fn probe(&self, id: &str, argv: &[String], timeout: Duration) -> (i64, String) {
        let cfg = ExecConfig {
            cmd: Some(argv.to_vec()),
            ..Default::default()
        };
        let process = match self.exec_process(id, &cfg) {
            Ok(p) => p,
            Err(e) => return (-1, e.to_string()),
        };
        let pfile = self
            .ctr_dir(id)
            .join(format!("health-{}.json", std::process::id()));
        if let Err(e) = std::fs::write(&pfile, process.to_string()) {
            return (-1, e.to_string());
        }
        let mut cmd = self.runtime_exec(id, &pfile, None);
        cmd.stdin(std::process::Stdio::null()).kill_on_drop(true);
        let r = tokio::time::timeout(timeout, cmd.output()).await;
        let _ = std::fs::remove_file(&pfile);
        match r {
            Err(_) => (
                -1,
                format!("Health check exceeded timeout ({}s)", timeout.as_secs()),
            ),
            Ok(Err(e)) => (-1, e.to_string()),
            Ok(Ok(out)) => {
                let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
                text.push_str(&String::from_utf8_lossy(&out.stderr));
                text.truncate(MAX_OUTPUT);
                (out.status.code().unwrap_or(-1) as i64, text)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_forms() {
        let h = |t: &[&str]| HealthConfig {
            test: Some(t.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        };
        assert_eq!(
            probe_argv(&h(&["CMD", "true"])),
            Some(vec!["true".to_string()])
        );
        assert_eq!(
            probe_argv(&h(&["CMD-SHELL", "exit 1"])),
            Some(vec!["/bin/sh".into(), "-c".into(), "exit 1".into()])
        );
        assert_eq!(probe_argv(&h(&["NONE"])), None);
        assert_eq!(probe_argv(&HealthConfig::default()), None);
    }
}
