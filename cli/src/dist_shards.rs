//! `tessera dist-shards show|set N` (admin): the number of distribution streams the brokers
//! publish to (docs/reliability.md, "Changing the number of distribution shards").

use clap::Subcommand;
use tessera_bus_config::Role;

use crate::connect::connect;
use crate::env::Settings;

#[derive(Subcommand)]
pub enum DistShardsCmd {
    /// Print the recorded number of shards.
    Show,
    /// Record a new number (1-8). Refused while any broker replica runs: stop them all,
    /// run this, then start them with TESSERA_DIST_SHARDS=N.
    Set { shards: u32 },
}

pub async fn run(settings: &Settings, cmd: DistShardsCmd) -> anyhow::Result<()> {
    let client = connect(settings, Role::Admin).await?;
    match cmd {
        DistShardsCmd::Show => match client.dist_shards().await? {
            Some(n) => println!("{n}"),
            None => println!("none recorded (no broker has started yet)"),
        },
        DistShardsCmd::Set { shards } => {
            let before = client.set_dist_shards(shards).await?;
            println!("{shards}");
            eprintln!(
                "distribution shards: {before} -> {shards}; start the brokers with \
                 TESSERA_DIST_SHARDS={shards}"
            );
        }
    }
    Ok(())
}
