//! A real NGINX in front of test brokers, configured as deployments are.
//!
//! The configuration is rendered from the same tera template `momctl` renders for a cluster,
//! `templates/nginx.conf.tera` (read at run time, so the tests follow edits of it; the reference
//! rendering is `nginx/nginx.conf`), with the test's brokers as the upstream servers and a free
//! port on 127.0.0.1 as the listen address. The operator's own `render::nginx_conf` is not used:
//! it takes a whole `Desired` cluster whose brokers sit on container addresses at a fixed port,
//! and `mom-operator` would pull Docker's client into the test crate.
//!
//! Rendering keeps every proxy setting of the template (buffering, timeouts, retries, upstream
//! keepalive) and changes only what a process started by a test cannot or must not share with
//! the system's NGINX:
//! - `pid` goes to the instance's temp dir instead of `/run/nginx.pid`;
//! - the temp paths (`client_body_temp_path`, `proxy_temp_path`, ...) go to the temp dir;
//! - the `user` directive stays only when the tests run as root and that user exists (NGINX
//!   ignores it otherwise, with a warning).
//!
//! NGINX runs in the foreground (`-g 'daemon off;'`, master and workers as in production) as a
//! child of the test, logging to a file in its temp dir (`error_log /dev/stderr` and
//! `access_log /dev/stdout` of the template land there), and is stopped with SIGTERM on drop.
//! The binary is `MOM_NGINX_BIN`, else `/usr/sbin/nginx`, else `nginx` on `PATH`; the template
//! is `MOM_NGINX_TEMPLATE`, else `templates/nginx.conf.tera`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use serde::Serialize;

use crate::broker::{signal, Broker};
use crate::client::Client;
use crate::util::{file_tail, free_port, spawn_logged, wait_child_ready, TempDir};

/// How long NGINX may take to answer its health location after it was started.
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// How long NGINX may take to stop after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// The health location of the template (answered by NGINX itself).
const HEALTH_PATH: &str = "/.mom/nginx-health";

/// The template: `MOM_NGINX_TEMPLATE` (to try a candidate), else the repository's.
fn template_path() -> PathBuf {
    match std::env::var_os("MOM_NGINX_TEMPLATE") {
        Some(path) => PathBuf::from(path),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../templates/nginx.conf.tera"),
    }
}

/// The NGINX executable.
pub fn nginx_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("MOM_NGINX_BIN") {
        return PathBuf::from(bin);
    }
    let system = PathBuf::from("/usr/sbin/nginx");
    if system.is_file() {
        system
    } else {
        PathBuf::from("nginx")
    }
}

#[derive(Serialize)]
struct Upstream {
    service: String,
    address: String,
    /// The broker's gRPC `host:port`, when NGINX proxies gRPC too.
    grpc_address: Option<String>,
    /// Which of a broker's generations use this slot (momctl lists an even and an odd slot per
    /// broker; a test broker has one address for all).
    generations: &'static str,
}

/// What NGINX needs to proxy the gRPC API: each upstream's gRPC `host:port` (in the order of the
/// upstreams) and NGINX's own gRPC listen address.
#[derive(Debug, Clone, Copy)]
pub struct GrpcUpstreams<'a> {
    pub addresses: &'a [String],
    pub listen: &'a str,
}

/// Renders `templates/nginx.conf.tera` for these upstream `(name, host:port)` pairs listening on
/// `listen` (`host:port`), then moves the pid file and temp paths into `dir` (see the module doc).
pub fn render_config(upstreams: &[(String, String)], listen: &str, dir: &Path) -> String {
    render_config_with_grpc(upstreams, None, listen, dir)
}

/// [`render_config`], with the gRPC server of the template when `grpc` is given.
pub fn render_config_with_grpc(
    upstreams: &[(String, String)],
    grpc: Option<GrpcUpstreams>,
    listen: &str,
    dir: &Path,
) -> String {
    render_config_with_tls(upstreams, grpc, None, listen, dir)
}

/// A certificate NGINX serves, as momctl's `nginx.tls` sets it up: HTTPS on `https_listen` (plain
/// HTTP on the other port then only redirects), and the gRPC server over TLS.
#[derive(Debug, Clone, Copy)]
pub struct TlsFiles<'a> {
    pub cert: &'a Path,
    pub key: &'a Path,
    pub https_listen: &'a str,
}

/// [`render_config_with_grpc`], serving HTTPS and gRPC over TLS when `tls` is given.
pub fn render_config_with_tls(
    upstreams: &[(String, String)],
    grpc: Option<GrpcUpstreams>,
    tls: Option<TlsFiles>,
    listen: &str,
    dir: &Path,
) -> String {
    let path = template_path();
    let template = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read the NGINX template {}: {e}", path.display()));
    let mut context = tera::Context::new();
    context.insert("cluster", "mom-tests");
    context.insert("host", "localhost");
    context.insert(
        "brokers",
        &upstreams
            .iter()
            .enumerate()
            .map(|(i, (service, address))| Upstream {
                service: service.clone(),
                address: address.clone(),
                grpc_address: grpc.and_then(|g| g.addresses.get(i).cloned()),
                generations: "all",
            })
            .collect::<Vec<_>>(),
    );
    context.insert("listen_port", listen);
    if let Some(g) = grpc {
        assert_eq!(g.addresses.len(), upstreams.len(), "one gRPC address per upstream");
        context.insert("grpc_listen_port", g.listen);
    }
    if let Some(t) = tls {
        context.insert("https_listen_port", t.https_listen);
        context.insert("tls_cert", &t.cert.display().to_string());
        context.insert("tls_key", &t.key.display().to_string());
        context.insert("tls_fingerprint", "test");
        let port = t.https_listen.rsplit_once(':').map_or(t.https_listen, |(_, p)| p);
        context.insert("https_port_suffix", &format!(":{port}"));
    }
    let rendered = tera::Tera::one_off(&template, &context, false)
        .unwrap_or_else(|e| panic!("cannot render {}: {e:?}", path.display()));
    localize(&rendered, dir)
}

/// The changes of the module doc, line by line.
fn localize(rendered: &str, dir: &Path) -> String {
    let dir = dir.display();
    let modules = nginx_configure_args();
    let mut out = String::with_capacity(rendered.len() + 512);
    let mut temp_paths_added = false;
    for line in rendered.lines() {
        let directive = line.trim_start();
        if directive.starts_with("pid ") {
            out.push_str(&format!("pid {dir}/nginx.pid;\n"));
            continue;
        }
        if let Some(user) = directive.strip_prefix("user ") {
            let name = user.trim_end_matches(';').split_whitespace().next();
            if !(is_root() && name.is_some_and(user_exists)) {
                out.push_str(&format!("# (test) dropped: {directive}\n"));
                continue;
            }
        }
        out.push_str(line);
        out.push('\n');
        if !temp_paths_added && directive.starts_with("http ") && directive.ends_with('{') {
            temp_paths_added = true;
            out.push_str(&format!("    client_body_temp_path {dir}/client_body;\n"));
            out.push_str(&format!("    proxy_temp_path {dir}/proxy;\n"));
            for module in ["fastcgi", "uwsgi", "scgi"] {
                if !modules.contains(&format!("--without-http_{module}_module")) {
                    out.push_str(&format!("    {module}_temp_path {dir}/{module};\n"));
                }
            }
        }
    }
    assert!(temp_paths_added, "no `http {{` block in the rendered NGINX config:\n{rendered}");
    out
}

/// Makes, with the `openssl` command, a CA (`ca.pem`) and a certificate for 127.0.0.1 and
/// localhost that it signed (`server.pem`, `server.key`) in `dir`; returns the CA's path.
fn self_signed_for_loopback(dir: &Path) -> PathBuf {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap_or_else(|e| panic!("cannot run openssl (.ci/run installs it): {e}"));
        assert!(out.status.success(), "openssl {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    };
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &["-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=mom test CA"],
        ]
        .concat(),
    );
    openssl(
        &[&["req"][..], &ec, &["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"]]
            .concat(),
    );
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        .unwrap_or_else(|e| panic!("cannot write san.ext: {e}"));
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ]);
    dir.join("ca.pem")
}

/// `nginx -V` output (its configure arguments), to know which modules are built in.
fn nginx_configure_args() -> String {
    let out = Command::new(nginx_bin())
        .arg("-V")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} -V: {e}", nginx_bin().display()));
    // nginx prints its version and configure arguments on stderr.
    String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout)
}

fn is_root() -> bool {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn user_exists(name: &str) -> bool {
    std::fs::read_to_string("/etc/passwd")
        .map(|p| p.lines().any(|l| l.split(':').next() == Some(name)))
        .unwrap_or(false)
}

/// A running NGINX process in front of some brokers, stopped when dropped.
#[derive(Debug)]
pub struct Nginx {
    child: Child,
    port: u16,
    /// The port of the gRPC server, when NGINX proxies gRPC.
    grpc_port: Option<u16>,
    /// The HTTPS port and the CA that signed NGINX's certificate, when it serves TLS.
    tls: Option<(u16, PathBuf)>,
    log: PathBuf,
    config: PathBuf,
    _dir: TempDir,
}

impl Nginx {
    /// Starts NGINX with `brokers` as its upstream and waits until it answers its health location.
    pub async fn start(brokers: &[&Broker]) -> Nginx {
        let upstreams: Vec<(String, String)> =
            brokers.iter().map(|b| (b.node_id().to_string(), b.listen().to_string())).collect();
        Self::start_for(&upstreams).await
    }

    /// Starts NGINX with these `(name, host:port)` upstream servers.
    pub async fn start_for(upstreams: &[(String, String)]) -> Nginx {
        Self::start_with(upstreams, None, false).await
    }

    /// Starts NGINX in front of brokers that serve gRPC too: `(broker, its gRPC host:port)`.
    /// NGINX proxies HTTP on [`Nginx::url`] and gRPC on [`Nginx::grpc_addr`].
    pub async fn start_grpc(brokers: &[(&Broker, &str)]) -> Nginx {
        let upstreams: Vec<(String, String)> =
            brokers.iter().map(|(b, _)| (b.node_id().to_string(), b.listen().to_string())).collect();
        let grpc: Vec<String> = brokers.iter().map(|(_, g)| g.to_string()).collect();
        Self::start_with(&upstreams, Some(&grpc), false).await
    }

    /// [`Nginx::start_grpc`] with TLS, as momctl's `nginx.tls`: a certificate for 127.0.0.1 signed
    /// by a CA made for this NGINX ([`Nginx::ca`]); HTTPS on [`Nginx::https_url`], gRPC over TLS on
    /// [`Nginx::grpc_addr`].
    pub async fn start_grpc_tls(brokers: &[(&Broker, &str)]) -> Nginx {
        let upstreams: Vec<(String, String)> =
            brokers.iter().map(|(b, _)| (b.node_id().to_string(), b.listen().to_string())).collect();
        let grpc: Vec<String> = brokers.iter().map(|(_, g)| g.to_string()).collect();
        Self::start_with(&upstreams, Some(&grpc), true).await
    }

    async fn start_with(upstreams: &[(String, String)], grpc: Option<&[String]>, tls: bool) -> Nginx {
        let dir = TempDir::new("mom-nginx");
        let port = free_port();
        let grpc_port = grpc.map(|_| free_port());
        let grpc_listen = grpc_port.map(|p| format!("127.0.0.1:{p}"));
        let config = dir.path().join("nginx.conf");
        let grpc_upstreams =
            grpc.zip(grpc_listen.as_deref()).map(|(addresses, listen)| GrpcUpstreams { addresses, listen });
        let https = tls.then(|| (free_port(), self_signed_for_loopback(dir.path())));
        let https_listen = https.as_ref().map(|(p, _)| format!("127.0.0.1:{p}"));
        let (cert, key) = (dir.path().join("server.pem"), dir.path().join("server.key"));
        let tls_files =
            https_listen.as_deref().map(|https_listen| TlsFiles { cert: &cert, key: &key, https_listen });
        let text = render_config_with_tls(
            upstreams,
            grpc_upstreams,
            tls_files,
            &format!("127.0.0.1:{port}"),
            dir.path(),
        );
        std::fs::write(&config, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", config.display()));
        let log = dir.path().join("nginx.log");
        let prefix = format!("{}/", dir.path().display());
        let mut cmd = Command::new(nginx_bin());
        cmd.args(["-p", &prefix, "-e", "stderr", "-g", "daemon off;", "-c"]).arg(&config);
        let child = spawn_logged(&mut cmd, &log);
        let mut nginx = Nginx { child, port, grpc_port, tls: https, log, config, _dir: dir };
        let probe = Client::new(nginx.url()).with_timeout(Duration::from_secs(2));
        let what = format!("nginx on port {port} (config {})", nginx.config.display());
        let log = nginx.log.clone();
        wait_child_ready(&mut nginx.child, &what, &log, READY_TIMEOUT, || {
            let probe = probe.clone();
            async move {
                probe
                    .try_request(reqwest::Method::GET, HEALTH_PATH, crate::client::Body::None)
                    .await
                    .is_ok_and(|r| r.status == 200)
            }
        })
        .await;
        nginx
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `https://127.0.0.1:<port>` (panics when NGINX was started without TLS).
    pub fn https_url(&self) -> String {
        let (port, _) = self.tls.as_ref().unwrap_or_else(|| panic!("this NGINX was started without TLS"));
        format!("https://127.0.0.1:{port}")
    }

    /// The PEM file of the CA that signed NGINX's certificate (panics without TLS).
    pub fn ca(&self) -> &Path {
        let (_, ca) = self.tls.as_ref().unwrap_or_else(|| panic!("this NGINX was started without TLS"));
        ca
    }

    /// `127.0.0.1:<port>` of the gRPC server (panics when NGINX was started without gRPC).
    pub fn grpc_addr(&self) -> String {
        let port = self.grpc_port.unwrap_or_else(|| panic!("this NGINX was started without gRPC"));
        format!("127.0.0.1:{port}")
    }

    /// A client of the API through NGINX, sending the same bearer token as `client`.
    pub fn client_like(&self, client: &Client) -> Client {
        let through = Client::new(self.url());
        match client.bearer() {
            Some(token) => through.with_bearer(token),
            None => through,
        }
    }

    /// The last `lines` lines of NGINX's error and access log.
    pub fn log_tail(&self, lines: usize) -> String {
        file_tail(&self.log, lines)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- log of nginx ({}), last lines:\n{}\n---", self.log.display(), self.log_tail(40));
        }
        if let Ok(None) = self.child.try_wait() {
            // SIGTERM: the master stops its workers (SIGKILL would leave them running).
            let pid = i32::try_from(self.child.id()).unwrap_or(i32::MAX);
            signal(pid, libc::SIGTERM);
            let deadline = std::time::Instant::now() + STOP_TIMEOUT;
            while let Ok(None) = self.child.try_wait() {
                if std::time::Instant::now() >= deadline {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_renders_with_the_test_upstreams_and_local_paths() {
        let dir = TempDir::new("mom-nginx-render");
        let upstreams = vec![
            ("node-a".to_string(), "127.0.0.1:4001".to_string()),
            ("node-b".to_string(), "127.0.0.1:4002".to_string()),
        ];
        let conf = render_config(&upstreams, "127.0.0.1:5555", dir.path());
        assert!(conf.contains("server 127.0.0.1:4001 "), "{conf}");
        assert!(conf.contains("server 127.0.0.1:4002 "), "{conf}");
        assert!(conf.contains("listen 127.0.0.1:5555;"), "{conf}");
        assert!(conf.contains(&format!("pid {}/nginx.pid;", dir.path().display())), "{conf}");
        assert!(!conf.contains("/run/nginx.pid"), "{conf}");
        assert!(conf.contains("proxy_buffering off;"), "{conf}");
        assert!(!conf.contains("grpc_pass"), "{conf}");
    }

    #[test]
    fn the_template_proxies_grpc_over_http2_when_asked() {
        let dir = TempDir::new("mom-nginx-render");
        let upstreams = vec![
            ("node-a".to_string(), "127.0.0.1:4001".to_string()),
            ("node-b".to_string(), "127.0.0.1:4002".to_string()),
        ];
        let grpc = ["127.0.0.1:5001".to_string(), "127.0.0.1:5002".to_string()];
        let conf = render_config_with_grpc(
            &upstreams,
            Some(GrpcUpstreams { addresses: &grpc, listen: "127.0.0.1:6666" }),
            "127.0.0.1:5555",
            dir.path(),
        );
        assert!(conf.contains("listen 127.0.0.1:6666 http2;"), "{conf}");
        assert!(conf.contains("server 127.0.0.1:5001 "), "{conf}");
        assert!(conf.contains("server 127.0.0.1:5002 "), "{conf}");
        assert!(conf.contains("grpc_pass grpc://mom_grpc;"), "{conf}");
        assert!(conf.contains("listen 127.0.0.1:5555;"), "{conf}");
    }
}
