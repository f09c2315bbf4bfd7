//! The commented `mom.yaml` that `momctl init` writes.

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
# and the Docker API) is required; ami: null picks the newest Debian 12 AMI of the region
# (resolved by `plan`; with moto_server give one of its own, e.g. ami-12c6146b).
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
  # bind: 127.0.0.1             # default 127.0.0.1 (local), 0.0.0.0 (aws); 0.0.0.0 accepts other machines
  tls: null                     # null | self_signed | {cert: server.pem, key: server-key.pem}
  # https_port: 8443            # where HTTPS is served when tls is set (default 8443)

# Secrets come from the environment, never from this file: momctl reads the first admin's
# password from the variable named here when it creates brokers.
secrets:
  admin_password_env: MOM_ADMIN_PASSWORD
"#;
