//! The collector's command-line actions, apart from parsing so tests can call them.
//!
//! Each writes its result to `out` (stdout in the binary) and returns an error for the caller to
//! print as one line; progress notes go to the log (stderr), never to `out`, so scripts can read
//! `out` safely.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, bail};

use crate::config::Config;
use crate::figures::Role;
use crate::secret::{self, Kind};
use crate::store::{self, ApiRole, Store};

/// Output format of `coverage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

pub async fn open_store(config: &Config) -> anyhow::Result<Box<dyn Store>> {
    store::open(&config.database).await.with_context(|| {
        format!(
            "cannot open database {}",
            store::redact_url(&config.database)
        )
    })
}

pub async fn units_import(
    store: &dyn Store,
    file: &Path,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let input =
        std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let units = match crate::units::parse(input) {
        Ok(units) => units,
        Err(errors) => {
            for e in &errors {
                eprintln!("{}:{}: {}", file.display(), e.line, e.message);
            }
            bail!(
                "{} problem(s) in {}; nothing was imported",
                errors.len(),
                file.display()
            );
        }
    };
    let s = store.import_units(&units, crate::now()).await?;
    writeln!(
        out,
        "imported {} units from {}: {} added, {} updated, {} unchanged, {} retired",
        units.len(),
        file.display(),
        s.added,
        s.updated,
        s.unchanged,
        s.retired
    )?;
    Ok(())
}

pub async fn units_list(store: &dyn Store, out: &mut impl Write) -> anyhow::Result<()> {
    let units = store.units().await?;
    if units.is_empty() {
        bail!("no units yet; import a tree with `hatang-collector units import FILE.csv`");
    }
    for u in &units {
        let indent = "  ".repeat(u.depth as usize);
        writeln!(
            out,
            "{indent}{} {} [{}] staff {}",
            u.code, u.name, u.level, u.staff
        )?;
    }
    Ok(())
}

/// Creates a token and writes it alone on the last line of `out`.
pub async fn token_create(
    store: &dyn Store,
    unit: Option<&str>,
    role: Option<&str>,
    expires_days: Option<u32>,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let now = crate::now();
    let expires_at = expires_days.map(|d| now + i64::from(d) * 86_400);
    match unit {
        Some(unit) => {
            let role = match role {
                None => Role::Workstation,
                Some(r) => Role::parse(r).with_context(|| {
                    format!("--role {r:?} with --unit must be workstation or server")
                })?,
            };
            let token = secret::generate(Kind::Enrol)?;
            store
                .create_enrol_token(&token.digest, unit, role, now, expires_at)
                .await
                .map_err(|e| match e {
                    store::StoreError::NotFound(_) => anyhow::anyhow!(
                        "unit {unit} is not in the current tree (see `hatang-collector units list`)"
                    ),
                    other => other.into(),
                })?;
            tracing::info!(unit, role = role.as_str(), "enrolment token created");
            writeln!(out, "{}", token.plain)?;
        }
        None => {
            let Some(r) = role else {
                bail!("say what the token is for: --unit CODE (enrolment) or --role viewer|admin");
            };
            let role = ApiRole::parse(r)
                .with_context(|| format!("--role {r:?} without --unit must be viewer or admin"))?;
            let token = secret::generate(Kind::Api)?;
            store
                .create_api_token(&token.digest, role, now, expires_at)
                .await?;
            tracing::info!(role = role.as_str(), "api token created");
            writeln!(out, "{}", token.plain)?;
        }
    }
    Ok(())
}

pub async fn coverage(
    store: &dyn Store,
    config: &Config,
    level: Option<&str>,
    format: Format,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let figures = crate::http::compute_figures(store, config).await?;
    if let Some(l) = level
        && !figures.levels.iter().any(|x| x.level == l)
    {
        let known: Vec<&str> = figures.levels.iter().map(|x| x.level.as_str()).collect();
        bail!(
            "no level {l:?} in the unit tree (levels: {})",
            known.join(", ")
        );
    }
    match format {
        Format::Table => write!(out, "{}", crate::coverage::table(&figures, level))?,
        Format::Csv => write!(out, "{}", crate::coverage::csv(&figures, level))?,
        Format::Json => {
            let doc = crate::coverage::json(&figures, level);
            writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
        }
    }
    Ok(())
}
