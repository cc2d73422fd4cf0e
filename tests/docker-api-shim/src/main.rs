//! `docker-api-shim LISTEN_SOCKET [ENGINE_SOCKET]`: serves the Docker API on LISTEN_SOCKET
//! and forwards to the engine (default: the `DOCKER_HOST` unix socket or
//! /var/run/docker.sock) with request API versions lowered to the engine's newest, so
//! testcontainers works against engines older than its API version. See
//! the crate docs. `make test` starts it when the engine needs it.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use docker_api_shim::{DEFAULT_SOCKET, DockerHost, run_api_shim};

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let Some(listen) = args.next().map(PathBuf::from) else {
        eprintln!("usage: docker-api-shim LISTEN_SOCKET [ENGINE_SOCKET]");
        return ExitCode::from(64);
    };
    let upstream = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| match DockerHost::from_env() {
            Some(DockerHost::Unix(p)) if p != listen => p,
            _ => PathBuf::from(DEFAULT_SOCKET),
        });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match rt.block_on(run_api_shim(&listen, &upstream)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("docker-api-shim: {e}");
            ExitCode::FAILURE
        }
    }
}
