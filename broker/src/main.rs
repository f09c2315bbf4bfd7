use clap::Parser;
use tracing_subscriber::EnvFilter;

/// mimalloc: glibc's malloc/free was a fifth of the broker's CPU per request (BENCHMARKS.md).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let config = mom_broker::config::Config::parse();
    let filter = EnvFilter::try_from_env("MOM_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour only on a terminal: `docker logs` and files get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi);
    match config.log_format {
        mom_broker::config::LogFormat::Json => logs.json().init(),
        mom_broker::config::LogFormat::Text => logs.init(),
    }
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(n) = config.worker_threads {
        runtime.worker_threads(n.max(1));
    }
    let code = match runtime.build() {
        Ok(rt) => match rt.block_on(mom_broker::server::run(config)) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("mom-broker: {e:#}");
                1
            }
        },
        Err(e) => {
            eprintln!("mom-broker: cannot start the runtime: {e}");
            1
        }
    };
    // The node has drained; exit now rather than wait for background clients (the ZooKeeper
    // session, idle blocking threads) to wind down inside the runtime's teardown.
    std::process::exit(code);
}
