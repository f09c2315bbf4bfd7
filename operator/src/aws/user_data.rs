//! The user data of an EC2 host (`templates/cloud-init.yaml.tera`): installs Docker and serves
//! its API with mutual TLS.

use tera::{Context, Tera};

use crate::pki::ServerCert;

use super::desired::{AwsDesired, HostSpec, DOCKER_TLS_PORT};
use super::error::AwsError;

const USER_DATA: (&str, &str) = ("cloud-init.yaml", include_str!("../../../templates/cloud-init.yaml.tera"));

/// The user data of one host: valid cloud-config that installs Docker and serves its API with
/// mutual TLS. It gets the CA certificate and the host's server certificate and key, and nothing
/// else (no secret of the cluster can reach it: none is passed in).
pub fn user_data(
    desired: &AwsDesired,
    host: &HostSpec,
    ca_cert_pem: &str,
    server: &ServerCert,
) -> Result<String, AwsError> {
    let daemon = serde_json::json!({
        "hosts": ["unix:///var/run/docker.sock", format!("tcp://0.0.0.0:{DOCKER_TLS_PORT}")],
        "tls": true,
        "tlsverify": true,
        "tlscacert": "/etc/docker/tls/ca.pem",
        "tlscert": "/etc/docker/tls/server-cert.pem",
        "tlskey": "/etc/docker/tls/server-key.pem",
    });
    let daemon_json = serde_json::to_string_pretty(&daemon).map_err(|e| AwsError::Template(e.to_string()))?;
    let mut tera = Tera::default();
    tera.add_raw_templates([USER_DATA]).map_err(|e| AwsError::Template(e.to_string()))?;
    let mut context = Context::new();
    context.insert("cluster", &desired.cluster);
    context.insert("host", &host.index);
    context.insert("name", &host.name);
    context.insert("docker_port", &DOCKER_TLS_PORT);
    context.insert("ca_cert", ca_cert_pem);
    context.insert("server_cert", &server.cert_pem);
    context.insert("server_key", &server.key_pem);
    context.insert("daemon_json", &format!("{daemon_json}\n"));
    tera.render(USER_DATA.0, &context).map_err(|e| {
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        AwsError::Template(message)
    })
}
