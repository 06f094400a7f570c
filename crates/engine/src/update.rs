//! `docker update`: new limits for a container, live when it runs.

use crate::{Engine, EngineError, Result};

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
        self.persist(&ctr)?;
        self.emit(&rec, "update", &[]);
        Ok(())
    }
}
