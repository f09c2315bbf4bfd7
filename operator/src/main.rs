//! `momctl`: the command line. It parses arguments, calls the library and reports; planning and
//! execution live in the library (`mom_operator`).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use futures::StreamExt;

use mom_operator::aws::{self, AwsDesired, Ec2};
use mom_operator::config::{self, Settings};
use mom_operator::desired::Desired;
use mom_operator::docker::Engine;
use mom_operator::exec::{self, Reporter};
use mom_operator::hosts::Hosts;
use mom_operator::{compute_aws_plan, compute_plan, compute_upgrade, images, render, status, Target};

#[derive(Parser)]
#[command(
    name = "momctl",
    version,
    about = "Brings a whole mom cluster (brokers, Redis, ZooKeeper, NGINX) to match one mom.yaml"
)]
struct Cli {
    /// The cluster's file (as in Kamal, `-c`; `logs -f` follows).
    #[arg(short = 'c', long = "config", visible_alias = "file", global = true, default_value = config::DEFAULT_FILE, env = "MOMCTL_CONFIG")]
    file: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Output {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Write a commented mom.yaml with safe defaults.
    Init {
        /// The cluster's name.
        #[arg(long, default_value = "demo")]
        cluster: String,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Show what `up` would create, change or remove; change nothing. Exit 0: nothing to do; 2: changes.
    Plan {
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
    /// Make the cluster match mom.yaml: create, start or replace what differs, wait for health.
    Up,
    /// Containers, health, broker nodes and versions, queue and topic counts.
    Status {
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
    /// A service's container logs (redis, zookeeper, broker-N, nginx).
    Logs {
        service: String,
        /// Keep printing new lines.
        #[arg(short, long)]
        follow: bool,
        /// Only the last N lines.
        #[arg(long)]
        tail: Option<u32>,
    },
    /// Write the per-host compose.yml, nginx.conf and env files `up` would deploy.
    Render {
        #[arg(long)]
        out: PathBuf,
    },
    /// Remove every container, network and volume of the cluster (asks unless --yes).
    Down {
        #[arg(short, long)]
        yes: bool,
    },
    /// Rolling upgrade of the brokers to IMG, one at a time, with no failed client request.
    Upgrade {
        /// The broker image to run (local, e.g. made by `momctl build --tag`).
        #[arg(long)]
        broker_image: String,
        #[command(flatten)]
        rolling: Rolling,
    },
    /// Rolling upgrade back to the image the last upgrade replaced.
    Rollback {
        #[command(flatten)]
        rolling: Rolling,
    },
    /// Build the broker image (mom.yaml's broker.image) from a broker binary built on this host.
    Build {
        /// The mom-broker binary (default: $CARGO_TARGET_DIR or ./target, release then debug).
        #[arg(long)]
        binary: Option<PathBuf>,
        /// The image tag (default: broker.image of mom.yaml, else mom-broker:<version>).
        #[arg(long)]
        tag: Option<String>,
    },
}

#[derive(clap::Args)]
struct Rolling {
    /// How long a new broker may take to answer /readyz 200 before the upgrade stops.
    #[arg(long, default_value_t = 90)]
    ready_timeout_s: u64,
    /// `json`: a summary on stdout (progress goes to stderr).
    #[arg(long, value_enum, default_value = "text")]
    output: Output,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // The AWS SDK warns about unset config files; momctl's own errors say what matters.
                .unwrap_or_else(|_| {
                    tracing_subscriber::EnvFilter::new("warn,aws_config=error,aws_runtime=error")
                }),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("momctl: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("momctl: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Loads and checks mom.yaml: everything wrong with it is reported before anything is touched.
fn load(file: &Path) -> Result<(Settings, Desired)> {
    let (_, settings) = config::load(file)?;
    let desired = Desired::on_hosts(&settings, aws::docker_hosts(&settings));
    Ok((settings, desired))
}

async fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Init { cluster, force } => init(&cli.file, &cluster, force),
        Command::Plan { output } => plan(&cli.file, output).await,
        Command::Up => up(&cli.file).await,
        Command::Status { output } => show_status(&cli.file, output).await,
        Command::Logs { service, follow, tail } => logs(&cli.file, &service, follow, tail).await,
        Command::Render { out } => render_files(&cli.file, &out),
        Command::Down { yes } => down(&cli.file, yes).await,
        Command::Build { binary, tag } => build(&cli.file, binary, tag).await,
        Command::Upgrade { broker_image, rolling } => {
            rolling_upgrade(&cli.file, Target::Image(&broker_image), &rolling).await
        }
        Command::Rollback { rolling } => rolling_upgrade(&cli.file, Target::Previous, &rolling).await,
    }
}

fn init(file: &Path, cluster: &str, force: bool) -> Result<ExitCode> {
    if file.exists() && !force {
        bail!("{} exists; pass --force to overwrite it", file.display());
    }
    let text = config::default_file(cluster);
    // What init writes must itself be valid.
    config::parse(&text, &file.display().to_string())?.settings(&file.display().to_string())?;
    std::fs::write(file, text).with_context(|| format!("writing {}", file.display()))?;
    println!("wrote {} (cluster {cluster}); next: `momctl plan`, then `momctl up`", file.display());
    Ok(ExitCode::SUCCESS)
}

/// What EC2 has of the cluster (provider aws; None for `local`).
async fn ec2_view(settings: &Settings) -> Result<Option<(AwsDesired, aws::Ec2Observed)>> {
    let Some(aws_desired) = AwsDesired::from_settings(settings) else {
        return Ok(None);
    };
    let ec2 = Ec2::connect(&aws_desired.settings).await?;
    let observed = ec2.observe(&aws_desired.cluster).await?;
    Ok(Some((aws_desired, observed)))
}

/// The Docker engines the cluster's containers run on: the local one, or (provider aws, given
/// [`ec2_view`]) the hosts'.
async fn hosts_for(view: Option<&(AwsDesired, aws::Ec2Observed)>) -> Result<Hosts> {
    match view {
        None => Ok(Hosts::one(Engine::connect().await?)),
        Some((aws_desired, observed)) => Ok(aws::host_engines(aws_desired, observed, false).await?),
    }
}

/// Says where the containers go when the test-only override is on.
fn override_note() -> Option<String> {
    let stand_in = match aws::docker_override()? {
        aws::DockerOverride::Local => "the local Docker engine".to_string(),
        aws::DockerOverride::Engines(addrs) => format!("the engines {}", addrs.join(", ")),
    };
    Some(format!(
        "note: {}: the containers go onto {stand_in} in place of the hosts' (for tests; moto starts no machine)",
        aws::DOCKER_OVERRIDE_ENV,
    ))
}

async fn plan(file: &Path, output: Output) -> Result<ExitCode> {
    let (settings, desired) = load(file)?;
    if let Some(aws_desired) = AwsDesired::from_settings(&settings) {
        return aws_plan(file, output, &aws_desired, &desired).await;
    }
    let hosts = Hosts::one(Engine::connect().await?);
    let plan = compute_plan(&hosts, &desired).await?.plan;
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&plan)?),
        Output::Text if plan.is_empty() => {
            println!("nothing to do: cluster {} matches {}", desired.cluster, file.display())
        }
        Output::Text => {
            println!("cluster {} (local Docker engine): {} change(s)", desired.cluster, plan.changes.len());
            for change in &plan.changes {
                println!("  {change}");
            }
        }
    }
    Ok(if plan.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(2) })
}

async fn aws_plan(
    file: &Path,
    output: Output,
    aws_desired: &AwsDesired,
    desired: &Desired,
) -> Result<ExitCode> {
    let ec2 = Ec2::connect(&aws_desired.settings).await?;
    let computed = compute_aws_plan(&ec2, aws_desired, desired, false).await?;
    let plan = &computed.plan;
    if let Some(why) = &computed.docker_error {
        eprintln!("momctl: the containers are not planned: {why}");
    }
    let unknown = computed.docker_error.is_some();
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(plan)?),
        Output::Text if plan.is_empty() && !unknown => {
            println!("nothing to do: cluster {} matches {}", desired.cluster, file.display())
        }
        Output::Text => {
            println!(
                "cluster {} (AWS {}, {} host(s)): {} change(s), {} on EC2",
                desired.cluster,
                aws_desired.settings.region,
                aws_desired.settings.hosts,
                plan.changes.len(),
                computed.ec2_changes
            );
            for change in &plan.changes {
                println!("  {change}");
            }
            if computed.docker.is_none() && !unknown {
                println!("  (containers: host 1 is new, so all of them are created)");
            }
            if let Some(note) = override_note() {
                println!("{note}");
            }
        }
    }
    Ok(if plan.is_empty() && !unknown { ExitCode::SUCCESS } else { ExitCode::from(2) })
}

async fn aws_up(file: &Path, aws_desired: &AwsDesired, desired: Desired) -> Result<ExitCode> {
    let started = Instant::now();
    let ec2 = Ec2::connect(&aws_desired.settings).await?;
    let computed = compute_aws_plan(&ec2, aws_desired, &desired, true).await?;
    let plan = &computed.plan;
    if plan.is_empty() {
        println!(
            "nothing to do: cluster {} already matches {} ({} host(s) on AWS {})",
            desired.cluster,
            file.display(),
            aws_desired.settings.hosts,
            aws_desired.settings.region
        );
        return Ok(ExitCode::SUCCESS);
    }
    // Secrets first: a missing one stops here, before EC2 or Docker is touched.
    exec::secrets_from_env(plan, &desired)?;
    println!(
        "momctl up: cluster {} on AWS {} ({} host(s)), {} change(s), {} on EC2",
        desired.cluster,
        aws_desired.settings.region,
        aws_desired.settings.hosts,
        plan.changes.len(),
        computed.ec2_changes
    );
    if let Some(note) = override_note() {
        println!("{note}");
    }
    let ec2_part = &plan.changes[..computed.ec2_changes];
    let observed = if ec2_part.is_empty() {
        computed.observed
    } else {
        aws::apply(&ec2, aws_desired, &computed.observed, ec2_part, &Lines).await?;
        ec2.observe(&aws_desired.cluster).await?
    };
    // The containers: the same diff as `plan`'s, now against the hosts' engines.
    let what = format!("connect to the Docker API of {} host(s)", aws_desired.hosts.len());
    Lines.started(&what, aws::docker_override().is_none());
    let step = Instant::now();
    let hosts = aws::host_engines(aws_desired, &observed, true).await?;
    Lines.finished(&what, step.elapsed());
    let docker = match computed.docker {
        Some(docker) if ec2_part.is_empty() => docker,
        _ => compute_plan(&hosts, &desired).await?,
    };
    if !docker.plan.is_empty() {
        let secrets = exec::secrets_from_env(&docker.plan, &docker.desired)?;
        exec::apply(&hosts, &docker.desired, &docker.plan, &docker.nginx_conf, &secrets, &Lines).await?;
    }
    let mut endpoint = desired.endpoint.clone();
    if let Some(ip) = aws::endpoint_ip(&observed) {
        endpoint.bind = ip;
    }
    println!(
        "cluster {} is up at {}/ ({} host(s), {} brokers; took {:.1} s)",
        desired.cluster,
        endpoint.url(),
        aws_desired.settings.hosts,
        desired.brokers().count(),
        started.elapsed().as_secs_f64()
    );
    println!(
        "keys and certificates: {} (SSH key and Docker TLS client certificate; keep them private)",
        aws::cluster_dir(&desired.cluster).display()
    );
    Ok(ExitCode::SUCCESS)
}

async fn aws_down(aws_desired: &AwsDesired, yes: bool) -> Result<ExitCode> {
    let cluster = &aws_desired.cluster;
    let ec2 = Ec2::connect(&aws_desired.settings).await?;
    let observed = ec2.observe(cluster).await?;
    // Under the test-only override the containers are not on the instances: remove them too.
    let stand_in = match aws::docker_override() {
        Some(_) => {
            let hosts = aws::host_engines(aws_desired, &observed, false).await?;
            let owned = hosts.owned(cluster).await?;
            Some((hosts, owned))
        }
        None => None,
    };
    let no_containers = stand_in.as_ref().is_none_or(|(_, o)| o.iter().all(|(_, o)| o.is_empty()));
    if observed.is_empty() && no_containers {
        println!("nothing to remove: nothing is tagged {}={cluster}", aws::CLUSTER_TAG);
        return Ok(ExitCode::SUCCESS);
    }
    println!("cluster {cluster} owns (tag {}={cluster}):", aws::CLUSTER_TAG);
    for i in &observed.instances {
        println!("  - instance {} ({}, {})", i.id, i.name.as_deref().unwrap_or("-"), i.state);
    }
    for a in &observed.addresses {
        println!(
            "  - Elastic IP {} ({})",
            a.allocation_id,
            a.public_ip.map(|ip| ip.to_string()).unwrap_or_default()
        );
    }
    if let Some(g) = &observed.security_group {
        println!("  - security group {} ({})", g.name, g.id);
    }
    if let Some(k) = &observed.key_pair {
        println!("  - key pair {}", k.name);
    }
    if let Some((hosts, owned)) = &stand_in {
        print_owned(hosts, owned, &format!(", {}", aws::DOCKER_OVERRIDE_ENV));
    }
    if !yes && !confirmed("Terminate and delete all of it, with the data on the instances?")? {
        println!("nothing removed");
        return Ok(ExitCode::FAILURE);
    }
    let started = Instant::now();
    if let Some((hosts, owned)) = &stand_in {
        exec::teardown(hosts, owned, &Lines).await?;
    }
    aws::teardown(&ec2, cluster, &observed, &Lines).await?;
    println!("cluster {cluster} removed ({:.1} s)", started.elapsed().as_secs_f64());
    Ok(ExitCode::SUCCESS)
}

/// The cluster's EC2 hosts, as `status` shows them.
fn print_instances(aws_desired: &AwsDesired, observed: &aws::Ec2Observed) {
    println!(
        "hosts (AWS {}, tag {}={}):",
        aws_desired.settings.region,
        aws::CLUSTER_TAG,
        aws_desired.cluster
    );
    for i in &observed.instances {
        println!(
            "  {:<28} {:<20} {:<9} {}",
            i.name.as_deref().unwrap_or("-"),
            i.id,
            i.state,
            i.host
                .and_then(|h| observed.address(h))
                .and_then(|a| a.public_ip)
                .or(i.public_ip)
                .map(|ip| ip.to_string())
                .unwrap_or_else(|| "-".to_string())
        );
    }
}

/// Lists what the cluster owns on its engines (`down` asks before removing it).
fn print_owned(hosts: &Hosts, owned: &[(u32, mom_operator::docker::Owned)], note: &str) {
    for (host, owned) in owned {
        let on = if hosts.count() > 1 {
            format!(" (host {host}{note})")
        } else if note.is_empty() {
            String::new()
        } else {
            format!(" ({})", note.trim_start_matches(", "))
        };
        for (kind, names) in
            [("container", &owned.containers), ("network", &owned.networks), ("volume", &owned.volumes)]
        {
            for name in names {
                println!("  - {kind} {name}{on}");
            }
        }
    }
}

/// Prints a line per step with its duration (and a line when a long step begins).
struct Lines;

impl Reporter for Lines {
    fn started(&self, what: &str, long: bool) {
        if long {
            println!("  … {what}");
            let _ = std::io::stdout().flush();
        }
    }

    fn finished(&self, what: &str, took: Duration) {
        println!("  ✓ {what} ({:.1} s)", took.as_secs_f64());
        let _ = std::io::stdout().flush();
    }
}

/// [`Lines`] on stderr, when stdout carries JSON.
struct ErrLines;

impl Reporter for ErrLines {
    fn started(&self, what: &str, long: bool) {
        if long {
            eprintln!("  … {what}");
        }
    }

    fn finished(&self, what: &str, took: Duration) {
        eprintln!("  ✓ {what} ({:.1} s)", took.as_secs_f64());
    }
}

async fn up(file: &Path) -> Result<ExitCode> {
    let started = Instant::now();
    let (settings, desired) = load(file)?;
    if let Some(aws_desired) = AwsDesired::from_settings(&settings) {
        return aws_up(file, &aws_desired, desired).await;
    }
    let hosts = Hosts::one(Engine::connect().await?);
    let computed = compute_plan(&hosts, &desired).await?;
    let (plan, nginx_conf, desired) = (computed.plan, computed.nginx_conf, computed.desired);
    if plan.is_empty() {
        println!(
            "nothing to do: cluster {} already matches {} ({})",
            desired.cluster,
            file.display(),
            desired.endpoint.url()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let secrets = exec::secrets_from_env(&plan, &desired)?;
    println!(
        "momctl up: cluster {} on the local Docker engine, {} change(s)",
        desired.cluster,
        plan.changes.len()
    );
    exec::apply(&hosts, &desired, &plan, &nginx_conf, &secrets, &Lines).await?;
    println!(
        "cluster {} is up at {}/ ({} brokers; took {:.1} s)",
        desired.cluster,
        desired.endpoint.url(),
        desired.brokers().count(),
        started.elapsed().as_secs_f64()
    );
    if let Some(grpc) = desired.endpoint.grpc_address() {
        let tls = if desired.tls.is_some() { "with TLS" } else { "without TLS" };
        println!("gRPC (mom.v1.Broker, HTTP/2 {tls}) at {grpc}");
    }
    print_tls_note(&desired);
    Ok(ExitCode::SUCCESS)
}

/// Where a client finds the CA of a self-signed certificate.
fn print_tls_note(desired: &Desired) {
    if desired.tls == Some(mom_operator::config::Tls::SelfSigned) {
        println!(
            "HTTPS certificate signed by the cluster's CA: give clients {} (e.g. curl --cacert)",
            aws::cluster_dir(&desired.cluster).join(mom_operator::pki::CA_CERT).display()
        );
    }
}

async fn show_status(file: &Path, output: Output) -> Result<ExitCode> {
    let (settings, mut desired) = load(file)?;
    let view = ec2_view(&settings).await?;
    if let Some((aws_desired, observed)) = &view {
        // The brokers are asked through host 1's NGINX.
        if let Some(ip) = aws::endpoint_ip(observed) {
            desired.endpoint.bind = ip;
        }
        if let Output::Text = output {
            print_instances(aws_desired, observed);
        }
    }
    let hosts = hosts_for(view.as_ref()).await?;
    let password = std::env::var(&desired.admin_password_env).ok().filter(|p| !p.is_empty());
    let status = status::gather(&hosts, &desired, password.as_deref()).await?;
    if let Output::Json = output {
        println!("{}", serde_json::to_string_pretty(&status)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("cluster {} at {}/", status.cluster, status.endpoint);
    if let Some(grpc) = &status.grpc_endpoint {
        println!("  gRPC at {grpc}");
    }
    if status.containers.is_empty() {
        println!("  no containers (run `momctl up`)");
    } else {
        // The host column only when the cluster spans several.
        let spread = status.containers.iter().any(|c| c.host > 1);
        let host = |h: &str| if spread { format!("{h:<5} ") } else { String::new() };
        println!(
            "  {:<16} {}{:<34} {:<9} {:<10} {:<8} IMAGE",
            "SERVICE",
            host("HOST"),
            "CONTAINER",
            "STATE",
            "HEALTH",
            "VERSION"
        );
        for c in &status.containers {
            println!(
                "  {:<16} {}{:<34} {:<9} {:<10} {:<8} {}",
                c.service,
                host(&c.host.to_string()),
                c.container,
                c.state,
                c.health.as_deref().unwrap_or("-"),
                c.version.as_deref().unwrap_or("-"),
                c.image
            );
        }
    }
    match (&status.api, &status.api_error) {
        (Some(api), _) => {
            println!(
                "  brokers (GET /v1/cluster through NGINX): {} node(s), leader {}",
                api.nodes.len(),
                api.leader.as_deref().unwrap_or("-")
            );
            for node in &api.nodes {
                println!(
                    "    {:<10} {:<22} version {:<8} since {}",
                    node.id, node.address, node.version, node.started_at
                );
            }
            println!("  queues: {}, topics: {}", api.queues, api.topics);
        }
        (None, Some(why)) => println!("  brokers: not asked ({why})"),
        (None, None) => {}
    }
    Ok(ExitCode::SUCCESS)
}

async fn logs(file: &Path, service: &str, follow: bool, tail: Option<u32>) -> Result<ExitCode> {
    let (settings, desired) = load(file)?;
    let hosts = hosts_for(ec2_view(&settings).await?.as_ref()).await?;
    let containers = hosts.containers(&desired.cluster).await?;
    let Some(container) =
        containers.iter().find(|c| c.service.as_deref() == Some(service) || c.name == service)
    else {
        let known: Vec<&str> = containers.iter().filter_map(|c| c.service.as_deref()).collect();
        if known.is_empty() {
            bail!("cluster {} has no containers (run `momctl up`)", desired.cluster);
        }
        bail!("cluster {} has no service {service}; it has: {}", desired.cluster, known.join(", "));
    };
    let mut stream = Box::pin(hosts.engine(container.host).logs(&container.name, follow, tail));
    let mut stdout = std::io::stdout();
    while let Some(chunk) = stream.next().await {
        stdout.write_all(&chunk?)?;
        stdout.flush()?;
    }
    Ok(ExitCode::SUCCESS)
}

fn render_files(file: &Path, out: &Path) -> Result<ExitCode> {
    let (_, desired) = load(file)?;
    // One directory per host when the cluster spans several (`host-1`, …).
    let parts: Vec<Desired> = if desired.hosts > 1 {
        (1..=desired.hosts).map(|h| desired.on_host(h)).collect()
    } else {
        vec![desired]
    };
    for part in &parts {
        let mut files = render::host_files(part)?;
        files.extend(render::secret_files(part)?);
        for path in render::write_files(&out.join(&part.host), &files)? {
            println!("wrote {}", path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn down(file: &Path, yes: bool) -> Result<ExitCode> {
    let (settings, desired) = load(file)?;
    if let Some(aws_desired) = AwsDesired::from_settings(&settings) {
        return aws_down(&aws_desired, yes).await;
    }
    let hosts = Hosts::one(Engine::connect().await?);
    let owned = hosts.owned(&desired.cluster).await?;
    if owned.iter().all(|(_, o)| o.is_empty()) {
        println!("nothing to remove: nothing is labelled {}", Desired::cluster_filter(&desired.cluster));
        return Ok(ExitCode::SUCCESS);
    }
    println!("cluster {} owns (label {}):", desired.cluster, Desired::cluster_filter(&desired.cluster));
    print_owned(&hosts, &owned, "");
    if !yes && !confirmed("Remove all of it, with the messages and metadata in the volumes?")? {
        println!("nothing removed");
        return Ok(ExitCode::FAILURE);
    }
    let started = Instant::now();
    exec::teardown(&hosts, &owned, &Lines).await?;
    println!("cluster {} removed ({:.1} s)", desired.cluster, started.elapsed().as_secs_f64());
    Ok(ExitCode::SUCCESS)
}

async fn build(file: &Path, binary: Option<PathBuf>, tag: Option<String>) -> Result<ExitCode> {
    let tag = match tag {
        Some(tag) => tag,
        None if file.exists() => load(file)?.0.broker_image,
        None => config::defaults::BROKER_IMAGE.to_string(),
    };
    let binary = match binary {
        Some(path) => path,
        None => images::find_binary(std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).as_deref())?,
    };
    let engine = Engine::connect().await?;
    let what = format!("build {tag} from {}", binary.display());
    Lines.started(&what, true);
    let started = Instant::now();
    let id = images::build_broker(&engine, &tag, &binary).await?;
    Lines.finished(&what, started.elapsed());
    println!("{tag} is {id}");
    Ok(ExitCode::SUCCESS)
}

async fn rolling_upgrade(file: &Path, target: Target<'_>, rolling: &Rolling) -> Result<ExitCode> {
    let (settings, desired) = load(file)?;
    let hosts = hosts_for(ec2_view(&settings).await?.as_ref()).await?;
    let computed = compute_upgrade(&hosts, &desired, target).await?;
    let plan = &computed.plan;
    let json = matches!(rolling.output, Output::Json);
    let say = |line: String| {
        if json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    };
    if plan.steps.is_empty() {
        say(format!("nothing to do: every broker of cluster {} runs {}", plan.cluster, plan.image));
    } else {
        say(format!(
            "momctl: rolling upgrade of cluster {} to {}, {} broker(s), one at a time",
            plan.cluster,
            plan.image,
            plan.steps.len()
        ));
    }
    let secrets = exec::upgrade_secrets(plan)?;
    let report: &dyn Reporter = if json { &ErrLines } else { &Lines };
    let summary = exec::upgrade(
        &hosts,
        &desired,
        plan,
        &computed.nginx_confs,
        &secrets,
        Duration::from_secs(rolling.ready_timeout_s),
        report,
    )
    .await;
    if json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    }
    if summary.ok {
        if !plan.steps.is_empty() {
            say(format!(
                "cluster {} runs {} on every broker (took {:.1} s)",
                summary.cluster, summary.image, summary.took_s
            ));
        }
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!("momctl: upgrade stopped: {}", summary.error.as_deref().unwrap_or("unknown error"));
    if let Some(logs) = &summary.failed_logs {
        eprintln!("its last log lines:");
        for line in logs.lines() {
            eprintln!("  | {line}");
        }
    }
    let upgraded: Vec<&str> =
        summary.brokers.iter().filter(|b| b.outcome == "upgraded").map(|b| b.service.as_str()).collect();
    eprintln!(
        "the other brokers keep serving on their image{}",
        if upgraded.is_empty() {
            String::new()
        } else {
            format!(" ({} already on {})", upgraded.join(", "), summary.image)
        }
    );
    Ok(ExitCode::FAILURE)
}

/// Asks `question` on the terminal; without one, refuses (a script must pass `--yes`).
fn confirmed(question: &str) -> Result<bool> {
    if !std::io::stdin().is_terminal() {
        bail!("refusing to remove without confirmation: pass --yes");
    }
    print!("{question} [y/N] ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}
