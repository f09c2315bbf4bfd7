//! `mom.yaml`: its typed shape, parsing (serde-saphyr) and validation.
//!
//! Parsing produces [`Config`], which keeps the position of every value that validation can
//! reject; [`Config::settings`] checks it and yields [`Settings`], the plain, defaulted values the
//! rest of momctl works from. Every problem becomes one [`ConfigError`] naming the field, its line
//! and what is allowed, and it is raised before anything is touched.

use std::fmt;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use serde::Deserialize;
use serde_saphyr::Spanned;

pub use init::default_file;

mod check;
mod init;

/// The file momctl reads when `--file` is not given.
pub const DEFAULT_FILE: &str = "mom.yaml";

/// Most broker nodes one cluster may have (each gets a fixed address in the cluster's subnet).
pub const MAX_BROKERS: u32 = 64;

/// A value of `mom.yaml` and the line it came from (absent fields get their default).
type Sp<T> = Option<Spanned<T>>;

/// `mom.yaml` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub cluster: Spanned<String>,
    #[serde(default)]
    pub provider: Sp<Provider>,
    #[serde(default)]
    pub aws: Option<AwsConfig>,
    #[serde(default)]
    pub network: NetworkConfig,
    #[serde(default)]
    pub broker: BrokerConfig,
    #[serde(default)]
    pub redis: RedisConfig,
    #[serde(default)]
    pub zookeeper: ZookeeperConfig,
    #[serde(default)]
    pub nginx: NginxConfig,
    #[serde(default)]
    pub secrets: SecretsConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Local,
    Aws,
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Provider::Local => "local",
            Provider::Aws => "aws",
        })
    }
}

/// `aws:`, read by `provider: aws` (see `aws/`). Credentials never come from here: they come
/// from the standard AWS chain (environment, profile, instance role).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsConfig {
    #[serde(default)]
    pub region: Sp<String>,
    #[serde(default)]
    pub instance_type: Sp<String>,
    #[serde(default)]
    pub hosts: Sp<u32>,
    /// `null`: the newest Debian 12 AMI of the region.
    #[serde(default)]
    pub ami: Sp<Option<String>>,
    #[serde(default)]
    pub admin_cidr: Sp<String>,
    /// Another EC2 endpoint (moto_server in tests); default: AWS's, or `AWS_ENDPOINT_URL`.
    #[serde(default)]
    pub endpoint_url: Sp<String>,
    /// How long `up` waits for a new instance to reach `running` (default 600).
    #[serde(default)]
    pub running_timeout_s: Sp<u64>,
}

/// `aws:` checked, with defaults (only when `provider: aws`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsSettings {
    pub region: String,
    pub instance_type: String,
    pub hosts: u32,
    pub ami: Option<String>,
    pub admin_cidr: Ipv4Net,
    pub endpoint_url: Option<String>,
    pub running_timeout_s: u64,
}

/// Most Redis replicas `mode: replicated` may have.
pub const MAX_REDIS_REPLICAS: u32 = 5;

/// Most EC2 instances one cluster may have.
pub const MAX_AWS_HOSTS: u32 = 20;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    #[serde(default)]
    pub subnet: Sp<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerConfig {
    #[serde(default)]
    pub image: Sp<String>,
    #[serde(default)]
    pub nodes: Sp<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RedisMode {
    Single,
    Replicated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AppendFsync {
    Always,
    Everysec,
    No,
}

impl AppendFsync {
    pub fn as_str(self) -> &'static str {
        match self {
            AppendFsync::Always => "always",
            AppendFsync::Everysec => "everysec",
            AppendFsync::No => "no",
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    #[serde(default)]
    pub image: Sp<String>,
    #[serde(default)]
    pub mode: Sp<RedisMode>,
    #[serde(default)]
    pub appendfsync: Option<AppendFsync>,
    /// Replicas of the primary (`mode: replicated` only).
    #[serde(default)]
    pub replicas: Sp<u32>,
    /// Replicas that must confirm a send before it is acknowledged (`mode: replicated` only).
    #[serde(default)]
    pub min_replicas_ack: Sp<u32>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZookeeperConfig {
    #[serde(default)]
    pub image: Sp<String>,
    #[serde(default)]
    pub nodes: Sp<u32>,
}

/// `nginx.tls`: certificate files, or `self_signed`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum TlsConfig {
    Keyword(String),
    Files { cert: String, key: String },
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NginxConfig {
    #[serde(default)]
    pub image: Sp<String>,
    #[serde(default)]
    pub http_port: Sp<u16>,
    /// Host address NGINX's port is published on (local provider).
    #[serde(default)]
    pub bind: Sp<String>,
    #[serde(default)]
    pub tls: Sp<TlsConfig>,
    /// Port HTTPS is served on when `tls` is set (then `http_port` only redirects to it).
    #[serde(default)]
    pub https_port: Sp<u16>,
    /// Port of the gRPC API; absent means the default, `null` turns gRPC off.
    #[serde(default, deserialize_with = "present")]
    pub grpc_port: Sp<Option<u16>>,
}

/// Tells a key that is absent (`None`) from one set to `null` (`Some(null)`).
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsConfig {
    #[serde(default)]
    pub admin_password_env: Sp<String>,
}

/// TLS on NGINX, as checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tls {
    /// momctl's CA (the cluster's directory) signs a certificate for the cluster's addresses.
    SelfSigned,
    /// The user's PEM files (paths resolved against mom.yaml's directory).
    Files { cert: PathBuf, key: PathBuf },
}

/// The checked configuration with every default filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub cluster: String,
    pub provider: Provider,
    pub subnet: Ipv4Net,
    pub broker_image: String,
    pub broker_nodes: u32,
    pub redis_image: String,
    pub redis_appendfsync: AppendFsync,
    pub redis_mode: RedisMode,
    /// Replicas beside the primary: 0 with `mode: single`.
    pub redis_replicas: u32,
    /// The brokers' `MOM_REDIS_MIN_REPLICAS_ACK`: 0 with `mode: single`.
    pub redis_min_replicas_ack: u32,
    pub zookeeper_image: String,
    /// 1, or 3 for an ensemble.
    pub zookeeper_nodes: u32,
    pub nginx_image: String,
    pub nginx_http_port: u16,
    pub nginx_bind: Ipv4Addr,
    /// Port NGINX serves the brokers' gRPC API on; `None` when gRPC is off.
    pub nginx_grpc_port: Option<u16>,
    /// TLS on NGINX (`nginx.tls`); `None`: plain HTTP.
    pub nginx_tls: Option<Tls>,
    /// Port of HTTPS when TLS is on (`nginx.https_port`, default 8443).
    pub nginx_https_port: Option<u16>,
    pub admin_password_env: String,
    /// `Some` exactly when `provider: aws`.
    pub aws: Option<AwsSettings>,
}

pub mod defaults {
    pub const PROVIDER: &str = "local";
    pub const BROKER_IMAGE: &str = "mom-broker:0.1.0";
    pub const BROKER_NODES: u32 = 3;
    pub const REDIS_IMAGE: &str = "mom-redis:7";
    pub const REDIS_REPLICAS: u32 = 2;
    /// With replicas, a send waits for one of them: a failover then loses no acknowledged send.
    pub const REDIS_MIN_REPLICAS_ACK: u32 = 1;
    pub const ZOOKEEPER_IMAGE: &str = "mom-zookeeper:3.8";
    pub const NGINX_IMAGE: &str = "mom-nginx:1.22";
    pub const NGINX_HTTP_PORT: u16 = 8080;
    pub const NGINX_GRPC_PORT: u16 = 9090;
    pub const NGINX_HTTPS_PORT: u16 = 8443;
    pub const NGINX_BIND: &str = "127.0.0.1";
    pub const ADMIN_PASSWORD_ENV: &str = "MOM_ADMIN_PASSWORD";
    pub const AWS_REGION: &str = "us-east-1";
    pub const AWS_INSTANCE_TYPE: &str = "t3.small";
    pub const AWS_HOSTS: u32 = 1;
    pub const AWS_RUNNING_TIMEOUT_S: u64 = 600;
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {file}: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    /// The one error a bad `mom.yaml` gets.
    #[error("{file}:{line}:{column}: {field}: {problem}; allowed: {allowed}")]
    Invalid { file: String, field: String, line: u64, column: u64, problem: String, allowed: String },
}

impl ConfigError {
    /// The field the error is about (`broker.nodes`), when it names one.
    pub fn field(&self) -> Option<&str> {
        match self {
            ConfigError::Read { .. } => None,
            ConfigError::Invalid { field, .. } => Some(field),
        }
    }

    /// The line the error points at.
    pub fn line(&self) -> Option<u64> {
        match self {
            ConfigError::Read { .. } => None,
            ConfigError::Invalid { line, .. } => Some(*line),
        }
    }
}

/// What each field accepts, for error messages (and `momctl init`'s comments say the same).
pub fn allowed(field: &str) -> &'static str {
    match field {
        "cluster" => "a name of 1 to 32 characters: lowercase letters, digits and '-', starting with a letter or digit",
        "provider" => "local or aws",
        "aws" => "a mapping with region, instance_type, hosts, ami, admin_cidr, endpoint_url, running_timeout_s",
        "aws.region" => "an AWS region name such as us-east-1 or eu-west-3",
        "aws.instance_type" => "an EC2 instance type such as t3.small",
        "aws.ami" => "an AMI id such as ami-0123456789abcdef0, or null for the newest Debian 12",
        "aws.hosts" => "a whole number of EC2 instances from 1 to 20",
        "aws.admin_cidr" => "an IPv4 CIDR block such as 203.0.113.0/24 (who may reach SSH and the Docker API); required with provider aws",
        "aws.endpoint_url" => "an http(s) URL of an EC2 endpoint, e.g. http://127.0.0.1:5000 for moto_server",
        "aws.running_timeout_s" => "a whole number of seconds from 1",
        "network" => "a mapping with subnet",
        "network.subnet" => "an IPv4 CIDR block of /24 or larger, e.g. 10.210.0.0/24 (default: derived from the cluster name)",
        "broker" => "a mapping with image, nodes",
        "broker.image" | "redis.image" | "zookeeper.image" | "nginx.image" => {
            "a Docker image reference such as mom-broker:0.1.0 (letters, digits, '.', '_', '-', '/', ':', '@')"
        }
        "broker.nodes" => "a whole number from 1 to 64",
        "redis" => "a mapping with image, mode, appendfsync, replicas, min_replicas_ack",
        "redis.mode" => "single (one Redis) or replicated (a primary, its replicas and 3 Sentinels)",
        "redis.appendfsync" => "always, everysec or no",
        "redis.replicas" => "a whole number from 1 to 5, with mode: replicated",
        "redis.min_replicas_ack" => {
            "a whole number from 0 to redis.replicas, with mode: replicated (0: replication is asynchronous)"
        }
        "zookeeper" => "a mapping with image, nodes",
        "zookeeper.nodes" => "1, or 3 for an ensemble",
        "nginx" => "a mapping with image, http_port, https_port, grpc_port, bind, tls",
        "nginx.https_port" => "a TCP port from 1 to 65535 other than http_port and grpc_port (used when tls is set)",
        "nginx.grpc_port" => "a TCP port from 1 to 65535 other than http_port, or null to turn gRPC off",
        "nginx.http_port" => "a TCP port from 1 to 65535",
        "nginx.bind" => {
            "an IPv4 address of this host: 127.0.0.1 (the default locally) or 0.0.0.0 (the default with \
             provider aws, where loopback is refused)"
        }
        "nginx.tls" => "null (plain HTTP), self_signed (momctl makes a CA and a certificate) or {cert: FILE, key: FILE} (PEM files)",
        "secrets" => "a mapping with admin_password_env",
        "secrets.admin_password_env" => {
            "the name of an environment variable (letters, digits, '_'), e.g. MOM_ADMIN_PASSWORD"
        }
        "" => "a YAML mapping with cluster, provider, aws, network, broker, redis, zookeeper, nginx, secrets",
        _ => "see `momctl init` for the fields and their values",
    }
}

/// Reads and checks a `mom.yaml` file.
pub fn load(path: &Path) -> Result<(Config, Settings), ConfigError> {
    let file = path.display().to_string();
    let text =
        std::fs::read_to_string(path).map_err(|source| ConfigError::Read { file: file.clone(), source })?;
    let config = parse(&text, &file)?;
    let settings = config.settings(&file)?;
    Ok((config, settings))
}

/// Parses `mom.yaml` text; `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
    let mut path = String::new();
    let parsed = serde_saphyr::with_deserializer_from_str(text, |de| {
        serde_path_to_error::deserialize(de).map_err(|e| {
            path = e.path().to_string();
            e.into_inner()
        })
    });
    parsed.map_err(|e| {
        // `Spanned` values show up as `.value` in the path; `.` alone is the document.
        let field = path.trim_end_matches(".value").trim_start_matches('.').to_string();
        let field = if field == "." || field == "?" { String::new() } else { field };
        let (line, column) = e.location().map(|l| (l.line(), l.column())).unwrap_or((1, 1));
        let problem = bare_message(&e.without_snippet().to_string());
        let allowed = if problem.contains("expected one of") {
            // serde already listed the allowed names; say it once more in the fixed place.
            problem
                .split("expected one of ")
                .nth(1)
                .map(|s| format!("one of {s}"))
                .unwrap_or_else(|| allowed(&field).to_string())
        } else {
            allowed(&field).to_string()
        };
        ConfigError::Invalid {
            file: file.to_string(),
            field: if field.is_empty() { "(document)".to_string() } else { field },
            line,
            column,
            problem,
            allowed,
        }
    })
}

/// serde-saphyr's message without its `line L column C: ` prefix and any trailing snippet.
fn bare_message(rendered: &str) -> String {
    let first = rendered.lines().next().unwrap_or(rendered).trim();
    let first = first.strip_prefix("error: ").unwrap_or(first);
    let stripped = match first.strip_prefix("line ") {
        Some(rest) => rest.split_once(": ").map(|(_, msg)| msg).unwrap_or(rest),
        None => first,
    };
    // The position is printed in front already; drop hints meant for programmers.
    let stripped = stripped.rsplit_once(" at line ").map(|(msg, _)| msg).unwrap_or(stripped);
    let stripped = stripped.split_once(", set DuplicateKeyPolicy").map(|(msg, _)| msg).unwrap_or(stripped);
    stripped.to_string()
}

/// `us-east-1`, `eu-central-2`, `us-gov-west-1`, `ap-southeast-4`: area, optional `gov`, direction, number.
fn valid_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    let (area, rest) = match parts.as_slice() {
        [area, rest @ ..] => (area, rest),
        [] => return false,
    };
    let rest = match rest {
        ["gov", rest @ ..] | ["iso", rest @ ..] => rest,
        rest => rest,
    };
    area.len() == 2
        && area.bytes().all(|b| b.is_ascii_lowercase())
        && rest.len() == 2
        && !rest[0].is_empty()
        && rest[0].bytes().all(|b| b.is_ascii_lowercase())
        && !rest[1].is_empty()
        && rest[1].bytes().all(|b| b.is_ascii_digit())
}

/// `t3.small`, `m7g.2xlarge`, `u-6tb1.metal`.
fn valid_instance_type(t: &str) -> bool {
    matches!(t.split_once('.'), Some((family, size))
        if !family.is_empty() && !size.is_empty()
            && family.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && size.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
}

fn valid_cluster_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 32
        && bytes[0].is_ascii_alphanumeric()
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

fn valid_image(image: &str) -> bool {
    !image.is_empty()
        && image.len() <= 255
        && !image.starts_with(['-', ':', '/', '.'])
        && image
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/' | b':' | b'@'))
}

fn valid_env_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A /24 in 10.200.0.0 – 10.249.255.0 picked from the cluster name, so that clusters with
/// different names get different subnets without configuration (FNV-1a: stable across builds).
pub fn default_subnet(cluster: &str) -> Ipv4Net {
    let mut h: u32 = 0x811c_9dc5;
    for b in cluster.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    let second = 200 + (h % 50) as u8;
    let third = ((h / 50) % 256) as u8;
    Ipv4Net::new(Ipv4Addr::new(10, second, third, 0), 24).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_init_file_parses_to_the_defaults() {
        let config = parse(&default_file("demo"), "mom.yaml").expect("default file parses");
        let settings = config.settings("mom.yaml").expect("default file is valid");
        assert_eq!(settings.cluster, "demo");
        assert_eq!(settings.broker_nodes, 3);
        assert_eq!(settings.provider, Provider::Local);
        assert_eq!(settings.subnet, default_subnet("demo"));
        assert_eq!(settings.nginx_bind, Ipv4Addr::LOCALHOST);
    }

    #[test]
    fn default_subnets_are_stable_and_private() {
        let a = default_subnet("demo");
        assert_eq!(a, default_subnet("demo"));
        assert_ne!(a, default_subnet("demo2"));
        assert_eq!(a.prefix_len(), 24);
        assert_eq!(a.addr().octets()[0], 10);
    }

    #[test]
    fn messages_lose_their_position_prefix() {
        assert_eq!(bare_message("error: line 4 column 10: invalid u32\n --> x"), "invalid u32");
        assert_eq!(bare_message("missing field `cluster`"), "missing field `cluster`");
        assert_eq!(bare_message("invalid u16 at line 2, column 21"), "invalid u16");
    }
}
