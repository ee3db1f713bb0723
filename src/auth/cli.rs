//! `tidings keys create|list|revoke`: API keys from the command line (audited with actor `cli`).

use clap::Subcommand;

use super::{ACTOR_CLI, KeyError, Role};
use crate::config::Settings;
use crate::store::Store;
use crate::store::auth::Revoked;

#[derive(Debug, Subcommand)]
pub enum KeysAction {
    /// Make a key and print it: it is shown this once, only its hash is kept.
    Create {
        /// A name for the key (letters, digits, '.', '-', '_'), e.g. the system or person using it.
        #[arg(long)]
        name: String,
        /// admin, marketer, viewer or integration (see README: Security).
        #[arg(long, value_parser = ["admin", "marketer", "viewer", "integration"])]
        role: String,
    },
    /// List the keys: name, role, prefix, created, last used, revoked. Never a secret.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by name: it and its console sessions stop working at once.
    Revoke { name: String },
}

pub async fn keys(settings: &Settings, action: KeysAction) -> anyhow::Result<()> {
    let store = Store::open(&settings.raw.database.url).await?;
    store.migrate().await?;
    let now = jiff::Timestamp::now();
    match action {
        KeysAction::Create { name, role } => {
            let role = Role::parse(&role).expect("clap checked the role");
            match super::create(&store, &name, role, ACTOR_CLI, now).await {
                Ok((key, secret)) => {
                    println!("{secret}");
                    eprintln!("created {role} key {:?} (prefix {}); it is not shown again", key.name, key.prefix);
                }
                Err(e @ (KeyError::BadName | KeyError::Taken(_))) => anyhow::bail!("--{e}"),
                Err(KeyError::Store(e)) => return Err(e.into()),
            }
        }
        KeysAction::List { json } => {
            let keys = store.api_keys().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&keys)?);
            } else {
                println!(
                    "{:<24} {:<12} {:<10} {:<22} {:<22} revoked",
                    "name", "role", "prefix", "created", "last used"
                );
                let when = |t: Option<jiff::Timestamp>| {
                    t.map_or("-".to_string(), |t| t.round(jiff::Unit::Second).map_or(t.to_string(), |t| t.to_string()))
                };
                for k in &keys {
                    println!(
                        "{:<24} {:<12} {:<10} {:<22} {:<22} {}",
                        k.name,
                        k.role,
                        k.prefix,
                        when(Some(k.created_at)),
                        when(k.last_used_at),
                        when(k.revoked_at)
                    );
                }
            }
        }
        KeysAction::Revoke { name } => match super::revoke(&store, &name, ACTOR_CLI, now).await? {
            Revoked::Now => println!("revoked {name:?}"),
            Revoked::Already => println!("{name:?} was already revoked"),
            Revoked::NoSuchKey => anyhow::bail!("no key named {name:?}"),
        },
    }
    Ok(())
}
