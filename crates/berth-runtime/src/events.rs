//! `events`: container statistics in runc's JSON shape (`runc events --stats`), mapped from
//! libcgroups' statistics, whose field names differ.

use libcgroups::stats::{BlkioDeviceStat, MemoryData, Stats};
use serde_json::{json, Value};

/// One `{"type":"stats","id":..,"data":..}` event as runc prints it.
pub fn stats_event(id: &str, stats: &Stats) -> Value {
    json!({"type": "stats", "id": id, "data": runc_stats(stats)})
}

/// runc's `types.Stats` from libcgroups' `Stats`.
pub fn runc_stats(s: &Stats) -> Value {
    let mem = |m: &MemoryData| json!({"limit": m.limit, "usage": m.usage, "max": m.max_usage, "failcnt": m.fail_count});
    let blkio = |entries: &[BlkioDeviceStat]| -> Vec<Value> {
        entries
            .iter()
            .map(|e| json!({"major": e.major, "minor": e.minor, "op": e.op_type.clone().unwrap_or_default(), "value": e.value}))
            .collect()
    };
    let hugetlb: serde_json::Map<String, Value> = s
        .hugetlb
        .iter()
        .map(|(size, h)| {
            (
                size.clone(),
                json!({"usage": h.usage, "max": h.max_usage, "failcnt": h.fail_count}),
            )
        })
        .collect();
    json!({
        "cpu": {
            "usage": {
                "total": s.cpu.usage.usage_total,
                "percpu": s.cpu.usage.per_core_usage_total,
                "percpu_kernel": s.cpu.usage.per_core_usage_kernel,
                "percpu_user": s.cpu.usage.per_core_usage_user,
                "kernel": s.cpu.usage.usage_kernel,
                "user": s.cpu.usage.usage_user
            },
            "throttling": {
                "periods": s.cpu.throttling.periods,
                "throttled_periods": s.cpu.throttling.throttled_periods,
                "throttled_time": s.cpu.throttling.throttled_time
            }
        },
        "memory": {
            "cache": s.memory.cache,
            "usage": mem(&s.memory.memory),
            "swap": mem(&s.memory.memswap),
            "kernel": mem(&s.memory.kernel),
            "kernelTCP": mem(&s.memory.kernel_tcp),
            "raw": s.memory.stats
        },
        "pids": {"current": s.pids.current, "limit": s.pids.limit},
        "blkio": {
            "ioServiceBytesRecursive": blkio(&s.blkio.service_bytes),
            "ioServicedRecursive": blkio(&s.blkio.serviced),
            "ioQueueRecursive": blkio(&s.blkio.queued),
            "ioServiceTimeRecursive": blkio(&s.blkio.service_time),
            "ioWaitTimeRecursive": blkio(&s.blkio.wait_time),
            "ioMergedRecursive": blkio(&s.blkio.merged),
            "ioTimeRecursive": blkio(&s.blkio.time),
            "sectorsRecursive": blkio(&s.blkio.sectors)
        },
        "hugetlb": hugetlb
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_libcgroups_names_to_runcs() {
        let mut s = Stats::default();
        s.memory.memory.usage = 7;
        s.memory.memory.limit = 9;
        s.cpu.usage.usage_total = 11;
        s.pids.current = 2;
        let e = stats_event("c", &s);
        assert_eq!(e["type"], "stats");
        assert_eq!(e["data"]["memory"]["usage"]["usage"], 7);
        assert_eq!(e["data"]["memory"]["usage"]["limit"], 9);
        assert_eq!(e["data"]["cpu"]["usage"]["total"], 11);
        assert_eq!(e["data"]["pids"]["current"], 2);
    }
}
