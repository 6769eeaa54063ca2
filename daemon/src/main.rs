//! seald, the seal-custody and signing daemon: the mTLS API in front of the token pools,
//! seal-governance policy and the PAdES engine, with its storage, tamper-evident audit log
//! and metrics. It wires the crates together and holds no signing or policy logic itself.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;

mod api;
mod audit;
mod clock;
mod config;
mod jobs;
mod metrics;
mod outputs;
mod password;
mod problem;
mod registry;
mod rows;
mod server;
mod signing;
mod spool;
mod state;
mod store;
mod tls;
mod zip;

#[derive(Parser, Debug)]
#[command(
    name = "seald",
    version,
    about = "seald: seal custody and PAdES signing over mTLS"
)]
struct Args {
    /// The configuration file (see deploy/seald.example.toml).
    #[arg(
        long,
        short = 'c',
        value_name = "FILE",
        default_value = "/etc/seald/seald.toml"
    )]
    config: PathBuf,
    /// Check the configuration (files, tokens reachable or not) and exit.
    #[arg(long)]
    check: bool,
}

fn read_roots(key: &str, paths: &[PathBuf]) -> Result<Vec<Vec<u8>>, config::ConfigError> {
    let mut roots = Vec::new();
    for p in paths {
        let bytes = std::fs::read(p)
            .map_err(|e| config::ConfigError::new(key, format!("{}: {e}", p.display())))?;
        roots.extend(
            seald_pades::parse_certificates(&bytes)
                .map_err(|e| config::ConfigError::new(key, format!("{}: {e}", p.display())))?,
        );
    }
    Ok(roots)
}

fn prepare(args: &Args) -> Result<server::Prepared, config::ConfigError> {
    let config = config::Config::load(&args.config)?;
    let tls = tls::Tls::new(&config.server)?;
    // Tokens first: their PINs are read, and PIN variables removed from the environment,
    // before any thread exists (the TSA client below starts one).
    let keys = Arc::new(registry::Keys::open(&config.tokens, &config.devices)?);
    let timestamper = match &config.tsa {
        Some(t) => Some(Arc::new(
            seald_tsa_client::HttpTimestamper::new(
                t.authorities()?,
                read_roots("tsa.roots", &t.roots)?,
                Duration::from_secs(t.timeout_seconds),
            )
            .map_err(|e| config::ConfigError::new("tsa", e))?
            .with_limits(
                Duration::from_secs(t.max_wait_seconds),
                Duration::from_secs(t.rest_seconds),
            ),
        )),
        None => None,
    };
    let verify_roots = read_roots("verify.trust_roots", &config.verify.trust_roots)?;
    Ok(server::Prepared {
        config,
        tls,
        keys,
        timestamper,
        verify_roots,
    })
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    let prepared = match prepare(&args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("seald: configuration {}: {e}", args.config.display());
            return ExitCode::from(2);
        }
    };
    if args.check {
        eprintln!("seald: configuration {} is valid", args.config.display());
        return ExitCode::SUCCESS;
    }
    // Kept here so the blocking HTTP client is dropped outside the runtime.
    let timestamper = prepared.timestamper.clone();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("seald: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(server::run(prepared));
    runtime.shutdown_timeout(Duration::from_secs(5));
    drop(timestamper);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("seald: {e}");
            ExitCode::FAILURE
        }
    }
}
