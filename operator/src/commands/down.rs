//! `momctl down`: everything the cluster owns, listed ([`inventory`]), then removed
//! ([`remove`]): the containers, networks and volumes on its engines, then the provider's
//! hosts, then (local) the cluster's directory `~/.momctl/<cluster>/` (on aws the provider's
//! teardown removes it with the keys). Nothing it does not own.

use std::path::{Path, PathBuf};

use crate::docker::Owned;
use crate::error::Error;
use crate::exec;
use crate::hosts::Hosts;
use crate::local::LocalError;
use crate::provider::{Infra, Place, Provider};
use crate::report::Reporter;

/// What the cluster owns.
pub struct Inventory {
    pub cluster: String,
    pub place: Place,
    /// What finds it: the provider's tag, or the engines' label.
    pub found_by: String,
    /// The provider's own resources, one line each (none for `local`).
    pub infra_lines: Vec<String>,
    /// The engines with containers, networks and volumes to remove, and those, per host.
    pub engines: Option<(Hosts, Vec<(u32, Owned)>)>,
    /// What those engines stand in for the hosts' by (the tests' override), when they do.
    pub stand_in: Option<&'static str>,
    /// The cluster's local directory (generated secrets, CA and certificates), when it exists
    /// and `down` removes it itself (provider `local`).
    pub local_dir: Option<PathBuf>,
    provider: Provider,
    infra: Infra,
}

impl Inventory {
    pub fn is_empty(&self) -> bool {
        self.infra_lines.is_empty()
            && self.local_dir.is_none()
            && self.engines.as_ref().is_none_or(|(_, owned)| owned.iter().all(|(_, o)| o.is_empty()))
    }
}

pub async fn inventory(file: &Path) -> Result<Inventory, Error> {
    let loaded = super::load(file)?;
    let cluster = loaded.desired.cluster;
    let provider = Provider::connect(&loaded.settings).await?;
    let infra = provider.observe().await?;
    let engines = match provider.engines_to_clear(&infra).await? {
        Some(hosts) => {
            let owned = hosts.owned(&cluster).await?;
            Some((hosts, owned))
        }
        None => None,
    };
    let local_dir = match provider.place() {
        Place::Local => Some(crate::home::cluster_dir(&cluster)).filter(|dir| dir.exists()),
        Place::Aws { .. } => None,
    };
    Ok(Inventory {
        local_dir,
        found_by: provider.found_by(&cluster),
        infra_lines: provider.inventory(&infra),
        stand_in: provider.stand_in(),
        place: provider.place(),
        cluster,
        engines,
        provider,
        infra,
    })
}

/// Removes all of it: the engines' containers (of every host), networks and volumes, then the
/// provider's hosts, then the cluster's local directory.
pub async fn remove(inventory: &Inventory, report: &dyn Reporter) -> Result<(), Error> {
    if let Some((hosts, owned)) = &inventory.engines {
        exec::teardown(hosts, owned, report).await?;
    }
    inventory.provider.teardown(&inventory.infra, report).await?;
    if let Some(dir) = &inventory.local_dir {
        remove_dir(dir)?;
    }
    Ok(())
}

/// Removes the cluster's local directory (a missing one is already gone).
pub fn remove_dir(dir: &Path) -> Result<(), Error> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(LocalError::RemoveDir { path: dir.to_path_buf(), source }.into()),
    }
}
