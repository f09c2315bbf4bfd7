//! A bad mom.yaml gets one error that names the field, the line and what is allowed — before
//! anything is touched (these runs point DOCKER_HOST at nothing: a Docker call would fail
//! differently).

mod common;

use common::{momctl, text, TempDir};
use mom_operator::config::{self, ConfigError, Provider};

const NO_DOCKER: (&str, &str) = ("DOCKER_HOST", "unix:///nonexistent/momctl-test.sock");

/// Runs `momctl up` on `yaml`; returns its stderr (asserting exit 1 and an empty stdout).
fn up_fails(yaml: &str) -> String {
    let dir = TempDir::new("config");
    dir.write("mom.yaml", yaml);
    let out = momctl(dir.path(), &["up"], &[NO_DOCKER, ("MOM_ADMIN_PASSWORD", "x-long-enough-password")]);
    assert_eq!(out.status.code(), Some(1), "stdout: {}\nstderr: {}", text(&out.stdout), text(&out.stderr));
    assert!(out.stdout.is_empty(), "nothing may be done: {}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(
        !err.contains("Docker:") && !err.contains("cannot reach"),
        "failed on Docker, not on the file: {err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one error: {err}");
    err
}

fn assert_mentions(err: &str, parts: &[&str]) {
    for part in parts {
        assert!(err.contains(part), "{part:?} missing from: {err}");
    }
}

#[test]
fn an_unknown_provider_names_the_allowed_ones() {
    let err = up_fails("cluster: demo\nprovider: gcp\n");
    assert_mentions(&err, &["mom.yaml:2:", "provider", "gcp", "allowed: one of local, aws"]);
}

#[test]
fn a_wrong_type_names_the_field_and_the_range() {
    let err = up_fails("cluster: demo\nbroker:\n  image: mom-broker:0.1.0\n  nodes: three\n");
    assert_mentions(&err, &["mom.yaml:4:", "broker.nodes", "allowed: a whole number from 1 to 64"]);
}

#[test]
fn out_of_range_values_are_refused() {
    let err = up_fails("cluster: demo\nbroker: { nodes: 0 }\n");
    assert_mentions(&err, &["mom.yaml:2:", "broker.nodes", "out of range", "1 to 64"]);
    let err = up_fails("cluster: demo\nnginx:\n  http_port: 70000\n");
    assert_mentions(&err, &["mom.yaml:3:", "nginx.http_port", "1 to 65535"]);
    let err = up_fails("cluster: demo\nnetwork: { subnet: 10.1.2.0/28 }\n");
    assert_mentions(&err, &["mom.yaml:2:", "network.subnet", "/24 or larger"]);
}

#[test]
fn an_unknown_field_lists_the_known_ones() {
    let err = up_fails("cluster: demo\nbroker:\n  image: mom-broker:0.1.0\n  node: 3\n");
    assert_mentions(&err, &["mom.yaml:4:", "broker.node", "allowed: one of image, nodes"]);
}

#[test]
fn a_bad_cluster_name_and_a_missing_one() {
    let err = up_fails("cluster: Demo_1\n");
    assert_mentions(&err, &["mom.yaml:1:", "cluster", "lowercase letters"]);
    let err = up_fails("provider: local\n");
    assert_mentions(&err, &["mom.yaml:1:", "missing field `cluster`"]);
}

#[test]
fn broken_yaml_points_at_the_line() {
    let err = up_fails("cluster: demo\nbroker: [1, 2\nredis: {}\n");
    assert_mentions(&err, &["mom.yaml:", "broker"]);
}

#[test]
fn the_aws_provider_checks_its_fields_before_anything_is_touched() {
    let yaml = "cluster: demo\nprovider: aws\naws: { region: us-east-1, instance_type: t3.small, hosts: 3, ami: null, admin_cidr: 203.0.113.0/24 }\n";
    let parsed = config::parse(yaml, "mom.yaml").expect("aws is part of the schema");
    let settings = parsed.settings("mom.yaml").expect("valid");
    assert_eq!(settings.provider, Provider::Aws);
    let aws = settings.aws.expect("aws settings");
    assert_eq!((aws.hosts, aws.ami), (3, None));
    // NGINX is the public entry of an instance.
    assert!(settings.nginx_bind.is_unspecified());

    let err = up_fails("cluster: demo\nprovider: aws\naws: { region: us-east-1 }\n");
    assert_mentions(&err, &["mom.yaml:2:", "aws.admin_cidr", "required with provider aws"]);
    let err =
        up_fails("cluster: demo\nprovider: aws\naws:\n  admin_cidr: 203.0.113.0/24\n  region: useast1\n");
    assert_mentions(&err, &["mom.yaml:5:", "aws.region", "not an AWS region name"]);
    let err = up_fails("cluster: demo\nprovider: aws\naws: { admin_cidr: everyone }\n");
    assert_mentions(&err, &["mom.yaml:3:", "aws.admin_cidr", "not an IPv4 CIDR block"]);
    let err = up_fails("cluster: demo\nprovider: aws\naws: { admin_cidr: 203.0.113.0/24, hosts: 0 }\n");
    assert_mentions(&err, &["mom.yaml:3:", "aws.hosts", "1 to 20"]);
    let err = up_fails("cluster: demo\nprovider: aws\naws: { admin_cidr: 203.0.113.0/24, ami: ubuntu }\n");
    assert_mentions(&err, &["mom.yaml:3:", "aws.ami", "not an AMI id"]);
}

/// On EC2 the security group opens NGINX's ports to the world: NGINX on the instance's loopback
/// would answer nobody, so `plan` refuses it; the shipped file leaves `bind` unset, which is
/// loopback locally and every interface on aws.
#[test]
fn the_aws_provider_refuses_nginx_on_loopback_and_the_shipped_file_works_on_both() {
    let aws = "provider: aws\naws: { region: us-east-1, admin_cidr: 203.0.113.0/24, ami: ami-12c6146b }\n";
    for bind in ["127.0.0.1", "127.0.0.2"] {
        let yaml = format!("cluster: demo\n{aws}nginx: {{ bind: {bind} }}\n");
        let dir = TempDir::new("config");
        dir.write("mom.yaml", &yaml);
        let out = momctl(dir.path(), &["plan"], &[NO_DOCKER]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
        let err = text(&out.stderr);
        assert_mentions(&err, &["mom.yaml:4:", "nginx.bind", bind, "provider aws", "loopback"]);
        assert_eq!(err.trim().lines().count(), 1, "one error: {err}");
    }
    let open = format!("cluster: demo\n{aws}nginx: {{ bind: 0.0.0.0 }}\n");
    let settings =
        config::parse(&open, "mom.yaml").and_then(|c| c.settings("mom.yaml")).expect("0.0.0.0 is fine");
    assert!(settings.nginx_bind.is_unspecified());

    let shipped =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../mom.yaml")).expect("mom.yaml");
    let local = config::parse(&shipped, "mom.yaml").and_then(|c| c.settings("mom.yaml")).expect("valid");
    assert!(local.nginx_bind.is_loopback(), "locally NGINX stays on loopback");
    let on_aws = shipped.replacen("provider: local\n", aws, 1);
    assert_ne!(on_aws, shipped, "the shipped file names its provider");
    let settings =
        config::parse(&on_aws, "mom.yaml").and_then(|c| c.settings("mom.yaml")).expect("valid on aws");
    assert!(settings.nginx_bind.is_unspecified(), "on aws NGINX listens on every interface");
}

#[test]
fn replication_settings_are_checked() {
    let err = up_fails("cluster: demo\nredis: { mode: replicated, replicas: 6 }\n");
    assert_mentions(&err, &["mom.yaml:2:", "redis.replicas", "6 is out of range", "1 to 5"]);
    let err = up_fails("cluster: demo\nredis: { mode: single, replicas: 2 }\n");
    assert_mentions(&err, &["mom.yaml:2:", "redis.replicas", "needs `redis.mode: replicated`"]);
    let err = up_fails("cluster: demo\nredis: { mode: replicated, replicas: 1, min_replicas_ack: 2 }\n");
    assert_mentions(&err, &["mom.yaml:2:", "redis.min_replicas_ack", "more than the 1 replicas"]);
    let err = up_fails("cluster: demo\nredis: { mode: sharded }\n");
    assert_mentions(&err, &["mom.yaml:2:", "redis.mode", "single", "replicated"]);
    let err = up_fails("cluster: demo\nzookeeper: { nodes: 2 }\n");
    assert_mentions(&err, &["mom.yaml:2:", "zookeeper.nodes", "2 nodes", "1, or 3"]);
}

#[test]
fn tls_settings_are_checked() {
    let err = up_fails("cluster: demo\nnginx: { tls: selfsigned }\n");
    assert_mentions(&err, &["mom.yaml:2:", "nginx.tls", "neither self_signed nor"]);
    let err = up_fails("cluster: demo\nnginx: { tls: { cert: nope.pem, key: nope-key.pem } }\n");
    assert_mentions(&err, &["mom.yaml:2:", "nginx.tls", "nope.pem does not exist"]);
    let err = up_fails("cluster: demo\nnginx: { tls: self_signed, https_port: 8080 }\n");
    assert_mentions(&err, &["mom.yaml:2:", "nginx.https_port", "already nginx.http_port"]);
}

#[test]
fn secrets_never_come_from_the_file() {
    let err = up_fails("cluster: demo\nsecrets: { admin_password: hunter2hunter2 }\n");
    assert_mentions(&err, &["secrets.admin_password", "allowed: one of admin_password_env"]);
}

#[test]
fn the_specs_example_parses() {
    // The shape in the operator contract, flow style, with upstream image names.
    let yaml = r#"
cluster: demo                 # name
provider: local               # local | aws
aws: { region: us-east-1, instance_type: t3.small, hosts: 3, ami: null, admin_cidr: 203.0.113.0/24 }
broker: { image: mom-broker:0.1.0, nodes: 3 }
redis: { image: redis:7.4, mode: single, appendfsync: everysec }   # mode: single | replicated
zookeeper: { image: zookeeper:3.9, nodes: 1 }                       # 1 | 3
nginx: { image: nginx:1.27, http_port: 8080, tls: null }            # tls: {cert, key} | self_signed
secrets: { admin_password_env: MOM_ADMIN_PASSWORD }                 # secrets come from env, never the file
"#;
    let settings = config::parse(yaml, "mom.yaml").and_then(|c| c.settings("mom.yaml")).expect("valid");
    assert_eq!(settings.broker_nodes, 3);
    assert_eq!(settings.redis_image, "redis:7.4");
    assert_eq!(settings.nginx_http_port, 8080);
}

#[test]
fn errors_carry_field_and_line() {
    let err = config::parse("cluster: demo\nredis:\n  appendfsync: sometimes\n", "mom.yaml")
        .and_then(|c| c.settings("mom.yaml"))
        .expect_err("invalid");
    assert!(matches!(err, ConfigError::Invalid { .. }));
    assert_eq!(err.field(), Some("redis.appendfsync"));
    assert_eq!(err.line(), Some(3));
}

#[test]
fn init_writes_a_valid_commented_file_and_keeps_an_existing_one() {
    let dir = TempDir::new("init");
    let out = momctl(dir.path(), &["init", "--cluster", "first"], &[NO_DOCKER]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let written = std::fs::read_to_string(dir.path().join("mom.yaml")).expect("written");
    assert!(written.lines().filter(|l| l.trim_start().starts_with('#')).count() > 10, "commented");
    let settings = config::parse(&written, "mom.yaml").and_then(|c| c.settings("mom.yaml")).expect("valid");
    assert_eq!(settings.cluster, "first");
    let again = momctl(dir.path(), &["init"], &[NO_DOCKER]);
    assert_eq!(again.status.code(), Some(1));
    assert!(text(&again.stderr).contains("--force"));
}

#[test]
fn grpc_and_http_cannot_share_nginx_port() {
    // Written on both sides, and implied: 9090 is also gRPC's default port.
    let err = up_fails("cluster: demo\nnginx:\n  http_port: 8080\n  grpc_port: 8080\n");
    assert_mentions(&err, &["mom.yaml:4:", "nginx.grpc_port", "8080 is already nginx.http_port"]);
    let err = up_fails("cluster: demo\nnginx:\n  http_port: 9090\n");
    assert_mentions(&err, &["mom.yaml:3:", "nginx.http_port", "default nginx.grpc_port", "null"]);
}
