//! The Swarm that joins the engines of several hosts (its overlay carries the cluster's network).

use bollard::models::{LocalNodeState, SwarmInitRequest, SwarmJoinRequest};

use super::{api, DockerError, Engine, SwarmMembership};

impl Engine {
    /// This engine's membership of a Swarm, when it is an active member.
    pub async fn swarm(&self) -> Result<Option<SwarmMembership>, DockerError> {
        let info = self.docker.info().await.map_err(api("info"))?;
        let Some(swarm) = info.swarm else {
            return Ok(None);
        };
        if swarm.local_node_state != Some(LocalNodeState::ACTIVE) {
            return Ok(None);
        }
        Ok(Some(SwarmMembership {
            node_id: swarm.node_id.unwrap_or_default(),
            managers: swarm
                .remote_managers
                .unwrap_or_default()
                .into_iter()
                .filter_map(|m| m.node_id)
                .collect(),
            manager: swarm.control_available.unwrap_or(false),
            node_addr: swarm.node_addr.unwrap_or_default(),
        }))
    }

    /// Starts a Swarm with this engine as its manager, advertising `advertise` (None: the
    /// address Docker picks, fine on a host with one interface); the networks the Swarm makes
    /// for itself (its ingress) take their subnets from `pool`.
    pub async fn init_swarm(&self, advertise: Option<&str>, pool: ipnet::Ipv4Net) -> Result<(), DockerError> {
        let request = SwarmInitRequest {
            listen_addr: Some("0.0.0.0:2377".to_string()),
            advertise_addr: advertise.map(str::to_string),
            default_addr_pool: Some(vec![pool.to_string()]),
            subnet_size: Some(24),
            ..Default::default()
        };
        self.docker.init_swarm(request).await.map_err(api("swarm init"))?;
        Ok(())
    }

    /// The token a worker joins this manager's Swarm with.
    pub async fn swarm_worker_token(&self) -> Result<String, DockerError> {
        let swarm = self.docker.inspect_swarm().await.map_err(api("inspect swarm"))?;
        Ok(swarm.join_tokens.and_then(|t| t.worker).unwrap_or_default())
    }

    /// Joins the Swarm managed at `manager` (`IP:2377`) as a worker.
    pub async fn join_swarm(
        &self,
        manager: &str,
        token: &str,
        advertise: Option<&str>,
    ) -> Result<(), DockerError> {
        let request = SwarmJoinRequest {
            listen_addr: Some("0.0.0.0:2377".to_string()),
            advertise_addr: advertise.map(str::to_string),
            remote_addrs: Some(vec![manager.to_string()]),
            join_token: Some(token.to_string()),
            ..Default::default()
        };
        self.docker.join_swarm(request).await.map_err(api(format!("swarm join {manager}")))
    }
}
