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

/// `aws:`, read by `provider: aws` (see `aws.rs`). Credentials never come from here: they come
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
        "nginx.bind" => "an IPv4 address of this host, e.g. 127.0.0.1 (default) or 0.0.0.0",
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

impl Config {
    /// Checks every value and fills in defaults.
    pub fn settings(&self, file: &str) -> Result<Settings, ConfigError> {
        let invalid = |field: &str, at: &serde_saphyr::Location, problem: String| ConfigError::Invalid {
            file: file.to_string(),
            field: field.to_string(),
            line: at.line(),
            column: at.column(),
            problem,
            allowed: allowed(field).to_string(),
        };

        let cluster = &self.cluster.value;
        if !valid_cluster_name(cluster) {
            return Err(invalid(
                "cluster",
                &self.cluster.referenced,
                format!("`{cluster}` is not a valid cluster name"),
            ));
        }

        let provider = self.provider.as_ref().map(|p| p.value).unwrap_or(Provider::Local);

        let image = |field: &str, value: &Sp<String>, default: &str| match value {
            None => Ok(default.to_string()),
            Some(v) if valid_image(&v.value) => Ok(v.value.clone()),
            Some(v) => Err(invalid(field, &v.referenced, format!("`{}` is not an image reference", v.value))),
        };
        let broker_image = image("broker.image", &self.broker.image, defaults::BROKER_IMAGE)?;
        let redis_image = image("redis.image", &self.redis.image, defaults::REDIS_IMAGE)?;
        let zookeeper_image = image("zookeeper.image", &self.zookeeper.image, defaults::ZOOKEEPER_IMAGE)?;
        let nginx_image = image("nginx.image", &self.nginx.image, defaults::NGINX_IMAGE)?;

        let broker_nodes = match &self.broker.nodes {
            None => defaults::BROKER_NODES,
            Some(n) if (1..=MAX_BROKERS).contains(&n.value) => n.value,
            Some(n) => {
                return Err(invalid("broker.nodes", &n.referenced, format!("{} is out of range", n.value)))
            }
        };

        let redis_mode = self.redis.mode.as_ref().map(|m| m.value).unwrap_or(RedisMode::Single);
        let replicated_only = |field: &str, v: &Sp<u32>| match v {
            Some(v) if redis_mode == RedisMode::Single => {
                Err(invalid(field, &v.referenced, "it needs `redis.mode: replicated`".to_string()))
            }
            _ => Ok(()),
        };
        replicated_only("redis.replicas", &self.redis.replicas)?;
        replicated_only("redis.min_replicas_ack", &self.redis.min_replicas_ack)?;
        let (redis_replicas, redis_min_replicas_ack) = match redis_mode {
            RedisMode::Single => (0, 0),
            RedisMode::Replicated => {
                let replicas = match &self.redis.replicas {
                    None => defaults::REDIS_REPLICAS,
                    Some(n) if (1..=MAX_REDIS_REPLICAS).contains(&n.value) => n.value,
                    Some(n) => {
                        return Err(invalid(
                            "redis.replicas",
                            &n.referenced,
                            format!("{} is out of range", n.value),
                        ))
                    }
                };
                let ack = match &self.redis.min_replicas_ack {
                    None => defaults::REDIS_MIN_REPLICAS_ACK,
                    Some(n) if n.value <= replicas => n.value,
                    Some(n) => {
                        return Err(invalid(
                            "redis.min_replicas_ack",
                            &n.referenced,
                            format!("{} is more than the {replicas} replicas", n.value),
                        ))
                    }
                };
                (replicas, ack)
            }
        };

        let zookeeper_nodes = match &self.zookeeper.nodes {
            None => 1,
            Some(n) if n.value == 1 || n.value == 3 => n.value,
            Some(n) => return Err(invalid("zookeeper.nodes", &n.referenced, format!("{} nodes", n.value))),
        };

        let nginx_http_port = match &self.nginx.http_port {
            None => defaults::NGINX_HTTP_PORT,
            Some(p) if p.value >= 1 => p.value,
            Some(p) => return Err(invalid("nginx.http_port", &p.referenced, "port 0".to_string())),
        };
        let nginx_grpc_port = match &self.nginx.grpc_port {
            // The default gRPC port must not take the HTTP port a user chose.
            None => match &self.nginx.http_port {
                Some(http) if http.value == defaults::NGINX_GRPC_PORT => {
                    return Err(invalid(
                        "nginx.http_port",
                        &http.referenced,
                        format!(
                            "{} is also the default nginx.grpc_port; set nginx.grpc_port to another port, or to null",
                            http.value
                        ),
                    ))
                }
                _ => Some(defaults::NGINX_GRPC_PORT),
            },
            Some(p) => match p.value {
                None => None,
                Some(0) => {
                    return Err(invalid(
                        "nginx.grpc_port",
                        &p.referenced,
                        "port 0".to_string(),
                    ))
                }
                Some(port) if port == nginx_http_port => {
                    return Err(invalid(
                        "nginx.grpc_port",
                        &p.referenced,
                        format!("{port} is already nginx.http_port"),
                    ))
                }
                Some(port) => Some(port),
            },
        };
        let nginx_bind = match &self.nginx.bind {
            // On an EC2 instance NGINX is the public entry; locally only loopback by default.
            None if provider == Provider::Aws => Ipv4Addr::UNSPECIFIED,
            None => Ipv4Addr::LOCALHOST,
            Some(b) => b.value.parse::<Ipv4Addr>().map_err(|_| {
                invalid("nginx.bind", &b.referenced, format!("`{}` is not an IPv4 address", b.value))
            })?,
        };
        let nginx_tls = match &self.nginx.tls {
            None => None,
            Some(tls) => Some(match &tls.value {
                TlsConfig::Keyword(k) if k == "self_signed" => Tls::SelfSigned,
                TlsConfig::Keyword(k) => {
                    return Err(invalid(
                        "nginx.tls",
                        &tls.referenced,
                        format!("`{k}` is neither self_signed nor {{cert, key}}"),
                    ))
                }
                TlsConfig::Files { cert, key } => {
                    // Relative paths are relative to mom.yaml, like Kamal's and compose's.
                    let base = Path::new(file).parent().unwrap_or(Path::new(""));
                    let (cert, key) = (base.join(cert), base.join(key));
                    for (what, path) in [("cert", &cert), ("key", &key)] {
                        if !path.is_file() {
                            return Err(invalid(
                                "nginx.tls",
                                &tls.referenced,
                                format!("the {what} file {} does not exist", path.display()),
                            ));
                        }
                    }
                    Tls::Files { cert, key }
                }
            }),
        };
        let nginx_https_port = match (&nginx_tls, &self.nginx.https_port) {
            (None, _) => None,
            (Some(_), None) => Some(defaults::NGINX_HTTPS_PORT),
            (Some(_), Some(p)) => Some(p.value),
        };
        if let Some(port) = nginx_https_port {
            let clash = if port == 0 {
                Some("port 0".to_string())
            } else if port == nginx_http_port {
                Some(format!("{port} is already nginx.http_port"))
            } else if Some(port) == nginx_grpc_port {
                Some(format!("{port} is already nginx.grpc_port"))
            } else {
                None
            };
            let at = match (&self.nginx.https_port, &self.nginx.tls) {
                (Some(p), _) => Some(("nginx.https_port", &p.referenced)),
                (None, Some(t)) => Some(("nginx.tls", &t.referenced)),
                (None, None) => None,
            };
            if let (Some(problem), Some((field, at))) = (clash, at) {
                return Err(invalid(field, at, problem));
            }
        }

        let subnet = match &self.network.subnet {
            None => default_subnet(cluster),
            Some(s) => {
                let net: Ipv4Net = s.value.parse().map_err(|_| {
                    invalid(
                        "network.subnet",
                        &s.referenced,
                        format!("`{}` is not an IPv4 CIDR block", s.value),
                    )
                })?;
                if net.prefix_len() > 24 {
                    return Err(invalid(
                        "network.subnet",
                        &s.referenced,
                        format!("/{} is too small for a cluster", net.prefix_len()),
                    ));
                }
                net.trunc()
            }
        };

        let admin_password_env = match &self.secrets.admin_password_env {
            None => defaults::ADMIN_PASSWORD_ENV.to_string(),
            Some(v) if valid_env_name(&v.value) => v.value.clone(),
            Some(v) => {
                return Err(invalid(
                    "secrets.admin_password_env",
                    &v.referenced,
                    format!("`{}` is not an environment variable name", v.value),
                ))
            }
        };

        let aws = match provider {
            Provider::Local => None,
            Provider::Aws => Some(self.aws_settings(file)?),
        };

        Ok(Settings {
            aws,
            cluster: cluster.clone(),
            provider,
            subnet,
            broker_image,
            broker_nodes,
            redis_image,
            redis_appendfsync: self.redis.appendfsync.unwrap_or(AppendFsync::Everysec),
            redis_mode,
            redis_replicas,
            redis_min_replicas_ack,
            zookeeper_image,
            zookeeper_nodes,
            nginx_image,
            nginx_http_port,
            nginx_bind,
            nginx_grpc_port,
            nginx_tls,
            nginx_https_port,
            admin_password_env,
        })
    }

    fn aws_settings(&self, file: &str) -> Result<AwsSettings, ConfigError> {
        let invalid = |field: &str, line: u64, column: u64, problem: String| ConfigError::Invalid {
            file: file.to_string(),
            field: field.to_string(),
            line,
            column,
            problem,
            allowed: allowed(field).to_string(),
        };
        let at = |l: &serde_saphyr::Location| (l.line(), l.column());
        let (pline, pcol) = self.provider.as_ref().map(|p| at(&p.referenced)).unwrap_or((1, 1));
        let aws = self.aws.clone().unwrap_or_default();
        let region = match &aws.region {
            None => defaults::AWS_REGION.to_string(),
            Some(r) if valid_region(&r.value) => r.value.clone(),
            Some(r) => {
                let (l, c) = at(&r.referenced);
                return Err(invalid("aws.region", l, c, format!("`{}` is not an AWS region name", r.value)));
            }
        };
        let instance_type = match &aws.instance_type {
            None => defaults::AWS_INSTANCE_TYPE.to_string(),
            Some(t) if valid_instance_type(&t.value) => t.value.clone(),
            Some(t) => {
                let (l, c) = at(&t.referenced);
                return Err(invalid(
                    "aws.instance_type",
                    l,
                    c,
                    format!("`{}` is not an instance type", t.value),
                ));
            }
        };
        let hosts = match &aws.hosts {
            None => defaults::AWS_HOSTS,
            Some(h) if (1..=MAX_AWS_HOSTS).contains(&h.value) => h.value,
            Some(h) => {
                let (l, c) = at(&h.referenced);
                return Err(invalid("aws.hosts", l, c, format!("{} is out of range", h.value)));
            }
        };
        let ami = match &aws.ami {
            None => None,
            Some(a) => match &a.value {
                None => None,
                Some(id)
                    if id.starts_with("ami-")
                        && id.len() > 4
                        && id[4..].bytes().all(|b| b.is_ascii_alphanumeric()) =>
                {
                    Some(id.clone())
                }
                Some(id) => {
                    let (l, c) = at(&a.referenced);
                    return Err(invalid("aws.ami", l, c, format!("`{id}` is not an AMI id")));
                }
            },
        };
        let admin_cidr = match &aws.admin_cidr {
            None => {
                return Err(invalid(
                    "aws.admin_cidr",
                    pline,
                    pcol,
                    "provider aws needs aws.admin_cidr (who may reach SSH and the Docker API)".to_string(),
                ))
            }
            Some(c) => c.value.parse::<Ipv4Net>().map(|n| n.trunc()).map_err(|_| {
                let (l, col) = at(&c.referenced);
                invalid("aws.admin_cidr", l, col, format!("`{}` is not an IPv4 CIDR block", c.value))
            })?,
        };
        let endpoint_url = match &aws.endpoint_url {
            None => None,
            Some(u)
                if (u.value.starts_with("http://") || u.value.starts_with("https://"))
                    && u.value.len() > 8 =>
            {
                Some(u.value.clone())
            }
            Some(u) => {
                let (l, c) = at(&u.referenced);
                return Err(invalid(
                    "aws.endpoint_url",
                    l,
                    c,
                    format!("`{}` is not an http(s) URL", u.value),
                ));
            }
        };
        let running_timeout_s = match &aws.running_timeout_s {
            None => defaults::AWS_RUNNING_TIMEOUT_S,
            Some(t) if t.value >= 1 => t.value,
            Some(t) => {
                let (l, c) = at(&t.referenced);
                return Err(invalid("aws.running_timeout_s", l, c, "0 seconds".to_string()));
            }
        };
        Ok(AwsSettings { region, instance_type, hosts, ami, admin_cidr, endpoint_url, running_timeout_s })
    }
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

/// The commented `mom.yaml` that `momctl init` writes.
pub fn default_file(cluster: &str) -> String {
    INIT_TEMPLATE.replace("{{cluster}}", cluster)
}

const INIT_TEMPLATE: &str = r#"# mom.yaml: the whole mom cluster in one file. `momctl plan` shows what `momctl up` would do;
# `momctl up` makes the cluster match this file; `momctl down` removes it.

# Name of the cluster: every container, network and volume momctl makes carries the label
# mom.cluster=<name>, and that label is how momctl finds them again (there is no state file).
# Lowercase letters, digits and '-', at most 32 characters.
cluster: {{cluster}}

# Where the cluster runs: `local` (this machine's Docker engine, the default) or `aws`
# (EC2 instances found by the tag mom:cluster=<name>; credentials from the usual AWS
# environment variables or profile, never from this file).
provider: local

# Settings for provider: aws (ignored by the local provider). admin_cidr (who may reach SSH
# and the Docker API) is required; ami: null picks the newest Debian 12 AMI of the region.
# aws: { region: us-east-1, instance_type: t3.small, hosts: 3, ami: null, admin_cidr: 203.0.113.0/24 }

# The private Docker network the containers share. Each service gets a fixed address in it.
# Default: a /24 in 10.200.0.0/13 derived from the cluster name.
# network: { subnet: 10.210.0.0/24 }

# The brokers: stateless, all equal, behind NGINX. Build the image with `momctl build`.
broker:
  image: mom-broker:0.1.0
  nodes: 3                      # 1 to 64

# Messages live in Redis, with the append-only file on.
redis:
  image: mom-redis:7
  mode: single                  # single | replicated (a primary, replicas and 3 Sentinels)
  appendfsync: everysec         # always | everysec | no
  # With mode: replicated, the brokers find the primary through the Sentinels and follow a
  # failover by themselves. Replication is asynchronous: a send is acknowledged once the
  # primary has it and min_replicas_ack replicas confirmed it (0: at once; a failover can then
  # lose the sends of the last moment).
  # replicas: 2                 # 1 to 5
  # min_replicas_ack: 1         # 0 to replicas

# Metadata, users and membership live in ZooKeeper.
zookeeper:
  image: mom-zookeeper:3.8
  nodes: 1                      # 1, or 3 for an ensemble that survives the loss of one node

# NGINX is the only public entry: http://<bind>:<http_port>/ . With tls set, HTTPS (HTTP/2,
# TLS 1.2 and 1.3 only) is served on https_port, http_port answers every request with a
# redirect (308) to it, and the gRPC port speaks TLS too. self_signed: momctl makes a CA in
# ~/.momctl/<cluster>/ (ca.pem: give it to your clients) and a certificate for localhost,
# 127.0.0.1 and bind. {cert: FILE, key: FILE}: your PEM files (relative to this file).
nginx:
  image: mom-nginx:1.22
  http_port: 8080
  grpc_port: 9090               # the gRPC API (HTTP/2); null turns it off
  bind: 127.0.0.1               # 0.0.0.0 to accept other machines
  tls: null                     # null | self_signed | {cert: server.pem, key: server-key.pem}
  # https_port: 8443            # where HTTPS is served when tls is set (default 8443)

# Secrets come from the environment, never from this file: momctl reads the first admin's
# password from the variable named here when it creates brokers.
secrets:
  admin_password_env: MOM_ADMIN_PASSWORD
"#;

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
