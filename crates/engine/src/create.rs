//! `POST /containers/create`: the request checked as far as it can be before a start, the
//! defaults dockerd fills in, the name reserved and the record written.

use std::path::Path;
use std::sync::Arc;

use berth_image::store::{ImageRecord, StoreError};
use bollard_stubs::models::{ContainerConfig, ContainerCreateBody, HostConfig};
use oci_spec::image::ImageConfiguration;

use crate::bundle::resolve_devices;
use crate::{
    io_err, names, net, now, random_id, spec, Ctr, Engine, EngineError, Record, Result, State,
    DEFAULT_RUNTIME,
};

impl Engine {
    /// `POST /containers/create`: records the container and makes its writable layer. The
    /// request is checked as far as it can be before a start (command, limits, mounts,
    /// capabilities), so a bad one is refused here and leaves nothing behind.
    /// Returns the record and Docker's warnings about the request.
    pub async fn create(
        &self,
        name: Option<&str>,
        body: ContainerCreateBody,
    ) -> Result<(Record, Vec<String>)> {
        let image_name = body
            .image
            .clone()
            .filter(|i| !i.is_empty())
            .ok_or_else(|| EngineError::InvalidParameter("no image specified".into()))?;
        let (image, image_cfg, raw) = self.read_image(&image_name).await?;
        let mut host = body.host_config.clone().unwrap_or_default();
        check_resources(&host)?;
        let mut config = to_container_config(&body)?;
        spec::merge_image_config(&mut config, image_cfg.config().as_ref());
        let image_health: Option<bollard_stubs::models::HealthConfig> =
            serde_json::from_value(raw["config"]["Healthcheck"].clone()).ok();
        config.healthcheck = merge_health(config.healthcheck.take(), image_health);
        if config.hostname.as_deref().unwrap_or("").is_empty() {
            config.hostname = None;
        }
        fill_host_defaults(&mut host)?;
        let plan = net::plan(&self.net, &config, &host, body.networking_config.as_ref()).await?;
        if let net::Mode::Container(target) = net::Mode::of(&host) {
            // It shares the other container's hostname along with its network.
            config.hostname = self.find(&target)?.snapshot().config.hostname;
        }
        self.check_spec(&config, &host)?;
        let links = self.check_links(
            host.links.as_deref().unwrap_or_default(),
            host.network_mode.as_deref().unwrap_or(""),
        )?;
        let mounts = self.resolve_mounts(&config, &host)?;

        let id = random_id()?;
        let ctr_dir = self.ctr_dir(&id);
        let mut rec = Record {
            id: id.clone(),
            name: String::new(),
            created: now(),
            image: image.id.to_string(),
            image_name,
            config,
            host_config: host,
            state: State::default(),
            restart_count: 0,
            manually_stopped: false,
            mounts,
            log_path: ctr_dir
                .join(format!("{id}-json.log"))
                .to_string_lossy()
                .into_owned(),
            networks: plan.networks,
            net: Default::default(),
        };
        if rec.config.hostname.is_none() {
            rec.config.hostname =
                Some(if rec.host_config.network_mode.as_deref() == Some("host") {
                    rustix::system::uname()
                        .nodename()
                        .to_string_lossy()
                        .into_owned()
                } else {
                    id[..12].to_string()
                });
        }
        let reserved = self.register(name, &mut rec, &links);
        // A refused create leaves no volume made for it behind.
        let ctr = match reserved {
            Ok(c) => c,
            Err(e) => {
                self.remove_anonymous(&rec.mounts);
                return Err(e);
            }
        };
        let made = (|| -> Result<()> {
            for sub in ["diff", "work", "rootfs"] {
                let d = ctr_dir.join(sub);
                std::fs::create_dir_all(&d).map_err(io_err("create", &d))?;
            }
            self.persist(&ctr)
        })();
        if let Err(e) = made {
            self.containers.lock().expect("containers lock").remove(&id);
            let _ = std::fs::remove_dir_all(&ctr_dir);
            self.remove_anonymous(&rec.mounts);
            return Err(e);
        }
        drop(ctr);
        self.emit(&rec, "create", &[]);
        Ok((rec, plan.warnings))
    }

    /// The image a create names, its OCI config and its raw config JSON. The config blob is
    /// read (and verified) once: the OCI type for the merge, the raw JSON for HEALTHCHECK, a
    /// Docker extension the OCI type does not carry.
    async fn read_image(
        &self,
        image_name: &str,
    ) -> Result<(ImageRecord, ImageConfiguration, serde_json::Value)> {
        let images = self.images.clone();
        let image_name = image_name.to_string();
        tokio::task::spawn_blocking(move || -> Result<_> {
            let img = images.resolve(&image_name)?;
            let bytes = images.content().read(&img.id).map_err(StoreError::from)?;
            let cfg = berth_image::manifest::parse_config(&img.id.to_string(), &bytes)
                .map_err(StoreError::from)?;
            let raw: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
            Ok((img, cfg, raw))
        })
        .await
        .map_err(|e| EngineError::Internal(e.to_string()))?
    }

    /// Everything the spec needs but the mounted rootfs: refuse bad requests now.
    fn check_spec(&self, config: &ContainerConfig, host: &HostConfig) -> Result<()> {
        let probe_user = spec::User::default();
        spec::build(
            config,
            host,
            &spec::Inputs {
                id: "probe",
                rootfs: Path::new("/"),
                etc_dir: Path::new("/"),
                hostname: "probe",
                user: &probe_user,
                cgroup: "/probe",
                cgroup_v2: self.cgroup_v2,
                mounts: &[],
                devices: &[],
                host: self.host,
                init: self.init_for(host)?,
                netns: spec::NetNs::New,
                link_env: &[],
            },
        )
        .map_err(|e| EngineError::InvalidParameter(e.0))?;
        resolve_devices(host)?;
        for b in host.binds.clone().unwrap_or_default() {
            spec::parse_bind(&b).map_err(|e| EngineError::InvalidParameter(e.0))?;
        }
        Ok(())
    }

    /// Reserves the name (the one asked for, else a random free one) and registers the
    /// container, in one step under the lock; records its links as dockerd keeps them.
    fn register(
        &self,
        name: Option<&str>,
        rec: &mut Record,
        links: &[(String, String)],
    ) -> Result<Arc<Ctr>> {
        let mut map = self.containers.lock().expect("containers lock");
        let name = match name.filter(|n| !n.is_empty()) {
            Some(n) => {
                let n = n.trim_start_matches('/');
                if !names::valid(n) {
                    return Err(EngineError::InvalidParameter(format!(
                        "Invalid container name ({n}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
                    )));
                }
                let full = format!("/{n}");
                if let Some(other) = map
                    .values()
                    .find(|c| c.rec.lock().expect("record lock").name == full)
                {
                    return Err(EngineError::Conflict(format!(
                        "Conflict. The container name \"{full}\" is already in use by container \"{}\". You have to remove (or rename) that container to be able to reuse that name.",
                        other.id
                    )));
                }
                full
            }
            None => loop {
                let n = format!("/{}", names::random());
                if !map
                    .values()
                    .any(|c| c.rec.lock().expect("record lock").name == n)
                {
                    break n;
                }
            },
        };
        // Links as dockerd keeps them: `/db:/web/db`.
        if !links.is_empty() {
            rec.host_config.links = Some(
                links
                    .iter()
                    .map(|(child, alias)| format!("{child}:{name}/{alias}"))
                    .collect(),
            );
        }
        rec.name = name;
        let ctr = Ctr::new(rec.clone());
        map.insert(rec.id.clone(), ctr.clone());
        Ok(ctr)
    }
}

/// The defaults dockerd fills in, which clients read back from inspect; a runtime other
/// than berth's, or `--rm` with a restart policy, is refused.
fn fill_host_defaults(host: &mut HostConfig) -> Result<()> {
    match host.runtime.as_deref() {
        None | Some("") => host.runtime = Some(DEFAULT_RUNTIME.into()),
        Some(DEFAULT_RUNTIME) => {}
        Some(other) => {
            return Err(EngineError::InvalidParameter(format!(
                "Unknown runtime specified {other}"
            )))
        }
    }
    if host.network_mode.as_deref().unwrap_or("").is_empty() {
        host.network_mode = Some("default".into());
    }
    if host
        .log_config
        .as_ref()
        .and_then(|l| l.typ.as_deref())
        .is_none_or(str::is_empty)
    {
        host.log_config = Some(bollard_stubs::models::HostConfigLogConfig {
            typ: Some("json-file".into()),
            config: Some(
                host.log_config
                    .as_ref()
                    .and_then(|l| l.config.clone())
                    .unwrap_or_default(),
            ),
        });
    }
    if host.restart_policy.as_ref().and_then(|p| p.name).is_none() {
        host.restart_policy = Some(bollard_stubs::models::RestartPolicy {
            name: Some(bollard_stubs::models::RestartPolicyNameEnum::NO),
            maximum_retry_count: Some(0),
        });
    }
    if host.auto_remove.unwrap_or(false)
        && host
            .restart_policy
            .as_ref()
            .and_then(|p| p.name)
            .is_some_and(|n| {
                !matches!(
                    n,
                    bollard_stubs::models::RestartPolicyNameEnum::EMPTY
                        | bollard_stubs::models::RestartPolicyNameEnum::NO
                )
            })
    {
        return Err(EngineError::InvalidParameter(
            "can't create 'AutoRemove' container with restart policy".into(),
        ));
    }
    Ok(())
}

/// The container's health check over the image's, field by field, as dockerd merges them.
fn merge_health(
    mine: Option<bollard_stubs::models::HealthConfig>,
    image: Option<bollard_stubs::models::HealthConfig>,
) -> Option<bollard_stubs::models::HealthConfig> {
    let Some(img) = image else { return mine };
    let Some(mut h) = mine else { return Some(img) };
    if h.test.as_ref().is_none_or(|t| t.is_empty()) {
        h.test = img.test;
    }
    let pick = |a: Option<i64>, b: Option<i64>| a.filter(|x| *x != 0).or(b);
    h.interval = pick(h.interval, img.interval);
    h.timeout = pick(h.timeout, img.timeout);
    h.retries = pick(h.retries, img.retries);
    h.start_period = pick(h.start_period, img.start_period);
    h.start_interval = pick(h.start_interval, img.start_interval);
    Some(h)
}

/// dockerd's bounds on memory and CPU limits, checked at create (the kernel would take a
/// memory limit too small to start in, and a CPU quota larger than the host).
fn check_resources(h: &bollard_stubs::models::HostConfig) -> Result<()> {
    const MIN_MEMORY: i64 = 6 << 20;
    let bad = |m: String| Err(EngineError::InvalidParameter(m));
    // Docker's other log drivers, which berth does not have; anything else is no driver.
    const ELSEWHERE: &[&str] = &[
        "local",
        "syslog",
        "journald",
        "gelf",
        "fluentd",
        "awslogs",
        "splunk",
        "etwlogs",
        "gcplogs",
        "logentries",
    ];
    match h.log_config.as_ref().and_then(|l| l.typ.as_deref()) {
        None | Some("" | "json-file" | "none") => {}
        Some(d) if ELSEWHERE.contains(&d) => {
            return bad(format!(
                "logging driver \"{d}\" is not supported by berth: use json-file or none"
            ))
        }
        Some(d) => return bad(format!("logger: no log driver named '{d}' is registered")),
    }
    if h.memory.is_some_and(|m| m > 0 && m < MIN_MEMORY) {
        return bad("Minimum memory limit allowed is 6MB".into());
    }
    if h.memory_reservation
        .is_some_and(|m| m > 0 && m < MIN_MEMORY)
    {
        return bad("Minimum memory reservation allowed is 6MB".into());
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as i64;
    if h.nano_cpus
        .is_some_and(|n| n != 0 && !(10_000_000..=cpus * 1_000_000_000).contains(&n))
    {
        return bad(format!(
            "Range of CPUs is from 0.01 to {cpus}.00, as there are only {cpus} CPUs available"
        ));
    }
    Ok(())
}

fn to_container_config(body: &ContainerCreateBody) -> Result<ContainerConfig> {
    let mut v = serde_json::to_value(body).map_err(|e| EngineError::Internal(e.to_string()))?;
    if let Some(o) = v.as_object_mut() {
        o.remove("HostConfig");
        o.remove("NetworkingConfig");
    }
    serde_json::from_value(v).map_err(|e| EngineError::InvalidParameter(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_are_bounded_as_by_dockerd() {
        let h = |memory, nano_cpus| bollard_stubs::models::HostConfig {
            memory: Some(memory),
            nano_cpus: Some(nano_cpus),
            ..Default::default()
        };
        assert!(check_resources(&h(6 << 20, 0)).is_ok());
        assert!(check_resources(&h(0, 1_000_000_000)).is_ok());
        let err = check_resources(&h(4 << 20, 0)).unwrap_err().to_string();
        assert_eq!(err, "Minimum memory limit allowed is 6MB");
        let err = check_resources(&h(0, 1 << 50)).unwrap_err().to_string();
        assert!(err.starts_with("Range of CPUs is from 0.01 to "), "{err}");
        assert!(check_resources(&h(0, 1_000)).is_err());
    }
}
