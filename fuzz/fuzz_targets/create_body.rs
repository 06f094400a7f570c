//! `POST /containers/create` bodies through what create checks without a daemon: the OCI
//! spec berth would build from them, the command, binds and capabilities. Never a panic.
#![no_main]

use std::path::Path;

use berth_engine::spec;
use bollard_stubs::models::{ContainerConfig, ContainerCreateBody};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<ContainerCreateBody>(data) else {
        return;
    };
    let Ok(config) = serde_json::from_slice::<ContainerConfig>(data) else {
        return;
    };
    let host = body.host_config.clone().unwrap_or_default();
    let _ = spec::argv(&config);
    let _ = spec::capabilities(&host);
    for b in host.binds.iter().flatten() {
        let _ = spec::parse_bind(b);
    }
    for d in host.devices.iter().flatten() {
        if let Some(p) = &d.path_on_host {
            let _ = spec::parse_device(p);
        }
    }
    let user = spec::User::default();
    let _ = spec::build(
        &config,
        &host,
        &spec::Inputs {
            id: "fuzz",
            rootfs: Path::new("/nonexistent/rootfs"),
            etc_dir: Path::new("/nonexistent/etc"),
            hostname: "fuzz",
            user: &user,
            cgroup: "/berth/fuzz",
            cgroup_v2: false,
            mounts: &[],
            devices: &[],
            host: berth_engine::seccomp::Host {
                arch: "amd64",
                kernel: (6, 1),
            },
            init: None,
            netns: spec::NetNs::New,
            link_env: &[],
        },
    );
});
