//! The EC2 part of the diff (provider aws): pure, like [`crate::plan::diff`], and in the same
//! vocabulary of [`Change`]s.

use crate::plan::{Action, Change, Kind};

use crate::home::cluster_dir;

use super::desired::{AwsDesired, DOCKER_TLS_PORT, SSH_KEY_FILE};
use super::model::{rule_keys, Ec2Observed};

/// The EC2 part of the diff (provider aws): what `up` has to do so that EC2 matches `desired`,
/// in execution order. Removals are named by their EC2 id; the rest by their `Name` tag.
pub fn ec2_diff(desired: &AwsDesired, observed: &Ec2Observed) -> Vec<Change> {
    let mut changes = Vec::new();
    changes.extend(group(desired, observed));
    changes.extend(key_pair(desired, observed));
    changes.extend(addresses(desired, observed));
    changes.extend(instances(desired, observed));
    changes.extend(removals(desired, observed));
    changes
}

fn change(action: Action, kind: Kind, name: &str, reason: String) -> Change {
    Change { action, kind, name: name.to_string(), service: None, host: None, reason }
}

/// The security group: made, or its inbound rules brought back to the wanted ones.
fn group(desired: &AwsDesired, observed: &Ec2Observed) -> Option<Change> {
    let Some(group) = &observed.security_group else {
        return Some(change(
            Action::Create,
            Kind::SecurityGroup,
            &desired.group_name,
            format!(
                "all traffic inside the group; NGINX {} from anywhere; SSH and Docker API ({}) from {}",
                desired.public_ports.iter().map(|p| format!("tcp/{p}")).collect::<Vec<_>>().join(", "),
                DOCKER_TLS_PORT,
                desired.settings.admin_cidr
            ),
        ));
    };
    let wanted = rule_keys(&desired.ingress(&group.id));
    if wanted == group.rules {
        return None;
    }
    let added: Vec<&str> = wanted.iter().filter(|r| !group.rules.contains(r)).map(String::as_str).collect();
    let gone: Vec<&str> = group.rules.iter().filter(|r| !wanted.contains(r)).map(String::as_str).collect();
    Some(change(
        Action::Update,
        Kind::SecurityGroup,
        &group.name,
        format!("inbound rules differ: add [{}], remove [{}]", added.join(", "), gone.join(", ")),
    ))
}

fn key_pair(desired: &AwsDesired, observed: &Ec2Observed) -> Option<Change> {
    observed.key_pair.is_none().then(|| {
        change(
            Action::Create,
            Kind::KeyPair,
            &desired.key_name,
            format!(
                "private key to {} (mode 0600)",
                cluster_dir(&desired.cluster).join(SSH_KEY_FILE).display()
            ),
        )
    })
}

/// An Elastic IP for each host that lacks one.
fn addresses(desired: &AwsDesired, observed: &Ec2Observed) -> Vec<Change> {
    desired
        .hosts
        .iter()
        .filter(|host| observed.address(host.index).is_none())
        .map(|host| {
            change(
                Action::Create,
                Kind::Address,
                &host.name,
                "Elastic IP (its Docker TLS certificate names it)".to_string(),
            )
        })
        .collect()
}

/// Each host's instance: made, started, or its address associated with it.
fn instances(desired: &AwsDesired, observed: &Ec2Observed) -> Vec<Change> {
    let mut changes = Vec::new();
    for host in &desired.hosts {
        match observed.instance(host.index) {
            None => changes.push(change(
                Action::Create,
                Kind::Instance,
                &host.name,
                format!(
                    "{} from {}, user data installs Docker with its API on tcp/{} (mutual TLS)",
                    desired.settings.instance_type,
                    desired.settings.ami.as_deref().unwrap_or("the newest Debian 12 AMI"),
                    DOCKER_TLS_PORT
                ),
            )),
            Some(i) if i.state == "stopped" => changes.push(change(
                Action::Start,
                Kind::Instance,
                &host.name,
                format!("{} is {}", i.id, i.state),
            )),
            Some(i) => {
                if let Some(a) = observed.address(host.index) {
                    if a.instance_id.as_deref() != Some(i.id.as_str()) {
                        changes.push(change(
                            Action::Update,
                            Kind::Address,
                            &host.name,
                            format!("associate {} with {}", a.allocation_id, i.id),
                        ));
                    }
                }
            }
        }
    }
    changes
}

/// Instances and addresses of no host in mom.yaml (or a host's second instance), by EC2 id.
fn removals(desired: &AwsDesired, observed: &Ec2Observed) -> Vec<Change> {
    let mut changes = Vec::new();
    let hosts = desired.settings.hosts;
    for instance in &observed.instances {
        let wanted = instance.host.is_some_and(|h| (1..=hosts).contains(&h))
            && instance.host.and_then(|h| observed.instance(h)).is_some_and(|kept| kept.id == instance.id);
        if !wanted {
            changes.push(change(
                Action::Remove,
                Kind::Instance,
                &instance.id,
                format!(
                    "{} is not one of the {hosts} host(s) in mom.yaml (terminate)",
                    instance.name.as_deref().unwrap_or("untitled"),
                ),
            ));
        }
    }
    for address in &observed.addresses {
        if !address.host.is_some_and(|h| (1..=hosts).contains(&h)) {
            changes.push(change(
                Action::Remove,
                Kind::Address,
                &address.allocation_id,
                format!(
                    "Elastic IP {} of a host no longer in mom.yaml (release)",
                    address.public_ip.map(|ip| ip.to_string()).unwrap_or_default()
                ),
            ));
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::aws::{ObservedAddress, ObservedGroup, ObservedInstance, ObservedKey};

    fn desired(hosts: u32) -> AwsDesired {
        let yaml =
            format!("cluster: demo\nprovider: aws\naws: {{ hosts: {hosts}, admin_cidr: 203.0.113.0/24 }}\n");
        let settings =
            crate::config::parse(&yaml, "mom.yaml").and_then(|c| c.settings("mom.yaml")).expect("valid");
        AwsDesired::from_settings(&settings).expect("aws")
    }

    /// What EC2 holds after `up` of `d`.
    fn converged(d: &AwsDesired) -> Ec2Observed {
        let permissions = d.ingress("sg-1");
        Ec2Observed {
            security_group: Some(ObservedGroup {
                id: "sg-1".into(),
                name: d.group_name.clone(),
                rules: rule_keys(&permissions),
                permissions,
            }),
            key_pair: Some(ObservedKey { id: "key-1".into(), name: d.key_name.clone() }),
            addresses: d
                .hosts
                .iter()
                .map(|h| ObservedAddress {
                    allocation_id: format!("eipalloc-{}", h.index),
                    public_ip: Some(Ipv4Addr::new(198, 51, 100, h.index as u8)),
                    host: Some(h.index),
                    instance_id: Some(format!("i-{}", h.index)),
                })
                .collect(),
            instances: d
                .hosts
                .iter()
                .map(|h| ObservedInstance {
                    id: format!("i-{}", h.index),
                    host: Some(h.index),
                    name: Some(h.name.clone()),
                    state: "running".into(),
                    public_ip: None,
                    private_ip: None,
                })
                .collect(),
        }
    }

    fn summary(changes: &[Change]) -> Vec<(Action, Kind, String)> {
        changes.iter().map(|c| (c.action, c.kind, c.name.clone())).collect()
    }

    #[test]
    fn the_ec2_diff_adds_starts_replaces_and_removes_by_tag() {
        let d3 = desired(3);
        assert!(ec2_diff(&d3, &converged(&d3)).is_empty(), "converged");
        let fresh = ec2_diff(&d3, &Ec2Observed::default());
        assert_eq!(fresh.len(), 2 + 3 + 3, "group, key pair, 3 addresses, 3 instances");

        let d4 = desired(4);
        assert_eq!(
            summary(&ec2_diff(&d4, &converged(&d3))),
            [
                (Action::Create, Kind::Address, "mom-demo-host-4".to_string()),
                (Action::Create, Kind::Instance, "mom-demo-host-4".to_string()),
            ]
        );

        let mut o = converged(&d3);
        o.instances.retain(|i| i.id != "i-2");
        o.instances[0].state = "stopped".into();
        assert_eq!(
            summary(&ec2_diff(&d3, &o)),
            [
                (Action::Start, Kind::Instance, "mom-demo-host-1".to_string()),
                (Action::Create, Kind::Instance, "mom-demo-host-2".to_string()),
            ]
        );

        let d2 = desired(2);
        assert_eq!(
            summary(&ec2_diff(&d2, &converged(&d3))),
            [
                (Action::Remove, Kind::Instance, "i-3".to_string()),
                (Action::Remove, Kind::Address, "eipalloc-3".to_string()),
            ]
        );

        let mut o = converged(&d3);
        if let Some(g) = o.security_group.as_mut() {
            g.rules.retain(|r| !r.starts_with("tcp/22 "));
        }
        let changes = ec2_diff(&d3, &o);
        assert_eq!(changes.len(), 1);
        assert!(changes[0].reason.contains("add [tcp/22 from 203.0.113.0/24]"), "{}", changes[0].reason);
    }
}
