//! Connecting containers to networks and disconnecting them, and the network events.

use std::collections::HashMap;

use crate::{net, Engine, EngineError, Event, Result};

impl Engine {
    /// `POST /networks/{id}/connect`: the container joins the network now if it runs, and
    /// at every start.
    pub async fn network_connect(
        &self,
        network: &str,
        key: &str,
        settings: Option<&bollard_stubs::models::EndpointSettings>,
    ) -> Result<()> {
        let ctr = self.find(key)?;
        let _op = ctr.op.lock().await;
        let rec = ctr.snapshot();
        let n = self.net.get(network).await?;
        let forbidden =
            |m: &str| EngineError::Network(berth_network::NetError::Forbidden(m.into()));
        match net::Mode::of(&rec.host_config) {
            net::Mode::Host => {
                return Err(forbidden(
                    "container cannot be disconnected from host network or connected to host network",
                ))
            }
            net::Mode::None => {
                return Err(forbidden(
                    "container cannot be connected to multiple networks with one of the networks in private (none) mode",
                ))
            }
            net::Mode::Container(_) => {
                return Err(forbidden(
                    "container sharing network namespace with another container or host cannot be connected to any other network",
                ))
            }
            net::Mode::Networks(_) => {}
        }
        match n.name.as_str() {
            "host" => {
                return Err(forbidden(
                    "container cannot be disconnected from host network or connected to host network",
                ))
            }
            "none" => {
                return Err(forbidden(
                    "container cannot be connected to multiple networks with one of the networks in private (none) mode",
                ))
            }
            _ => {}
        }
        if rec.networks.iter().any(|j| j.network_id == n.id) {
            return Err(forbidden(&format!(
                "endpoint with name {} already exists in network {}",
                rec.name.trim_start_matches('/'),
                n.name
            )));
        }
        let join = net::join_of(&n, settings)?;
        let attached = match &rec.net.sandbox {
            Some(sandbox) if rec.state.status.is_running() => {
                let member = net::member(&rec);
                let j = berth_network::Join {
                    network: n.id.clone(),
                    ip: join.ip,
                    ip6: join.ip6,
                    aliases: join.aliases.clone(),
                    mac: join.mac.as_deref().and_then(berth_network::parse_mac),
                };
                Some(self.net.connect(&member, &j, sandbox).await?)
            }
            _ => None,
        };
        let rec = {
            let mut r = ctr.rec.lock().expect("record lock");
            r.networks.push(join);
            r.net.endpoints.extend(attached);
            r.clone()
        };
        self.persist(&ctr)?;
        self.network_event("connect", &n, Some(&rec.id));
        Ok(())
    }

    /// `POST /networks/{id}/disconnect`.
    pub async fn network_disconnect(&self, network: &str, key: &str, force: bool) -> Result<()> {
        let ctr = self.find(key)?;
        let _op = ctr.op.lock().await;
        let rec = ctr.snapshot();
        let n = self.net.get(network).await;
        let (net_id, net_name) = match &n {
            Ok(n) => (n.id.clone(), n.name.clone()),
            Err(_) if force => (String::new(), network.to_string()),
            Err(_) => return Err(n.unwrap_err().into()),
        };
        let forbidden = |m: String| EngineError::Network(berth_network::NetError::Forbidden(m));
        if matches!(net_name.as_str(), "host" | "none")
            || !matches!(net::Mode::of(&rec.host_config), net::Mode::Networks(_))
        {
            return Err(forbidden(
                "container cannot be disconnected from host network or connected to host network"
                    .into(),
            ));
        }
        let Some(pos) = rec
            .networks
            .iter()
            .position(|j| j.network_id == net_id || j.network == net_name)
        else {
            return Err(forbidden(format!(
                "container {} is not connected to network {network}",
                rec.id
            )));
        };
        let on_it = rec.net.endpoints.iter().any(|a| a.network_id == net_id);
        if on_it && rec.state.status.is_running() {
            self.net.disconnect(&rec.id, &net_id).await?;
        }
        let rec = {
            let mut r = ctr.rec.lock().expect("record lock");
            r.networks.remove(pos);
            r.net.endpoints.retain(|a| a.network_id != net_id);
            r.clone()
        };
        self.persist(&ctr)?;
        if let Ok(n) = &n {
            self.network_event("disconnect", n, Some(&rec.id));
        }
        Ok(())
    }

    /// A network `connect` or `disconnect` event per endpoint of a container's start or exit.
    pub(crate) async fn endpoint_events(
        &self,
        action: &str,
        ctr: &str,
        endpoints: &[berth_network::Attached],
    ) {
        for a in endpoints {
            if let Ok(n) = self.net.get(&a.network_id).await {
                self.network_event(action, &n, Some(ctr));
            }
        }
    }

    /// Publishes a network event (create, destroy, connect, disconnect) as dockerd does.
    pub fn network_event(&self, action: &str, n: &berth_network::Network, ctr: Option<&str>) {
        let mut attributes: HashMap<String, String> = [
            ("name".to_string(), n.name.clone()),
            ("type".to_string(), n.driver.clone()),
        ]
        .into();
        if let Some(c) = ctr {
            attributes.insert("container".into(), c.to_string());
        }
        self.publish(Event {
            typ: "network",
            action: action.into(),
            id: n.id.clone(),
            attributes,
            time_nano: chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0),
        });
    }
}
