//! Rendered files: NGINX accepts the config (`nginx -t`), docker-compose accepts the compose
//! file (`docker-compose config`), the config says what the brokers depend on, no secret is
//! written, and the reference files in compose/ and nginx/ are what the templates render for the
//! default mom.yaml (set MOM_UPDATE_REFERENCE=1 to rewrite them).

mod common;

use std::path::Path;
use std::process::Command;

use common::{momctl, repo_root, text, TempDir};
use mom_operator::config;
use mom_operator::desired::Desired;
use mom_operator::render::{self, RenderedFile};

fn rendered(yaml: &str) -> Vec<RenderedFile> {
    render::host_files(&desired(yaml, 1), None).expect("renders")
}

/// The cluster of `yaml` spread over `hosts` hosts.
fn desired(yaml: &str, hosts: u32) -> Desired {
    let settings = config::parse(yaml, "mom.yaml").and_then(|c| c.settings("mom.yaml")).expect("valid");
    Desired::on_hosts(&settings, hosts)
}

/// `docker-compose config -q` of the compose.yml under `dir`: its stderr when it refuses.
fn compose_config(dir: &Path) -> Result<(), String> {
    let out = Command::new("docker-compose")
        .current_dir(dir.join("compose"))
        .args(["-f", "compose.yml", "config", "-q"])
        .env("MOM_ADMIN_PASSWORD", "rendered-file-check-password")
        // `render --out` writes these generated ones to compose/.env.
        .env("MOM_REDIS_PASSWORD", "rendered-redis-password")
        .env("MOM_ZK_AUTH", "mom:rendered-zk-password")
        .output()
        .expect("run docker-compose");
    if out.status.success() {
        Ok(())
    } else {
        Err(text(&out.stderr))
    }
}

fn file<'a>(files: &'a [RenderedFile], path: &str) -> &'a str {
    &files.iter().find(|f| f.path == path).unwrap_or_else(|| panic!("{path} not rendered")).content
}

fn tool(name: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// In CI every tool is installed by .ci/run; elsewhere a missing one skips its check.
fn require(name: &str) -> bool {
    if tool(name) {
        return true;
    }
    common::skip(&format!("{name} is not installed (.ci/run installs it)"));
    false
}

#[test]
fn nginx_accepts_the_rendered_config() {
    if !require("nginx") {
        return;
    }
    for nodes in [1, 3, 7] {
        let files = rendered(&config::default_file("ngx").replace("nodes: 3 ", &format!("nodes: {nodes} ")));
        let dir = TempDir::new("nginx-t");
        let conf = dir.write("nginx.conf", file(&files, "nginx/nginx.conf"));
        let out = Command::new("nginx")
            .args(["-t", "-p"])
            .arg(dir.path())
            .arg("-c")
            .arg(&conf)
            .output()
            .expect("run nginx -t");
        assert!(out.status.success(), "nginx -t failed for {nodes} brokers: {}", text(&out.stderr));
    }
}

#[test]
fn the_nginx_config_does_what_the_brokers_need() {
    let files = rendered(&config::default_file("ngx"));
    let conf = file(&files, "nginx/nginx.conf");
    let directives: Vec<String> = conf
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    let has = |d: &str| directives.iter().any(|l| l == d);
    for needed in [
        "proxy_http_version 1.1;",
        "proxy_set_header Connection \"\";",
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "proxy_next_upstream error timeout http_502 http_503;",
        "client_max_body_size 6m;",
        "location ~ /stream$ {",
        "proxy_buffering off;",
        "proxy_read_timeout 1h;",
        "keepalive 64;",
    ] {
        assert!(has(needed), "missing `{needed}` in:\n{conf}");
    }
    assert!(
        !directives.iter().any(|l| l.contains("non_idempotent")),
        "POSTs must never be replayed on another broker"
    );
    // Two servers (slots: even and odd generations) per broker in each upstream, so an upgrade
    // needs no reload: HTTP on the brokers' 8080, gRPC on their 9090.
    let servers_on = |port: &str| {
        directives.iter().filter(|l| l.starts_with("server 10.") && l.contains(&format!(":{port} "))).count()
    };
    assert_eq!(servers_on("8080"), 6, "two HTTP upstream slots per broker:\n{conf}");
    assert_eq!(servers_on("9090"), 6, "two gRPC upstream slots per broker:\n{conf}");
    for needed in ["listen 90 http2;", "grpc_pass grpc://mom_grpc;", "grpc_next_upstream error timeout;"] {
        assert!(has(needed), "missing `{needed}` (gRPC is on by default) in:\n{conf}");
    }
    // `grpc_port: null` turns the gRPC server block off.
    let off = rendered(&config::default_file("ngx").replace("grpc_port: 9090", "grpc_port: null"));
    let off = file(&off, "nginx/nginx.conf");
    assert!(!off.contains("grpc_pass"), "gRPC still proxied with grpc_port: null:\n{off}");
    // Long polls hold 20 s: every read timeout is well above 25 s.
    for line in directives.iter().filter(|l| l.starts_with("proxy_read_timeout")) {
        let value = line.trim_start_matches("proxy_read_timeout").trim().trim_end_matches(';');
        let secs = match value.strip_suffix('h') {
            Some(h) => h.parse::<u64>().expect("hours") * 3600,
            None => value.trim_end_matches('s').parse::<u64>().expect("seconds"),
        };
        assert!(secs > 25, "{line}");
    }
}

#[test]
fn docker_compose_accepts_the_rendered_file() {
    if !require("docker-compose") {
        return;
    }
    // The default cluster, and one with replicated Redis (Sentinels) and a ZooKeeper ensemble.
    let replicated = config::default_file("cmp")
        .replace("mode: single ", "mode: replicated ")
        .replace("nodes: 1 ", "nodes: 3 ");
    for yaml in [config::default_file("cmp"), replicated.clone()] {
        let dir = TempDir::new("compose");
        render::write_files(dir.path(), &rendered(&yaml)).expect("written");
        if let Err(e) = compose_config(dir.path()) {
            panic!("docker-compose config: {e}");
        }
    }
    // Across 3 hosts: one compose.yml per host with that host's containers; host 1's makes the
    // overlay network (and runs NGINX), the others join it.
    let spread = desired(&replicated, 3);
    for host in 1..=3 {
        let part = spread.on_host(host);
        let files = render::host_files(&part, None).expect("renders");
        let compose = file(&files, "compose/compose.yml");
        let zookeeper = if host == 1 { "zookeeper".to_string() } else { format!("zookeeper-{host}") };
        assert!(
            compose.contains(&format!("\n  {zookeeper}:\n")),
            "{zookeeper} not on host {host}:\n{compose}"
        );
        assert_eq!(compose.contains("external: true"), host > 1, "{compose}");
        assert_eq!(compose.contains("driver: overlay"), host == 1, "{compose}");
        assert_eq!(files.iter().any(|f| f.path == "nginx/nginx.conf"), host == 1);
        let dir = TempDir::new("compose-host");
        render::write_files(dir.path(), &files).expect("written");
        if let Err(e) = compose_config(dir.path()) {
            panic!("docker-compose config of host {host}: {e}");
        }
    }
    let dir = TempDir::new("compose");
    render::write_files(dir.path(), &rendered(&config::default_file("cmp"))).expect("written");
    // Without the password compose refuses to start brokers, and says which variable to set.
    let out = Command::new("docker-compose")
        .current_dir(dir.path().join("compose"))
        .args(["-f", "compose.yml", "config", "-q"])
        .env_remove("MOM_ADMIN_PASSWORD")
        .env("MOM_REDIS_PASSWORD", "rendered-redis-password")
        .env("MOM_ZK_AUTH", "mom:rendered-zk-password")
        .output()
        .expect("run docker-compose");
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("MOM_ADMIN_PASSWORD"));
}

#[test]
fn no_secret_is_written_and_env_files_are_private() {
    let dir = TempDir::new("render");
    dir.write("mom.yaml", &config::default_file("sec"));
    let secret = "do-not-write-this-password";
    let home = dir.path().join("momctl-home");
    let home_var = home.display().to_string();
    let out = momctl(
        dir.path(),
        &["render", "--out", "out"],
        &[("MOM_ADMIN_PASSWORD", secret), ("MOMCTL_HOME", &home_var)],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    // The secrets momctl generated for the cluster, kept in its directory.
    let generated = std::fs::read_to_string(home.join("sec").join(mom_operator::secrets::FILE))
        .expect("the cluster's generated secrets");
    let values: Vec<&str> = generated.lines().filter_map(|l| l.split_once('=').map(|(_, v)| v)).collect();
    assert_eq!(values.len(), 2, "{generated}");
    let output = format!("{}{}", text(&out.stdout), text(&out.stderr));
    for s in values.iter().copied().chain([secret]) {
        assert!(!output.contains(s), "render printed a secret:\n{output}");
    }
    let host = dir.path().join("out/local");
    for path in [
        "compose/compose.yml",
        "compose/broker-1.env",
        "compose/broker-3.env",
        "compose/redis.env",
        "nginx/nginx.conf",
    ] {
        let Ok(content) = std::fs::read_to_string(host.join(path)) else {
            assert_eq!(path, "compose/redis.env", "{path} not rendered");
            continue;
        };
        assert!(!content.contains(secret), "{path} holds the secret");
        for s in &values {
            assert!(!content.contains(s), "{path} holds a generated secret");
        }
    }
    // compose's .env carries the generated ones, for docker-compose to pass on.
    let dotenv = std::fs::read_to_string(host.join("compose/.env")).expect(".env");
    for s in &values {
        assert!(dotenv.contains(s), ".env lacks a generated secret");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).expect("file").permissions().mode() & 0o777;
        for path in ["compose/broker-1.env", "compose/.env"] {
            assert_eq!(mode(&host.join(path)), 0o600, "{path}");
        }
        assert_eq!(mode(&home.join("sec").join(mom_operator::secrets::FILE)), 0o600);
    }
}

#[test]
fn tls_renders_a_redirect_an_https_server_and_a_private_key_nginx_accepts() {
    let dir = TempDir::new("render-tls");
    let yaml = config::default_file("tls").replace("tls: null", "tls: self_signed");
    dir.write("mom.yaml", &yaml);
    let home = dir.path().join("momctl-home");
    let home_var = home.display().to_string();
    let out = momctl(
        dir.path(),
        &["render", "--out", "out"],
        &[("MOM_ADMIN_PASSWORD", "x"), ("MOMCTL_HOME", &home_var)],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let host = dir.path().join("out/local");
    let conf = std::fs::read_to_string(host.join("nginx/nginx.conf")).expect("nginx.conf");
    for needed in [
        "listen 443 ssl http2;",
        "listen 90 ssl http2;",
        "ssl_protocols TLSv1.2 TLSv1.3;",
        "return 308 https://$host:8443$request_uri;",
    ] {
        assert!(conf.contains(needed), "missing `{needed}` in:\n{conf}");
    }
    let compose = std::fs::read_to_string(host.join("compose/compose.yml")).expect("compose");
    assert!(compose.contains("\"127.0.0.1:8443:443\""), "{compose}");
    assert!(compose.contains("../nginx/tls/server.key:/etc/nginx/mom-server.key:ro"), "{compose}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).expect("file").permissions().mode() & 0o777;
        assert_eq!(mode(&host.join("nginx/tls/server.key")), 0o600);
        assert_eq!(mode(&home.join("tls/nginx-key.pem")), 0o600);
        assert_eq!(mode(&home.join("tls/ca-key.pem")), 0o600);
    }
    // The same certificate as the cluster's directory keeps (made once, by its CA).
    let cert = std::fs::read_to_string(host.join("nginx/tls/server.crt")).expect("cert");
    assert_eq!(cert, std::fs::read_to_string(home.join("tls/nginx-cert.pem")).expect("kept"));
    if !require("nginx") {
        return;
    }
    let conf = conf
        .replace("/etc/nginx/mom-server.crt", &host.join("nginx/tls/server.crt").display().to_string())
        .replace("/etc/nginx/mom-server.key", &host.join("nginx/tls/server.key").display().to_string());
    let path = dir.write("nginx-tls.conf", &conf);
    let out = Command::new("nginx")
        .args(["-t", "-p"])
        .arg(dir.path())
        .arg("-c")
        .arg(&path)
        .output()
        .expect("run nginx -t");
    assert!(out.status.success(), "nginx -t: {}", text(&out.stderr));
}

#[test]
fn reference_files_match_the_templates() {
    let root = repo_root();
    let default = config::default_file("demo");
    let committed = std::fs::read_to_string(root.join("mom.yaml")).expect("mom.yaml at the repository root");
    let files = rendered(&default);
    let update = std::env::var_os("MOM_UPDATE_REFERENCE").is_some();
    if update {
        std::fs::write(root.join("mom.yaml"), &default).expect("write mom.yaml");
        render::write_files(&root, &files).expect("write reference files");
        return;
    }
    assert_eq!(
        committed, default,
        "mom.yaml differs from `momctl init` (MOM_UPDATE_REFERENCE=1 rewrites it)"
    );
    for f in &files {
        let path = root.join(&f.path);
        let on_disk = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            on_disk == f.content,
            "{} is not what the templates render; run MOM_UPDATE_REFERENCE=1 cargo test -p mom-operator --test render",
            Path::new(&f.path).display()
        );
    }
    // Nothing stale: every reference file is one the templates make.
    for dir in ["compose", "nginx"] {
        for entry in std::fs::read_dir(root.join(dir)).expect("reference dir").flatten() {
            let rel = format!("{dir}/{}", entry.file_name().to_string_lossy());
            assert!(files.iter().any(|f| f.path == rel), "{rel} is not rendered any more");
        }
    }
}
