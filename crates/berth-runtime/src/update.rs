//! `update`: new cgroup limits for a live container, merged over the bundle's (runc's rules).

use libcgroups::common::CgroupManager;
use libcontainer::container::ContainerStatus;

use crate::error::{Result, RuntimeError};
use crate::runtime::{cgroup_manager, wrong_state, Runtime};

/// What `update` may change (runc's flags).
#[derive(Debug, Clone, Default)]
pub struct UpdateResources {
    /// Memory limit, bytes.
    pub memory: Option<i64>,
    /// Memory + swap limit, bytes (-1: unlimited).
    pub memory_swap: Option<i64>,
    /// Memory soft limit, bytes.
    pub memory_reservation: Option<i64>,
    /// CPU shares.
    pub cpu_shares: Option<u64>,
    /// CFS quota, microseconds.
    pub cpu_quota: Option<i64>,
    /// CFS period, microseconds.
    pub cpu_period: Option<u64>,
    /// CPUs allowed.
    pub cpuset_cpus: Option<String>,
    /// Pids limit.
    pub pids_limit: Option<i64>,
}

impl Runtime {
    /// `update`: applies new cgroup limits to a live container. The limits are merged over
    /// the ones in the container's bundle (`config.json`), as runc does, so what the update
    /// does not name (device rules above all) stays as it was.
    pub fn update(&self, id: &str, change: &UpdateResources) -> Result<()> {
        use oci_spec::runtime::{
            LinuxCpuBuilder, LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResources,
        };
        let _lock = self.lock(id)?;
        let c = self.load(id)?;
        if !matches!(
            c.status(),
            ContainerStatus::Created | ContainerStatus::Running | ContainerStatus::Paused
        ) {
            return Err(wrong_state(&c, "update"));
        }
        let bundle = crate::bundle::Bundle::load(c.bundle()).map_err(RuntimeError::Bundle)?;
        let mut res: LinuxResources = bundle
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.resources().clone())
            .unwrap_or_default();
        let err = |e: oci_spec::OciSpecError| RuntimeError::Usage(e.to_string());
        if change.memory.is_some()
            || change.memory_swap.is_some()
            || change.memory_reservation.is_some()
        {
            let old = (*res.memory()).unwrap_or_default();
            let mut m = LinuxMemoryBuilder::default();
            if let Some(v) = change.memory.or(old.limit()) {
                m = m.limit(v);
            }
            if let Some(v) = change.memory_swap.or(old.swap()) {
                m = m.swap(v);
            }
            if let Some(v) = change.memory_reservation.or(old.reservation()) {
                m = m.reservation(v);
            }
            res.set_memory(Some(m.build().map_err(err)?));
        }
        if change.cpu_shares.is_some()
            || change.cpu_quota.is_some()
            || change.cpu_period.is_some()
            || change.cpuset_cpus.is_some()
        {
            let old = res.cpu().clone().unwrap_or_default();
            let mut b = LinuxCpuBuilder::default();
            if let Some(v) = change.cpu_shares.or(old.shares()) {
                b = b.shares(v);
            }
            if let Some(v) = change.cpu_quota.or(old.quota()) {
                b = b.quota(v);
            }
            if let Some(v) = change.cpu_period.or(old.period()) {
                b = b.period(v);
            }
            if let Some(v) = change.cpuset_cpus.clone().or(old.cpus().clone()) {
                b = b.cpus(v);
            }
            if let Some(v) = old.mems().clone() {
                b = b.mems(v);
            }
            res.set_cpu(Some(b.build().map_err(err)?));
        }
        if let Some(p) = change.pids_limit {
            res.set_pids(Some(
                LinuxPidsBuilder::default().limit(p).build().map_err(err)?,
            ));
        }
        cgroup_manager(&c)?
            .apply(&libcgroups::common::ControllerOpt {
                resources: &res,
                disable_oom_killer: false,
                oom_score_adj: None,
                freezer_state: None,
            })
            .map_err(|e| RuntimeError::Cgroup {
                op: "update cgroup limits",
                message: e.to_string(),
            })
    }
}
