//! `momctl logs SERVICE`: a container's output, from the engine of the host that runs it.

use std::path::Path;

use bytes::Bytes;
use futures::Stream;

use crate::docker::DockerError;
use crate::error::Error;
use crate::provider::Provider;

/// The output of `service` (its name in the cluster, or the container's), optionally followed.
pub async fn open(
    file: &Path,
    service: &str,
    follow: bool,
    tail: Option<u32>,
) -> Result<impl Stream<Item = Result<Bytes, DockerError>>, Error> {
    let loaded = super::load(file)?;
    let cluster = loaded.desired.cluster;
    let provider = Provider::connect(&loaded.settings).await?;
    let hosts = provider.engines(&provider.observe().await?, false).await?;
    let containers = hosts.containers(&cluster).await?;
    let Some(container) =
        containers.iter().find(|c| c.service.as_deref() == Some(service) || c.name == service)
    else {
        let known: Vec<&str> = containers.iter().filter_map(|c| c.service.as_deref()).collect();
        if known.is_empty() {
            return Err(Error::NoContainers { cluster });
        }
        let known = known.join(", ");
        return Err(Error::NoService { cluster, service: service.to_string(), known });
    };
    Ok(hosts.engine(container.host).logs(&container.name, follow, tail))
}
