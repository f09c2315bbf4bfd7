//! Issue 7, point 2, with a real Docker daemon: the Docker configuration that the aws provider's
//! user data installs (its `daemon.json`, CA, server certificate and key, all taken from the
//! rendered cloud-config) makes a `dockerd` serve its API with mutual TLS, and momctl's client
//! (`Engine::connect_tls`, bollard over rustls with the client certificate momctl made) gets in
//! while a client with another CA's certificate does not.
//!
//! No EC2 instance boots here (moto starts none): a second `dockerd` on this machine stands in for
//! the instance's, isolated in a temporary directory (own data root, sockets, no iptables, no
//! bridge) and listening on loopback instead of 0.0.0.0:2376.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::cluster::{free_port, runtime};
use common::TempDir;
use mom_operator::docker::Engine;
use mom_operator::{aws, config, pki};

/// A dockerd of this test, stopped (SIGTERM, so it stops its containerd too) when dropped.
struct Dockerd(Child);

impl Drop for Dockerd {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The `content` of the write_files entry at `path` in the cloud-config.
fn written(cloud_config: &serde_json::Value, path: &str) -> String {
    cloud_config["write_files"]
        .as_array()
        .expect("write_files")
        .iter()
        .find(|f| f["path"] == path)
        .and_then(|f| f["content"].as_str())
        .unwrap_or_else(|| panic!("{path} is not written by the user data"))
        .to_string()
}

#[test]
fn the_user_datas_docker_config_serves_mutual_tls_to_momctl_only() {
    let Ok(dockerd) = which("dockerd") else {
        common::skip("no dockerd binary on this machine (CI's runs a Docker engine)");
        return;
    };
    let dir = TempDir::new("dockerd-tls");
    let yaml = "cluster: tls\nprovider: aws\naws: { hosts: 1, admin_cidr: 127.0.0.1/32 }\n";
    let settings = config::parse(yaml, "mom.yaml").and_then(|c| c.settings("mom.yaml")).expect("valid");
    let desired = aws::AwsDesired::from_settings(&settings).expect("aws");
    let client_dir = dir.path().join("momctl");
    let pki = pki::Pki::ensure(&client_dir, "tls").expect("pki");
    // The host's address: loopback here, its Elastic IP on EC2.
    let server =
        pki.server_cert(&desired.hosts[0].name, "127.0.0.1".parse().expect("ip")).expect("server cert");
    let rendered = aws::user_data(&desired, &desired.hosts[0], &pki.ca_cert_pem, &server).expect("renders");
    let cloud_config: serde_json::Value = serde_saphyr::from_str(&rendered).expect("user data is YAML");

    // The instance's files, under the test's directory.
    let etc = dir.path().join("etc-docker");
    std::fs::create_dir_all(etc.join("tls")).expect("dir");
    for file in ["ca.pem", "server-cert.pem", "server-key.pem"] {
        let content = written(&cloud_config, &format!("/etc/docker/tls/{file}"));
        std::fs::write(etc.join("tls").join(file), content).expect("write");
    }
    let mut daemon: serde_json::Value =
        serde_json::from_str(&written(&cloud_config, "/etc/docker/daemon.json"))
            .expect("daemon.json is JSON");
    assert_eq!(daemon["tlsverify"], true, "clients must present a certificate");
    assert!(daemon["hosts"].as_array().expect("hosts").iter().any(|h| h == "tcp://0.0.0.0:2376"), "{daemon}");
    // Same TLS settings; loopback, a free port and a private root instead of the instance's.
    let port = free_port();
    let root = dir.path();
    for key in ["tlscacert", "tlscert", "tlskey"] {
        let path = daemon[key].as_str().expect("path").replace("/etc/docker", &etc.to_string_lossy());
        daemon[key] = path.into();
    }
    daemon["hosts"] = serde_json::json!([
        format!("unix://{}", root.join("docker.sock").display()),
        format!("tcp://127.0.0.1:{port}")
    ]);
    daemon["data-root"] = root.join("data").to_string_lossy().into_owned().into();
    daemon["exec-root"] = root.join("exec").to_string_lossy().into_owned().into();
    daemon["pidfile"] = root.join("docker.pid").to_string_lossy().into_owned().into();
    daemon["iptables"] = false.into();
    daemon["bridge"] = "none".into();
    let config_file = root.join("daemon.json");
    std::fs::write(&config_file, daemon.to_string()).expect("write daemon.json");

    let log = std::fs::File::create(root.join("dockerd.log")).expect("log");
    let _dockerd = Dockerd(
        Command::new(dockerd)
            .arg("--config-file")
            .arg(&config_file)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start dockerd"),
    );

    let addr = format!("https://127.0.0.1:{port}");
    let rt = runtime();
    // dockerd takes a few seconds to listen: ask until it answers (bounded).
    let deadline = Instant::now() + Duration::from_secs(60);
    let engine = loop {
        match rt.block_on(Engine::connect_tls(&addr, &client_dir)) {
            Ok(engine) => break engine,
            Err(e) if Instant::now() > deadline => panic!(
                "momctl could not reach dockerd over TLS: {e}\n{}",
                std::fs::read_to_string(root.join("dockerd.log")).unwrap_or_default()
            ),
            Err(_) => std::thread::sleep(Duration::from_millis(250)),
        }
    };
    let containers = rt.block_on(engine.containers("tls")).expect("list over mutual TLS");
    assert!(containers.is_empty());

    // A client certificate of another CA is refused.
    let stranger = dir.path().join("stranger");
    pki::Pki::ensure(&stranger, "tls").expect("other pki");
    std::fs::copy(client_dir.join("ca.pem"), stranger.join("ca.pem")).expect("trust the server");
    assert!(
        rt.block_on(Engine::connect_tls(&addr, &stranger)).is_err(),
        "a certificate of another CA must not get in"
    );
    // So is a client without TLS.
    assert!(plain_http_refused(port), "the Docker API must not answer plain HTTP");
}

fn which(binary: &str) -> Result<std::path::PathBuf, ()> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain(["/usr/sbin".into(), "/usr/bin".into()])
        .map(|d| d.join(binary))
        .find(|p| Path::new(p).is_file())
        .ok_or(())
}

/// Whether a plain HTTP `GET /_ping` gets no Docker answer.
fn plain_http_refused(port: u16) -> bool {
    runtime().block_on(async {
        match reqwest::get(format!("http://127.0.0.1:{port}/_ping")).await {
            Ok(r) => r.status() != 200,
            Err(_) => true,
        }
    })
}
