//! The Docker Engine API (bollard): reading what a cluster has (by its labels) and the concrete
//! calls the execution layer is made of. momctl never runs the `docker` CLI.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::time::{Duration, Instant};

use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, EndpointIpamConfig, EndpointSettings, HealthConfig, HostConfig, Ipam, IpamConfig,
    LocalNodeState, NetworkCreateRequest, NetworkingConfig, PortBinding, RestartPolicy,
    RestartPolicyNameEnum, SwarmInitRequest, SwarmJoinRequest, VolumeCreateRequest,
};
use bollard::query_parameters::{
    BuildImageOptionsBuilder, CreateContainerOptionsBuilder, DownloadFromContainerOptionsBuilder,
    ImportImageOptionsBuilder, ListContainersOptionsBuilder, ListNetworksOptionsBuilder,
    ListVolumesOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder, RemoveVolumeOptionsBuilder,
    StopContainerOptionsBuilder, TopOptionsBuilder, UploadToContainerOptionsBuilder,
};
use bollard::Docker;
use bytes::Bytes;
use futures::{Stream, StreamExt};

use crate::desired::{labels, Desired, NetworkSpec, Role, ServiceSpec, VolumeSpec};
use crate::plan::{ObservedContainer, ObservedNetwork};

#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error("cannot reach the Docker engine ({hint}): {source}")]
    Connect {
        hint: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("Docker: {what}: {source}")]
    Api {
        what: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("{container} {problem}; its last log lines:\n{logs}")]
    Unhealthy { container: String, problem: String, logs: String },
    #[error("`{command}` in {container} failed (exit {code}): {output}")]
    Exec { container: String, command: String, code: i64, output: String },
    #[error("building {image}: {message}")]
    Build { image: String, message: String },
    #[error("{what}: {message}")]
    Archive { what: String, message: String },
    #[error("{container}: {problem}")]
    Timeout { container: String, problem: String },
}

fn api(what: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> DockerError {
    let what = what.into();
    move |source| DockerError::Api { what, source }
}

fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(e, bollard::errors::Error::DockerResponseServerError { status_code: 404, .. })
}

/// Everything labelled with a cluster: what `down` removes.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Owned {
    pub containers: Vec<String>,
    pub networks: Vec<String>,
    pub volumes: Vec<String>,
}

impl Owned {
    pub fn is_empty(&self) -> bool {
        self.containers.is_empty() && self.networks.is_empty() && self.volumes.is_empty()
    }
}

/// A container's state as Docker reports it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ContainerState {
    pub state: String,
    pub health: Option<String>,
    pub restarts: i64,
}

/// An engine's membership of a Swarm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwarmMembership {
    /// This node's id in the Swarm.
    pub node_id: String,
    /// The managers it knows (a worker learns no cluster id, only these).
    pub managers: Vec<String>,
    pub manager: bool,
    /// The address it advertises to the other nodes.
    pub node_addr: String,
}

impl SwarmMembership {
    /// Whether this node belongs to the Swarm `manager` manages.
    pub fn managed_by(&self, manager: &SwarmMembership) -> bool {
        self.node_id == manager.node_id || self.managers.contains(&manager.node_id)
    }
}

/// A Docker engine: the local one, or a host's.
#[derive(Clone)]
pub struct Engine {
    docker: Docker,
}

impl Engine {
    /// Connects as the `docker` CLI would (`DOCKER_HOST`, else the local socket) and agrees on an
    /// API version the daemon speaks.
    pub async fn connect() -> Result<Engine, DockerError> {
        let hint = std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".to_string());
        Engine::answering(Docker::connect_with_defaults(), &hint).await
    }

    /// An engine once it answers, at an API version it speaks (`hint`: where, for errors).
    async fn answering(
        docker: Result<Docker, bollard::errors::Error>,
        hint: &str,
    ) -> Result<Engine, DockerError> {
        let connect_error = |source| DockerError::Connect { hint: hint.to_string(), source };
        let docker = docker.map_err(connect_error)?;
        let docker = docker.negotiate_version().await.map_err(connect_error)?;
        docker.ping().await.map_err(connect_error)?;
        Ok(Engine { docker })
    }

    /// Connects to a remote engine's API over mutual TLS (an EC2 host of provider aws):
    /// `addr` is `https://IP:2376`, `dir` holds `ca.pem`, `cert.pem` and `key.pem` (Docker's names).
    pub async fn connect_tls(addr: &str, dir: &std::path::Path) -> Result<Engine, DockerError> {
        // bollard's TLS uses rustls' process-wide provider; ring is the one momctl links.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let docker = Docker::connect_with_ssl(
            addr,
            &dir.join(crate::pki::CLIENT_KEY),
            &dir.join(crate::pki::CLIENT_CERT),
            &dir.join(crate::pki::CA_CERT),
            120,
            bollard::API_DEFAULT_VERSION,
        );
        Engine::answering(docker, addr).await
    }

    /// Connects to a remote engine's API over plain TCP (`tcp://IP:2375`): only for the
    /// simulated hosts of the tests (`tests/multihost`), never to an EC2 host.
    pub async fn connect_http(addr: &str) -> Result<Engine, DockerError> {
        let docker = Docker::connect_with_http(addr, 120, bollard::API_DEFAULT_VERSION);
        Engine::answering(docker, addr).await
    }

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

    /// Copies `images` from this engine into `to` (`docker save | docker load`, streamed, one
    /// archive so shared layers travel once): how images reach the hosts without a registry.
    pub async fn copy_images(&self, images: &[&str], to: &Engine) -> Result<(), DockerError> {
        let what = format!("load {} into another engine", images.join(", "));
        let tar = self.docker.export_images(images);
        let options = ImportImageOptionsBuilder::default().quiet(true).build();
        let mut load = Box::pin(to.docker.import_image_stream(options, tar, None));
        while let Some(item) = load.next().await {
            let info = item.map_err(api(what.clone()))?;
            if let Some(message) = info.error_detail.and_then(|e| e.message) {
                return Err(DockerError::Archive { what, message });
            }
        }
        Ok(())
    }

    fn label_filter(cluster: &str) -> HashMap<String, Vec<String>> {
        HashMap::from([("label".to_string(), vec![Desired::cluster_filter(cluster)])])
    }

    /// The id an image reference points at, or None when the engine does not have it.
    pub async fn image_id(&self, image: &str) -> Result<Option<String>, DockerError> {
        match self.docker.inspect_image(image).await {
            Ok(inspect) => Ok(inspect.id),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(api(format!("inspect image {image}"))(e)),
        }
    }

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

    async fn container_names(&self, cluster: &str) -> Result<Vec<String>, DockerError> {
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

    async fn observe_container(&self, name: &str) -> Result<Option<ObservedContainer>, DockerError> {
        let inspect = match self.docker.inspect_container(name, None).await {
            Ok(i) => i,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(api(format!("inspect container {name}"))(e)),
        };
        let labels = inspect.config.as_ref().and_then(|c| c.labels.clone()).unwrap_or_default();
        let state = inspect.state.as_ref();
        Ok(Some(ObservedContainer {
            id: inspect.id.clone().unwrap_or_default(),
            name: name.to_string(),
            // This engine's; `Hosts` says which host that is.
            host: 1,
            service: labels.get(labels::SERVICE).cloned(),
            role: labels.get(labels::ROLE).and_then(|r| Role::parse(r)),
            spec_hash: labels.get(labels::SPEC_HASH).cloned(),
            image: inspect.config.as_ref().and_then(|c| c.image.clone()).unwrap_or_default(),
            image_id: inspect.image.clone().unwrap_or_default(),
            state: state.and_then(|s| s.status).map(|s| s.to_string()).unwrap_or_default(),
            health: state
                .and_then(|s| s.health.as_ref())
                .and_then(|h| h.status)
                .map(|h| h.to_string())
                .filter(|h| !h.is_empty() && h != "none"),
            generation: labels.get(labels::GENERATION).and_then(|g| g.parse().ok()).unwrap_or(0),
            previous_image: labels.get(labels::PREVIOUS_IMAGE).cloned(),
            file_image: labels.get(labels::FILE_IMAGE).cloned(),
            restarts: inspect.restart_count.unwrap_or(0),
        }))
    }

    /// The containers of a cluster with their role, state and health.
    pub async fn containers(&self, cluster: &str) -> Result<Vec<ObservedContainer>, DockerError> {
        let mut out = Vec::new();
        for name in self.container_names(cluster).await? {
            if let Some(c) = self.observe_container(&name).await? {
                out.push(c);
            }
        }
        Ok(out)
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

    /// Creates the container of `spec` (not started). `secrets` are the values of its
    /// `secret_env`; `files` (path inside → content) are copied in before it is started.
    pub async fn create_container(
        &self,
        spec: &ServiceSpec,
        network: &str,
        secrets: &BTreeMap<String, String>,
        files: &[(String, String)],
    ) -> Result<(), DockerError> {
        let secs = |s: u32| i64::from(s) * 1_000_000_000;
        let env: Vec<String> =
            spec.env.iter().chain(secrets.iter()).map(|(k, v)| format!("{k}={v}")).collect();
        let port_bindings: HashMap<String, Option<Vec<PortBinding>>> = spec
            .ports
            .iter()
            .map(|p| {
                (
                    format!("{}/tcp", p.container_port),
                    Some(vec![PortBinding {
                        host_ip: Some(p.host_ip.to_string()),
                        host_port: Some(p.host_port.to_string()),
                    }]),
                )
            })
            .collect();
        let body = ContainerCreateBody {
            hostname: Some(spec.service.clone()),
            image: Some(spec.image.clone()),
            cmd: (!spec.command.is_empty()).then(|| spec.command.clone()),
            env: Some(env),
            labels: Some(spec.labels.clone().into_iter().collect()),
            exposed_ports: (!spec.ports.is_empty())
                .then(|| spec.ports.iter().map(|p| format!("{}/tcp", p.container_port)).collect()),
            healthcheck: Some(HealthConfig {
                test: Some(spec.health.test.clone()),
                interval: Some(secs(spec.health.interval_s)),
                timeout: Some(secs(spec.health.timeout_s)),
                retries: Some(i64::from(spec.health.retries)),
                start_period: Some(secs(spec.health.start_period_s)),
                start_interval: None,
            }),
            stop_timeout: Some(i64::from(spec.stop_grace_s)),
            host_config: Some(HostConfig {
                binds: Some(spec.mounts.iter().map(|m| format!("{}:{}", m.volume, m.target)).collect()),
                port_bindings: (!port_bindings.is_empty()).then_some(port_bindings),
                restart_policy: Some(RestartPolicy {
                    name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                    maximum_retry_count: None,
                }),
                ..Default::default()
            }),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(
                    network.to_string(),
                    EndpointSettings {
                        ipam_config: Some(EndpointIpamConfig {
                            ipv4_address: Some(spec.ipv4.to_string()),
                            ..Default::default()
                        }),
                        aliases: Some(spec.aliases.clone()),
                        ..Default::default()
                    },
                )])),
            }),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::default().name(&spec.container_name).build();
        self.docker
            .create_container(Some(options), body)
            .await
            .map_err(api(format!("create container {}", spec.container_name)))?;
        for (path, content) in files {
            let mode = if crate::tls::is_private(path) { 0o600 } else { 0o644 };
            self.write_file_mode(&spec.container_name, path, content, mode).await?;
        }
        Ok(())
    }

    pub async fn start_container(&self, name: &str) -> Result<(), DockerError> {
        self.docker.start_container(name, None).await.map_err(api(format!("start container {name}")))
    }

    /// Stops (SIGTERM, then SIGKILL after `grace_s`) and removes a container; absent is fine.
    pub async fn stop_and_remove(&self, name: &str, grace_s: u32) -> Result<(), DockerError> {
        let grace = i32::try_from(grace_s).unwrap_or(i32::MAX);
        match self
            .docker
            .stop_container(name, Some(StopContainerOptionsBuilder::default().t(grace).build()))
            .await
        {
            Ok(()) => {}
            Err(e) if is_not_found(&e) => return Ok(()),
            // 304: already stopped.
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 304, .. }) => {}
            Err(e) => return Err(api(format!("stop container {name}"))(e)),
        }
        self.remove_container(name).await
    }

    /// Removes a container at once (killing it if it runs); absent is fine.
    pub async fn remove_container(&self, name: &str) -> Result<(), DockerError> {
        let options = RemoveContainerOptionsBuilder::default().force(true).v(false).build();
        match self.docker.remove_container(name, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(api(format!("remove container {name}"))(e)),
        }
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

    /// Removes an image unless a container uses it (or it is gone already).
    pub async fn remove_unused_image(&self, id: &str) -> Result<(), DockerError> {
        match self.docker.remove_image(id, None::<bollard::query_parameters::RemoveImageOptions>, None).await
        {
            Ok(_) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404 | 409, .. }) => Ok(()),
            Err(e) => Err(api(format!("remove image {id}"))(e)),
        }
    }

    /// Copies one file into a container (created or running), replacing what was there.
    pub async fn write_file(&self, container: &str, path: &str, content: &str) -> Result<(), DockerError> {
        self.write_file_mode(container, path, content, 0o644).await
    }

    /// [`Engine::write_file`] with the file's permissions (a private key: 0600).
    pub async fn write_file_mode(
        &self,
        container: &str,
        path: &str,
        content: &str,
        mode: u32,
    ) -> Result<(), DockerError> {
        let (dir, file) = path.rsplit_once('/').unwrap_or(("/", path));
        let dir = if dir.is_empty() { "/" } else { dir };
        let archive_error = |e: std::io::Error| DockerError::Archive {
            what: format!("packing {path} for {container}"),
            message: e.to_string(),
        };
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(mode);
        header.set_mtime(0);
        header.set_cksum();
        builder.append_data(&mut header, file, content.as_bytes()).map_err(archive_error)?;
        let tar = builder.into_inner().map_err(archive_error)?;
        let options = UploadToContainerOptionsBuilder::default().path(dir).build();
        self.docker
            .upload_to_container(container, Some(options), bollard::body_full(Bytes::from(tar)))
            .await
            .map_err(api(format!("copy {path} into {container}")))
    }

    /// Reads one file out of a container; None when it is not there.
    pub async fn read_file(&self, container: &str, path: &str) -> Result<Option<String>, DockerError> {
        let options = DownloadFromContainerOptionsBuilder::default().path(path).build();
        let mut stream = self.docker.download_from_container(container, Some(options));
        let mut tar = Vec::new();
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(bytes) => tar.extend_from_slice(&bytes),
                Err(e) if is_not_found(&e) => return Ok(None),
                Err(e) => return Err(api(format!("read {path} from {container}"))(e)),
            }
        }
        let archive_error = |e: std::io::Error| DockerError::Archive {
            what: format!("reading {path} from {container}"),
            message: e.to_string(),
        };
        let mut archive = tar::Archive::new(tar.as_slice());
        let mut entries = archive.entries().map_err(archive_error)?;
        match entries.next() {
            Some(entry) => {
                let mut content = String::new();
                entry.map_err(archive_error)?.read_to_string(&mut content).map_err(archive_error)?;
                Ok(Some(content))
            }
            None => Ok(None),
        }
    }

    /// The processes of a running container as (pid, command line with its title), as
    /// `docker top` shows them: NGINX's workers show there whether they still serve or are
    /// shutting down after a reload.
    pub async fn processes(&self, container: &str) -> Result<Vec<(String, String)>, DockerError> {
        let options = TopOptionsBuilder::default().ps_args("-o pid,args").build();
        let top = self
            .docker
            .top_processes(container, Some(options))
            .await
            .map_err(api(format!("list the processes of {container}")))?;
        Ok(top
            .processes
            .unwrap_or_default()
            .into_iter()
            .filter_map(|p| {
                let mut fields = p.into_iter();
                Some((fields.next()?, fields.next().unwrap_or_default()))
            })
            .collect())
    }

    /// Reloads NGINX's configuration and returns once the reload took effect: workers of the
    /// new configuration run and every worker of the old one is shutting down or gone, so no
    /// old worker takes a new connection. (`nginx -s reload` only signals the master; until
    /// then the old workers may still route a new request to a broker that the new file left
    /// out, so the caller stops such a broker only after this.)
    pub async fn reload_nginx(&self, container: &str, timeout: Duration) -> Result<(), DockerError> {
        const WORKER: &str = "nginx: worker process";
        let serving = |procs: &[(String, String)]| -> Vec<String> {
            procs.iter().filter(|(_, cmd)| cmd.trim() == WORKER).map(|(pid, _)| pid.clone()).collect()
        };
        let old = serving(&self.processes(container).await?);
        self.exec(container, &["nginx", "-s", "reload"]).await?;
        let started = Instant::now();
        loop {
            let now = serving(&self.processes(container).await?);
            let new_started = now.iter().any(|pid| !old.contains(pid));
            let old_serving = now.iter().any(|pid| old.contains(pid));
            if new_started && !old_serving {
                return Ok(());
            }
            if started.elapsed() > timeout {
                return Err(DockerError::Timeout {
                    container: container.to_string(),
                    problem: format!(
                        "NGINX's reload did not take effect within {} s (workers before: {old:?}, now: {now:?})",
                        timeout.as_secs()
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Runs a command in a running container; Err when it exits non-zero.
    pub async fn exec(&self, container: &str, cmd: &[&str]) -> Result<String, DockerError> {
        let what = || format!("run `{}` in {container}", cmd.join(" "));
        let created = self
            .docker
            .create_exec(
                container,
                CreateExecOptions {
                    cmd: Some(cmd.to_vec()),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..Default::default()
                },
            )
            .await
            .map_err(api(what()))?;
        let mut output = String::new();
        if let StartExecResults::Attached { output: mut stream, .. } =
            self.docker.start_exec(&created.id, None).await.map_err(api(what()))?
        {
            while let Some(chunk) = stream.next().await {
                output.push_str(&chunk.map_err(api(what()))?.to_string());
            }
        }
        let inspect = self.docker.inspect_exec(&created.id).await.map_err(api(what()))?;
        match inspect.exit_code {
            Some(0) => Ok(output),
            code => Err(DockerError::Exec {
                container: container.to_string(),
                command: cmd.join(" "),
                code: code.unwrap_or(-1),
                output: output.trim().to_string(),
            }),
        }
    }

    pub async fn state(&self, name: &str) -> Result<Option<ContainerState>, DockerError> {
        Ok(self.observe_container(name).await?.map(|c| ContainerState {
            state: c.state,
            health: c.health,
            restarts: c.restarts,
        }))
    }

    /// Waits until the container's health check passes. A container that stops, or is not
    /// healthy within `timeout`, is an error that carries its last log lines.
    pub async fn wait_healthy(&self, name: &str, timeout: Duration) -> Result<Duration, DockerError> {
        self.wait_until_healthy(name, timeout, false).await
    }

    /// [`Engine::wait_healthy`] for a container started beside a serving one (a rolling
    /// upgrade): one that Docker is restarting has crashed, which fails at once too.
    pub async fn wait_ready(&self, name: &str, timeout: Duration) -> Result<Duration, DockerError> {
        self.wait_until_healthy(name, timeout, true).await
    }

    async fn wait_until_healthy(
        &self,
        name: &str,
        timeout: Duration,
        restarting_fails: bool,
    ) -> Result<Duration, DockerError> {
        let started = Instant::now();
        loop {
            let state = self.state(name).await?;
            let problem = match &state {
                None => Some("is gone".to_string()),
                Some(s) if restarting_fails && (s.state == "restarting" || s.restarts > 0) => {
                    Some("exited and is being restarted".to_string())
                }
                Some(s) if matches!(s.state.as_str(), "exited" | "dead") => {
                    Some(format!("stopped ({})", s.state))
                }
                Some(s) if s.health.as_deref() == Some("healthy") => return Ok(started.elapsed()),
                // No health check: running is the best there is.
                Some(s) if s.health.is_none() && s.state == "running" => return Ok(started.elapsed()),
                Some(_) if started.elapsed() > timeout => {
                    Some(format!("is not healthy after {} s", timeout.as_secs()))
                }
                Some(_) => None,
            };
            if let Some(problem) = problem {
                let logs = self.tail_logs(name, 20).await.unwrap_or_else(|e| format!("(no logs: {e})"));
                return Err(DockerError::Unhealthy { container: name.to_string(), problem, logs });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The last `lines` lines a container wrote.
    pub async fn tail_logs(&self, name: &str, lines: u32) -> Result<String, DockerError> {
        let mut stream = Box::pin(self.logs(name, false, Some(lines)));
        let mut out = String::new();
        while let Some(chunk) = stream.next().await {
            out.push_str(&String::from_utf8_lossy(&chunk?));
        }
        Ok(out)
    }

    /// A container's output (stdout and stderr), optionally followed.
    pub fn logs(
        &self,
        name: &str,
        follow: bool,
        tail: Option<u32>,
    ) -> impl Stream<Item = Result<Bytes, DockerError>> + use<> {
        let tail = tail.map(|t| t.to_string()).unwrap_or_else(|| "all".to_string());
        let options =
            LogsOptionsBuilder::default().follow(follow).stdout(true).stderr(true).tail(&tail).build();
        let what = format!("logs of {name}");
        self.docker.logs(name, Some(options)).map(move |item| match item {
            Ok(
                LogOutput::StdOut { message }
                | LogOutput::StdErr { message }
                | LogOutput::Console { message },
            ) => Ok(message),
            Ok(LogOutput::StdIn { .. }) => Ok(Bytes::new()),
            Err(source) => Err(DockerError::Api { what: what.clone(), source }),
        })
    }

    /// Builds an image from a tar build context; returns the builder's output.
    pub async fn build_image(&self, tag: &str, context: Vec<u8>) -> Result<String, DockerError> {
        let options = BuildImageOptionsBuilder::default().t(tag).dockerfile("Dockerfile").rm(true).build();
        let mut stream =
            Box::pin(self.docker.build_image(options, None, Some(bollard::body_full(Bytes::from(context)))));
        let mut output = String::new();
        while let Some(item) = stream.next().await {
            let info = item.map_err(api(format!("build {tag}")))?;
            if let Some(error) = info.error_detail.and_then(|d| d.message) {
                return Err(DockerError::Build { image: tag.to_string(), message: error });
            }
            if let Some(text) = info.stream {
                output.push_str(&text);
            }
        }
        Ok(output)
    }
}
