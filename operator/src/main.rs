//! `momctl`: the command line. It parses arguments, calls one command of the library
//! (`mom_operator::commands`) and prints what it returns; the commands, planning and execution
//! live in the library.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clap::{Parser, Subcommand, ValueEnum};
use futures::StreamExt;

use mom_operator::commands::plan::Containers;
use mom_operator::commands::upgrade::Target;
use mom_operator::commands::{self, down::Inventory};
use mom_operator::config::{self, Tls};
use mom_operator::desired::Desired;
use mom_operator::home::cluster_dir;
use mom_operator::pki::CA_CERT;
use mom_operator::provider::Place;
use mom_operator::report::Reporter;
use mom_operator::status::Status;

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

async fn run(cli: Cli) -> Result<ExitCode> {
    let file = &cli.file;
    match cli.command {
        Command::Init { cluster, force } => init(file, &cluster, force),
        Command::Plan { output } => plan(file, output).await,
        Command::Up => up(file).await,
        Command::Status { output } => status(file, output).await,
        Command::Logs { service, follow, tail } => logs(file, &service, follow, tail).await,
        Command::Render { out } => render(file, &out),
        Command::Down { yes } => down(file, yes).await,
        Command::Build { binary, tag } => build(file, binary, tag).await,
        Command::Upgrade { broker_image, rolling } => {
            upgrade(file, Target::Image(&broker_image), &rolling).await
        }
        Command::Rollback { rolling } => upgrade(file, Target::Previous, &rolling).await,
    }
}

fn init(file: &Path, cluster: &str, force: bool) -> Result<ExitCode> {
    commands::init::run(file, cluster, force)?;
    println!("wrote {} (cluster {cluster}); next: `momctl plan`, then `momctl up`", file.display());
    Ok(ExitCode::SUCCESS)
}

async fn plan(file: &Path, output: Output) -> Result<ExitCode> {
    let report = commands::plan::run(file).await?;
    let plan = &report.plan;
    if let Containers::Unknown(why) = &report.containers {
        eprintln!("momctl: the containers are not planned: {why}");
    }
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(plan)?),
        Output::Text if report.converged() => {
            println!("nothing to do: cluster {} matches {}", report.cluster, file.display())
        }
        Output::Text => {
            let changes = plan.changes.len();
            match &report.place {
                Place::Local => {
                    println!("cluster {} (local Docker engine): {changes} change(s)", report.cluster)
                }
                Place::Aws { region, hosts, .. } => println!(
                    "cluster {} (AWS {region}, {hosts} host(s)): {changes} change(s), {} on EC2",
                    report.cluster, report.host_changes
                ),
            }
            for change in &plan.changes {
                println!("  {change}");
            }
            if let Containers::AllNew = report.containers {
                println!("  (containers: host 1 is new, so all of them are created)");
            }
            if !report.missing.is_empty() {
                let dir = cluster_dir(&report.cluster);
                println!("  (up first makes, in {}: {})", dir.display(), report.missing.join("; "));
            }
            if let Some(note) = &report.note {
                println!("{note}");
            }
        }
    }
    Ok(if report.converged() { ExitCode::SUCCESS } else { ExitCode::from(2) })
}

async fn up(file: &Path) -> Result<ExitCode> {
    let started = Instant::now();
    let planned = commands::up::plan(file).await?;
    let (desired, changes) = (&planned.desired, planned.planned.plan.changes.len());
    if planned.is_empty() {
        let matches =
            format!("nothing to do: cluster {} already matches {}", desired.cluster, file.display());
        match &planned.place {
            Place::Local => println!("{matches} ({})", desired.endpoint.url()),
            Place::Aws { region, hosts, .. } => println!("{matches} ({hosts} host(s) on AWS {region})"),
        }
        return Ok(ExitCode::SUCCESS);
    }
    match &planned.place {
        Place::Local => {
            println!("momctl up: cluster {} on the local Docker engine, {changes} change(s)", desired.cluster)
        }
        Place::Aws { region, hosts, .. } => println!(
            "momctl up: cluster {} on AWS {region} ({hosts} host(s)), {changes} change(s), {} on EC2",
            desired.cluster, planned.planned.host_changes
        ),
    }
    if let Some(note) = &planned.note {
        println!("{note}");
    }
    let place = match &planned.place {
        Place::Local => None,
        Place::Aws { hosts, keys, .. } => Some((*hosts, keys.clone())),
    };
    let done = commands::up::apply(planned, started, &Lines).await?;
    let desired = &done.desired;
    let (took, brokers) = (done.took.as_secs_f64(), desired.brokers().count());
    let url = done.endpoint.url();
    match place {
        None => {
            println!("cluster {} is up at {url}/ ({brokers} brokers; took {took:.1} s)", desired.cluster);
            println!("web console at {url}/console/");
            if let Some(grpc) = desired.endpoint.grpc_address() {
                let tls = if desired.tls.is_some() { "with TLS" } else { "without TLS" };
                println!("gRPC (mom.v1.Broker, HTTP/2 {tls}) at {grpc}");
            }
            print_tls_note(desired);
        }
        Some((hosts, keys)) => {
            println!(
                "cluster {} is up at {url}/ ({hosts} host(s), {brokers} brokers; took {took:.1} s)",
                desired.cluster
            );
            println!("web console at {url}/console/");
            println!(
                "keys and certificates: {} (SSH key and Docker TLS client certificate; keep them private)",
                keys.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Where a client finds the CA of a self-signed certificate.
fn print_tls_note(desired: &Desired) {
    if desired.tls == Some(Tls::SelfSigned) {
        println!(
            "HTTPS certificate signed by the cluster's CA: give clients {} (e.g. curl --cacert)",
            cluster_dir(&desired.cluster).join(CA_CERT).display()
        );
    }
}

async fn status(file: &Path, output: Output) -> Result<ExitCode> {
    let view = commands::status::view(file).await?;
    if let (Output::Text, Place::Aws { region, .. }) = (output, &view.place) {
        println!("hosts (AWS {region}, tag {}):", view.found_by);
        for [name, id, state, ip] in &view.hosts {
            println!("  {name:<28} {id:<20} {state:<9} {ip}");
        }
    }
    let status = commands::status::gather(&view).await?;
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&status)?),
        Output::Text => print_status(&status),
    }
    Ok(ExitCode::SUCCESS)
}

fn print_status(status: &Status) {
    println!("cluster {} at {}/", status.cluster, status.endpoint);
    println!("  web console at {}/console/", status.endpoint);
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
}

async fn logs(file: &Path, service: &str, follow: bool, tail: Option<u32>) -> Result<ExitCode> {
    let mut stream = Box::pin(commands::logs::open(file, service, follow, tail).await?);
    let mut stdout = std::io::stdout();
    while let Some(chunk) = stream.next().await {
        stdout.write_all(&chunk?)?;
        stdout.flush()?;
    }
    Ok(ExitCode::SUCCESS)
}

fn render(file: &Path, out: &Path) -> Result<ExitCode> {
    for path in commands::render::run(file, out)? {
        println!("wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

async fn down(file: &Path, yes: bool) -> Result<ExitCode> {
    let inventory = commands::down::inventory(file).await?;
    let (cluster, found_by) = (&inventory.cluster, &inventory.found_by);
    let (found, question) = match inventory.place {
        Place::Local => ("labelled", "Remove all of it, with the messages and metadata in the volumes?"),
        Place::Aws { .. } => ("tagged", "Terminate and delete all of it, with the data on the instances?"),
    };
    if inventory.is_empty() {
        println!("nothing to remove: nothing is {found} {found_by}");
        return Ok(ExitCode::SUCCESS);
    }
    let kind = if found == "tagged" { "tag" } else { "label" };
    println!("cluster {cluster} owns ({kind} {found_by}):");
    print_inventory(&inventory);
    if !yes && !confirmed(question)? {
        println!("nothing removed");
        return Ok(ExitCode::FAILURE);
    }
    let started = Instant::now();
    commands::down::remove(&inventory, &Lines).await?;
    println!("cluster {cluster} removed ({:.1} s)", started.elapsed().as_secs_f64());
    Ok(ExitCode::SUCCESS)
}

/// Lists what the cluster owns (`down` asks before removing it): the provider's resources,
/// then what is on the engines, naming the host when there are several.
fn print_inventory(inventory: &Inventory) {
    for line in &inventory.infra_lines {
        println!("  - {line}");
    }
    if let Some(dir) = &inventory.local_dir {
        println!("  - directory {}/ (generated secrets, CA and certificates)", dir.display());
    }
    let Some((hosts, owned)) = &inventory.engines else {
        return;
    };
    // What stands in for the hosts' engines, when they are not the cluster's own.
    let note = inventory.stand_in.map(|s| format!(", {s}")).unwrap_or_default();
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

async fn build(file: &Path, binary: Option<PathBuf>, tag: Option<String>) -> Result<ExitCode> {
    let (tag, id) = commands::build::run(file, binary, tag, &Lines).await?;
    println!("{tag} is {id}");
    Ok(ExitCode::SUCCESS)
}

async fn upgrade(file: &Path, target: Target<'_>, rolling: &Rolling) -> Result<ExitCode> {
    let planned = commands::upgrade::plan(file, target).await?;
    let plan = &planned.plan;
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
    let report: &dyn Reporter = if json { &ErrLines } else { &Lines };
    let ready_timeout = Duration::from_secs(rolling.ready_timeout_s);
    let summary = commands::upgrade::run(&planned, ready_timeout, report).await?;
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
