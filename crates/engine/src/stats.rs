//! `docker stats`: the runtime's cgroup statistics (`berth-runtime events --stats`, the runc
//! shape) turned into the Engine API's stats JSON.

use serde_json::{json, Value};

use crate::{Engine, EngineError, Result};

/// Host CPU time in nanoseconds (the `cpu` line of /proc/stat), Docker's `system_cpu_usage`.
fn system_cpu_ns() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: u64 = stat
        .lines()
        .next()
        .map(|l| {
            l.split_whitespace()
                .skip(1)
                .take(7)
                .filter_map(|x| x.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    // USER_HZ is 100 on every Linux ABI berth runs on.
    ticks * 10_000_000
}

/// The runc-shaped statistics as Docker's `ContainerStatsResponse` fields.
pub fn docker_shape(raw: &Value) -> Value {
    let d = &raw["data"];
    let cpu = &d["cpu"];
    let percpu = cpu["usage"]["percpu"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let online = percpu.len().max(1);
    let mem = &d["memory"];
    let raw_stats = mem["raw"].clone();
    json!({
        "read": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        "pids_stats": {"current": d["pids"]["current"], "limit": d["pids"]["limit"]},
        "cpu_stats": {
            "cpu_usage": {
                "total_usage": cpu["usage"]["total"],
                "percpu_usage": percpu,
                "usage_in_kernelmode": cpu["usage"]["kernel"],
                "usage_in_usermode": cpu["usage"]["user"],
            },
            "system_cpu_usage": system_cpu_ns(),
            "online_cpus": online,
            "throttling_data": {
                "periods": cpu["throttling"]["periods"],
                "throttled_periods": cpu["throttling"]["throttled_periods"],
                "throttled_time": cpu["throttling"]["throttled_time"],
            },
        },
        "memory_stats": {
            "usage": mem["usage"]["usage"],
            "max_usage": mem["usage"]["max"],
            "limit": mem["usage"]["limit"],
            "failcnt": mem["usage"]["failcnt"],
            "stats": raw_stats,
        },
        "blkio_stats": {
            "io_service_bytes_recursive": d["blkio"]["ioServiceBytesRecursive"],
            "io_serviced_recursive": d["blkio"]["ioServicedRecursive"],
        },
        "networks": {},
    })
}

impl Engine {
    /// One sample of a running container's statistics, in Docker's shape.
    pub async fn stats(&self, key: &str) -> Result<Value> {
        let rec = self.inspect(key)?;
        if !rec.state.status.is_running() {
            return Err(EngineError::Conflict(format!(
                "Container {} is not running",
                rec.id
            )));
        }
        let out = self.runtime_cmd(&["events", "--stats", &rec.id]).await?;
        let raw: Value = serde_json::from_str(out.trim())
            .map_err(|e| EngineError::Internal(format!("runtime stats: {e}")))?;
        let mut v = docker_shape(&raw);
        v["id"] = json!(rec.id);
        v["name"] = json!(rec.name);
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runc_stats_become_dockers() {
        let raw = json!({"data": {
            "cpu": {"usage": {"total": 100, "percpu": [60, 40], "kernel": 10, "user": 90},
                    "throttling": {"periods": 1, "throttled_periods": 0, "throttled_time": 0}},
            "memory": {"usage": {"usage": 4096, "max": 8192, "limit": 67108864, "failcnt": 0},
                       "raw": {"cache": 0}},
            "pids": {"current": 3, "limit": 50},
            "blkio": {"ioServiceBytesRecursive": [], "ioServicedRecursive": []}
        }});
        let v = docker_shape(&raw);
        assert_eq!(v["cpu_stats"]["cpu_usage"]["total_usage"], 100);
        assert_eq!(v["cpu_stats"]["online_cpus"], 2);
        assert_eq!(v["memory_stats"]["limit"], 67108864);
        assert_eq!(v["pids_stats"]["current"], 3);
        assert!(v["cpu_stats"]["system_cpu_usage"].as_u64().unwrap() > 0);
    }
}

impl Engine {
    /// `POST /containers/{id}/update`: new cgroup limits (applied at once to a running
    /// container through the runtime's `update`) and restart policy, kept in the record.
    pub async fn update(
        &self,
        key: &str,
        u: bollard_stubs::models::ContainerUpdateBody,
    ) -> Result<()> {
        let ctr = self.find(key)?;
        let _op = ctr.op.lock().await;
        let rec = ctr.snapshot();
        if u.restart_policy
            .as_ref()
            .and_then(|p| p.name)
            .is_some_and(|n| {
                !matches!(
                    n,
                    bollard_stubs::models::RestartPolicyNameEnum::NO
                        | bollard_stubs::models::RestartPolicyNameEnum::EMPTY
                )
            })
            && rec.host_config.auto_remove == Some(true)
        {
            return Err(EngineError::InvalidParameter(
                "Restart policy cannot be updated because AutoRemove is enabled for the container"
                    .into(),
            ));
        }
        let nano = u.nano_cpus.filter(|n| *n > 0);
        if nano.is_some() && (u.cpu_quota.unwrap_or(0) > 0 || u.cpu_period.unwrap_or(0) > 0) {
            return Err(EngineError::InvalidParameter(
                "conflicting options: Nano CPUs and CPU Period/Quota cannot both be set".into(),
            ));
        }
        let memory = u.memory.filter(|m| *m > 0);
        let old_swap = rec.host_config.memory_swap.unwrap_or(0);
        let swap = u.memory_swap.filter(|s| *s != 0).or_else(|| {
            // As at create: no swap setting means twice the memory, unless unlimited.
            memory.filter(|_| old_swap != -1).map(|m| m * 2)
        });
        if let (Some(m), Some(s)) = (memory, swap) {
            if s != -1 && s < m {
                return Err(EngineError::InvalidParameter(
                    "Minimum memoryswap limit should be larger than memory limit, see usage".into(),
                ));
            }
        }
        let (quota, period) = match nano {
            Some(n) => (Some(n * 100_000 / 1_000_000_000), Some(100_000)),
            None => (
                u.cpu_quota.filter(|q| *q > 0),
                u.cpu_period.filter(|p| *p > 0),
            ),
        };
        let mut args: Vec<String> = Vec::new();
        let mut add = |flag: &str, v: Option<String>| {
            if let Some(v) = v {
                args.push(flag.into());
                args.push(v);
            }
        };
        add("--memory", memory.map(|v| v.to_string()));
        add("--memory-swap", swap.map(|v| v.to_string()));
        add(
            "--memory-reservation",
            u.memory_reservation
                .filter(|v| *v > 0)
                .map(|v| v.to_string()),
        );
        add(
            "--cpu-share",
            u.cpu_shares.filter(|v| *v > 0).map(|v| v.to_string()),
        );
        add("--cpu-quota", quota.map(|v| v.to_string()));
        add("--cpu-period", period.map(|v| v.to_string()));
        add(
            "--cpuset-cpus",
            u.cpuset_cpus.clone().filter(|c| !c.is_empty()),
        );
        add(
            "--pids-limit",
            u.pids_limit.filter(|p| *p != 0).map(|v| v.to_string()),
        );
        if rec.state.status.is_running() && !args.is_empty() {
            let mut full = vec!["update".to_string()];
            full.extend(args);
            full.push(rec.id.clone());
            let refs: Vec<&str> = full.iter().map(String::as_str).collect();
            self.runtime_cmd(&refs).await?;
        }
        let rec = {
            let mut r = ctr.rec.lock().expect("record lock");
            let h = &mut r.host_config;
            if memory.is_some() {
                h.memory = memory;
                h.memory_swap = swap;
            }
            if let Some(v) = u.memory_reservation.filter(|v| *v > 0) {
                h.memory_reservation = Some(v);
            }
            if let Some(v) = u.cpu_shares.filter(|v| *v > 0) {
                h.cpu_shares = Some(v);
            }
            if nano.is_some() {
                h.nano_cpus = nano;
            } else {
                if quota.is_some() {
                    h.cpu_quota = quota;
                }
                if period.is_some() {
                    h.cpu_period = period;
                }
            }
            if let Some(c) = u.cpuset_cpus.clone().filter(|c| !c.is_empty()) {
                h.cpuset_cpus = Some(c);
            }
            if let Some(p) = u.pids_limit.filter(|p| *p != 0) {
                h.pids_limit = Some(p);
            }
            if let Some(p) = u.restart_policy.clone() {
                h.restart_policy = Some(p);
            }
            r.clone()
        };
        self.persist(&rec)?;
        self.emit(&rec, "update", &[]);
        Ok(())
    }
}
