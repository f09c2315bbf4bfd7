//! The cluster's network and volumes, and everything it owns, found by its label.

use bollard::models::{Ipam, IpamConfig, NetworkCreateRequest, VolumeCreateRequest};
use bollard::query_parameters::{
    ListContainersOptionsBuilder, ListNetworksOptionsBuilder, ListVolumesOptionsBuilder,
    RemoveVolumeOptionsBuilder,
};

use crate::desired::{Desired, NetworkSpec, VolumeSpec};
use crate::observed::ObservedNetwork;

use super::{api, is_not_found, DockerError, Engine, Owned};

impl Engine {
    /// The cluster's network as this engine reports it.
    pub async fn network(&self, desired: &Desired) -> Result<Option<ObservedNetwork>, DockerError> {
        Ok(self
            .networks(&desired.cluster)
            .await?
            .into_iter()
            .find(|n| n.name.as_deref() == Some(&desired.network.name))
            .map(|n| ObservedNetwork {
                name: n.name.unwrap_or_default(),
                driver: n.driver.unwrap_or_default(),
                subnet: n.ipam.and_then(|i| i.config).and_then(|c| c.into_iter().find_map(|c| c.subnet)),
            }))
    }

    async fn networks(&self, cluster: &str) -> Result<Vec<bollard::models::Network>, DockerError> {
        let options = ListNetworksOptionsBuilder::default().filters(&Self::label_filter(cluster)).build();
        self.docker.list_networks(Some(options)).await.map_err(api("list networks"))
    }

    pub async fn volumes(&self, cluster: &str) -> Result<Vec<String>, DockerError> {
        let options = ListVolumesOptionsBuilder::default().filters(&Self::label_filter(cluster)).build();
        let list = self.docker.list_volumes(Some(options)).await.map_err(api("list volumes"))?;
        Ok(list.volumes.unwrap_or_default().into_iter().map(|v| v.name).collect())
    }

    pub(super) async fn container_names(&self, cluster: &str) -> Result<Vec<String>, DockerError> {
        let options =
            ListContainersOptionsBuilder::default().all(true).filters(&Self::label_filter(cluster)).build();
        let list = self.docker.list_containers(Some(options)).await.map_err(api("list containers"))?;
        let mut names: Vec<String> = list
            .into_iter()
            .filter_map(|c| c.names.and_then(|n| n.into_iter().next()))
            .map(|n| n.trim_start_matches('/').to_string())
            .collect();
        names.sort();
        Ok(names)
    }

    /// Everything labelled with the cluster.
    pub async fn owned(&self, cluster: &str) -> Result<Owned, DockerError> {
        Ok(Owned {
            containers: self.container_names(cluster).await?,
            networks: self.networks(cluster).await?.into_iter().filter_map(|n| n.name).collect(),
            volumes: self.volumes(cluster).await?,
        })
    }

    /// The cluster's network: a bridge, or (across hosts, on the Swarm's manager) an attachable
    /// overlay that plain containers of every host's engine join with their fixed address.
    pub async fn create_network(&self, spec: &NetworkSpec) -> Result<(), DockerError> {
        let request = NetworkCreateRequest {
            name: spec.name.clone(),
            driver: Some(if spec.overlay { "overlay" } else { "bridge" }.to_string()),
            attachable: spec.overlay.then_some(true),
            ipam: Some(Ipam {
                driver: Some("default".to_string()),
                config: Some(vec![IpamConfig {
                    subnet: Some(spec.subnet.to_string()),
                    ip_range: spec.dynamic_range.map(|r| r.to_string()),
                    gateway: Some(spec.gateway.to_string()),
                    ..Default::default()
                }]),
                options: None,
            }),
            labels: Some(spec.labels.clone().into_iter().collect()),
            ..Default::default()
        };
        self.docker.create_network(request).await.map_err(api(format!("create network {}", spec.name)))?;
        Ok(())
    }

    pub async fn create_volume(&self, spec: &VolumeSpec) -> Result<(), DockerError> {
        let request = VolumeCreateRequest {
            name: Some(spec.name.clone()),
            labels: Some(spec.labels.clone().into_iter().collect()),
            ..Default::default()
        };
        self.docker.create_volume(request).await.map_err(api(format!("create volume {}", spec.name)))?;
        Ok(())
    }

    pub async fn remove_network(&self, name: &str) -> Result<(), DockerError> {
        match self.docker.remove_network(name).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(api(format!("remove network {name}"))(e)),
        }
    }

    pub async fn remove_volume(&self, name: &str) -> Result<(), DockerError> {
        let options = RemoveVolumeOptionsBuilder::default().force(false).build();
        match self.docker.remove_volume(name, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(api(format!("remove volume {name}"))(e)),
        }
    }
}
