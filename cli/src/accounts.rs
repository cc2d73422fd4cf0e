//! `tessera users add` (admin) and reading a password from standard input.

use std::io::BufRead;

use anyhow::{Context as _, bail};
use clap::Subcommand;
use tessera_bus_config::Role;

use crate::connect::connect;
use crate::env::Settings;
use crate::output::print_json;

#[derive(Subcommand)]
pub enum UsersCmd {
    /// Create a local account.
    Add {
        username: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
}

pub fn read_password(password_stdin: bool) -> anyhow::Result<String> {
    if !password_stdin {
        bail!("give the password on standard input with --password-stdin");
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password")?;
    let pw = line.trim_end_matches(['\n', '\r']).to_owned();
    if pw.is_empty() {
        bail!("the password on standard input is empty");
    }
    Ok(pw)
}

pub async fn users(settings: &Settings, cmd: UsersCmd) -> anyhow::Result<()> {
    match cmd {
        UsersCmd::Add {
            username,
            password_stdin,
        } => {
            let password = read_password(password_stdin)?;
            let reply = connect(settings, Role::Admin)
                .await?
                .add_user(&username, &password)
                .await?;
            eprintln!("user {username} created");
            print_json(&reply)
        }
    }
}

/// `tessera login`: a local account, or a third-party app's package (`--app`).
pub async fn login(
    settings: &Settings,
    username: Option<String>,
    app: Option<String>,
    params: &[String],
    password_stdin: bool,
    json: bool,
) -> anyhow::Result<()> {
    let reply = if let Some(app) = app {
        crate::packages::login_app(settings, &app, params).await?
    } else {
        let username = username.context("give a username")?;
        let password = read_password(password_stdin)?;
        connect(settings, Role::Client)
            .await?
            .login(&username, &password)
            .await?
    };
    if json {
        print_json(&reply)
    } else {
        println!("{}", reply.account_token);
        eprintln!(
            "account {} logged in; token expires at {} (unix)",
            reply.account_id, reply.expires_at
        );
        Ok(())
    }
}
