//! `tessera-dev`: the development tools that never ship in the production image:
//! `tessera-dev up` (the whole stack in one process tree, see [`up`]) and `tessera-dev
//! conformance` (the protocol's conformance vectors, see [`conformance`]).

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

use tessera_devstack::{conformance, up};

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
    /// Write the protocol's conformance vectors (JSON) into a folder: deterministic, so
    /// the checked-in `conformance/` is regenerated with `--out conformance`.
    Conformance {
        /// The folder to write into (created if missing; files of the same names are
        /// replaced).
        #[arg(long, default_value = "conformance")]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Conformance { out } = &cli.command {
        return match conformance::write(out) {
            Ok(names) => {
                for name in names {
                    println!("{}", out.join(name).display());
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: writing the vectors into {}: {e}", out.display());
                ExitCode::FAILURE
            }
        };
    }
    let _telemetry = tessera_runtime::telemetry::init("info", "tessera-dev");
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
        // Handled above, without a runtime.
        Command::Conformance { .. } => Ok(()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
