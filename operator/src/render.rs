//! Rendering (tera): the per-host `compose.yml`, `nginx.conf` and env files of a [`Desired`]
//! cluster, from the templates in the repository's `templates/` (compiled into momctl).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use tera::{Context, Tera};

use crate::desired::{
    Desired, Role, ServiceSpec, BROKER_GRPC_PORT, BROKER_PORT, NGINX_CERT_PATH, NGINX_CERT_TARGET,
    NGINX_CONF_PATH, NGINX_GRPC_PORT, NGINX_HTTPS_PORT, NGINX_KEY_PATH, NGINX_KEY_TARGET, NGINX_PORT,
};
use crate::tls::Material;

const COMPOSE: (&str, &str) = ("compose.yml", include_str!("../../templates/compose.yml.tera"));
const NGINX: (&str, &str) = ("nginx.conf", include_str!("../../templates/nginx.conf.tera"));
const ENV: (&str, &str) = ("service.env", include_str!("../../templates/service.env.tera"));

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("template {template}: {message}")]
    Template { template: String, message: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// One rendered file, relative to its host's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedFile {
    pub path: String,
    pub content: String,
    /// Unix permissions it is written with (env files: 0600).
    pub mode: u32,
}

fn tera() -> Result<Tera, RenderError> {
    let mut tera = Tera::default();
    tera.add_raw_templates([COMPOSE, NGINX, ENV]).map_err(|e| template_error("(loading)", &e))?;
    Ok(tera)
}

fn template_error(template: &str, e: &tera::Error) -> RenderError {
    // tera's own message is generic; the cause chain says what went wrong.
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    RenderError::Template { template: template.to_string(), message }
}

fn render(tera: &Tera, template: &str, context: &Context) -> Result<String, RenderError> {
    tera.render(template, context).map_err(|e| template_error(template, &e))
}

/// One upstream slot: an address one generation of a broker listens on.
#[derive(Serialize)]
struct Upstream<'a> {
    service: &'a str,
    /// `even` or `odd`: the generations that use the slot.
    generations: &'static str,
    address: String,
    /// The broker's gRPC address, when gRPC is on.
    grpc_address: Option<String>,
}

/// The NGINX configuration: both upstream slots of every broker of `desired` (its even and odd
/// generations' addresses, [`ServiceSpec::broker_slots`]), so the file is the same whichever
/// generation runs and a rolling upgrade needs no reload; with `tls` (the material NGINX
/// serves, [`crate::tls`]) HTTPS, named by the certificate's fingerprint.
pub fn nginx_conf(desired: &Desired, tls: Option<&Material>) -> Result<String, RenderError> {
    let brokers: Vec<Upstream> = desired
        .brokers()
        .flat_map(|b| {
            let grpc = b.env.contains_key("MOM_GRPC_LISTEN");
            b.broker_slots().into_iter().zip(["even", "odd"]).map(move |(ip, generations)| Upstream {
                service: &b.service,
                generations,
                address: format!("{ip}:{BROKER_PORT}"),
                grpc_address: grpc.then(|| format!("{ip}:{BROKER_GRPC_PORT}")),
            })
        })
        .collect();
    let mut context = Context::new();
    context.insert("cluster", &desired.cluster);
    context.insert("host", &desired.host);
    context.insert("brokers", &brokers);
    context.insert("listen_port", &NGINX_PORT);
    if desired.endpoint.grpc_port.is_some() {
        context.insert("grpc_listen_port", &NGINX_GRPC_PORT);
    }
    if let (Some(material), Some(public_port)) = (tls, desired.endpoint.https_port) {
        context.insert("https_listen_port", &NGINX_HTTPS_PORT);
        // Where the redirect sends clients: the host's port, left out when it is HTTPS's own.
        let suffix = if public_port == 443 { String::new() } else { format!(":{public_port}") };
        context.insert("https_port_suffix", &suffix);
        context.insert("tls_cert", NGINX_CERT_TARGET);
        context.insert("tls_key", NGINX_KEY_TARGET);
        context.insert("tls_fingerprint", &material.fingerprint());
    }
    render(&tera()?, NGINX.0, &context)
}

fn env_file(tera: &Tera, desired: &Desired, service: &ServiceSpec) -> Result<String, RenderError> {
    let mut context = Context::new();
    context.insert("cluster", &desired.cluster);
    context.insert("service", &service.service);
    context.insert("env", &service.env);
    context.insert("secret_env", &service.secret_env);
    render(tera, ENV.0, &context)
}

/// Every file of the host, as `momctl render` writes them:
/// `compose/compose.yml`, `compose/<service>.env`, `nginx/nginx.conf` (and with `tls`, NGINX's
/// certificate and key).
pub fn host_files(desired: &Desired, tls: Option<&Material>) -> Result<Vec<RenderedFile>, RenderError> {
    let tera = tera()?;
    let mut context = Context::new();
    context.insert("cluster", &desired.cluster);
    context.insert("host", &desired.host);
    context.insert("services", &desired.services);
    context.insert("network", &desired.network);
    // Across hosts, host 1's compose.yml makes the overlay; the others join it.
    context.insert("network_external", &(desired.network.overlay && desired.host != "host-1"));
    context.insert("volumes", &desired.volumes);
    context.insert("admin_password_env", &desired.admin_password_env);
    context.insert("endpoint_url", &desired.endpoint.url());

    let mut files = vec![RenderedFile {
        path: "compose/compose.yml".to_string(),
        content: render(&tera, COMPOSE.0, &context)?,
        mode: 0o644,
    }];
    for service in desired.services.iter().filter(|s| !s.env.is_empty()) {
        files.push(RenderedFile {
            path: format!("compose/{}.env", service.service),
            content: env_file(&tera, desired, service)?,
            mode: 0o600,
        });
    }
    // NGINX's files go to the host that runs it.
    if !desired.services.iter().any(|s| s.role == Role::Nginx) {
        return Ok(files);
    }
    files.push(RenderedFile {
        path: NGINX_CONF_PATH.to_string(),
        content: nginx_conf(desired, tls)?,
        mode: 0o644,
    });
    if let Some(m) = tls {
        files.push(RenderedFile {
            path: NGINX_CERT_PATH.to_string(),
            content: m.cert_pem.clone(),
            mode: 0o644,
        });
        files.push(RenderedFile {
            path: NGINX_KEY_PATH.to_string(),
            content: m.key_pem.clone(),
            mode: 0o600,
        });
    }
    Ok(files)
}

/// `compose/.env` (mode 0600): the secrets momctl generated for the cluster
/// ([`crate::secrets`]), which compose.yml passes to the containers. Kept apart from
/// [`host_files`] so that rendering a reference never writes a secret.
pub fn secret_files(generated: &BTreeMap<String, String>) -> Vec<RenderedFile> {
    vec![RenderedFile {
        path: "compose/.env".to_string(),
        content: crate::secrets::env_file(generated),
        mode: 0o600,
    }]
}

/// Writes the files under `dir` (which is created); returns the paths written.
pub fn write_files(dir: &Path, files: &[RenderedFile]) -> Result<Vec<PathBuf>, RenderError> {
    let mut written = Vec::new();
    for file in files {
        let path = dir.join(&file.path);
        let write = |path: &Path| -> std::io::Result<()> {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            write_with_mode(path, file.content.as_bytes(), file.mode)
        };
        write(&path).map_err(|source| RenderError::Write { path: path.clone(), source })?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(unix)]
fn write_with_mode(path: &Path, content: &[u8], mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut file =
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(path)?;
    // An existing file keeps its old mode through open(); set it explicitly.
    file.set_permissions(std::fs::Permissions::from_mode(mode))?;
    file.write_all(content)
}

#[cfg(not(unix))]
fn write_with_mode(path: &Path, content: &[u8], _mode: u32) -> std::io::Result<()> {
    std::fs::write(path, content)
}
