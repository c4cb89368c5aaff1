//! The collector's command-line actions, apart from parsing so tests can call them.
//!
//! Each writes its result to `out` (stdout in the binary) and returns an error for the caller to
//! print as one line; progress notes go to the log (stderr), never to `out`, so scripts can read
//! `out` safely.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, bail};

use crate::config::Config;
use crate::figures::agent_state;
use crate::store::{self, Missing, Store};
use crate::tokens::{self, TokenRequest};

/// Output format of `coverage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

/// Opens the configured database; a missing SQLite file is created or refused as `missing`
/// says, refused with what to run instead.
pub async fn open_store(config: &Config, missing: Missing) -> anyhow::Result<Box<dyn Store>> {
    store::open(&config.database, missing)
        .await
        .map_err(|e| match e {
            store::StoreError::Missing(path) => anyhow::anyhow!(
                "no database at {}: create it with `hatang-collector serve` or `hatang-collector \
                 units import FILE.csv`, or check --database (HATANG_DATABASE)",
                path.display()
            ),
            e => anyhow::Error::new(e).context(format!(
                "cannot open database {}",
                store::redact_url(&config.database)
            )),
        })
}

/// Imports the unit file `file`. With `serve_config` (the configuration `serve` runs with:
/// `--config`), today's figures under the tree being replaced are first kept as today's
/// snapshot, if `serve` has not taken it yet. Without one they are not: a snapshot is
/// permanent, and one computed with default targets, equipment window and `utc_offset` would
/// misstate that day for good.
pub async fn units_import(
    store: &dyn Store,
    serve_config: Option<&Config>,
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
    match serve_config {
        Some(config) => {
            crate::history::take_today(store, config).await?;
        }
        // Nothing to keep on a first import.
        None if store.units().await?.is_empty() => {}
        None => eprintln!(
            "note: today's figures under the tree being replaced were not kept as a snapshot; \
             give --config (the file serve uses) to keep them with its targets and utc_offset"
        ),
    }
    let s = store.import_units(&units, crate::now()).await?;
    let merged = if s.merged > 0 {
        format!(
            ", {} merged (their {} agents moved with them)",
            s.merged, s.agents_moved
        )
    } else {
        String::new()
    };
    writeln!(
        out,
        "imported {} units from {}: {} added, {} updated, {} unchanged, {} retired{merged}",
        units.units.len(),
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
    request: &TokenRequest,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let created = tokens::create(store, request, crate::now()).await?;
    writeln!(out, "{}", created.secret.plain)?;
    Ok(())
}

/// Prints every token by fingerprint, oldest first; never a secret.
pub async fn token_list(store: &dyn Store, out: &mut impl Write) -> anyhow::Result<()> {
    write!(out, "{}", tokens::table(&store.tokens().await?))?;
    Ok(())
}

/// Revokes the token `given` names (its fingerprint or the token itself) at once, for every
/// collector on the database.
pub async fn token_revoke(
    store: &dyn Store,
    given: &str,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let fingerprint = tokens::fingerprint_of(given)?;
    let now = crate::now();
    let revoked = store
        .revoke_token(&fingerprint, now)
        .await
        .map_err(|e| match e {
            store::StoreError::NotFound(_) => anyhow::anyhow!(
                "no token has the fingerprint {fingerprint} (see `hatang-collector token list`)"
            ),
            other => other.into(),
        })?;
    let token = revoked.item;
    if revoked.already {
        let at = crate::present::when(token.revoked_at.unwrap_or(now));
        writeln!(out, "token {fingerprint} was already revoked on {at}")?;
    } else {
        tracing::info!(fingerprint = %token.fingerprint, kind = token.kind.as_str(), "token revoked");
        writeln!(out, "revoked {} token {fingerprint}", token.kind.as_str())?;
    }
    Ok(())
}

/// Prints every agent with its state and whether its key was revoked.
pub async fn agent_list(store: &dyn Store, out: &mut impl Write) -> anyhow::Result<()> {
    let now = crate::now();
    let mut agents = store.agents().await?;
    agents.sort_by(|a, b| a.id.cmp(&b.id));
    writeln!(
        out,
        "{:<36}  {:<10}  {:<11}  {:<24}  {:<7}  {:<16}  REVOKED",
        "ID", "UNIT", "ROLE", "HOSTNAME", "STATE", "LAST REPORT"
    )?;
    for a in &agents {
        let interval = a.interval_secs.and_then(|i| u32::try_from(i).ok());
        writeln!(
            out,
            "{:<36}  {:<10}  {:<11}  {:<24}  {:<7}  {:<16}  {}",
            a.id,
            a.unit_code,
            a.role,
            a.hostname,
            agent_state(a.last_report_at, interval, now).as_str(),
            a.last_report_at
                .map_or("never".to_string(), crate::present::when),
            a.revoked_at.map_or("-".to_string(), crate::present::when),
        )?;
    }
    Ok(())
}

/// Revokes an agent's key at once, for every collector on the database: its next report is
/// refused (401) and the agent says it must be enrolled again. Enrolling the machine again with
/// a valid enrolment token issues a new key and lifts the revocation; to keep a machine out,
/// revoke the enrolment tokens that could enrol it too.
pub async fn agent_revoke(store: &dyn Store, id: &str, out: &mut impl Write) -> anyhow::Result<()> {
    let now = crate::now();
    let revoked = store.revoke_agent(id, now).await.map_err(|e| match e {
        store::StoreError::NotFound(_) => {
            anyhow::anyhow!("no agent {id} (see `hatang-collector agent list`)")
        }
        other => other.into(),
    })?;
    let agent = revoked.item;
    if revoked.already {
        let at = crate::present::when(agent.revoked_at.unwrap_or(now));
        writeln!(
            out,
            "agent {id} ({}) was already revoked on {at}",
            agent.hostname
        )?;
    } else {
        tracing::info!(agent = %agent.id, unit = %agent.unit_code, "agent key revoked");
        writeln!(
            out,
            "revoked agent {id} ({}, unit {}); it must be enrolled again to report",
            agent.hostname, agent.unit_code
        )?;
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
    print_coverage(&figures, "the unit tree", level, format, out)
}

/// `coverage --at DATE`: the figures of that day's snapshot.
pub async fn coverage_at(
    store: &dyn Store,
    date: &str,
    level: Option<&str>,
    format: Format,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let day = crate::history::parse_date(date).map_err(|e| anyhow::anyhow!("--at {e}"))?;
    let figures = crate::history::figures_at(store, day)
        .await?
        .map_err(anyhow::Error::msg)?;
    print_coverage(
        &figures,
        &format!("the snapshot of {date}"),
        level,
        format,
        out,
    )
}

/// `hatang-collector snapshot`: takes today's figure snapshot unless it exists (for cron; `serve`
/// takes it by itself).
pub async fn snapshot(
    store: &dyn Store,
    config: &Config,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    match crate::history::take_today(store, config).await? {
        crate::history::Taken::Written {
            date,
            levels,
            units,
        } => writeln!(
            out,
            "snapshot of {date} written: {levels} levels, {units} units"
        )?,
        crate::history::Taken::Exists { date } => {
            writeln!(out, "snapshot of {date} already taken; left as it was")?;
        }
        crate::history::Taken::NoUnits => {
            writeln!(out, "no unit tree imported yet; no snapshot taken")?;
        }
    }
    Ok(())
}

fn print_coverage(
    figures: &crate::figures::Figures,
    source: &str,
    level: Option<&str>,
    format: Format,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    if let Some(l) = level
        && !figures.levels.iter().any(|x| x.level == l)
    {
        let known: Vec<&str> = figures.levels.iter().map(|x| x.level.as_str()).collect();
        bail!("no level {l:?} in {source} (levels: {})", known.join(", "));
    }
    match format {
        Format::Table => write!(out, "{}", crate::coverage::table(figures, level))?,
        Format::Csv => write!(out, "{}", crate::coverage::csv(figures, level))?,
        Format::Json => {
            let doc = crate::coverage::json(figures, level);
            writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
        }
    }
    Ok(())
}
