//! End to end on the local Docker engine (issue 13): `nginx.tls: self_signed` serves HTTPS that a
//! client verifying against the cluster's CA accepts, with HTTP/2 by ALPN and without TLS 1.1;
//! plain HTTP redirects; the broker API works over HTTPS; `{cert, key}` swaps in the user's
//! certificate with one more `up`. The generated Redis password and ZooKeeper credential hold
//! against the real containers (a client without them is refused) and show in no momctl output
//! and no container log. Clients are curl and openssl, as a user would use them.
//!
//! Needs Docker, the images, curl and openssl (.ci/run installs them). The broker image is
//! `MOM_E2E_BROKER_IMAGE` when set (one built from this tree with `momctl build --tag`), else
//! the one .ci/images.sh builds.

mod common;

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};

use common::cluster::{docker_or_skip, runtime, Down, Unique, BROKER_IMAGE, PASSWORD, PASSWORD_ENV};
use common::{momctl, text, TempDir};

/// `momctl ARGS` with the admin password and the cluster's own MOMCTL_HOME; must succeed.
fn momctl_ok(dir: &Path, home: &str, args: &[&str]) -> String {
    let out = momctl(dir, args, &[(PASSWORD_ENV, PASSWORD), ("MOMCTL_HOME", home)]);
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    eprintln!("$ momctl {}\n{all}", args.join(" "));
    assert!(out.status.success(), "momctl {} failed", args.join(" "));
    all
}

fn run(program: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("run {program}: {e}"));
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

/// curl over HTTPS verifying against `ca`: (status code, HTTP version, body).
fn curl(
    ca: &Path,
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (u16, String, String) {
    let ca = ca.display().to_string();
    let mut args = vec![
        "-sS",
        "--max-time",
        "30",
        "--cacert",
        &ca,
        "-X",
        method,
        "-w",
        "\n%{http_code} %{http_version}",
    ];
    let auth;
    if let Some(t) = token {
        auth = format!("Authorization: Bearer {t}");
        args.extend(["-H", &auth]);
    }
    let data;
    if let Some(b) = body {
        data = b.to_string();
        args.extend(["-H", "Content-Type: application/json", "--data", &data]);
    }
    args.push(url);
    let (ok, out, err) = run("curl", &args);
    assert!(ok, "curl {method} {url}: {err}");
    let (body, status_line) = out.rsplit_once('\n').expect("status line");
    let (code, version) = status_line.split_once(' ').expect("code and version");
    (code.parse().expect("status code"), version.to_string(), body.to_string())
}

/// A CA and a server certificate for 127.0.0.1 and localhost, as a user might bring them.
fn user_certificate(dir: &TempDir) -> (std::path::PathBuf, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().expect("key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "user test CA");
    let ca_cert = ca_params.self_signed(&ca_key).expect("ca");
    let key = KeyPair::generate().expect("key");
    let params =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).expect("params");
    let cert = params.signed_by(&key, &Issuer::new(ca_params, &ca_key)).expect("cert");
    let ca = dir.write("user-ca.pem", &ca_cert.pem());
    dir.write("user-cert.pem", &cert.pem());
    dir.write("user-key.pem", &key.serialize_pem());
    (ca, "user-cert.pem".to_string(), "user-key.pem".to_string())
}

#[test]
fn tls_at_nginx_and_authenticated_stores() {
    let rt = runtime();
    if docker_or_skip(&rt).is_none() {
        return;
    }
    for tool in ["curl", "openssl", "docker"] {
        if !run("sh", &["-c", &format!("command -v {tool}")]).0 {
            common::skip(&format!("{tool} is missing (.ci/run installs it)"));
            return;
        }
    }
    let image = std::env::var("MOM_E2E_BROKER_IMAGE").unwrap_or_else(|_| BROKER_IMAGE.to_string());
    let unique = Unique::new("tls");
    let cluster = unique.cluster.clone();
    let https_port = common::cluster::free_port();
    let dir = TempDir::new("e2e-tls");
    let home = dir.path().join("momctl-home");
    let home_var = home.display().to_string();
    let yaml = |tls: &str| {
        unique.yaml(1).replace(BROKER_IMAGE, &image).replace(
            &format!("grpc_port: {}, tls: null }}", unique.grpc_port),
            &format!("grpc_port: null, tls: {tls}, https_port: {https_port} }}"),
        )
    };
    dir.write("mom.yaml", &yaml("self_signed"));
    let _down = Down(dir.path());

    let mut printed = momctl_ok(dir.path(), &home_var, &["up"]);
    let ca = home.join(&cluster).join("ca.pem");
    assert!(printed.contains(&ca.display().to_string()), "up names the CA to give clients");
    let https = format!("https://127.0.0.1:{https_port}");

    // HTTPS, verified against the cluster's CA, negotiates HTTP/2.
    let (code, version, _) = curl(&ca, "GET", &format!("{https}/readyz"), None, None);
    assert_eq!((code, version.as_str()), (200, "2"), "HTTPS with HTTP/2 (ALPN h2)");
    // Without the CA the certificate is not trusted: the check above is a real verification.
    let (ok, _, err) = run("curl", &["-sS", "--max-time", "10", &format!("{https}/readyz")]);
    assert!(!ok, "a client without the CA trusted the certificate");
    assert!(err.contains("certificate"), "{err}");

    // TLS 1.1 is refused (the client is allowed it: SECLEVEL=0), TLS 1.2 is served.
    let connect = format!("127.0.0.1:{https_port}");
    let s_client = |version: &str| {
        run(
            "sh",
            &[
                "-c",
                &format!(
                    "openssl s_client -connect {connect} {version} -cipher 'DEFAULT:@SECLEVEL=0' \
                     -CAfile {} -verify_return_error </dev/null",
                    ca.display()
                ),
            ],
        )
    };
    let (ok, out, err) = s_client("-tls1_1");
    assert!(!ok, "TLS 1.1 handshake succeeded:\n{out}\n{err}");
    let (ok, out, err) = s_client("-tls1_2");
    assert!(ok, "TLS 1.2 handshake failed:\n{out}\n{err}");

    // Plain HTTP answers with a redirect to HTTPS.
    let http = format!("http://127.0.0.1:{}/v1/queues?x=1", unique.port);
    let (ok, out, err) =
        run("curl", &["-sS", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", &http]);
    assert!(ok, "{err}");
    assert_eq!(out, format!("308 https://127.0.0.1:{https_port}/v1/queues?x=1"));

    // The broker API over HTTPS: log in, create a queue, send, receive.
    let (code, _, body) = curl(
        &ca,
        "POST",
        &format!("{https}/v1/auth/token"),
        None,
        Some(&json!({"username": "admin", "password": PASSWORD})),
    );
    assert_eq!(code, 200, "login over HTTPS: {body}");
    let token: Value = serde_json::from_str(&body).expect("json");
    let token = token["access_token"].as_str().expect("token").to_string();
    let (code, _, body) =
        curl(&ca, "PUT", &format!("{https}/v1/queues/tls-q"), Some(&token), Some(&json!({})));
    assert_eq!(code, 201, "create queue: {body}");
    let (code, _, body) = curl(
        &ca,
        "POST",
        &format!("{https}/v1/queues/tls-q/messages"),
        Some(&token),
        Some(&json!({"body": "over tls"})),
    );
    assert_eq!(code, 201, "send: {body}");
    let (code, _, body) = curl(
        &ca,
        "POST",
        &format!("{https}/v1/queues/tls-q/receive"),
        Some(&token),
        Some(&json!({"max": 1, "wait_s": 5})),
    );
    assert_eq!(code, 200, "receive: {body}");
    assert!(body.contains("over tls"), "{body}");

    // Redis and ZooKeeper refuse a client without the generated credentials.
    let container = |service: &str| format!("mom-{cluster}-{service}");
    let (_, out, err) = run("docker", &["exec", &container("redis"), "redis-cli", "KEYS", "*"]);
    assert!(format!("{out}{err}").contains("NOAUTH"), "unauthenticated Redis client: {out}{err}");
    let zk_cli = "/usr/share/zookeeper/bin/zkCli.sh -server 127.0.0.1:2181";
    for command in ["set /mom/secrets/jwt-key forged", "get /mom/secrets/jwt-key", "delete /mom/queues/tls-q"]
    {
        let (_, out, err) = run(
            "docker",
            &["exec", &container("zookeeper"), "bash", "-c", &format!("{zk_cli} {command} 2>&1")],
        );
        let said = format!("{out}{err}");
        assert!(
            said.contains("Insufficient permission") || said.contains("NoAuth"),
            "unauthenticated ZooKeeper client ran `{command}`:\n{said}"
        );
    }

    // `{cert, key}`: the user's certificate replaces momctl's with one more `up` (a reload).
    let (user_ca, cert, key) = user_certificate(&dir);
    dir.write("mom.yaml", &yaml(&format!("{{ cert: {cert}, key: {key} }}")));
    printed.push_str(&momctl_ok(dir.path(), &home_var, &["up"]));
    let (code, version, _) = curl(&user_ca, "GET", &format!("{https}/readyz"), None, None);
    assert_eq!((code, version.as_str()), (200, "2"), "the user's certificate is served");
    printed.push_str(&momctl_ok(dir.path(), &home_var, &["status"]));
    printed.push_str(&momctl_ok(dir.path(), &home_var, &["plan"]));

    // The generated secrets are in the cluster's directory (0600) and nowhere they would leak.
    let secrets_file = home.join(&cluster).join(mom_operator::secrets::FILE);
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&secrets_file).expect("secrets file").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let secrets = std::fs::read_to_string(&secrets_file).expect("secrets");
    let values: Vec<String> = secrets
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('=').map(|(_, v)| v.trim_start_matches("mom:").to_string()))
        .collect();
    assert_eq!(values.len(), 2, "a Redis password and a ZooKeeper credential");
    let mut logs = String::new();
    for service in ["redis", "zookeeper", "broker-1", "nginx"] {
        let out = Command::new("docker").args(["logs", &container(service)]).output().expect("docker logs");
        logs.push_str(&text(&out.stdout));
        logs.push_str(&text(&out.stderr));
    }
    assert!(logs.contains("Ready to accept connections"), "the logs were read");
    for v in &values {
        assert!(!printed.contains(v.as_str()), "momctl printed a generated secret");
        assert!(!logs.contains(v.as_str()), "a container logged a generated secret");
    }
}
