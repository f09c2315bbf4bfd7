//! Provider `aws`: the EC2 side of a cluster (aws-sdk-ec2).
//!
//! What a cluster has on EC2, each tagged `mom:cluster=<name>` (and `Name`), and found again by
//! that tag only (no state file):
//! - a security group `mom-<cluster>`: every protocol from inside the group (brokers, Redis,
//!   ZooKeeper talk only there), NGINX's ports from anywhere, SSH (22) and the Docker API (2376)
//!   from `aws.admin_cidr` only;
//! - a key pair `mom-<cluster>` whose private key is written to the cluster's local directory
//!   (mode 0600) and never printed;
//! - per host `K` (1..=`aws.hosts`) an Elastic IP and an instance `mom-<cluster>-host-K`, both
//!   tagged `mom:host=K`. The address comes first so the host's Docker server certificate can
//!   name it; the instance's user data (`templates/cloud-init.yaml.tera`) installs Docker and
//!   serves its API on 2376 with mutual TLS ([`crate::pki`]).
//!
//! [`Ec2::observe`] reads that back, [`crate::plan::ec2_diff`] diffs it (the one diff `plan` prints
//! and `up` applies), [`apply`] executes it and [`teardown`] removes it. The containers then go onto
//! host 1's Docker engine, reached at `https://<its address>:2376` with momctl's client
//! certificate; with `MOMCTL_AWS_DOCKER_HOST=local` (tests only: moto boots no machine) they go
//! onto the local Docker engine instead.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use aws_sdk_ec2::client::Waiters;
use aws_sdk_ec2::config::http::HttpResponse;
use aws_sdk_ec2::config::{BehaviorVersion, ProvideCredentials, Region};
use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::types::{
    DomainType, Filter, InstanceStateName, InstanceType, IpPermission, IpRange, ResourceType, Tag,
    TagSpecification, UserIdGroupPair,
};
use aws_sdk_ec2::Client;
use base64::Engine as _;
use serde::Serialize;
use tera::{Context, Tera};

use crate::config::{AwsSettings, Settings};
use crate::exec::Reporter;
use crate::hosts::{Host, Hosts};
use crate::pki::{Pki, PkiError, ServerCert};
use crate::plan::{Action, Change, Kind};

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
/// Owner of the official Debian AMIs, and their names.
const DEBIAN_OWNER: &str = "136693071363";
const DEBIAN_NAME: &str = "debian-12-amd64-*";
/// Test-only (moto starts no machine; never set it in real use): `local` deploys the containers
/// of every host onto the local Docker engine; a comma-separated list of `tcp://IP:2375`
/// engines, one per host, stands in for the hosts' engines (`tests/multihost`).
pub const DOCKER_OVERRIDE_ENV: &str = "MOMCTL_AWS_DOCKER_HOST";
/// Where momctl keeps each cluster's keys and certificates (default `~/.momctl`).
pub const HOME_ENV: &str = "MOMCTL_HOME";
/// Attempts per EC2 call, so that throttling (`RequestLimitExceeded`, `Throttling`) is retried
/// with the SDK's exponential backoff and jitter.
pub const MAX_ATTEMPTS: u32 = 10;

const USER_DATA: (&str, &str) = ("cloud-init.yaml", include_str!("../../templates/cloud-init.yaml.tera"));

/// Failures of the aws provider: one sentence each, saying what to do.
#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    #[error(
        "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) \
         in momctl's environment, then run `momctl up` again"
    )]
    NoCredentials,
    #[error(
        "AWS refused the credentials for region {region} ({code}: {message}): check the access key \
         and aws.region (an opt-in region must be enabled for the account), then run `momctl up` again"
    )]
    Rejected { region: String, code: String, message: String },
    #[error(
        "aws.region `{region}` is not a region EC2 answers for ({cause}); set aws.region to one \
         such as us-east-1 or eu-west-1 (`aws ec2 describe-regions` lists yours), then run `momctl up` again"
    )]
    WrongRegion { region: String, cause: String },
    #[error(
        "cannot reach EC2 at {endpoint} ({cause}): check aws.region (and aws.endpoint_url) and the \
         network, then run `momctl up` again"
    )]
    Unreachable { endpoint: String, cause: String },
    #[error(
        "EC2 refused to start more instances: the account's quota is reached ({code}: {message}); \
         lower aws.hosts or ask AWS for a higher quota (Service Quotas, \"Running On-Demand instances\"), \
         then run `momctl up` again"
    )]
    Quota { code: String, message: String },
    #[error(
        "EC2 has no capacity for {instance_type} in region {region} right now ({code}: {message}); \
         run `momctl up` again later or choose another aws.instance_type"
    )]
    Capacity { instance_type: String, region: String, code: String, message: String },
    #[error(
        "aws.ami `{ami}` is not an image EC2 has in region {region} ({code}); set aws.ami to an AMI id \
         of that region (or null for the newest Debian 12), then run `momctl up` again"
    )]
    BadAmi { ami: String, region: String, code: String },
    #[error(
        "aws.instance_type `{instance_type}` is not offered in region {region} ({code}: {message}); \
         set aws.instance_type to one it offers (e.g. t3.small), then run `momctl up` again"
    )]
    BadInstanceType { instance_type: String, region: String, code: String, message: String },
    #[error(
        "the account's Elastic IP quota is reached ({message}); release unused addresses or ask AWS \
         for more (Service Quotas, \"EC2-VPC Elastic IPs\"), then run `momctl up` again"
    )]
    AddressQuota { message: String },
    #[error(
        "EC2 kept throttling momctl's requests ({code}) after {MAX_ATTEMPTS} attempts with backoff; \
         wait a minute and run `momctl up` again"
    )]
    Throttled { code: String },
    #[error(
        "instance {instance} ({host}) did not reach `running` within {waited_s} s; look at its state \
         reason in the EC2 console, then run `momctl up` again (it waits for it, or replaces it once \
         it is terminated)"
    )]
    NeverRunning { instance: String, host: String, waited_s: u64 },
    #[error(
        "instance {instance} ({host}) went to `{state}` instead of `running`; look at its state \
         reason in the EC2 console, then run `momctl up` again (a terminated host is replaced)"
    )]
    FailedState { instance: String, host: String, state: String },
    #[error(
        "no Debian 12 AMI found in region {region}; set aws.ami to an AMI id of an image with \
         apt and systemd"
    )]
    NoAmi { region: String },
    #[error(
        "the Docker API of {host} ({addr}) did not answer within {waited_s} s ({cause}); check that \
         aws.admin_cidr contains this machine's address, then run `momctl up` again"
    )]
    DockerUnreachable { host: String, addr: String, waited_s: u64, cause: String },
    #[error("{host} has no address yet; run `momctl up` first")]
    NoHost { host: String },
    #[error("EC2 {what} failed ({code}: {message})")]
    Api { what: String, code: String, message: String },
    #[error("user data: {0}")]
    Template(String),
    #[error(transparent)]
    Pki(#[from] PkiError),
}

/// What a failed EC2 call is, from its error code (pure, so each sentence is tested).
pub fn classify(what: &str, code: &str, message: &str, settings: &AwsSettings) -> AwsError {
    let (code_s, message_s) = (code.to_string(), message.to_string());
    match code {
        "AuthFailure"
        | "UnauthorizedOperation"
        | "InvalidClientTokenId"
        | "SignatureDoesNotMatch"
        | "OptInRequired"
        | "UnrecognizedClientException"
        | "InvalidAccessKeyId" => {
            AwsError::Rejected { region: settings.region.clone(), code: code_s, message: message_s }
        }
        "InstanceLimitExceeded" | "VcpuLimitExceeded" | "MaxSpotInstanceCountExceeded" => {
            AwsError::Quota { code: code_s, message: message_s }
        }
        "InsufficientInstanceCapacity"
        | "InsufficientHostCapacity"
        | "InsufficientCapacity"
        | "Unsupported" => AwsError::Capacity {
            instance_type: settings.instance_type.clone(),
            region: settings.region.clone(),
            code: code_s,
            message: message_s,
        },
        c if c.starts_with("InvalidAMIID") => AwsError::BadAmi {
            ami: settings.ami.clone().unwrap_or_else(|| "(newest Debian 12)".to_string()),
            region: settings.region.clone(),
            code: code_s,
        },
        c if c.starts_with("InvalidInstanceType") => AwsError::BadInstanceType {
            instance_type: settings.instance_type.clone(),
            region: settings.region.clone(),
            code: code_s,
            message: message_s,
        },
        "AddressLimitExceeded" => AwsError::AddressQuota { message: message_s },
        "RequestLimitExceeded" | "Throttling" | "ThrottlingException" => AwsError::Throttled { code: code_s },
        _ => AwsError::Api { what: what.to_string(), code: code_s, message: message_s },
    }
}

/// The innermost cause of a failed call, without the SDK's debug dump.
fn short_cause(e: &dyn std::error::Error) -> String {
    let mut cause = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    cause
}

/// Regions momctl knows (2025); another name is first checked with one call, without retries.
pub const KNOWN_REGIONS: &[&str] = &[
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-south-1",
    "ap-south-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-7",
    "ca-central-1",
    "ca-west-1",
    "eu-central-1",
    "eu-central-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-south-1",
    "eu-south-2",
    "eu-north-1",
    "il-central-1",
    "me-south-1",
    "me-central-1",
    "mx-central-1",
    "sa-east-1",
    "us-gov-east-1",
    "us-gov-west-1",
    "cn-north-1",
    "cn-northwest-1",
];

/// The cluster's directory of keys and certificates: `$MOMCTL_HOME/<cluster>`, by default
/// `~/.momctl/<cluster>`.
pub fn cluster_dir(cluster: &str) -> PathBuf {
    let home = std::env::var_os(HOME_ENV)
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".momctl")))
        .unwrap_or_else(|| PathBuf::from(".momctl"));
    home.join(cluster)
}

/// What stands in for the hosts' Docker engines in tests ([`DOCKER_OVERRIDE_ENV`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DockerOverride {
    /// Every host's containers on the local engine.
    Local,
    /// One engine per host, by address.
    Engines(Vec<String>),
}

impl DockerOverride {
    /// How many engines the containers are spread over, given `hosts` EC2 hosts.
    pub fn hosts(&self, hosts: u32) -> u32 {
        match self {
            DockerOverride::Local => 1,
            DockerOverride::Engines(e) => (e.len() as u32).min(hosts),
        }
    }
}

/// The test-only stand-in for the hosts' engines, when set.
pub fn docker_override() -> Option<DockerOverride> {
    let value = std::env::var(DOCKER_OVERRIDE_ENV).ok()?;
    match value.trim() {
        "" => None,
        "local" => Some(DockerOverride::Local),
        list => Some(DockerOverride::Engines(list.split(',').map(|a| a.trim().to_string()).collect())),
    }
}

/// The address in an engine's `tcp://IP:PORT` (or `https://…`).
fn engine_ip(addr: &str) -> Option<Ipv4Addr> {
    let rest = addr.split_once("://").map_or(addr, |(_, rest)| rest);
    rest.rsplit_once(':').map_or(rest, |(ip, _)| ip).parse().ok()
}

/// Where clients reach the cluster's NGINX: host 1's Elastic IP; under the test-only override,
/// the first engine's address (None for the local engine: the endpoint as mom.yaml binds it).
pub fn endpoint_ip(observed: &Ec2Observed) -> Option<Ipv4Addr> {
    match docker_override() {
        Some(DockerOverride::Local) => None,
        Some(DockerOverride::Engines(addrs)) => addrs.first().and_then(|a| engine_ip(a)),
        None => observed.public_ip(1),
    }
}

/// How many Docker engines a cluster of `settings` is spread over: one per EC2 host (fewer
/// under the test-only override), one for provider `local`.
pub fn docker_hosts(settings: &crate::config::Settings) -> u32 {
    let Some(aws) = &settings.aws else {
        return 1;
    };
    match docker_override() {
        Some(o) => o.hosts(aws.hosts),
        None => aws.hosts,
    }
}

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

    fn tag_spec(&self, kind: ResourceType, name: &str, host: Option<u32>) -> TagSpecification {
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

/// An EC2 client for one cluster's region (and endpoint).
pub struct Ec2 {
    client: Client,
    settings: AwsSettings,
    endpoint: String,
}

fn tag_value(tags: &[Tag], key: &str) -> Option<String> {
    tags.iter().find(|t| t.key() == Some(key)).and_then(|t| t.value()).map(str::to_string)
}

impl Ec2 {
    /// Loads the standard AWS configuration (environment, profile, instance role) for the region,
    /// and checks that it has credentials before any call is made.
    pub async fn connect(settings: &AwsSettings) -> Result<Ec2, AwsError> {
        let retry = aws_config::retry::RetryConfig::standard()
            .with_max_attempts(MAX_ATTEMPTS)
            .with_initial_backoff(Duration::from_millis(500))
            .with_max_backoff(Duration::from_secs(20));
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(settings.region.clone()))
            .retry_config(retry);
        if let Some(url) = &settings.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        let config = loader.load().await;
        let Some(credentials) = config.credentials_provider() else {
            return Err(AwsError::NoCredentials);
        };
        credentials.provide_credentials().await.map_err(|_| AwsError::NoCredentials)?;
        if !KNOWN_REGIONS.contains(&settings.region.as_str()) {
            // A name momctl does not know: one call without retries says whether EC2 answers.
            let probe = aws_sdk_ec2::config::Builder::from(&config)
                .retry_config(aws_config::retry::RetryConfig::disabled())
                .build();
            if let Err(e) = Client::from_conf(probe).describe_availability_zones().send().await {
                let cause = match e.raw_response() {
                    Some(r) => format!("HTTP {}", r.status().as_u16()),
                    None => short_cause(&e),
                };
                return Err(AwsError::WrongRegion { region: settings.region.clone(), cause });
            }
        }
        let endpoint = settings
            .endpoint_url
            .clone()
            .or_else(|| std::env::var("AWS_ENDPOINT_URL_EC2").ok())
            .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
            .unwrap_or_else(|| format!("https://ec2.{}.amazonaws.com", settings.region));
        Ok(Ec2 { client: Client::new(&config), settings: settings.clone(), endpoint })
    }

    /// An `Ec2` over a client built elsewhere (tests give one with static credentials, so they
    /// need not change the process's environment).
    pub fn with_client(client: Client, settings: &AwsSettings, endpoint: &str) -> Ec2 {
        Ec2 { client, settings: settings.clone(), endpoint: endpoint.to_string() }
    }

    /// The SDK's client, for callers that need more than momctl's calls (tests).
    pub fn client(&self) -> &Client {
        &self.client
    }

    fn fail<E>(&self, what: &str, e: SdkError<E, HttpResponse>) -> AwsError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        match &e {
            SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
                AwsError::Unreachable { endpoint: self.endpoint.clone(), cause: short_cause(&e) }
            }
            _ => match e.code() {
                Some(code) => classify(what, code, e.message().unwrap_or(""), &self.settings),
                None => AwsError::Api {
                    what: what.to_string(),
                    code: e
                        .raw_response()
                        .map(|r| format!("HTTP {}", r.status().as_u16()))
                        .unwrap_or_else(|| "no code".to_string()),
                    message: format!("from {}", self.endpoint),
                },
            },
        }
    }

    fn cluster_filter(cluster: &str) -> Filter {
        Filter::builder().name(format!("tag:{CLUSTER_TAG}")).values(cluster).build()
    }

    /// Everything EC2 has with the cluster's tag.
    pub async fn observe(&self, cluster: &str) -> Result<Ec2Observed, AwsError> {
        let mut observed = Ec2Observed::default();

        let groups = self
            .client
            .describe_security_groups()
            .filters(Self::cluster_filter(cluster))
            .send()
            .await
            .map_err(|e| self.fail("DescribeSecurityGroups", e))?;
        observed.security_group = groups.security_groups().iter().find_map(|g| {
            Some(ObservedGroup {
                id: g.group_id()?.to_string(),
                name: g.group_name().unwrap_or_default().to_string(),
                rules: rule_keys(g.ip_permissions()),
                permissions: g.ip_permissions().to_vec(),
            })
        });

        let keys = self
            .client
            .describe_key_pairs()
            .filters(Self::cluster_filter(cluster))
            .send()
            .await
            .map_err(|e| self.fail("DescribeKeyPairs", e))?;
        observed.key_pair = keys.key_pairs().iter().find_map(|k| {
            Some(ObservedKey {
                id: k.key_pair_id().unwrap_or_default().to_string(),
                name: k.key_name()?.to_string(),
            })
        });

        let addresses = self
            .client
            .describe_addresses()
            .filters(Self::cluster_filter(cluster))
            .send()
            .await
            .map_err(|e| self.fail("DescribeAddresses", e))?;
        observed.addresses = addresses
            .addresses()
            .iter()
            .filter_map(|a| {
                Some(ObservedAddress {
                    allocation_id: a.allocation_id()?.to_string(),
                    public_ip: a.public_ip().and_then(|ip| ip.parse().ok()),
                    host: tag_value(a.tags(), HOST_TAG).and_then(|h| h.parse().ok()),
                    instance_id: a.instance_id().map(str::to_string),
                })
            })
            .collect();

        let mut next: Option<String> = None;
        loop {
            let page = self
                .client
                .describe_instances()
                .filters(Self::cluster_filter(cluster))
                .filters(
                    Filter::builder()
                        .name("instance-state-name")
                        .values("pending")
                        .values("running")
                        .values("stopping")
                        .values("stopped")
                        .build(),
                )
                .set_next_token(next.take())
                .send()
                .await
                .map_err(|e| self.fail("DescribeInstances", e))?;
            for instance in page.reservations().iter().flat_map(|r| r.instances()) {
                let Some(id) = instance.instance_id() else {
                    continue;
                };
                observed.instances.push(ObservedInstance {
                    id: id.to_string(),
                    host: tag_value(instance.tags(), HOST_TAG).and_then(|h| h.parse().ok()),
                    name: tag_value(instance.tags(), "Name"),
                    state: instance
                        .state()
                        .and_then(|s| s.name())
                        .map(|n| n.as_str().to_string())
                        .unwrap_or_else(|| "unknown".to_string()),
                    public_ip: instance.public_ip_address().and_then(|ip| ip.parse().ok()),
                    private_ip: instance.private_ip_address().and_then(|ip| ip.parse().ok()),
                });
            }
            match page.next_token() {
                Some(token) if !token.is_empty() => next = Some(token.to_string()),
                _ => break,
            }
        }
        observed.instances.sort_by(|a, b| (a.host, &a.id).cmp(&(b.host, &b.id)));
        Ok(observed)
    }

    async fn debian_ami(&self) -> Result<String, AwsError> {
        let images = self
            .client
            .describe_images()
            .owners(DEBIAN_OWNER)
            .filters(Filter::builder().name("name").values(DEBIAN_NAME).build())
            .filters(Filter::builder().name("state").values("available").build())
            .send()
            .await
            .map_err(|e| self.fail("DescribeImages", e))?;
        images
            .images()
            .iter()
            .filter_map(|i| Some((i.creation_date()?.to_string(), i.image_id()?.to_string())))
            .max()
            .map(|(_, id)| id)
            .ok_or_else(|| AwsError::NoAmi { region: self.settings.region.clone() })
    }

    /// Waits with the SDK's waiter (`InstanceRunning`, bounded by `aws.running_timeout_s`) until
    /// every instance in `ids` (id, host name) is `running`.
    pub async fn wait_running(&self, ids: &[(String, String)]) -> Result<(), AwsError> {
        if ids.is_empty() {
            return Ok(());
        }
        let max = Duration::from_secs(self.settings.running_timeout_s);
        let result = self
            .client
            .wait_until_instance_running()
            .set_instance_ids(Some(ids.iter().map(|(id, _)| id.clone()).collect()))
            .wait(max)
            .await;
        let first = &ids[0];
        match result {
            Ok(_) => Ok(()),
            Err(aws_sdk_ec2::waiters::instance_running::WaitUntilInstanceRunningError::ExceededMaxWait(
                _,
            )) => Err(not_running_in_time(first, max)),
            Err(aws_sdk_ec2::waiters::instance_running::WaitUntilInstanceRunningError::FailureState(
                state,
            )) => {
                // Name the first instance that is not running.
                let (instance, state) = state
                    .final_poll()
                    .as_result()
                    .ok()
                    .into_iter()
                    .flat_map(|out| out.reservations())
                    .flat_map(|r| r.instances())
                    .find_map(|i| {
                        let name = i.state().and_then(|s| s.name())?;
                        (*name != InstanceStateName::Running).then(|| {
                            (i.instance_id().unwrap_or_default().to_string(), name.as_str().to_string())
                        })
                    })
                    .unwrap_or_else(|| (first.0.clone(), "a failed state".to_string()));
                let host = ids
                    .iter()
                    .find(|(id, _)| *id == instance)
                    .map(|(_, h)| h.clone())
                    .unwrap_or_else(|| first.1.clone());
                Err(AwsError::FailedState { instance, host, state })
            }
            Err(aws_sdk_ec2::waiters::instance_running::WaitUntilInstanceRunningError::OperationFailed(
                failed,
            )) => Err(self.fail("DescribeInstances (waiting for running)", failed.into_error())),
            Err(other) => Err(AwsError::Api {
                what: "waiting for running".to_string(),
                code: "waiter".to_string(),
                message: DisplayErrorContext(&other).to_string(),
            }),
        }
    }

    async fn wait_terminated(&self, ids: Vec<String>) -> Result<(), AwsError> {
        if ids.is_empty() {
            return Ok(());
        }
        let max = Duration::from_secs(self.settings.running_timeout_s);
        self.client
            .wait_until_instance_terminated()
            .set_instance_ids(Some(ids.clone()))
            .wait(max)
            .await
            .map_err(|e| AwsError::Api {
                what: format!("waiting for {} to terminate", ids.join(", ")),
                code: "waiter".to_string(),
                message: DisplayErrorContext(&e).to_string(),
            })?;
        Ok(())
    }
}

/// The waiter ran out of time: the sentence of [`AwsError::NeverRunning`].
pub fn not_running_in_time(instance: &(String, String), max: Duration) -> AwsError {
    AwsError::NeverRunning { instance: instance.0.clone(), host: instance.1.clone(), waited_s: max.as_secs() }
}

/// The user data of one host: valid cloud-config that installs Docker and serves its API with
/// mutual TLS. It gets the CA certificate and the host's server certificate and key, and nothing
/// else (no secret of the cluster can reach it: none is passed in).
pub fn user_data(
    desired: &AwsDesired,
    host: &HostSpec,
    ca_cert_pem: &str,
    server: &ServerCert,
) -> Result<String, AwsError> {
    let daemon = serde_json::json!({
        "hosts": ["unix:///var/run/docker.sock", format!("tcp://0.0.0.0:{DOCKER_TLS_PORT}")],
        "tls": true,
        "tlsverify": true,
        "tlscacert": "/etc/docker/tls/ca.pem",
        "tlscert": "/etc/docker/tls/server-cert.pem",
        "tlskey": "/etc/docker/tls/server-key.pem",
    });
    let daemon_json = serde_json::to_string_pretty(&daemon).map_err(|e| AwsError::Template(e.to_string()))?;
    let mut tera = Tera::default();
    tera.add_raw_templates([USER_DATA]).map_err(|e| AwsError::Template(e.to_string()))?;
    let mut context = Context::new();
    context.insert("cluster", &desired.cluster);
    context.insert("host", &host.index);
    context.insert("name", &host.name);
    context.insert("docker_port", &DOCKER_TLS_PORT);
    context.insert("ca_cert", ca_cert_pem);
    context.insert("server_cert", &server.cert_pem);
    context.insert("server_key", &server.key_pem);
    context.insert("daemon_json", &format!("{daemon_json}\n"));
    tera.render(USER_DATA.0, &context).map_err(|e| {
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        AwsError::Template(message)
    })
}

async fn timed<T, F>(report: &dyn Reporter, what: String, long: bool, f: F) -> Result<T, AwsError>
where
    F: std::future::Future<Output = Result<T, AwsError>>,
{
    report.started(&what, long);
    let started = Instant::now();
    let value = f.await?;
    report.finished(&what, started.elapsed());
    Ok(value)
}

/// Executes the EC2 changes of a plan (from [`crate::plan::ec2_diff`] of `desired` and
/// `observed`), in order: group, key pair, addresses, instances (then waits until running and
/// associates each host's address), removals.
pub async fn apply(
    ec2: &Ec2,
    desired: &AwsDesired,
    observed: &Ec2Observed,
    changes: &[Change],
    report: &dyn Reporter,
) -> Result<(), AwsError> {
    let client = &ec2.client;
    let dir = cluster_dir(&desired.cluster);
    let of =
        |kind: Kind, action: Action| changes.iter().filter(move |c| c.kind == kind && c.action == action);
    let host_of =
        |c: &Change| -> Option<u32> { desired.hosts.iter().find(|h| h.name == c.name).map(|h| h.index) };

    let mut group_id = observed.security_group.as_ref().map(|g| g.id.clone());
    for change in of(Kind::SecurityGroup, Action::Create) {
        let id = timed(report, format!("create security group {}", change.name), false, async {
            let out = client
                .create_security_group()
                .group_name(&desired.group_name)
                .description(format!("mom cluster {} (momctl)", desired.cluster))
                .tag_specifications(desired.tag_spec(ResourceType::SecurityGroup, &desired.group_name, None))
                .send()
                .await
                .map_err(|e| ec2.fail("CreateSecurityGroup", e))?;
            let id = out.group_id().unwrap_or_default().to_string();
            client
                .authorize_security_group_ingress()
                .group_id(&id)
                .set_ip_permissions(Some(desired.ingress(&id)))
                .send()
                .await
                .map_err(|e| ec2.fail("AuthorizeSecurityGroupIngress", e))?;
            Ok(id)
        })
        .await?;
        group_id = Some(id);
    }

    for change in of(Kind::SecurityGroup, Action::Update) {
        let Some(group) = &observed.security_group else {
            continue;
        };
        timed(report, format!("update security group {} rules", change.name), false, async {
            if !group.permissions.is_empty() {
                client
                    .revoke_security_group_ingress()
                    .group_id(&group.id)
                    .set_ip_permissions(Some(group.permissions.clone()))
                    .send()
                    .await
                    .map_err(|e| ec2.fail("RevokeSecurityGroupIngress", e))?;
            }
            client
                .authorize_security_group_ingress()
                .group_id(&group.id)
                .set_ip_permissions(Some(desired.ingress(&group.id)))
                .send()
                .await
                .map_err(|e| ec2.fail("AuthorizeSecurityGroupIngress", e))?;
            Ok(())
        })
        .await?;
    }

    for change in of(Kind::KeyPair, Action::Create) {
        timed(report, format!("create key pair {}", change.name), false, async {
            let out = client
                .create_key_pair()
                .key_name(&desired.key_name)
                .tag_specifications(desired.tag_spec(ResourceType::KeyPair, &desired.key_name, None))
                .send()
                .await
                .map_err(|e| ec2.fail("CreateKeyPair", e))?;
            std::fs::create_dir_all(&dir).map_err(|source| PkiError::Io {
                what: "create",
                path: dir.clone(),
                source,
            })?;
            // The private key is written once, owner-only, and never printed.
            crate::pki::write_file(&dir.join(SSH_KEY_FILE), out.key_material().unwrap_or_default(), true)?;
            Ok(())
        })
        .await?;
    }

    let mut addresses: BTreeMap<u32, (String, Option<Ipv4Addr>)> = observed
        .addresses
        .iter()
        .filter_map(|a| Some((a.host?, (a.allocation_id.clone(), a.public_ip))))
        .collect();
    for change in of(Kind::Address, Action::Create) {
        let Some(index) = host_of(change) else {
            continue;
        };
        let (id, ip) = timed(report, format!("allocate Elastic IP for {}", change.name), false, async {
            let out = client
                .allocate_address()
                .domain(DomainType::Vpc)
                .tag_specifications(desired.tag_spec(ResourceType::ElasticIp, &change.name, Some(index)))
                .send()
                .await
                .map_err(|e| ec2.fail("AllocateAddress", e))?;
            Ok((
                out.allocation_id().unwrap_or_default().to_string(),
                out.public_ip().and_then(|ip| ip.parse().ok()),
            ))
        })
        .await?;
        addresses.insert(index, (id, ip));
    }

    let creates: Vec<&Change> = of(Kind::Instance, Action::Create).collect();
    let mut instances: BTreeMap<u32, String> = desired
        .hosts
        .iter()
        .filter_map(|h| Some((h.index, observed.instance(h.index)?.id.clone())))
        .collect();
    let mut to_wait: Vec<(String, String)> = Vec::new();
    if !creates.is_empty() {
        let pki = Pki::ensure(&dir, &desired.cluster)?;
        let ami = match &desired.settings.ami {
            Some(ami) => ami.clone(),
            None => ec2.debian_ami().await?,
        };
        let Some(group_id) = group_id.clone() else {
            return Err(AwsError::NoHost { host: "the security group".to_string() });
        };
        for change in creates {
            let Some(host) = desired.hosts.iter().find(|h| h.name == change.name) else {
                continue;
            };
            let ip = addresses.get(&host.index).and_then(|(_, ip)| *ip).unwrap_or(Ipv4Addr::UNSPECIFIED);
            let server = pki.server_cert(&host.name, ip)?;
            let data = user_data(desired, host, &pki.ca_cert_pem, &server)?;
            let id = timed(
                report,
                format!("run instance {} ({}, {ami})", host.name, desired.settings.instance_type),
                false,
                async {
                    let token = format!(
                        "{}-{}-{}",
                        host.name,
                        std::process::id(),
                        std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map(|d| d.as_millis())
                            .unwrap_or(0)
                    );
                    let out = client
                        .run_instances()
                        .image_id(&ami)
                        .instance_type(InstanceType::from(desired.settings.instance_type.as_str()))
                        .min_count(1)
                        .max_count(1)
                        .key_name(&desired.key_name)
                        .security_group_ids(&group_id)
                        .user_data(base64::engine::general_purpose::STANDARD.encode(data.as_bytes()))
                        .client_token(token)
                        .tag_specifications(desired.tag_spec(
                            ResourceType::Instance,
                            &host.name,
                            Some(host.index),
                        ))
                        .tag_specifications(desired.tag_spec(
                            ResourceType::Volume,
                            &host.name,
                            Some(host.index),
                        ))
                        .send()
                        .await
                        .map_err(|e| ec2.fail("RunInstances", e))?;
                    out.instances().first().and_then(|i| i.instance_id()).map(str::to_string).ok_or_else(
                        || AwsError::Api {
                            what: "RunInstances".to_string(),
                            code: "no instance".to_string(),
                            message: "the answer named no instance".to_string(),
                        },
                    )
                },
            )
            .await?;
            instances.insert(host.index, id.clone());
            to_wait.push((id, host.name.clone()));
        }
    }
    for change in of(Kind::Instance, Action::Start) {
        let Some(index) = host_of(change) else {
            continue;
        };
        let Some(id) = instances.get(&index).cloned() else {
            continue;
        };
        timed(report, format!("start instance {} ({id})", change.name), false, async {
            client
                .start_instances()
                .instance_ids(&id)
                .send()
                .await
                .map_err(|e| ec2.fail("StartInstances", e))?;
            Ok(())
        })
        .await?;
        to_wait.push((id, change.name.clone()));
    }
    // Instances that are still pending count too: wait for them as well.
    for h in &desired.hosts {
        if let Some(i) = observed.instance(h.index) {
            if i.state == "pending" {
                to_wait.push((i.id.clone(), h.name.clone()));
            }
        }
    }
    let names: Vec<&str> = to_wait.iter().map(|(_, n)| n.as_str()).collect();
    if !to_wait.is_empty() {
        timed(
            report,
            format!(
                "wait until running: {} (at most {} s)",
                names.join(", "),
                desired.settings.running_timeout_s
            ),
            true,
            ec2.wait_running(&to_wait),
        )
        .await?;
    }

    // Each host's address on its instance.
    for host in &desired.hosts {
        let (Some((allocation, _)), Some(instance)) =
            (addresses.get(&host.index), instances.get(&host.index))
        else {
            continue;
        };
        let current = observed
            .addresses
            .iter()
            .find(|a| &a.allocation_id == allocation)
            .and_then(|a| a.instance_id.as_ref());
        if current == Some(instance) {
            continue;
        }
        timed(report, format!("associate Elastic IP with {}", host.name), false, async {
            client
                .associate_address()
                .allocation_id(allocation)
                .instance_id(instance)
                // It may still point at the instance this one replaces.
                .allow_reassociation(true)
                .send()
                .await
                .map_err(|e| ec2.fail("AssociateAddress", e))?;
            Ok(())
        })
        .await?;
    }

    // Removals are named by their EC2 id (see `plan::ec2_diff`).
    let ids: Vec<String> = of(Kind::Instance, Action::Remove).map(|c| c.name.clone()).collect();
    if !ids.is_empty() {
        terminate(ec2, ids, report).await?;
    }
    for change in of(Kind::Address, Action::Remove) {
        let allocation = change.name.clone();
        timed(report, format!("release Elastic IP {allocation}"), false, async {
            client
                .release_address()
                .allocation_id(&allocation)
                .send()
                .await
                .map_err(|e| ec2.fail("ReleaseAddress", e))?;
            Ok(())
        })
        .await?;
    }
    Ok(())
}

/// Terminates `ids` and waits until EC2 reports them terminated (each a reported step).
async fn terminate(ec2: &Ec2, ids: Vec<String>, report: &dyn Reporter) -> Result<(), AwsError> {
    timed(report, format!("terminate instance(s) {}", ids.join(", ")), false, async {
        ec2.client
            .terminate_instances()
            .set_instance_ids(Some(ids.clone()))
            .send()
            .await
            .map_err(|e| ec2.fail("TerminateInstances", e))?;
        Ok(())
    })
    .await?;
    timed(report, "wait until terminated".to_string(), true, ec2.wait_terminated(ids)).await
}

/// Removes every EC2 resource tagged with the cluster (nothing else), then the cluster's local
/// directory of keys and certificates.
pub async fn teardown(
    ec2: &Ec2,
    cluster: &str,
    observed: &Ec2Observed,
    report: &dyn Reporter,
) -> Result<(), AwsError> {
    let client = &ec2.client;
    let ids: Vec<String> = observed.instances.iter().map(|i| i.id.clone()).collect();
    if !ids.is_empty() {
        terminate(ec2, ids, report).await?;
    }
    for address in &observed.addresses {
        timed(report, format!("release Elastic IP {}", address.allocation_id), false, async {
            client
                .release_address()
                .allocation_id(&address.allocation_id)
                .send()
                .await
                .map_err(|e| ec2.fail("ReleaseAddress", e))?;
            Ok(())
        })
        .await?;
    }
    if let Some(group) = &observed.security_group {
        timed(report, format!("delete security group {} ({})", group.name, group.id), false, async {
            client
                .delete_security_group()
                .group_id(&group.id)
                .send()
                .await
                .map_err(|e| ec2.fail("DeleteSecurityGroup", e))?;
            Ok(())
        })
        .await?;
    }
    if let Some(key) = &observed.key_pair {
        timed(report, format!("delete key pair {}", key.name), false, async {
            // By name (unique per region; moto ignores KeyPairId): the one the tag found.
            client
                .delete_key_pair()
                .key_name(&key.name)
                .send()
                .await
                .map_err(|e| ec2.fail("DeleteKeyPair", e))?;
            Ok(())
        })
        .await?;
    }
    let dir = cluster_dir(cluster);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|source| PkiError::Io {
            what: "remove",
            path: dir.clone(),
            source,
        })?;
    }
    Ok(())
}

/// The hosts' Docker engines, host 1 first: `https://<host's address>:2376` with the cluster's
/// client certificate, each waited for until it answers (cloud-init installs Docker first), the
/// private address advertised to the Swarm; images come from the local engine. Under the
/// test-only [`DOCKER_OVERRIDE_ENV`], the local engine or the listed ones. `wait`: whether to
/// keep asking for up to `aws.running_timeout_s` (`up`) or to ask once (`plan`, `status`).
pub async fn host_engines(
    desired: &AwsDesired,
    observed: &Ec2Observed,
    wait: bool,
) -> Result<Hosts, crate::Error> {
    use crate::docker::Engine;
    match docker_override() {
        Some(DockerOverride::Local) => return Ok(Hosts::one(Engine::connect().await?)),
        Some(DockerOverride::Engines(addrs)) => {
            let mut hosts = Vec::new();
            for addr in addrs.iter().take(desired.hosts.len().max(1)) {
                let engine = Engine::connect_http(addr).await?;
                // The simulated host is reached at the address the test gave.
                let advertise = engine_ip(addr).map(|ip| ip.to_string());
                hosts.push(Host { engine, advertise });
            }
            return Ok(Hosts::remote(hosts, Engine::connect().await?));
        }
        None => {}
    }
    let dir = cluster_dir(&desired.cluster);
    let max = Duration::from_secs(if wait { desired.settings.running_timeout_s } else { 0 });
    let mut hosts = Vec::new();
    for host in &desired.hosts {
        let ip =
            observed.public_ip(host.index).ok_or_else(|| AwsError::NoHost { host: host.name.clone() })?;
        let addr = format!("https://{ip}:{DOCKER_TLS_PORT}");
        let started = Instant::now();
        let engine = loop {
            match Engine::connect_tls(&addr, &dir).await {
                Ok(engine) => break engine,
                Err(e) if started.elapsed() >= max => {
                    return Err(AwsError::DockerUnreachable {
                        host: host.name.clone(),
                        addr,
                        waited_s: max.as_secs(),
                        cause: e.to_string(),
                    }
                    .into())
                }
                // cloud-init is still installing Docker: ask again shortly.
                Err(_) => tokio::time::sleep(Duration::from_secs(5)).await,
            }
        };
        let advertise = observed.instance(host.index).and_then(|i| i.private_ip).map(|ip| ip.to_string());
        hosts.push(Host { engine, advertise });
    }
    Ok(Hosts::remote(hosts, Engine::connect().await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> AwsSettings {
        AwsSettings {
            region: "eu-west-3".into(),
            instance_type: "t3.small".into(),
            hosts: 3,
            ami: None,
            admin_cidr: "203.0.113.0/24".parse().expect("cidr"),
            endpoint_url: None,
            running_timeout_s: 600,
        }
    }

    #[test]
    fn quota_capacity_and_rejection_are_one_sentence_with_what_to_do() {
        let s = settings();
        let quota = classify(
            "RunInstances",
            "InstanceLimitExceeded",
            "Your quota allows for 0 more running instance(s).",
            &s,
        )
        .to_string();
        assert!(
            quota.contains("quota") && quota.contains("aws.hosts") && quota.contains("momctl up"),
            "{quota}"
        );
        let vcpu = classify("RunInstances", "VcpuLimitExceeded", "vCPU limit", &s);
        assert!(matches!(vcpu, AwsError::Quota { .. }));
        let capacity =
            classify("RunInstances", "InsufficientInstanceCapacity", "no t3.small capacity", &s).to_string();
        assert!(
            capacity.contains("t3.small")
                && capacity.contains("eu-west-3")
                && capacity.contains("aws.instance_type"),
            "{capacity}"
        );
        let auth = classify(
            "DescribeInstances",
            "AuthFailure",
            "AWS was not able to validate the provided access credentials",
            &s,
        )
        .to_string();
        assert!(auth.contains("credentials") && auth.contains("aws.region"), "{auth}");
        let throttled =
            classify("DescribeInstances", "RequestLimitExceeded", "Request limit exceeded.", &s).to_string();
        assert!(throttled.contains("attempts with backoff"), "{throttled}");
        for e in [quota, capacity, auth, throttled] {
            assert_eq!(e.matches(". ").count(), 0, "one sentence: {e}");
        }
    }

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
        use crate::plan::ec2_diff;
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

    #[test]
    fn the_waiter_running_out_of_time_names_the_instance_and_what_to_do() {
        // moto makes every instance `running` at once, so a timeout cannot be provoked against it;
        // this is the mapping of the waiter's ExceededMaxWait (see `Ec2::wait_running`).
        let e = not_running_in_time(&("i-0abc".into(), "mom-demo-host-2".into()), Duration::from_secs(30))
            .to_string();
        assert!(
            e.contains("i-0abc")
                && e.contains("mom-demo-host-2")
                && e.contains("30 s")
                && e.contains("momctl up"),
            "{e}"
        );
    }
}
