//! Planning: the one diff between the desired cluster and the real world, shared by `momctl plan`
//! (which prints it) and `momctl up` (which executes it). Pure: no Docker calls here.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::desired::{Desired, Role, ServiceSpec};

/// What Docker has for a cluster, found by its labels (see `docker::observe`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Observed {
    pub network: Option<ObservedNetwork>,
    pub volumes: Vec<String>,
    pub containers: Vec<ObservedContainer>,
    /// Image reference → the id it points at now, for every image the cluster wants.
    pub image_ids: BTreeMap<String, String>,
    /// The nginx.conf inside the NGINX container, when there is one.
    pub nginx_conf: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ObservedNetwork {
    pub name: String,
    pub subnet: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ObservedContainer {
    pub id: String,
    pub name: String,
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
}

impl ObservedContainer {
    pub fn running(&self) -> bool {
        self.state == "running"
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Replace,
    Start,
    Update,
    Remove,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Network,
    Volume,
    Container,
    /// A rendered file inside a running container.
    Config,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub action: Action,
    pub kind: Kind,
    /// Docker's name for the resource (for a config: the container's).
    pub name: String,
    /// The cluster's name for a container (`broker-2`), when it is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    pub reason: String,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = match self.action {
            Action::Create => '+',
            Action::Replace => '~',
            Action::Start => '>',
            Action::Update => '~',
            Action::Remove => '-',
        };
        let action = serde_json::to_value(self.action).ok();
        let kind = serde_json::to_value(self.kind).ok();
        let word = |v: &Option<serde_json::Value>| {
            v.as_ref()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        };
        write!(
            f,
            "{sign} {} {} {}: {}",
            word(&action),
            word(&kind),
            self.name,
            self.reason
        )
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub cluster: String,
    pub changes: Vec<Change>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Whether executing it creates a container that needs a secret from the environment.
    pub fn needs_secrets<'a>(&'a self, desired: &'a Desired) -> impl Iterator<Item = &'a str> + 'a {
        self.changes
            .iter()
            .filter(|c| {
                c.kind == Kind::Container && matches!(c.action, Action::Create | Action::Replace)
            })
            .filter_map(|c| c.service.as_deref().and_then(|s| desired.service(s)))
            .flat_map(|s| s.secret_env.iter().map(|e| e.from_env.as_str()))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(
        "image {image} (for {service}) is not in the local Docker engine; build it first \
         (scripts/images.sh makes mom-base, mom-redis, mom-zookeeper and mom-nginx; \
         `momctl build` makes the broker image)"
    )]
    ImageMissing { image: String, service: String },
    #[error(
        "network {name} exists with subnet {actual}, but mom.yaml wants {wanted}; \
         changing the subnet needs `momctl down` first"
    )]
    SubnetChanged {
        name: String,
        actual: String,
        wanted: String,
    },
}

/// The diff: what `up` has to do so that Docker matches `desired`, in execution order.
pub fn diff(desired: &Desired, observed: &Observed, nginx_conf: &str) -> Result<Plan, PlanError> {
    let mut changes = Vec::new();

    match &observed.network {
        None => changes.push(Change {
            action: Action::Create,
            kind: Kind::Network,
            name: desired.network.name.clone(),
            service: None,
            reason: format!("private network {}", desired.network.subnet),
        }),
        Some(net) => {
            let wanted = desired.network.subnet.to_string();
            if let Some(actual) = &net.subnet {
                if *actual != wanted {
                    return Err(PlanError::SubnetChanged {
                        name: net.name.clone(),
                        actual: actual.clone(),
                        wanted,
                    });
                }
            }
        }
    }

    for volume in &desired.volumes {
        if !observed.volumes.contains(&volume.name) {
            changes.push(Change {
                action: Action::Create,
                kind: Kind::Volume,
                name: volume.name.clone(),
                service: None,
                reason: format!("{} (kept until `momctl down`)", volume.key),
            });
        }
    }

    let mut nginx_recreated = false;
    for spec in &desired.services {
        let Some(image_id) = observed.image_ids.get(&spec.image) else {
            return Err(PlanError::ImageMissing {
                image: spec.image.clone(),
                service: spec.service.clone(),
            });
        };
        let found = observed
            .containers
            .iter()
            .find(|c| c.name == spec.container_name);
        if let Some(change) = container_change(spec, found, image_id) {
            if spec.role == Role::Nginx && change.action != Action::Start {
                nginx_recreated = true;
            }
            changes.push(change);
        }
    }

    if !nginx_recreated {
        if let Some(nginx) = desired.services.iter().find(|s| s.role == Role::Nginx) {
            if observed.nginx_conf.as_deref() != Some(nginx_conf) {
                changes.push(Change {
                    action: Action::Update,
                    kind: Kind::Config,
                    name: nginx.container_name.clone(),
                    service: Some(nginx.service.clone()),
                    reason: format!(
                        "{} differs from the rendered one (copy in, then reload NGINX)",
                        crate::desired::NGINX_CONF_TARGET
                    ),
                });
            }
        }
    }

    for container in &observed.containers {
        if desired
            .services
            .iter()
            .all(|s| s.container_name != container.name)
        {
            changes.push(Change {
                action: Action::Remove,
                kind: Kind::Container,
                name: container.name.clone(),
                service: container.service.clone(),
                reason: "not in mom.yaml any more".to_string(),
            });
        }
    }

    Ok(Plan {
        cluster: desired.cluster.clone(),
        changes,
    })
}

fn container_change(
    spec: &ServiceSpec,
    found: Option<&ObservedContainer>,
    image_id: &str,
) -> Option<Change> {
    let change = |action, reason: String| {
        Some(Change {
            action,
            kind: Kind::Container,
            name: spec.container_name.clone(),
            service: Some(spec.service.clone()),
            reason,
        })
    };
    let Some(found) = found else {
        return change(
            Action::Create,
            format!("{} from {}", spec.role.as_str(), spec.image),
        );
    };
    if found.spec_hash.as_deref() != Some(spec.spec_hash()) {
        let reason = if found.image != spec.image {
            format!("image {} -> {}", found.image, spec.image)
        } else {
            "its settings in mom.yaml changed".to_string()
        };
        return change(Action::Replace, reason);
    }
    if found.image_id != image_id {
        return change(Action::Replace, format!("image {} was rebuilt", spec.image));
    }
    if !found.running() {
        return change(Action::Start, format!("it is {}", found.state));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::tests::desired;

    fn images(d: &Desired) -> BTreeMap<String, String> {
        d.services
            .iter()
            .map(|s| (s.image.clone(), format!("sha256:{}", s.image)))
            .collect()
    }

    /// What Docker would report right after `up` of `d`.
    fn converged(d: &Desired) -> Observed {
        Observed {
            network: Some(ObservedNetwork {
                name: d.network.name.clone(),
                subnet: Some(d.network.subnet.to_string()),
            }),
            volumes: d.volumes.iter().map(|v| v.name.clone()).collect(),
            containers: d
                .services
                .iter()
                .map(|s| ObservedContainer {
                    id: format!("id-{}", s.service),
                    name: s.container_name.clone(),
                    service: Some(s.service.clone()),
                    role: Some(s.role),
                    spec_hash: Some(s.spec_hash().to_string()),
                    image: s.image.clone(),
                    image_id: format!("sha256:{}", s.image),
                    state: "running".to_string(),
                    health: Some("healthy".to_string()),
                })
                .collect(),
            image_ids: images(d),
            nginx_conf: Some(crate::render::nginx_conf(d).expect("renders")),
        }
    }

    fn summary(p: &Plan) -> Vec<(Action, &str)> {
        p.changes
            .iter()
            .map(|c| (c.action, c.name.as_str()))
            .collect()
    }

    fn plan(d: &Desired, o: &Observed) -> Plan {
        diff(d, o, &crate::render::nginx_conf(d).expect("renders")).expect("plans")
    }

    #[test]
    fn an_empty_engine_gets_everything_in_order() {
        let d = desired(3);
        let o = Observed {
            image_ids: images(&d),
            ..Observed::default()
        };
        let p = plan(&d, &o);
        let names: Vec<_> = p.changes.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "mom-demo",
                "mom-demo-redis-data",
                "mom-demo-zookeeper-data",
                "mom-demo-redis",
                "mom-demo-zookeeper",
                "mom-demo-broker-1",
                "mom-demo-broker-2",
                "mom-demo-broker-3",
                "mom-demo-nginx"
            ]
        );
        assert!(p.changes.iter().all(|c| c.action == Action::Create));
        assert_eq!(p.needs_secrets(&d).count(), 3);
    }

    #[test]
    fn a_converged_cluster_needs_nothing() {
        let d = desired(3);
        assert!(plan(&d, &converged(&d)).is_empty());
    }

    #[test]
    fn a_fourth_broker_is_created_and_nginx_reloaded() {
        let d3 = desired(3);
        let d4 = desired(4);
        let p = plan(&d4, &converged(&d3));
        let summary: Vec<_> = p
            .changes
            .iter()
            .map(|c| (c.action, c.kind, c.name.as_str()))
            .collect();
        assert_eq!(
            summary,
            [
                (Action::Create, Kind::Container, "mom-demo-broker-4"),
                (Action::Update, Kind::Config, "mom-demo-nginx")
            ]
        );
        assert_eq!(p.needs_secrets(&d4).count(), 1);
    }

    #[test]
    fn fewer_brokers_remove_the_extra_one() {
        let p = plan(&desired(2), &converged(&desired(3)));
        assert_eq!(
            summary(&p),
            [
                (Action::Update, "mom-demo-nginx"),
                (Action::Remove, "mom-demo-broker-3")
            ]
        );
    }

    #[test]
    fn a_rebuilt_image_replaces_and_a_stopped_container_starts() {
        let d = desired(1);
        let mut o = converged(&d);
        o.image_ids
            .insert(d.services[2].image.clone(), "sha256:new".to_string());
        o.containers[0].state = "exited".to_string();
        let p = plan(&d, &o);
        assert_eq!(
            summary(&p),
            [
                (Action::Start, "mom-demo-redis"),
                (Action::Replace, "mom-demo-broker-1")
            ]
        );
    }

    #[test]
    fn missing_images_and_a_moved_subnet_are_errors() {
        let d = desired(1);
        let mut o = converged(&d);
        o.image_ids.clear();
        assert!(matches!(
            diff(&d, &o, ""),
            Err(PlanError::ImageMissing { .. })
        ));
        let mut o = converged(&d);
        o.network = Some(ObservedNetwork {
            name: d.network.name.clone(),
            subnet: Some("10.9.9.0/24".into()),
        });
        assert!(matches!(
            diff(&d, &o, ""),
            Err(PlanError::SubnetChanged { .. })
        ));
    }
}
