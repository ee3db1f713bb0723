//! `tidings coupons` and `tidings journeys`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

use crate::config::Settings;
use crate::store::Store;

#[derive(Debug, Subcommand)]
pub enum CouponsAction {
    /// Add the codes in FILE (one per line) to POOL; codes already there are skipped.
    Import { pool: String, file: PathBuf },
    /// Check a signed code against `coupons.secret`.
    Verify { code: String },
}

/// Lists the pools (no action), imports codes, or verifies a code.
pub async fn coupons(settings: Settings, action: Option<CouponsAction>) -> anyhow::Result<()> {
    match action {
        Some(CouponsAction::Verify { code }) => {
            let signer = settings.coupons.signer.as_ref().context("coupons.secret is not set")?;
            match signer.verify(&code) {
                Ok(prefix) => {
                    println!("valid ({prefix})");
                    Ok(())
                }
                Err(e) => {
                    println!("invalid: {e}");
                    std::process::exit(1)
                }
            }
        }
        Some(CouponsAction::Import { pool, file }) => {
            anyhow::ensure!(crate::coupons::valid_pool(&pool), "pool {pool:?}: use letters, digits, - and _");
            let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            let codes = crate::coupons::clean_codes(text.lines())
                .map_err(|(i, e)| anyhow::anyhow!("{}:{}: {e}", file.display(), i + 1))?;
            let store = Store::open(&settings.raw.database.url).await?;
            store.migrate().await?;
            let imported = store.import_coupons(&pool, &codes, jiff::Timestamp::now()).await?;
            println!("{imported} imported, {} already in {pool}", codes.len() as u64 - imported);
            print_pools(&store, &settings).await
        }
        None => {
            let store = Store::open_existing(&settings.raw.database.url).await?;
            print_pools(&store, &settings).await
        }
    }
}

async fn print_pools(store: &Store, settings: &Settings) -> anyhow::Result<()> {
    println!("{:<20} {:>9} {:>9}", "pool", "remaining", "total");
    for p in store.coupon_pools().await? {
        let low = if p.remaining < settings.coupons.warn_below(&p.pool) { "  LOW" } else { "" };
        println!("{:<20} {:>9} {:>9}{low}", p.pool, p.remaining, p.total);
    }
    Ok(())
}

/// The journeys as configured, then the latest runs.
pub async fn journeys(settings: Settings, journey: Option<String>, limit: u32) -> anyhow::Result<()> {
    for j in &settings.journeys {
        let state = if j.entry.enabled { "enabled" } else { "disabled" };
        println!(
            "{} ({state}): entry {}, exit on {:?}, re-entry {:?}",
            j.id,
            j.entry.trigger.kind(),
            j.exit_on,
            j.reentry
        );
        for (n, s) in j.steps.iter().enumerate() {
            let channels: Vec<String> = s.channels.iter().map(|c| c.to_string()).collect();
            println!(
                "  step {}: day {} {} {}{}",
                n + 1,
                s.after_days,
                channels.join("/"),
                s.template,
                if s.unless.is_empty() { String::new() } else { format!(" unless {}", s.unless.join(", ")) }
            );
        }
    }
    let store = Store::open_existing(&settings.raw.database.url).await?;
    let runs = store.journey_runs(journey.as_deref(), limit).await?;
    if !runs.is_empty() {
        println!("\n{:<8} {:<16} {:>8} {:<10} {:<26} reason", "run", "journey", "member", "state", "entered");
    }
    for r in runs {
        println!(
            "{:<8} {:<16} {:>8} {:<10} {:<26} {}",
            r.id,
            r.journey_id,
            r.member_id,
            r.state,
            r.entered_at.to_string(),
            r.exit_reason.unwrap_or_default()
        );
    }
    Ok(())
}
