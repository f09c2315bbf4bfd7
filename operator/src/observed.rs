//! What the Docker engines report of a cluster, found by its labels: the real world the planner
//! diffs against ([`crate::plan::diff`]). Plain data; [`crate::hosts::Hosts::observe`] fills it.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::desired::Role;

/// What Docker has for a cluster, found by its labels (see `Hosts::observe`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Observed {
    pub network: Option<ObservedNetwork>,
    /// (host, volume name): the engine that keeps it.
    pub volumes: Vec<(u32, String)>,
    pub containers: Vec<ObservedContainer>,
    /// Hosts (2…) whose engine is not yet a member of host 1's Swarm (only across hosts).
    pub outside_swarm: Vec<u32>,
    /// Image reference → the id it points at now, for every image the cluster wants.
    pub image_ids: BTreeMap<String, String>,
    /// The nginx.conf inside the NGINX container, when there is one.
    pub nginx_conf: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ObservedNetwork {
    pub name: String,
    pub subnet: Option<String>,
    /// Docker's driver: `bridge` or `overlay`.
    pub driver: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ObservedContainer {
    pub id: String,
    pub name: String,
    /// The host whose engine runs it.
    pub host: u32,
    /// `mom.service` label (`broker-2`).
    pub service: Option<String>,
    pub role: Option<Role>,
    pub spec_hash: Option<String>,
    /// The image reference it was created from and the id that resolved to.
    pub image: String,
    pub image_id: String,
    /// Docker's state: `running`, `exited`, `created`, …
    pub state: String,
    /// `healthy`, `unhealthy`, `starting`, or none.
    pub health: Option<String>,
    /// Broker generation (`mom.generation`; 0 when absent).
    #[serde(default)]
    pub generation: u32,
    /// `mom.previous-image`: what the broker ran before this generation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_image: Option<String>,
    /// `mom.file-image`: mom.yaml's `broker.image` when this generation was made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_image: Option<String>,
    /// How often Docker restarted it (its command exited).
    #[serde(default)]
    pub restarts: i64,
}

impl ObservedContainer {
    pub fn running(&self) -> bool {
        self.state == "running"
    }
}
