//! Checking `mom.yaml` ([`Config::settings`]): one check per section, each filling in its
//! defaults; the first problem is the one [`ConfigError`] the user sees.

use std::net::Ipv4Addr;
use std::path::Path;

use ipnet::Ipv4Net;
use serde_saphyr::Location;

use super::{
    allowed, default_subnet, defaults, valid_cluster_name, valid_env_name, valid_image, valid_instance_type,
    valid_region, AppendFsync, AwsSettings, Config, ConfigError, Provider, RedisMode, Settings, Sp, Tls,
    TlsConfig, MAX_AWS_HOSTS, MAX_BROKERS, MAX_REDIS_REPLICAS,
};

/// The error of `field` at `at` in `file`.
fn invalid(file: &str, field: &str, at: &Location, problem: String) -> ConfigError {
    ConfigError::Invalid {
        file: file.to_string(),
        field: field.to_string(),
        line: at.line(),
        column: at.column(),
        problem,
        allowed: allowed(field).to_string(),
    }
}

/// `nginx:` checked.
struct Nginx {
    http_port: u16,
    grpc_port: Option<u16>,
    bind: Ipv4Addr,
    tls: Option<Tls>,
    https_port: Option<u16>,
}

/// `redis.mode`, `redis.replicas` and `redis.min_replicas_ack` checked.
struct Redis {
    mode: RedisMode,
    replicas: u32,
    min_replicas_ack: u32,
}

impl Config {
    /// Checks every value and fills in defaults.
    pub fn settings(&self, file: &str) -> Result<Settings, ConfigError> {
        let cluster = &self.cluster.value;
        if !valid_cluster_name(cluster) {
            return Err(invalid(
                file,
                "cluster",
                &self.cluster.referenced,
                format!("`{cluster}` is not a valid cluster name"),
            ));
        }
        let provider = self.provider.as_ref().map(|p| p.value).unwrap_or(Provider::Local);
        let image = |field: &str, value: &Sp<String>, default: &str| match value {
            None => Ok(default.to_string()),
            Some(v) if valid_image(&v.value) => Ok(v.value.clone()),
            Some(v) => {
                Err(invalid(file, field, &v.referenced, format!("`{}` is not an image reference", v.value)))
            }
        };
        let broker_image = image("broker.image", &self.broker.image, defaults::BROKER_IMAGE)?;
        let redis_image = image("redis.image", &self.redis.image, defaults::REDIS_IMAGE)?;
        let zookeeper_image = image("zookeeper.image", &self.zookeeper.image, defaults::ZOOKEEPER_IMAGE)?;
        let nginx_image = image("nginx.image", &self.nginx.image, defaults::NGINX_IMAGE)?;
        let broker_nodes = self.broker_nodes(file)?;
        let redis = self.redis(file)?;
        let zookeeper_nodes = self.zookeeper_nodes(file)?;
        let nginx = self.nginx(file, provider)?;
        let subnet = self.subnet(file, cluster)?;
        let admin_password_env = self.admin_password_env(file)?;
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
            redis_mode: redis.mode,
            redis_replicas: redis.replicas,
            redis_min_replicas_ack: redis.min_replicas_ack,
            zookeeper_image,
            zookeeper_nodes,
            nginx_image,
            nginx_http_port: nginx.http_port,
            nginx_bind: nginx.bind,
            nginx_grpc_port: nginx.grpc_port,
            nginx_tls: nginx.tls,
            nginx_https_port: nginx.https_port,
            admin_password_env,
        })
    }

    fn broker_nodes(&self, file: &str) -> Result<u32, ConfigError> {
        match &self.broker.nodes {
            None => Ok(defaults::BROKER_NODES),
            Some(n) if (1..=MAX_BROKERS).contains(&n.value) => Ok(n.value),
            Some(n) => {
                Err(invalid(file, "broker.nodes", &n.referenced, format!("{} is out of range", n.value)))
            }
        }
    }

    fn redis(&self, file: &str) -> Result<Redis, ConfigError> {
        let mode = self.redis.mode.as_ref().map(|m| m.value).unwrap_or(RedisMode::Single);
        let replicated_only = |field: &str, v: &Sp<u32>| match v {
            Some(v) if mode == RedisMode::Single => {
                Err(invalid(file, field, &v.referenced, "it needs `redis.mode: replicated`".to_string()))
            }
            _ => Ok(()),
        };
        replicated_only("redis.replicas", &self.redis.replicas)?;
        replicated_only("redis.min_replicas_ack", &self.redis.min_replicas_ack)?;
        if mode == RedisMode::Single {
            return Ok(Redis { mode, replicas: 0, min_replicas_ack: 0 });
        }
        let replicas = match &self.redis.replicas {
            None => defaults::REDIS_REPLICAS,
            Some(n) if (1..=MAX_REDIS_REPLICAS).contains(&n.value) => n.value,
            Some(n) => {
                return Err(invalid(
                    file,
                    "redis.replicas",
                    &n.referenced,
                    format!("{} is out of range", n.value),
                ))
            }
        };
        let min_replicas_ack = match &self.redis.min_replicas_ack {
            None => defaults::REDIS_MIN_REPLICAS_ACK,
            Some(n) if n.value <= replicas => n.value,
            Some(n) => {
                return Err(invalid(
                    file,
                    "redis.min_replicas_ack",
                    &n.referenced,
                    format!("{} is more than the {replicas} replicas", n.value),
                ))
            }
        };
        Ok(Redis { mode, replicas, min_replicas_ack })
    }

    fn zookeeper_nodes(&self, file: &str) -> Result<u32, ConfigError> {
        match &self.zookeeper.nodes {
            None => Ok(1),
            Some(n) if n.value == 1 || n.value == 3 => Ok(n.value),
            Some(n) => Err(invalid(file, "zookeeper.nodes", &n.referenced, format!("{} nodes", n.value))),
        }
    }

    fn nginx(&self, file: &str, provider: Provider) -> Result<Nginx, ConfigError> {
        let http_port = match &self.nginx.http_port {
            None => defaults::NGINX_HTTP_PORT,
            Some(p) if p.value >= 1 => p.value,
            Some(p) => return Err(invalid(file, "nginx.http_port", &p.referenced, "port 0".to_string())),
        };
        let grpc_port = self.grpc_port(file, http_port)?;
        let bind = match &self.nginx.bind {
            // On an EC2 instance NGINX is the public entry; locally only loopback by default.
            None if provider == Provider::Aws => Ipv4Addr::UNSPECIFIED,
            None => Ipv4Addr::LOCALHOST,
            Some(b) => b.value.parse::<Ipv4Addr>().map_err(|_| {
                invalid(file, "nginx.bind", &b.referenced, format!("`{}` is not an IPv4 address", b.value))
            })?,
        };
        // The security group opens NGINX's ports to the world; on an instance's loopback nothing
        // would answer them.
        if provider == Provider::Aws && bind.is_loopback() {
            let b = self.nginx.bind.as_ref().expect("a loopback bind is set");
            return Err(invalid(
                file,
                "nginx.bind",
                &b.referenced,
                format!(
                    "`{bind}` with provider aws: NGINX would listen on each instance's loopback while its \
                     ports are open to the world; remove nginx.bind (aws binds 0.0.0.0) or set 0.0.0.0"
                ),
            ));
        }
        let tls = self.tls(file)?;
        let https_port = self.https_port(file, tls.is_some(), http_port, grpc_port)?;
        Ok(Nginx { http_port, grpc_port, bind, tls, https_port })
    }

    fn grpc_port(&self, file: &str, http_port: u16) -> Result<Option<u16>, ConfigError> {
        let Some(p) = &self.nginx.grpc_port else {
            // The default gRPC port must not take the HTTP port a user chose.
            return match &self.nginx.http_port {
                Some(http) if http.value == defaults::NGINX_GRPC_PORT => Err(invalid(
                    file,
                    "nginx.http_port",
                    &http.referenced,
                    format!(
                        "{} is also the default nginx.grpc_port; set nginx.grpc_port to another port, or to null",
                        http.value
                    ),
                )),
                _ => Ok(Some(defaults::NGINX_GRPC_PORT)),
            };
        };
        match p.value {
            None => Ok(None),
            Some(0) => Err(invalid(file, "nginx.grpc_port", &p.referenced, "port 0".to_string())),
            Some(port) if port == http_port => Err(invalid(
                file,
                "nginx.grpc_port",
                &p.referenced,
                format!("{port} is already nginx.http_port"),
            )),
            Some(port) => Ok(Some(port)),
        }
    }

    fn tls(&self, file: &str) -> Result<Option<Tls>, ConfigError> {
        let Some(tls) = &self.nginx.tls else {
            return Ok(None);
        };
        match &tls.value {
            TlsConfig::Keyword(k) if k == "self_signed" => Ok(Some(Tls::SelfSigned)),
            TlsConfig::Keyword(k) => Err(invalid(
                file,
                "nginx.tls",
                &tls.referenced,
                format!("`{k}` is neither self_signed nor {{cert, key}}"),
            )),
            TlsConfig::Files { cert, key } => {
                // Relative paths are relative to mom.yaml, like Kamal's and compose's.
                let base = Path::new(file).parent().unwrap_or(Path::new(""));
                let (cert, key) = (base.join(cert), base.join(key));
                for (what, path) in [("cert", &cert), ("key", &key)] {
                    if !path.is_file() {
                        return Err(invalid(
                            file,
                            "nginx.tls",
                            &tls.referenced,
                            format!("the {what} file {} does not exist", path.display()),
                        ));
                    }
                }
                Ok(Some(Tls::Files { cert, key }))
            }
        }
    }

    fn https_port(
        &self,
        file: &str,
        tls: bool,
        http_port: u16,
        grpc_port: Option<u16>,
    ) -> Result<Option<u16>, ConfigError> {
        let port = match (tls, &self.nginx.https_port) {
            (false, _) => return Ok(None),
            (true, None) => defaults::NGINX_HTTPS_PORT,
            (true, Some(p)) => p.value,
        };
        let clash = if port == 0 {
            Some("port 0".to_string())
        } else if port == http_port {
            Some(format!("{port} is already nginx.http_port"))
        } else if Some(port) == grpc_port {
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
            return Err(invalid(file, field, at, problem));
        }
        Ok(Some(port))
    }

    fn subnet(&self, file: &str, cluster: &str) -> Result<Ipv4Net, ConfigError> {
        let Some(s) = &self.network.subnet else {
            return Ok(default_subnet(cluster));
        };
        let net: Ipv4Net = s.value.parse().map_err(|_| {
            invalid(file, "network.subnet", &s.referenced, format!("`{}` is not an IPv4 CIDR block", s.value))
        })?;
        if net.prefix_len() > 24 {
            return Err(invalid(
                file,
                "network.subnet",
                &s.referenced,
                format!("/{} is too small for a cluster", net.prefix_len()),
            ));
        }
        Ok(net.trunc())
    }

    fn admin_password_env(&self, file: &str) -> Result<String, ConfigError> {
        match &self.secrets.admin_password_env {
            None => Ok(defaults::ADMIN_PASSWORD_ENV.to_string()),
            Some(v) if valid_env_name(&v.value) => Ok(v.value.clone()),
            Some(v) => Err(invalid(
                file,
                "secrets.admin_password_env",
                &v.referenced,
                format!("`{}` is not an environment variable name", v.value),
            )),
        }
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
