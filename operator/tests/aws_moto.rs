//! Provider `aws` against a real peer of the EC2 API: `moto_server` (PyPI `moto[server]`) on
//! loopback, one server per test (so tests run in parallel without sharing EC2 state), reset
//! through `POST /moto-api/reset` before use.
//!
//! moto starts no machine, so these tests set `MOMCTL_AWS_DOCKER_HOST=local`: the containers of
//! the cluster's hosts are deployed onto the local Docker engine in place of the instances (in real
//! use they go to `https://<host 1's address>:2376` with momctl's client certificate). Everything
//! on the EC2 side (group, key pair, addresses, instances, tags, user data, waiters) is moto's.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_ec2::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_ec2::types::{Filter, InstanceStateName, InstanceType, ResourceType, Tag, TagSpecification};
use aws_sdk_ec2::Client;
use base64::Engine as _;
use common::cluster::{docker_or_skip, free_port, runtime, Unique, BROKER_IMAGE, PASSWORD, PASSWORD_ENV};
use common::{text, TempDir};

const REGION: &str = "us-east-1";
const ADMIN_CIDR: &str = "203.0.113.0/24";

/// A `moto_server` of this test, stopped when dropped.
struct Moto {
    child: Child,
    url: String,
}

impl Moto {
    /// Starts one, or None (after saying why) when moto is not installed outside CI.
    fn start() -> Option<Moto> {
        Moto::start_with(&[])
    }

    /// With moto's own settings in its environment (e.g. `MOTO_ENABLE_AMI_VALIDATION`).
    fn start_with(env: &[(&str, &str)]) -> Option<Moto> {
        let port = free_port();
        let child = match Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(child) => child,
            Err(e) => {
                common::skip(&format!(
                    "moto_server is not installed ({e}); pip install 'moto[server]' (.ci/run installs it)"
                ));
                return None;
            }
        };
        let moto = Moto { child, url: format!("http://127.0.0.1:{port}") };
        // Ready when its reset endpoint answers (bounded: 30 s).
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match http_status(true, &format!("{}/moto-api/reset", moto.url)) {
                Some(200) => return Some(moto),
                _ if Instant::now() > deadline => {
                    panic!("moto_server did not answer on {}", moto.url)
                }
                _ => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// The id of an AMI this moto ships, read from its API (`DescribeImages`, Amazon's): the ids
    /// of moto's default images are moto's to change, and with `MOTO_ENABLE_AMI_VALIDATION` only
    /// those are accepted. Not to be called from inside a runtime.
    fn ami(&self) -> String {
        let ec2 = self.client();
        runtime().block_on(async {
            let images = ec2.describe_images().owners("amazon").send().await.expect("images");
            images
                .images()
                .iter()
                .find_map(|i| i.image_id().map(str::to_string))
                .expect("moto ships default AMIs")
        })
    }

    fn client(&self) -> Client {
        let config = aws_sdk_ec2::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .endpoint_url(&self.url)
            .credentials_provider(Credentials::new("testing", "testing", None, None, "moto"))
            .build();
        Client::from_conf(config)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The status of an HTTP request, or None when it got no answer.
fn http_status(post: bool, url: &str) -> Option<u16> {
    runtime().block_on(async {
        let client = reqwest::Client::new();
        let request = if post { client.post(url) } else { client.get(url) };
        request.send().await.ok().map(|r| r.status().as_u16())
    })
}

/// One cluster on moto + the local engine: its directory, mom.yaml and environment.
struct AwsCluster {
    dir: TempDir,
    unique: Unique,
    moto_url: String,
    /// An AMI moto has ([`Moto::ami`]), what [`AwsCluster::write`] puts in mom.yaml.
    ami: String,
}

impl AwsCluster {
    fn new(prefix: &str, moto: &Moto) -> AwsCluster {
        AwsCluster {
            dir: TempDir::new(prefix),
            unique: Unique::new(prefix),
            moto_url: moto.url.clone(),
            ami: moto.ami(),
        }
    }

    fn cluster(&self) -> &str {
        &self.unique.cluster
    }

    fn home(&self) -> std::path::PathBuf {
        self.dir.path().join("momctl-home")
    }

    fn write(&self, hosts: u32, region: &str) {
        self.write_with(hosts, region, &self.ami, "t3.small");
    }

    fn write_with(&self, hosts: u32, region: &str, ami: &str, instance_type: &str) {
        let yaml = format!(
            "cluster: {cluster}\nprovider: aws\n\
             aws: {{ region: {region}, instance_type: {instance_type}, hosts: {hosts}, ami: {ami}, \
             admin_cidr: {ADMIN_CIDR}, endpoint_url: \"{url}\", running_timeout_s: 60 }}\n\
             network: {{ subnet: {subnet} }}\n\
             broker: {{ image: {BROKER_IMAGE}, nodes: 2 }}\n\
             redis: {{ image: mom-redis:7, mode: single, appendfsync: everysec }}\n\
             zookeeper: {{ image: mom-zookeeper:3.8, nodes: 1 }}\n\
             nginx: {{ image: mom-nginx:1.22, http_port: {port}, grpc_port: null, bind: 0.0.0.0, tls: null }}\n\
             secrets: {{ admin_password_env: {PASSWORD_ENV} }}\n",
            cluster = self.unique.cluster,
            url = self.moto_url,
            subnet = self.unique.subnet,
            port = self.unique.port,
        );
        self.dir.write("mom.yaml", &yaml);
    }

    /// momctl with test credentials, the cluster's own key directory, and the containers on the
    /// local engine (see the module's comment).
    fn run_with(&self, args: &[&str], extra: &[(&str, &str)], remove: &[&str]) -> Output {
        let home = self.home();
        let home = home.to_string_lossy();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_momctl"));
        cmd.current_dir(self.dir.path())
            .args(args)
            .env_remove("MOMCTL_CONFIG")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_ENDPOINT_URL")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/momctl-test")
            .env("AWS_CONFIG_FILE", "/nonexistent/momctl-test")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("MOMCTL_HOME", home.as_ref())
            .env("MOMCTL_AWS_DOCKER_HOST", "local")
            .env(PASSWORD_ENV, PASSWORD);
        for (k, v) in extra {
            cmd.env(k, v);
        }
        for k in remove {
            cmd.env_remove(k);
        }
        cmd.output().expect("run momctl")
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_with(args, &[], &[])
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "momctl {args:?} failed:\n{}\n{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }
}

/// `down --yes` whatever happens to the test (the local containers too).
impl Drop for AwsCluster {
    fn drop(&mut self) {
        let _ = self.run(&["down", "--yes"]);
    }
}

fn tag_filter(cluster: &str) -> Filter {
    Filter::builder().name("tag:mom:cluster").values(cluster).build()
}

/// Instances of the cluster that are not terminated: (id, Name, state).
async fn live_instances(ec2: &Client, cluster: &str) -> Vec<(String, String, String)> {
    let out = ec2.describe_instances().filters(tag_filter(cluster)).send().await.expect("describe instances");
    let mut found: Vec<(String, String, String)> = out
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .filter(|i| {
            !matches!(
                i.state().and_then(|s| s.name()),
                Some(InstanceStateName::Terminated | InstanceStateName::ShuttingDown)
            )
        })
        .map(|i| {
            let name = i
                .tags()
                .iter()
                .find(|t| t.key() == Some("Name"))
                .and_then(|t| t.value())
                .unwrap_or_default()
                .to_string();
            (
                i.instance_id().unwrap_or_default().to_string(),
                name,
                i.state().and_then(|s| s.name()).map(|n| n.as_str().to_string()).unwrap_or_default(),
            )
        })
        .collect();
    found.sort_by(|a, b| a.1.cmp(&b.1));
    found
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

/// Issue 7, points 1, 2 (user data as stored by EC2), 3 and 5: `up` creates the tagged group, key
/// pair and instances with user data and deploys the containers (onto the local Docker engine in
/// place of the instances: `MOMCTL_AWS_DOCKER_HOST=local`, since moto boots nothing); a second
/// `up` does nothing; 3 → 4 hosts is one instance to add in `plan`; an instance terminated behind
/// momctl's back is replaced; `down` removes what is tagged and nothing else.
#[test]
fn aws_up_converges_scales_replaces_and_down_removes_only_tagged() {
    let rt = runtime();
    let Some(_docker) = docker_or_skip(&rt) else {
        return;
    };
    let Some(moto) = Moto::start() else { return };
    let ec2 = moto.client();
    let c = AwsCluster::new("aws", &moto);
    let cluster = c.cluster().to_string();
    c.write(3, REGION);

    // plan: EC2 changes first, then the containers; nothing touched.
    let plan = c.run(&["plan"]);
    assert_eq!(plan.status.code(), Some(2), "{}", text(&plan.stderr));
    let plan = text(&plan.stdout);
    let host_1 = format!("-host-1: t3.small from {}", c.ami);
    for line in [
        "+ create security group mom-",
        "+ create key pair mom-",
        host_1.as_str(),
        "-host-3: t3.small",
        "+ create container",
    ] {
        assert!(plan.contains(line), "`{line}` not in plan:\n{plan}");
    }
    assert_eq!(plan.matches("+ create instance").count(), 3, "{plan}");
    assert!(rt.block_on(live_instances(&ec2, &cluster)).is_empty(), "plan touched EC2");

    let up = c.run(&["up"]);
    let (out, err) = (text(&up.stdout), text(&up.stderr));
    assert!(up.status.success(), "up failed:\n{out}\n{err}");
    for step in ["create security group", "create key pair", "run instance", "wait until running", "is up at"]
    {
        assert!(out.contains(step), "`{step}` not reported:\n{out}");
    }
    assert!(out.contains("local Docker engine in place of"), "the override is said:\n{out}");
    for secret in ["PRIVATE KEY", PASSWORD] {
        assert!(!out.contains(secret) && !err.contains(secret), "`{secret}` was printed");
    }

    // The key pair's private key and the TLS keys are the owner's only.
    let dir = c.home().join(&cluster);
    assert_eq!(mode(&dir.join("ssh-key.pem")), 0o600);
    assert_eq!(mode(&dir.join("ca-key.pem")), 0o600);
    assert_eq!(mode(&dir.join("key.pem")), 0o600);
    let key = std::fs::read_to_string(dir.join("ssh-key.pem")).expect("key file");
    assert!(key.contains("PRIVATE KEY"), "the key pair's private key is saved");

    rt.block_on(async {
        // Security group: inside-only, NGINX public, SSH and Docker API from admin_cidr.
        let groups =
            ec2.describe_security_groups().filters(tag_filter(&cluster)).send().await.expect("groups");
        let [group] = groups.security_groups() else { panic!("one tagged group: {groups:?}") };
        let gid = group.group_id().expect("group id");
        let rules = group.ip_permissions();
        let cidrs = |port: i32| -> Vec<String> {
            rules
                .iter()
                .filter(|p| p.from_port() == Some(port))
                .flat_map(|p| p.ip_ranges())
                .filter_map(|r| r.cidr_ip().map(str::to_string))
                .collect()
        };
        assert_eq!(cidrs(i32::from(c.unique.port)), ["0.0.0.0/0"], "NGINX is public");
        assert_eq!(cidrs(2376), [ADMIN_CIDR], "Docker API from admin_cidr only");
        assert_eq!(cidrs(22), [ADMIN_CIDR], "SSH from admin_cidr only");
        let inside = rules.iter().find(|p| p.ip_protocol() == Some("-1")).expect("all traffic rule");
        assert!(inside.ip_ranges().is_empty(), "everything else: no address range");
        assert_eq!(
            inside.user_id_group_pairs().first().and_then(|g| g.group_id()),
            Some(gid),
            "everything else only from inside the group"
        );
        for port in [6379, 2181, 8080].into_iter().filter(|p| *p != i32::from(c.unique.port)) {
            assert!(cidrs(port).is_empty(), "port {port} is not open to any address");
        }

        let keys = ec2.describe_key_pairs().filters(tag_filter(&cluster)).send().await.expect("keys");
        assert_eq!(keys.key_pairs().len(), 1, "one tagged key pair");

        let instances = live_instances(&ec2, &cluster).await;
        let names: Vec<&str> = instances.iter().map(|i| i.1.as_str()).collect();
        assert_eq!(
            names,
            [
                format!("mom-{cluster}-host-1"),
                format!("mom-{cluster}-host-2"),
                format!("mom-{cluster}-host-3")
            ]
        );
        assert!(instances.iter().all(|i| i.2 == "running"));

        // User data as EC2 stores it: cloud-config with the Docker TLS material, no secret.
        let attr = ec2
            .describe_instance_attribute()
            .instance_id(&instances[0].0)
            .attribute(aws_sdk_ec2::types::InstanceAttributeName::UserData)
            .send()
            .await
            .expect("user data");
        let encoded = attr.user_data().and_then(|u| u.value()).expect("user data set");
        let user_data =
            String::from_utf8(base64::engine::general_purpose::STANDARD.decode(encoded).expect("base64"))
                .expect("utf-8");
        assert!(user_data.starts_with("#cloud-config"), "{user_data}");
        assert!(user_data.contains("docker.io") && user_data.contains("tlsverify"));
        assert!(user_data.contains("BEGIN CERTIFICATE"));
        assert!(!user_data.contains(PASSWORD), "the admin password is not in user data");
        assert!(!user_data.contains(PASSWORD_ENV), "nor its variable");
    });

    // The cluster answers through NGINX (on the local engine).
    assert_eq!(http_status(false, &format!("{}/readyz", c.unique.base())), Some(200));

    // status lists the hosts found by tag, then the containers.
    let status = c.ok(&["status"]);
    assert!(status.contains(&format!("mom-{cluster}-host-3")), "{status}");
    assert!(status.contains("running"), "{status}");

    // A second up changes nothing, and says so.
    let again = c.ok(&["up"]);
    assert!(again.contains("nothing to do"), "{again}");
    assert_eq!(c.run(&["plan"]).status.code(), Some(0));

    // 3 → 4 hosts: one instance (and its address) to add, nothing else.
    c.write(4, REGION);
    let plan = c.run(&["plan"]);
    assert_eq!(plan.status.code(), Some(2));
    let plan = text(&plan.stdout);
    assert_eq!(plan.matches("+ create instance").count(), 1, "{plan}");
    assert!(plan.contains(&format!("+ create instance mom-{cluster}-host-4")), "{plan}");
    let json = c.run(&["plan", "--output", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).expect("plan json");
    let changes = json["changes"].as_array().expect("changes");
    let kinds: Vec<(&str, &str)> = changes
        .iter()
        .map(|c| (c["action"].as_str().unwrap_or(""), c["kind"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(kinds, [("create", "address"), ("create", "instance")], "{json}");
    c.ok(&["up"]);
    assert_eq!(rt.block_on(live_instances(&ec2, &cluster)).len(), 4);

    // An instance terminated behind momctl's back is replaced by the next up.
    let victim = rt.block_on(live_instances(&ec2, &cluster))[1].clone();
    rt.block_on(async {
        ec2.terminate_instances().instance_ids(&victim.0).send().await.expect("terminate");
    });
    let plan = c.run(&["plan"]);
    assert_eq!(plan.status.code(), Some(2));
    assert!(
        text(&plan.stdout).contains(&format!("+ create instance {}", victim.1)),
        "{}",
        text(&plan.stdout)
    );
    c.ok(&["up"]);
    let after = rt.block_on(live_instances(&ec2, &cluster));
    assert_eq!(after.len(), 4);
    let replaced = after.iter().find(|i| i.1 == victim.1).expect("host replaced");
    assert_ne!(replaced.0, victim.0, "a new instance");
    assert_eq!(replaced.2, "running");
    assert!(c.ok(&["up"]).contains("nothing to do"));

    // Untagged resources next to the cluster's survive down.
    let ami = moto.ami();
    let (untagged_group, untagged_instance) = rt.block_on(async {
        let g = ec2
            .create_security_group()
            .group_name(format!("mom-{cluster}-not-ours"))
            .description("not momctl's")
            .send()
            .await
            .expect("untagged group");
        let i = ec2
            .run_instances()
            .image_id(&ami)
            .instance_type(InstanceType::T3Micro)
            .min_count(1)
            .max_count(1)
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::Instance)
                    .tags(Tag::builder().key("Name").value(format!("mom-{cluster}-host-9")).build())
                    .build(),
            )
            .send()
            .await
            .expect("untagged instance");
        (g.group_id().expect("id").to_string(), i.instances()[0].instance_id().expect("id").to_string())
    });
    let down = c.ok(&["down", "--yes"]);
    assert!(down.contains("removed"), "{down}");
    rt.block_on(async {
        assert!(live_instances(&ec2, &cluster).await.is_empty(), "tagged instances terminated");
        let groups =
            ec2.describe_security_groups().filters(tag_filter(&cluster)).send().await.expect("groups");
        assert!(groups.security_groups().is_empty(), "tagged group deleted");
        let keys = ec2.describe_key_pairs().filters(tag_filter(&cluster)).send().await.expect("keys");
        assert!(keys.key_pairs().is_empty(), "tagged key pair deleted");
        let addresses =
            ec2.describe_addresses().filters(tag_filter(&cluster)).send().await.expect("addresses");
        assert!(addresses.addresses().is_empty(), "tagged addresses released");
        let g =
            ec2.describe_security_groups().group_ids(&untagged_group).send().await.expect("untagged group");
        assert_eq!(g.security_groups().len(), 1, "the untagged group survives down");
        let i = ec2
            .describe_instances()
            .instance_ids(&untagged_instance)
            .send()
            .await
            .expect("untagged instance");
        let state = i.reservations()[0].instances()[0].state().and_then(|s| s.name()).cloned();
        assert_eq!(state, Some(InstanceStateName::Running), "the untagged instance survives down");
    });
    assert!(!dir.exists(), "the cluster's local keys are removed by down");
    let again = c.ok(&["down", "--yes"]);
    assert!(again.contains("nothing to remove"), "{again}");
}

/// Issue 23, point 4: `ami: null` is resolved by `plan` (moto has no Debian 12 image, so it is
/// refused there with what to set), and `up` refuses it before the first resource is made.
#[test]
fn ami_null_is_resolved_by_plan_before_anything_is_made() {
    let rt = runtime();
    let Some(_docker) = docker_or_skip(&rt) else {
        return;
    };
    let Some(moto) = Moto::start() else {
        return;
    };
    let ec2 = moto.client();
    let c = AwsCluster::new("ami", &moto);
    let cluster = c.cluster().to_string();
    c.write_with(1, REGION, "null", "t3.small");
    for verb in ["plan", "up"] {
        let out = c.run(&[verb]);
        assert_eq!(out.status.code(), Some(1), "{verb}: {}", text(&out.stdout));
        let err = text(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{verb}: one line: {err}");
        for needle in ["aws.ami is null", "no Debian 12 AMI", REGION, "set aws.ami to an AMI id"] {
            assert!(err.contains(needle), "{verb}: `{needle}` not in: {err}");
        }
    }
    let tagged = rt.block_on(async {
        let groups =
            ec2.describe_security_groups().filters(tag_filter(&cluster)).send().await.expect("groups");
        let keys = ec2.describe_key_pairs().filters(tag_filter(&cluster)).send().await.expect("key pairs");
        let addresses =
            ec2.describe_addresses().filters(tag_filter(&cluster)).send().await.expect("addresses");
        groups.security_groups().len() + keys.key_pairs().len() + addresses.addresses().len()
    });
    assert_eq!(tagged, 0, "nothing made before the refusal");
    assert!(rt.block_on(live_instances(&ec2, &cluster)).is_empty());
}

/// Issue 7, point 4, against moto (started with its AMI and instance-type checks on; containers
/// onto the local Docker engine in place of the instances, `MOMCTL_AWS_DOCKER_HOST=local`): no
/// credentials, a wrong region, an AMI or instance type EC2 refuses each stop with one sentence
/// saying what to do; the refusals at `RunInstances` leave the group, key pair and addresses made
/// before them, and the next `up` converges from there. Quota and capacity refusals cannot be
/// provoked with moto (it has no quotas): their sentences are unit tests of `aws::classify`; an
/// instance that never reaches `running` is `the_running_waiter_times_out_and_fails_with_what_to_do`.
#[test]
fn aws_failures_are_one_sentence_and_a_later_up_converges() {
    let rt = runtime();
    let Some(_docker) = docker_or_skip(&rt) else {
        return;
    };
    let Some(moto) = Moto::start_with(&[
        ("MOTO_ENABLE_AMI_VALIDATION", "true"),
        ("MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION", "true"),
    ]) else {
        return;
    };
    let ec2 = moto.client();
    // mom.yaml names an AMI moto has (with validation on, made-up ids are refused).
    let c = AwsCluster::new("awsf", &moto);
    let cluster = c.cluster().to_string();
    c.write(1, REGION);

    let one_sentence = |out: &Output, needles: &[&str]| {
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
        let err = text(&out.stderr);
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "one line:\n{err}");
        for needle in needles {
            assert!(err.contains(needle), "`{needle}` not in: {err}");
        }
        assert!(err.contains("momctl up"), "says what to do: {err}");
    };

    let out = c.run_with(&["up"], &[], &["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]);
    one_sentence(&out, &["no AWS credentials found", "AWS_ACCESS_KEY_ID"]);

    c.write_with(1, "us-nowhere-1", &c.ami, "t3.small");
    let out = c.run(&["up"]);
    one_sentence(&out, &["aws.region `us-nowhere-1`", "us-east-1"]);

    c.write_with(1, REGION, &c.ami, "t3.small");
    let out = c.run_with(&["up"], &[], &[PASSWORD_ENV]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains(PASSWORD_ENV), "{}", text(&out.stderr));
    assert!(rt.block_on(live_instances(&ec2, &cluster)).is_empty(), "nothing was touched");

    c.write_with(1, REGION, "ami-0000000000000dead", "t3.small");
    let out = c.run(&["up"]);
    one_sentence(&out, &["aws.ami `ami-0000000000000dead`", "us-east-1"]);
    c.write_with(1, REGION, &c.ami, "t3.gigantic");
    let out = c.run(&["up"]);
    one_sentence(&out, &["aws.instance_type `t3.gigantic`", "not offered"]);
    assert!(rt.block_on(live_instances(&ec2, &cluster)).is_empty(), "no instance was made");

    // The next up continues from what the failed ones made.
    c.write_with(1, REGION, &c.ami, "t3.small");
    let up = c.ok(&["up"]);
    assert!(up.contains("is up at"), "{up}");
    assert!(up.contains("run instance"), "{up}");
    assert!(!up.contains("create security group"), "the group made before the failure is kept:\n{up}");
    assert!(!up.contains("create key pair"), "so is the key pair:\n{up}");
    assert_eq!(rt.block_on(live_instances(&ec2, &cluster)).len(), 1);
    assert!(c.ok(&["up"]).contains("nothing to do"));
}

/// Issue 7, point 2: the rendered user data is valid cloud-config (`cloud-init schema`, Debian's
/// cloud-init), carries the CA and the host's server certificate and key, and no secret; a
/// broken document fails the same check, so the check means something.
#[test]
fn user_data_is_valid_cloud_config_without_secrets() {
    use mom_operator::{aws, config, pki};
    if Command::new("cloud-init").arg("--version").output().is_err() {
        common::skip("cloud-init is not installed (apt-get install cloud-init; .ci/run installs it)");
        return;
    }
    let dir = TempDir::new("userdata");
    let yaml = format!(
        "cluster: ud\nprovider: aws\naws: {{ hosts: 2, admin_cidr: {ADMIN_CIDR} }}\nsecrets: {{ admin_password_env: {PASSWORD_ENV} }}\n"
    );
    let settings = config::parse(&yaml, "mom.yaml").and_then(|c| c.settings("mom.yaml")).expect("valid");
    let desired = aws::AwsDesired::from_settings(&settings).expect("aws");
    let pki = pki::Pki::ensure(&dir.path().join("pki"), "ud").expect("pki");
    let server = pki.server_cert("mom-ud-host-2", "198.51.100.7".parse().expect("ip")).expect("server cert");
    let rendered = aws::user_data(&desired, &desired.hosts[1], &pki.ca_cert_pem, &server).expect("renders");

    let file = dir.write("user-data.yaml", &rendered);
    let check = |path: &Path| {
        Command::new("cloud-init")
            .args(["schema", "--config-file"])
            .arg(path)
            .output()
            .expect("run cloud-init")
    };
    let out = check(&file);
    assert!(
        out.status.success(),
        "cloud-init schema:\n{}\n{}\n{rendered}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(text(&out.stdout).contains("Valid"), "{}", text(&out.stdout));

    assert!(rendered.contains(pki.ca_cert_pem.lines().nth(1).expect("pem body")));
    assert!(rendered.contains(server.key_pem.lines().nth(1).expect("pem body")));
    assert!(rendered.contains("tcp://0.0.0.0:2376") && rendered.contains("tlsverify"));
    assert!(!rendered.contains(PASSWORD_ENV) && !rendered.contains(PASSWORD));
    let ca_key = std::fs::read_to_string(dir.path().join("pki/ca-key.pem")).expect("ca key");
    assert!(!rendered.contains(ca_key.lines().nth(1).expect("pem body")), "the CA key stays local");

    let broken = dir
        .write("broken.yaml", &rendered.replace("package_update: true", "package_update: [not, a, boolean]"));
    assert!(!check(&broken).status.success(), "cloud-init schema rejects a broken document");
}

/// Issue 7, point 4, "an instance that never reaches running", as narrowly as moto allows: moto
/// makes every new instance `running` at once, so `up` cannot be made to wait in vain; here the
/// real SDK waiter `momctl up` uses (`Ec2::wait_running`) waits on an instance the test stopped
/// in moto (the waiter keeps polling a stopped one until its bound) and on one it terminated (a
/// failure state of the waiter), and each ends in its one sentence.
#[test]
fn the_running_waiter_times_out_and_fails_with_what_to_do() {
    use mom_operator::aws::{AwsError, Ec2};
    let Some(moto) = Moto::start() else { return };
    let rt = runtime();
    let ec2 = moto.client();
    let yaml =
        format!("cluster: wait\nprovider: aws\naws: {{ admin_cidr: {ADMIN_CIDR}, running_timeout_s: 2 }}\n");
    let settings = mom_operator::config::parse(&yaml, "mom.yaml")
        .and_then(|c| c.settings("mom.yaml"))
        .expect("valid")
        .aws
        .expect("aws");
    let waiter = Ec2::with_client(ec2.clone(), &settings, &moto.url);
    let ami = moto.ami();
    rt.block_on(async {
        let launch = || async {
            let out = ec2
                .run_instances()
                .image_id(&ami)
                .instance_type(InstanceType::T3Small)
                .min_count(1)
                .max_count(1)
                .send()
                .await
                .expect("run instance");
            out.instances()[0].instance_id().expect("id").to_string()
        };
        let stopped = launch().await;
        ec2.stop_instances().instance_ids(&stopped).send().await.expect("stop");
        let started = Instant::now();
        let err = waiter
            .wait_running(&[(stopped.clone(), "mom-wait-host-1".to_string())])
            .await
            .expect_err("a stopped instance never becomes running by itself");
        assert!(started.elapsed() < Duration::from_secs(30), "bounded by running_timeout_s");
        assert!(matches!(err, AwsError::NeverRunning { .. }), "{err:?}");
        let message = err.to_string();
        for needle in [stopped.as_str(), "mom-wait-host-1", "within 2 s", "momctl up"] {
            assert!(message.contains(needle), "`{needle}` not in: {message}");
        }

        let terminated = launch().await;
        ec2.terminate_instances().instance_ids(&terminated).send().await.expect("terminate");
        let err = waiter
            .wait_running(&[(terminated.clone(), "mom-wait-host-2".to_string())])
            .await
            .expect_err("a terminated instance never runs");
        let message = err.to_string();
        assert!(matches!(err, AwsError::FailedState { .. }), "{err:?}");
        for needle in [terminated.as_str(), "terminated", "replaced", "momctl up"] {
            assert!(message.contains(needle), "`{needle}` not in: {message}");
        }
    });
}

/// Three simulated EC2 hosts, each with its own Docker engine (`tests/multihost/hosts.sh`:
/// Docker-in-Docker on a bridge of their own), removed when dropped.
struct SimulatedHosts {
    /// `tcp://IP:2375` of each host's engine, host 1 first.
    engines: Vec<String>,
}

impl SimulatedHosts {
    const SCRIPT: &str = "tests/multihost/hosts.sh";

    fn run(args: &[&str]) -> Output {
        Command::new(common::repo_root().join(Self::SCRIPT))
            .args(args)
            .env("N", "3")
            .env("SWARM", "0")
            .output()
            .expect("run tests/multihost/hosts.sh")
    }

    /// Starts them (idempotent: a few seconds once the host image is built), or None outside CI
    /// when they cannot start here.
    fn up() -> Option<SimulatedHosts> {
        let up = Self::run(&["up"]);
        if !up.status.success() {
            let why = format!("{}{}", text(&up.stdout), text(&up.stderr));
            common::skip(&format!("the simulated hosts did not start ({} up):\n{why}", Self::SCRIPT));
            return None;
        }
        let addrs = text(&Self::run(&["addrs"]).stdout).trim().to_string();
        Some(SimulatedHosts { engines: addrs.split(',').map(str::to_string).collect() })
    }

    /// The services of `cluster` whose containers host `host`'s engine runs (running ones).
    fn services(&self, host: usize, cluster: &str) -> Vec<String> {
        let out = Command::new("docker")
            .args(["-H", self.engines[host - 1].as_str(), "ps", "--format", "{{.Label \"mom.service\"}}"])
            .args(["--filter", &format!("label=mom.cluster={cluster}")])
            .output()
            .expect("docker ps");
        let mut services: Vec<String> = text(&out.stdout).lines().map(str::to_string).collect();
        services.sort();
        services
    }

    /// `docker stop|start` host `host`'s machine (its engine and everything on it).
    fn power(&self, host: usize, on: bool) {
        let name = format!("mom-host-{host}");
        let out = Command::new("docker")
            .args([if on { "start" } else { "stop" }, name.as_str()])
            .output()
            .expect("docker");
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
}

impl Drop for SimulatedHosts {
    fn drop(&mut self) {
        let _ = Self::run(&["down"]);
    }
}

/// Issue 10, point 4 on provider aws: `plan` shows the containers of a replicated Redis, a
/// ZooKeeper ensemble and three brokers on the three hosts, and `up` deploys them there: the
/// hosts' engines form a Swarm, the cluster's network is an overlay with the same fixed addresses,
/// and the images, which are only on this machine, are copied to each host (no registry). Sentinel
/// i, ZooKeeper server i and broker i run on host i; the clients' endpoint is host 1's NGINX. A
/// rolling upgrade copies the new image to every host and keeps each broker on its host. With
/// host 3 powered off, messages still go through; `down` removes the containers of every host.
///
/// moto starts no machine: each host is a Docker-in-Docker container with its own engine
/// (`tests/multihost`), given to momctl by `MOMCTL_AWS_DOCKER_HOST=tcp://…,tcp://…,tcp://…`.
#[test]
fn aws_hosts_spread_the_cluster_across_three_docker_engines() {
    use common::api::{drain, send_all, Api};
    use reqwest::Method;
    use serde_json::json;

    let rt = runtime();
    if docker_or_skip(&rt).is_none() {
        return;
    }
    let Some(hosts) = SimulatedHosts::up() else {
        return;
    };
    let Some(moto) = Moto::start() else {
        return;
    };
    let c = AwsCluster::new("mh", &moto);
    c.write(3, REGION);
    let yaml = std::fs::read_to_string(c.dir.path().join("mom.yaml")).expect("mom.yaml");
    let yaml = yaml
        .replace("mode: single", "mode: replicated")
        .replace("nodes: 1 }", "nodes: 3 }")
        .replace("nodes: 2 }", "nodes: 3 }")
        .replace("bind: 127.0.0.1", "bind: 0.0.0.0");
    c.dir.write("mom.yaml", &yaml);
    let engines = hosts.engines.join(",");
    let env = [("MOMCTL_AWS_DOCKER_HOST", engines.as_str())];
    let momctl = |args: &[&str]| {
        let out = c.run_with(args, &env, &[]);
        eprintln!("$ momctl {}\n{}{}", args.join(" "), text(&out.stdout), text(&out.stderr));
        out
    };
    let container = |service: &str| format!("mom-{}-{service}", c.cluster());

    let plan = momctl(&["plan"]);
    assert_eq!(plan.status.code(), Some(2), "changes to make");
    let shown = text(&plan.stdout);
    for (service, host) in
        [("zookeeper-3", 3), ("redis-sentinel-2", 2), ("redis-replica-1", 2), ("broker-3", 3), ("nginx", 1)]
    {
        let line = format!("+ create container {} on host {host}:", container(service));
        assert!(shown.contains(&line), "`{line}` not in the plan:\n{shown}");
    }
    assert!(shown.contains("swarm") && shown.contains("on host 3"), "{shown}");

    let up = momctl(&["up"]);
    assert!(up.status.success(), "up failed");
    let said = text(&up.stdout);
    let copied = said.lines().find(|l| l.contains("✓ copy") && l.contains("to host 3")).unwrap_or_default();
    assert!(copied.contains("mom-zookeeper:3.8") && copied.contains(BROKER_IMAGE), "{said}");
    let on = |host: usize| hosts.services(host, c.cluster());
    assert_eq!(on(1), ["broker-1", "nginx", "redis", "redis-sentinel-1", "zookeeper"]);
    assert_eq!(on(2), ["broker-2", "redis-replica-1", "redis-sentinel-2", "zookeeper-2"]);
    assert_eq!(on(3), ["broker-3", "redis-replica-2", "redis-sentinel-3", "zookeeper-3"]);
    assert_eq!(momctl(&["plan"]).status.code(), Some(0), "converged");
    let status = text(&momctl(&["status"]).stdout);
    assert!(status.contains("HOST"), "{status}");
    assert!(status.contains("brokers (GET /v1/cluster through NGINX): 3 node(s)"), "{status}");

    // Clients reach host 1's NGINX; the brokers of all three hosts serve.
    let host_1 = hosts.engines[0]
        .trim_start_matches("tcp://")
        .rsplit_once(':')
        .map(|(ip, _)| ip.to_string())
        .expect("host 1's address");
    let base = format!("http://{host_1}:{}", c.unique.port);
    rt.block_on(async {
        let api = Api::login(&base).await;
        api.nodes(3).await;
        let (status, created) = api.call(Method::PUT, "/v1/queues/mh-q", json!({})).await;
        assert_eq!(status, 201, "create queue: {created}");
        send_all(&api, "mh-q", 0, 20, Duration::from_secs(20)).await;
        assert_eq!(drain(&api, "mh-q", 20).await.len(), 20);
    });

    // A rolling upgrade reaches every host: the new image (a new tag here) is copied to each,
    // and each broker's next generation starts on its own host.
    let next = format!("mom-broker:{}", c.cluster());
    let tagged = Command::new("docker").args(["tag", BROKER_IMAGE, &next]).status().expect("docker tag");
    assert!(tagged.success());
    let upgrade = momctl(&["upgrade", "--broker-image", &next]);
    let _ = Command::new("docker").args(["rmi", &next]).status();
    assert!(upgrade.status.success(), "upgrade failed");
    let said = text(&upgrade.stdout);
    assert!(said.contains(&format!("runs {next} on every broker")), "{said}");
    for host in 1..=3 {
        assert!(said.contains(&format!("to host {host}")), "the image was not copied to host {host}: {said}");
        assert!(on(host).contains(&format!("broker-{host}")), "broker-{host} left host {host}");
    }
    rt.block_on(async {
        let api = Api::login(&base).await;
        api.nodes(3).await;
        send_all(&api, "mh-q", 50, 5, Duration::from_secs(20)).await;
        assert_eq!(drain(&api, "mh-q", 5).await.len(), 5);
    });

    // Host 3 goes down with a replica, a Sentinel, a ZooKeeper server and a broker: sends
    // and receives go on (a retried send keeps its dedup_id).
    hosts.power(3, false);
    rt.block_on(async {
        let api = Api::login(&base).await;
        let failed = send_all(&api, "mh-q", 100, 20, Duration::from_secs(60)).await;
        eprintln!("with host 3 down: 20 sends acknowledged, {failed} attempts failed on the way");
        assert_eq!(drain(&api, "mh-q", 20).await.len(), 20);
    });
    hosts.power(3, true);
    // Its engine answers again before `down` removes what each host has.
    assert!(SimulatedHosts::run(&["up"]).status.success());
    let down = momctl(&["down", "--yes"]);
    assert!(down.status.success(), "down failed");
    for host in 1..=3 {
        assert!(on(host).is_empty(), "host {host} still runs {:?}", on(host));
    }
}
