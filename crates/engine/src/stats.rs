//! `docker stats`: the runtime's cgroup statistics (`berth-runtime events --stats`, the runc
//! shape) turned into the Engine API's stats JSON.

use std::path::Path;

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

/// The host's memory in bytes (`MemTotal` of /proc/meminfo).
fn host_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb = info
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse::<u64>()
        .ok()?;
    Some(kb * 1024)
}

/// The runc-shaped statistics as Docker's `ContainerStatsResponse` fields.
pub fn docker_shape(raw: &Value) -> Value {
    docker_shape_on(raw, host_memory())
}

/// As [`docker_shape`], on a host with `host_mem` bytes: a memory limit above it (no limit:
/// cgroup v1 says 2^63 - 4096) is reported as the host's memory, as dockerd does.
fn docker_shape_on(raw: &Value, host_mem: Option<u64>) -> Value {
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
            "limit": match (mem["usage"]["limit"].as_u64(), host_mem) {
                (Some(l), Some(h)) if l > h => json!(h),
                _ => mem["usage"]["limit"].clone(),
            },
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
        v["networks"] = networks(&rec.net.endpoints, Path::new("/sys/class/net"));
        v["id"] = json!(rec.id);
        v["name"] = json!(rec.name);
        Ok(v)
    }
}

/// Each interface of the container's networks by its name in the container (`eth0`), with
/// dockerd's counters, read from the host end of its veth pair: what the host end sends, the
/// container receives, so receive and transmit swap.
fn networks(endpoints: &[berth_network::Attached], sys_class_net: &Path) -> Value {
    let mut out = serde_json::Map::new();
    for a in endpoints {
        let dir = sys_class_net
            .join(&a.endpoint.host_iface)
            .join("statistics");
        let read = |name: &str| -> u64 {
            std::fs::read_to_string(dir.join(name))
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0)
        };
        let mut iface = serde_json::Map::new();
        for (theirs, ours) in [("rx", "tx"), ("tx", "rx")] {
            for what in ["bytes", "packets", "errors", "dropped"] {
                iface.insert(
                    format!("{theirs}_{what}"),
                    json!(read(&format!("{ours}_{what}"))),
                );
            }
        }
        out.insert(a.endpoint.iface.clone(), Value::Object(iface));
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_counters_come_from_the_host_end_swapped() {
        let sys = tempfile::tempdir().unwrap();
        let stats = sys.path().join("vethabc").join("statistics");
        std::fs::create_dir_all(&stats).unwrap();
        for (f, v) in [("rx_bytes", 10), ("tx_bytes", 2000), ("tx_packets", 7)] {
            std::fs::write(stats.join(f), format!("{v}\n")).unwrap();
        }
        let endpoint: berth_network::Endpoint = serde_json::from_value(json!({
            "id": "e", "container": "c", "name": "n", "ip": "10.0.0.2", "prefix": 24,
            "gateway": "10.0.0.1", "mac": "02:42:0a:00:00:02", "aliases": [],
            "host_iface": "vethabc", "iface": "eth0"
        }))
        .unwrap();
        let a = berth_network::Attached {
            network: "bridge".into(),
            network_id: "n1".into(),
            endpoint,
        };
        let v = networks(&[a], sys.path());
        assert_eq!(v["eth0"]["rx_bytes"], 2000);
        assert_eq!(v["eth0"]["rx_packets"], 7);
        assert_eq!(v["eth0"]["tx_bytes"], 10);
        assert_eq!(v["eth0"]["tx_dropped"], 0);
    }

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
        // No limit (v1's 2^63 - 4096) reads as the host's memory.
        let mut unlimited = raw.clone();
        unlimited["data"]["memory"]["usage"]["limit"] = json!(9223372036854771712u64);
        let v = docker_shape_on(&unlimited, Some(8 << 30));
        assert_eq!(v["memory_stats"]["limit"], 8u64 << 30);
        assert_eq!(
            docker_shape_on(&raw, Some(8 << 30))["memory_stats"]["limit"],
            67108864
        );
    }
}
