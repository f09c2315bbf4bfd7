//! Planning: the one diff between the desired cluster and the real world, shared by `momctl plan`
//! (which prints it) and `momctl up` (which executes it). Pure: no Docker calls here.

use std::fmt;

use serde::Serialize;

use crate::desired::{Desired, Role, SecretEnv, ServiceSpec};
use crate::observed::{Observed, ObservedContainer};

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
    /// EC2 (provider aws): see `aws/diff.rs`.
    #[serde(rename = "security_group")]
    SecurityGroup,
    #[serde(rename = "key_pair")]
    KeyPair,
    /// An Elastic IP of one host.
    Address,
    Instance,
    /// A host's engine joining the cluster's Docker Swarm (several hosts).
    Swarm,
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
    /// The host whose engine it happens on, when the cluster spans several.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<u32>,
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
        let kind = serde_json::to_value(self.kind)
            .ok()
            .map(|k| serde_json::Value::String(k.as_str().unwrap_or_default().replace('_', " ")));
        let word = |v: &Option<serde_json::Value>| {
            v.as_ref().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
        };
        let host = self.host.map(|h| format!(" on host {h}")).unwrap_or_default();
        write!(f, "{sign} {} {} {}{host}: {}", word(&action), word(&kind), self.name, self.reason)
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
    pub fn needs_secrets<'a>(&'a self, desired: &'a Desired) -> impl Iterator<Item = &'a SecretEnv> + 'a {
        self.changes
            .iter()
            .filter(|c| c.kind == Kind::Container && matches!(c.action, Action::Create | Action::Replace))
            .filter_map(|c| c.service.as_deref().and_then(|s| desired.service(s)))
            .flat_map(|s| s.secret_env.iter())
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
    SubnetChanged { name: String, actual: String, wanted: String },
    #[error(
        "network {name} is a {actual} network, but the cluster now needs {wanted} (it spans \
         {hosts} host(s)); changing between one host and several needs `momctl down` first"
    )]
    DriverChanged { name: String, actual: String, wanted: &'static str, hosts: u32 },
}

/// The broker container of `service` that counts: the running one of the highest generation
/// (a half-finished upgrade can leave two).
pub fn current_broker<'a>(observed: &'a Observed, service: &str) -> Option<&'a ObservedContainer> {
    observed
        .containers
        .iter()
        .filter(|c| c.role == Some(Role::Broker) && c.service.as_deref() == Some(service))
        .max_by_key(|c| (c.running(), c.generation))
}

/// The desired cluster given what runs. A broker that `upgrade`/`rollback` moved to generation
/// N keeps that image as long as mom.yaml's `broker.image` is still the one it was upgraded
/// from (as Kamal keeps the deployed version); once the file's image changed, the file wins
/// (generation N+1 from it, started beside the old one). A broker the cluster lacks gets the
/// image the others were upgraded to.
pub fn effective(desired: &Desired, observed: &Observed) -> Desired {
    let mut out = desired.clone();
    let deployed = observed
        .containers
        .iter()
        .filter(|c| c.role == Some(Role::Broker) && c.generation > 0 && c.running())
        .max_by_key(|c| c.generation);
    for spec in out.services.iter_mut().filter(|s| s.role == Role::Broker) {
        let from_file = spec.image.clone();
        let next = match current_broker(observed, &spec.service) {
            Some(c) if c.generation > 0 => {
                let previous = c.previous_image.as_deref().unwrap_or(&from_file);
                if c.file_image.as_deref() == Some(from_file.as_str()) {
                    spec.broker_generation(c.generation, &c.image, previous)
                } else if c.image == from_file {
                    // The file was set to the image the broker already runs: nothing to do.
                    let recorded = c.file_image.as_deref().unwrap_or(&from_file);
                    spec.broker_generation_from(c.generation, &c.image, previous, recorded)
                } else {
                    spec.broker_generation(c.generation + 1, &from_file, &c.image)
                }
            }
            // Never upgraded, and the file names another image: generation 1 starts beside it in
            // the other slot, as for an upgraded broker, rather than replacing it in place
            // (which stops it before its successor serves).
            Some(c) if c.image != from_file => spec.broker_generation(1, &from_file, &c.image),
            Some(_) => continue,
            None => match deployed {
                Some(d) if d.file_image.as_deref() == Some(from_file.as_str()) => {
                    spec.broker_generation(1, &d.image, &from_file)
                }
                _ => continue,
            },
        };
        *spec = next;
    }
    out
}

/// One broker of a rolling upgrade: `new` starts beside `old_container`.
#[derive(Debug, Clone, Serialize)]
pub struct UpgradeStep {
    pub service: String,
    pub old_container: String,
    pub old_image: String,
    pub new_container: String,
    pub new_image: String,
    #[serde(skip)]
    pub new: ServiceSpec,
}

/// A rolling upgrade of every broker to `image`, one at a time, in node order.
#[derive(Debug, Clone, Serialize)]
pub struct UpgradePlan {
    pub cluster: String,
    pub image: String,
    pub steps: Vec<UpgradeStep>,
    /// Brokers that already run `image`.
    pub unchanged: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    #[error(
        "image {image} is not in the local Docker engine; build it first \
         (`momctl build --tag {image}`)"
    )]
    ImageMissing { image: String },
    #[error("{service} has no running container; run `momctl up` first")]
    NotRunning { service: String },
    #[error(
        "nothing to roll back to: no broker of cluster {cluster} was made by \
         `momctl upgrade` (mom.previous-image label)"
    )]
    NoPrevious { cluster: String },
}

/// The steps of `momctl upgrade --broker-image image`. Brokers already on `image` (same image
/// id) are left alone, so an interrupted upgrade can be run again.
pub fn upgrade(desired: &Desired, observed: &Observed, image: &str) -> Result<UpgradePlan, UpgradeError> {
    let Some(image_id) = observed.image_ids.get(image) else {
        return Err(UpgradeError::ImageMissing { image: image.to_string() });
    };
    let mut steps = Vec::new();
    let mut unchanged = Vec::new();
    for spec in desired.brokers() {
        let current = current_broker(observed, &spec.service)
            .filter(|c| c.running())
            .ok_or_else(|| UpgradeError::NotRunning { service: spec.service.clone() })?;
        if current.image == image && current.image_id == *image_id {
            unchanged.push(spec.service.clone());
            continue;
        }
        let new = spec.broker_generation(current.generation + 1, image, &current.image);
        steps.push(UpgradeStep {
            service: spec.service.clone(),
            old_container: current.name.clone(),
            old_image: current.image.clone(),
            new_container: new.container_name.clone(),
            new_image: image.to_string(),
            new,
        });
    }
    Ok(UpgradePlan { cluster: desired.cluster.clone(), image: image.to_string(), steps, unchanged })
}

/// The image `momctl rollback` returns to: the one the newest generation replaced.
pub fn rollback_image(desired: &Desired, observed: &Observed) -> Result<String, UpgradeError> {
    observed
        .containers
        .iter()
        .filter(|c| c.role == Some(Role::Broker) && c.generation > 0 && c.running())
        .max_by_key(|c| c.generation)
        .and_then(|c| c.previous_image.clone())
        .filter(|p| !p.is_empty())
        .ok_or_else(|| UpgradeError::NoPrevious { cluster: desired.cluster.clone() })
}

/// The diff: what `up` has to do so that Docker matches `desired`, in execution order.
pub fn diff(desired: &Desired, observed: &Observed, nginx_conf: &str) -> Result<Plan, PlanError> {
    let mut changes = Vec::new();
    // Hosts are named only when there are several.
    let on = |host: u32| (desired.hosts > 1).then_some(host);

    changes.extend(network(desired, observed)?);

    for volume in &desired.volumes {
        if !observed.volumes.contains(&(volume.host, volume.name.clone())) {
            changes.push(Change {
                action: Action::Create,
                kind: Kind::Volume,
                name: volume.name.clone(),
                service: None,
                host: on(volume.host),
                reason: format!("{} (kept until `momctl down`)", volume.key),
            });
        }
    }

    let mut nginx_recreated = false;
    for spec in &desired.services {
        let Some(image_id) = observed.image_ids.get(&spec.image) else {
            return Err(PlanError::ImageMissing { image: spec.image.clone(), service: spec.service.clone() });
        };
        let found = observed.containers.iter().find(|c| c.name == spec.container_name);
        if let Some(mut change) = container_change(spec, found, image_id) {
            if spec.role == Role::Nginx && change.action != Action::Start {
                nginx_recreated = true;
            }
            change.host = on(spec.host);
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
                    host: on(nginx.host),
                    reason: format!(
                        "{} differs from the rendered one (copy in, then reload NGINX)",
                        crate::desired::NGINX_CONF_TARGET
                    ),
                });
            }
        }
    }

    for container in &observed.containers {
        if desired.services.iter().all(|s| s.container_name != container.name) {
            changes.push(Change {
                action: Action::Remove,
                kind: Kind::Container,
                name: container.name.clone(),
                service: container.service.clone(),
                host: on(container.host),
                reason: "not in mom.yaml any more".to_string(),
            });
        }
    }

    Ok(Plan { cluster: desired.cluster.clone(), changes })
}

/// The Swarm joins (across hosts) and the cluster's network; a network that exists with
/// another subnet or driver cannot be changed in place.
fn network(desired: &Desired, observed: &Observed) -> Result<Vec<Change>, PlanError> {
    let mut changes = Vec::new();
    let on = |host: u32| (desired.hosts > 1).then_some(host);
    for host in &observed.outside_swarm {
        changes.push(Change {
            action: if *host == 1 { Action::Create } else { Action::Update },
            kind: Kind::Swarm,
            name: format!("{}-swarm", desired.network.name),
            service: None,
            host: Some(*host),
            reason: if *host == 1 {
                "host 1 starts the Swarm that joins the hosts' engines (it manages it)".to_string()
            } else {
                "the host's engine joins host 1's Swarm (the network spans the hosts)".to_string()
            },
        });
    }

    let wanted_driver = if desired.network.overlay { "overlay" } else { "bridge" };
    match &observed.network {
        None => changes.push(Change {
            action: Action::Create,
            kind: Kind::Network,
            name: desired.network.name.clone(),
            service: None,
            host: on(1),
            reason: if desired.network.overlay {
                format!(
                    "private network {} across the {} hosts (Swarm overlay)",
                    desired.network.subnet, desired.hosts
                )
            } else {
                format!("private network {}", desired.network.subnet)
            },
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
            if net.driver != wanted_driver {
                return Err(PlanError::DriverChanged {
                    name: net.name.clone(),
                    actual: net.driver.clone(),
                    wanted: wanted_driver,
                    hosts: desired.hosts,
                });
            }
        }
    }
    Ok(changes)
}

fn container_change(spec: &ServiceSpec, found: Option<&ObservedContainer>, image_id: &str) -> Option<Change> {
    let change = |action, reason: String| {
        Some(Change {
            action,
            kind: Kind::Container,
            name: spec.container_name.clone(),
            service: Some(spec.service.clone()),
            host: None,
            reason,
        })
    };
    let Some(found) = found else {
        return change(Action::Create, format!("{} from {}", spec.role.as_str(), spec.image));
    };
    if found.spec_hash.as_deref() != Some(spec.spec_hash()) {
        let reason = if found.host != spec.host {
            format!("moves from host {} to host {}", found.host, spec.host)
        } else if found.image != spec.image {
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
    use std::collections::BTreeMap;

    use super::*;
    use crate::desired::tests::desired;
    use crate::observed::ObservedNetwork;

    fn images(d: &Desired) -> BTreeMap<String, String> {
        d.services.iter().map(|s| (s.image.clone(), format!("sha256:{}", s.image))).collect()
    }

    /// What Docker would report right after `up` of `d`.
    fn converged(d: &Desired) -> Observed {
        Observed {
            network: Some(ObservedNetwork {
                name: d.network.name.clone(),
                subnet: Some(d.network.subnet.to_string()),
                driver: if d.network.overlay { "overlay" } else { "bridge" }.to_string(),
            }),
            volumes: d.volumes.iter().map(|v| (v.host, v.name.clone())).collect(),
            outside_swarm: Vec::new(),
            containers: d
                .services
                .iter()
                .map(|s| ObservedContainer {
                    id: format!("id-{}", s.service),
                    name: s.container_name.clone(),
                    host: s.host,
                    service: Some(s.service.clone()),
                    role: Some(s.role),
                    spec_hash: Some(s.spec_hash().to_string()),
                    image: s.image.clone(),
                    image_id: format!("sha256:{}", s.image),
                    state: "running".to_string(),
                    health: Some("healthy".to_string()),
                    generation: 0,
                    previous_image: None,
                    file_image: None,
                    restarts: 0,
                })
                .collect(),
            image_ids: images(d),
            nginx_conf: Some(crate::render::nginx_conf(d, None).expect("renders")),
        }
    }

    fn summary(p: &Plan) -> Vec<(Action, &str)> {
        p.changes.iter().map(|c| (c.action, c.name.as_str())).collect()
    }

    fn plan(d: &Desired, o: &Observed) -> Plan {
        diff(d, o, &crate::render::nginx_conf(d, None).expect("renders")).expect("plans")
    }

    #[test]
    fn an_empty_engine_gets_everything_in_order() {
        let d = desired(3);
        let o = Observed { image_ids: images(&d), ..Observed::default() };
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
        // Each broker: the admin's password from the environment, the generated Redis
        // password and ZooKeeper credential; Redis: its password.
        let from_env = p.needs_secrets(&d).filter(|e| !e.generated).count();
        assert_eq!(from_env, 3);
        assert_eq!(p.needs_secrets(&d).count(), 3 * 3 + 1);
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
        let summary: Vec<_> = p.changes.iter().map(|c| (c.action, c.kind, c.name.as_str())).collect();
        assert_eq!(
            summary,
            [
                (Action::Create, Kind::Container, "mom-demo-broker-4"),
                (Action::Update, Kind::Config, "mom-demo-nginx")
            ]
        );
        assert_eq!(p.needs_secrets(&d4).filter(|e| !e.generated).count(), 1);
    }

    #[test]
    fn fewer_brokers_remove_the_extra_one() {
        let p = plan(&desired(2), &converged(&desired(3)));
        assert_eq!(summary(&p), [(Action::Update, "mom-demo-nginx"), (Action::Remove, "mom-demo-broker-3")]);
    }

    #[test]
    fn a_rebuilt_image_replaces_and_a_stopped_container_starts() {
        let d = desired(1);
        let mut o = converged(&d);
        o.image_ids.insert(d.services[2].image.clone(), "sha256:new".to_string());
        o.containers[0].state = "exited".to_string();
        let p = plan(&d, &o);
        assert_eq!(summary(&p), [(Action::Start, "mom-demo-redis"), (Action::Replace, "mom-demo-broker-1")]);
    }

    /// `o` after an upgrade of every broker to `image`.
    fn upgraded(d: &Desired, o: &Observed, image: &str) -> Observed {
        let mut o = o.clone();
        o.image_ids.insert(image.to_string(), format!("sha256:{image}"));
        let p = upgrade(d, &o, image).expect("upgrade plan");
        for step in &p.steps {
            o.containers.retain(|c| c.name != step.old_container);
            o.containers.push(ObservedContainer {
                id: step.new_container.clone(),
                name: step.new_container.clone(),
                host: step.new.host,
                service: Some(step.service.clone()),
                role: Some(Role::Broker),
                spec_hash: Some(step.new.spec_hash().to_string()),
                image: image.to_string(),
                image_id: format!("sha256:{image}"),
                state: "running".to_string(),
                health: Some("healthy".to_string()),
                generation: step.new.labels[crate::desired::labels::GENERATION].parse().expect("generation"),
                previous_image: Some(step.old_image.clone()),
                file_image: Some(d.brokers().next().expect("broker").image.clone()),
                restarts: 0,
            });
        }
        o.nginx_conf = Some(crate::render::nginx_conf(&effective(d, &o), None).expect("renders"));
        o
    }

    #[test]
    fn an_upgraded_cluster_is_converged_and_rolls_back() {
        let d = desired(3);
        let o = upgraded(&d, &converged(&d), "mom-broker:next");
        let e = effective(&d, &o);
        assert!(diff(&e, &o, o.nginx_conf.as_deref().expect("conf")).expect("plans").is_empty());
        assert_eq!(upgrade(&d, &o, "mom-broker:next").expect("plan").steps.len(), 0);
        let back = rollback_image(&d, &o).expect("previous");
        assert_eq!(back, d.brokers().next().expect("broker").image);
        let o2 = upgraded(&d, &o, &back);
        assert!(o2
            .containers
            .iter()
            .all(|c| c.role != Some(Role::Broker) || (c.generation == 2 && c.image == back)));
        let e2 = effective(&d, &o2);
        assert!(diff(&e2, &o2, o2.nginx_conf.as_deref().expect("conf")).expect("plans").is_empty());
        // mom.yaml set to the image the brokers run: converged, nothing replaced.
        let mut d_next = d.clone();
        for s in d_next.services.iter_mut().filter(|s| s.role == Role::Broker) {
            s.image = "mom-broker:next".to_string();
        }
        let e = effective(&d_next, &o);
        assert!(diff(&e, &o, o.nginx_conf.as_deref().expect("conf")).expect("plans").is_empty());
        // A fresh cluster has nothing to roll back to.
        assert!(rollback_image(&d, &converged(&d)).is_err());
    }

    #[test]
    fn a_new_image_in_the_file_starts_each_broker_beside_the_old_one() {
        let d = desired(2);
        let o = converged(&d);
        let mut d_next = d.clone();
        for s in d_next.services.iter_mut().filter(|s| s.role == Role::Broker) {
            s.image = "mom-broker:next".to_string();
        }
        let mut o_next = o.clone();
        o_next.image_ids.insert("mom-broker:next".to_string(), "sha256:next".to_string());
        let e = effective(&d_next, &o_next);
        let p = diff(&e, &o_next, o.nginx_conf.as_deref().unwrap_or("")).expect("plans");
        let containers: Vec<_> = p
            .changes
            .iter()
            .filter(|c| c.kind == Kind::Container)
            .map(|c| (c.action, c.name.as_str()))
            .collect();
        // New generations first (the executor starts creations, waits until they are healthy,
        // then removes: the old ones drain while their successors serve); nothing is replaced.
        assert_eq!(
            containers,
            [
                (Action::Create, "mom-demo-broker-1-g1"),
                (Action::Create, "mom-demo-broker-2-g1"),
                (Action::Remove, "mom-demo-broker-1"),
                (Action::Remove, "mom-demo-broker-2"),
            ]
        );
        assert!(e.brokers().all(|b| b.image == "mom-broker:next"));
    }

    #[test]
    fn missing_images_and_a_moved_subnet_are_errors() {
        let d = desired(1);
        let mut o = converged(&d);
        o.image_ids.clear();
        assert!(matches!(diff(&d, &o, ""), Err(PlanError::ImageMissing { .. })));
        let mut o = converged(&d);
        o.network = Some(ObservedNetwork {
            name: d.network.name.clone(),
            subnet: Some("10.9.9.0/24".into()),
            driver: "bridge".into(),
        });
        assert!(matches!(diff(&d, &o, ""), Err(PlanError::SubnetChanged { .. })));
    }

    #[test]
    fn across_hosts_the_plan_names_each_containers_host_and_the_swarm_joins() {
        let d = crate::desired::tests::replicated_on(3);
        let o = Observed { image_ids: images(&d), outside_swarm: vec![1, 2, 3], ..Observed::default() };
        let p = diff(&d, &o, "").expect("plans");
        let swarm: Vec<_> =
            p.changes.iter().filter(|c| c.kind == Kind::Swarm).map(|c| (c.action, c.host)).collect();
        assert_eq!(swarm, [(Action::Create, Some(1)), (Action::Update, Some(2)), (Action::Update, Some(3))]);
        let zk3 = p.changes.iter().find(|c| c.service.as_deref() == Some("zookeeper-3")).expect("zk 3");
        assert_eq!(zk3.host, Some(3));
        assert!(zk3.to_string().contains("mom-demo-zookeeper-3 on host 3:"), "{zk3}");
        let volume = p.changes.iter().find(|c| c.name == "mom-demo-redis-sentinel-2-data").expect("volume");
        assert_eq!(volume.host, Some(2));
        // Converged: nothing to do; one host's plan names no host.
        assert!(diff(&d, &converged(&d), &crate::render::nginx_conf(&d, None).expect("renders"))
            .expect("plans")
            .is_empty());
        let one = desired(2);
        assert!(diff(&one, &Observed { image_ids: images(&one), ..Observed::default() }, "")
            .expect("plans")
            .changes
            .iter()
            .all(|c| c.host.is_none()));
        // A bridge from one host cannot become the overlay in place.
        let mut bridged = converged(&d);
        if let Some(n) = bridged.network.as_mut() {
            n.driver = "bridge".into();
        }
        assert!(matches!(diff(&d, &bridged, ""), Err(PlanError::DriverChanged { hosts: 3, .. })));
    }
}
