use clap::Parser;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() {
    let config = mom_broker::config::Config::parse();
    let filter = EnvFilter::try_from_env("MOM_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    if config.log_format == "json" {
        logs.json().init();
    } else {
        logs.init();
    }
    let code = match mom_broker::server::run(config).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("mom-broker: {e:#}");
            1
        }
    };
    // The node has drained; exit now rather than wait for background clients (the ZooKeeper
    // session, idle blocking threads) to wind down inside the runtime's teardown.
    std::process::exit(code);
}
