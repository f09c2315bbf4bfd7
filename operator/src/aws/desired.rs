//! The EC2 side of the desired cluster ([`AwsDesired`]): its security group, key pair and hosts,
//! and the tags that find each of them again.

use aws_sdk_ec2::types::{IpPermission, IpRange, ResourceType, Tag, TagSpecification, UserIdGroupPair};
use serde::Serialize;

use crate::config::{AwsSettings, Settings};

/// The tag every EC2 resource of a cluster carries; its value is the cluster's name.
pub const CLUSTER_TAG: &str = "mom:cluster";
/// The tag of a host's instance and address: its number, 1..=hosts.
pub const HOST_TAG: &str = "mom:host";
pub const MANAGED_BY_TAG: &str = "mom:managed-by";
/// The Docker API port on every host (mutual TLS).
pub const DOCKER_TLS_PORT: u16 = 2376;
pub const SSH_PORT: u16 = 22;
/// File name of the key pair's private key in the cluster's directory.
pub const SSH_KEY_FILE: &str = "ssh-key.pem";

/// One host of the cluster.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct HostSpec {
    pub index: u32,
    pub name: String,
}

/// The EC2 side of the desired cluster.
#[derive(Debug, Clone, Serialize)]
pub struct AwsDesired {
    pub cluster: String,
    pub settings: AwsSettings,
    pub group_name: String,
    pub key_name: String,
    pub hosts: Vec<HostSpec>,
    /// NGINX's ports, open to everyone.
    pub public_ports: Vec<u16>,
}

impl Serialize for AwsSettings {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("AwsSettings", 5)?;
        st.serialize_field("region", &self.region)?;
        st.serialize_field("instance_type", &self.instance_type)?;
        st.serialize_field("hosts", &self.hosts)?;
        st.serialize_field("ami", &self.ami)?;
        st.serialize_field("admin_cidr", &self.admin_cidr.to_string())?;
        st.end()
    }
}

pub fn host_name(cluster: &str, index: u32) -> String {
    format!("mom-{cluster}-host-{index}")
}

impl AwsDesired {
    /// `None` unless `provider: aws`.
    pub fn from_settings(s: &Settings) -> Option<AwsDesired> {
        let aws = s.aws.clone()?;
        let cluster = s.cluster.clone();
        let mut public_ports = vec![s.nginx_http_port];
        public_ports.extend(s.nginx_grpc_port);
        Some(AwsDesired {
            group_name: format!("mom-{cluster}"),
            key_name: format!("mom-{cluster}"),
            hosts: (1..=aws.hosts)
                .map(|index| HostSpec { index, name: host_name(&cluster, index) })
                .collect(),
            cluster,
            settings: aws,
            public_ports,
        })
    }

    fn tags(&self, name: &str, host: Option<u32>) -> Vec<Tag> {
        let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build();
        let mut tags =
            vec![tag(CLUSTER_TAG, &self.cluster), tag("Name", name), tag(MANAGED_BY_TAG, "momctl")];
        if let Some(h) = host {
            tags.push(tag(HOST_TAG, &h.to_string()));
        }
        tags
    }

    pub(super) fn tag_spec(&self, kind: ResourceType, name: &str, host: Option<u32>) -> TagSpecification {
        TagSpecification::builder().resource_type(kind).set_tags(Some(self.tags(name, host))).build()
    }

    /// The security group's inbound rules.
    pub fn ingress(&self, group_id: &str) -> Vec<IpPermission> {
        let mut rules = vec![IpPermission::builder()
            .ip_protocol("-1")
            .user_id_group_pairs(
                UserIdGroupPair::builder()
                    .group_id(group_id)
                    .description("brokers, Redis, ZooKeeper: only inside the cluster")
                    .build(),
            )
            .build()];
        let tcp = |port: u16, cidr: &str, why: &str| {
            IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(i32::from(port))
                .to_port(i32::from(port))
                .ip_ranges(IpRange::builder().cidr_ip(cidr).description(why).build())
                .build()
        };
        for port in &self.public_ports {
            rules.push(tcp(*port, "0.0.0.0/0", "NGINX, the public entry"));
        }
        let admin = self.settings.admin_cidr.to_string();
        rules.push(tcp(DOCKER_TLS_PORT, &admin, "Docker API (mutual TLS), admins only"));
        rules.push(tcp(SSH_PORT, &admin, "SSH, admins only"));
        rules
    }
}
