//! `tessera-dev`: the development tools that never ship in the production image. Today one
//! command, `tessera-dev up` (the whole stack in one process tree, see [`up`]).

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tessera_devstack::up;

/// See the workspace Cargo.toml: the workers run in this process.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "tessera-dev",
    version,
    about = "Development tools for Tessera: a whole stack on this machine",
    after_help = "Start here: `tessera-dev up`, then in another shell `tessera users add`, \
                  `tessera login`, `tessera routes set`, `tessera token request`, `tessera call`."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a development stack: nats-server and redis-server as children, the broker, auth
    /// and gateway workers and a demo plugin server, until Ctrl-C.
    Up(up::UpArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tessera_runtime::telemetry::init("info");
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Up(args) => runtime.block_on(up::run(args)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
