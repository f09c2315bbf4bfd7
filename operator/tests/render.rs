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
    let settings = config::parse(yaml, "mom.yaml")
        .and_then(|c| c.settings("mom.yaml"))
        .expect("valid");
    render::host_files(&Desired::from_settings(&settings)).expect("renders")
}

fn file<'a>(files: &'a [RenderedFile], path: &str) -> &'a str {
    &files
        .iter()
        .find(|f| f.path == path)
        .unwrap_or_else(|| panic!("{path} not rendered"))
        .content
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
    assert!(
        std::env::var_os("CI").is_none(),
        "{name} is missing (.ci/run installs it)"
    );
    eprintln!("skipping: {name} is not installed");
    false
}

#[test]
fn nginx_accepts_the_rendered_config() {
    if !require("nginx") {
        return;
    }
    for nodes in [1, 3, 7] {
        let files = rendered(
            &config::default_file("ngx").replace("nodes: 3 ", &format!("nodes: {nodes} ")),
        );
        let dir = TempDir::new("nginx-t");
        let conf = dir.write("nginx.conf", file(&files, "nginx/nginx.conf"));
        let out = Command::new("nginx")
            .args(["-t", "-p"])
            .arg(dir.path())
            .arg("-c")
            .arg(&conf)
            .output()
            .expect("run nginx -t");
        assert!(
            out.status.success(),
            "nginx -t failed for {nodes} brokers: {}",
            text(&out.stderr)
        );
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
    // One server per broker in each upstream: HTTP on the brokers' 8080, gRPC on their 9090.
    let servers_on = |port: &str| {
        directives
            .iter()
            .filter(|l| l.starts_with("server 10.") && l.contains(&format!(":{port} ")))
            .count()
    };
    assert_eq!(servers_on("8080"), 3, "one HTTP upstream server per broker:\n{conf}");
    assert_eq!(servers_on("9090"), 3, "one gRPC upstream server per broker:\n{conf}");
    for needed in ["listen 90 http2;", "grpc_pass grpc://mom_grpc;", "grpc_next_upstream error timeout;"] {
        assert!(has(needed), "missing `{needed}` (gRPC is on by default) in:\n{conf}");
    }
    // `grpc_port: null` turns the gRPC server block off.
    let off = rendered(&config::default_file("ngx").replace("grpc_port: 9090", "grpc_port: null"));
    let off = file(&off, "nginx/nginx.conf");
    assert!(!off.contains("grpc_pass"), "gRPC still proxied with grpc_port: null:\n{off}");
    // Long polls hold 20 s: every read timeout is well above 25 s.
    for line in directives
        .iter()
        .filter(|l| l.starts_with("proxy_read_timeout"))
    {
        let value = line
            .trim_start_matches("proxy_read_timeout")
            .trim()
            .trim_end_matches(';');
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
    let dir = TempDir::new("compose");
    render::write_files(dir.path(), &rendered(&config::default_file("cmp"))).expect("written");
    let out = Command::new("docker-compose")
        .current_dir(dir.path().join("compose"))
        .args(["-f", "compose.yml", "config", "-q"])
        .env("MOM_ADMIN_PASSWORD", "rendered-file-check-password")
        .output()
        .expect("run docker-compose");
    assert!(
        out.status.success(),
        "docker-compose config: {}",
        text(&out.stderr)
    );
    // Without the password compose refuses to start brokers, and says which variable to set.
    let out = Command::new("docker-compose")
        .current_dir(dir.path().join("compose"))
        .args(["-f", "compose.yml", "config", "-q"])
        .env_remove("MOM_ADMIN_PASSWORD")
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
    let out = momctl(
        dir.path(),
        &["render", "--out", "out"],
        &[("MOM_ADMIN_PASSWORD", secret)],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!text(&out.stdout).contains(secret));
    let host = dir.path().join("out/local");
    for path in [
        "compose/compose.yml",
        "compose/broker-1.env",
        "compose/broker-3.env",
        "nginx/nginx.conf",
    ] {
        let content =
            std::fs::read_to_string(host.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(!content.contains(secret), "{path} holds the secret");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(host.join("compose/broker-1.env"))
            .expect("env file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[test]
fn reference_files_match_the_templates() {
    let root = repo_root();
    let default = config::default_file("demo");
    let committed =
        std::fs::read_to_string(root.join("mom.yaml")).expect("mom.yaml at the repository root");
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
        let on_disk =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            on_disk == f.content,
            "{} is not what the templates render; run MOM_UPDATE_REFERENCE=1 cargo test -p mom-operator --test render",
            Path::new(&f.path).display()
        );
    }
    // Nothing stale: every reference file is one the templates make.
    for dir in ["compose", "nginx"] {
        for entry in std::fs::read_dir(root.join(dir))
            .expect("reference dir")
            .flatten()
        {
            let rel = format!("{dir}/{}", entry.file_name().to_string_lossy());
            assert!(
                files.iter().any(|f| f.path == rel),
                "{rel} is not rendered any more"
            );
        }
    }
}
