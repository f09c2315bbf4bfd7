//! What EC2 holds of a cluster, as [`super::Ec2::observe`] reads it back by tag.

use std::net::Ipv4Addr;

use aws_sdk_ec2::types::IpPermission;
use serde::Serialize;

/// What EC2 has for a cluster (found by its tag).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Ec2Observed {
    pub security_group: Option<ObservedGroup>,
    pub key_pair: Option<ObservedKey>,
    pub addresses: Vec<ObservedAddress>,
    /// Instances not terminated (nor shutting down).
    pub instances: Vec<ObservedInstance>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ObservedGroup {
    pub id: String,
    pub name: String,
    /// Its inbound rules, as [`rule_keys`] spells them.
    pub rules: Vec<String>,
    #[serde(skip)]
    pub permissions: Vec<IpPermission>,
}

/// Inbound rules as comparable strings: `tcp/22 from 203.0.113.0/24`, `-1/all from sg-…`.
pub fn rule_keys(permissions: &[IpPermission]) -> Vec<String> {
    let mut keys = Vec::new();
    for p in permissions {
        let proto = p.ip_protocol().unwrap_or("-1");
        let ports = match (proto, p.from_port(), p.to_port()) {
            ("-1", _, _) => "all".to_string(),
            (_, Some(a), Some(b)) if a == b => a.to_string(),
            (_, Some(a), Some(b)) => format!("{a}-{b}"),
            _ => "all".to_string(),
        };
        for r in p.ip_ranges() {
            keys.push(format!("{proto}/{ports} from {}", r.cidr_ip().unwrap_or("?")));
        }
        for g in p.user_id_group_pairs() {
            keys.push(format!("{proto}/{ports} from {}", g.group_id().unwrap_or("?")));
        }
    }
    keys.sort();
    keys.dedup();
    keys
}

#[derive(Debug, Clone, Serialize)]
pub struct ObservedKey {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ObservedAddress {
    pub allocation_id: String,
    pub public_ip: Option<Ipv4Addr>,
    pub host: Option<u32>,
    pub instance_id: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ObservedInstance {
    pub id: String,
    pub host: Option<u32>,
    pub name: Option<String>,
    pub state: String,
    pub public_ip: Option<Ipv4Addr>,
    /// Its address inside the VPC: what the hosts' engines reach each other at.
    pub private_ip: Option<Ipv4Addr>,
}

impl Ec2Observed {
    /// The instance serving host `index` (running first).
    pub fn instance(&self, index: u32) -> Option<&ObservedInstance> {
        let mut of_host: Vec<&ObservedInstance> =
            self.instances.iter().filter(|i| i.host == Some(index)).collect();
        of_host.sort_by_key(|i| (i.state != "running", i.state != "pending", i.id.clone()));
        of_host.first().copied()
    }

    pub fn address(&self, index: u32) -> Option<&ObservedAddress> {
        self.addresses.iter().find(|a| a.host == Some(index))
    }

    /// Where host `index` is reached from outside: its Elastic IP, else its instance's address.
    pub fn public_ip(&self, index: u32) -> Option<Ipv4Addr> {
        self.address(index)
            .and_then(|a| a.public_ip)
            .or_else(|| self.instance(index).and_then(|i| i.public_ip))
    }

    pub fn is_empty(&self) -> bool {
        self.security_group.is_none()
            && self.key_pair.is_none()
            && self.addresses.is_empty()
            && self.instances.is_empty()
    }
}
