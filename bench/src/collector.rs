//! The collector under test: its database (a temporary SQLite file, or a fresh database on a
//! PostgreSQL server), its CLI, and its `serve` process on a loopback port.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sqlx::Connection;
use tokio::process::{Child, Command};

use crate::tree;

/// The `hatang-collector` binary beside this one (`target/release/`), unless `explicit`.
pub fn binary(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None => std::env::current_exe()?
            .parent()
            .context("the bench binary has no directory")?
            .join("hatang-collector"),
    };
    if !path.exists() {
        bail!(
            "{} is missing: build it first (cargo build --release -p hatang-collector -p hatang-bench) or pass --collector-bin",
            path.display()
        );
    }
    Ok(path)
}

/// Where the collector keeps its data for one run.
#[derive(Debug)]
enum Database {
    Sqlite,
    /// A database made for this run on the server `admin` names, dropped afterwards.
    Postgres {
        admin: String,
        name: String,
    },
}

/// A collector with its own database and working directory.
#[derive(Debug)]
pub struct Collector {
    bin: PathBuf,
    pub dir: tempfile::TempDir,
    url: String,
    database: Database,
    child: Option<Child>,
    pub addr: String,
}

/// `url` with its database name replaced by `name`, query parameters kept.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority = base.find("://").map_or(0, |i| i + 3);
    let server = match base[authority..].find('/') {
        Some(slash) => &base[..authority + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{server}/{name}?{q}"),
        None => format!("{server}/{name}"),
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Collector {
    /// Prepares a database: a SQLite file in a temporary directory, or, given a `postgres://`
    /// URL, a new database on that server (the URL's own database is only used to create it).
    pub async fn new(bin: PathBuf, postgres: Option<&str>) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("hatang-bench-").tempdir()?;
        let (url, database) = match postgres {
            None => (
                format!("sqlite://{}", dir.path().join("hatang.db").display()),
                Database::Sqlite,
            ),
            Some(admin) => {
                let name = format!("hatang_bench_{}", std::process::id());
                let mut conn = sqlx::PgConnection::connect(admin)
                    .await
                    .context("cannot connect to the PostgreSQL server given with --database")?;
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut conn)
                .await?;
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await?;
                (
                    with_database(admin, &name),
                    Database::Postgres {
                        admin: admin.to_string(),
                        name,
                    },
                )
            }
        };
        Ok(Self {
            bin,
            dir,
            url,
            database,
            child: None,
            addr: format!("127.0.0.1:{}", free_port()?),
        })
    }

    /// The database URL the collector is given.
    pub fn database_url(&self) -> &str {
        &self.url
    }

    pub fn backend(&self) -> &'static str {
        match self.database {
            Database::Sqlite => "SQLite",
            Database::Postgres { .. } => "PostgreSQL",
        }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("collector.toml")
    }

    /// `hatang-collector ARGS --database URL --config FILE`, quiet unless it fails.
    pub async fn cli(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = Command::new(&self.bin)
            .args(args)
            .arg("--database")
            .arg(&self.url)
            .arg("--config")
            .arg(self.config_path())
            .env("HATANG_LOG", "warn")
            .output()
            .await
            .with_context(|| format!("cannot run {}", self.bin.display()))?;
        if !out.status.success() {
            bail!(
                "hatang-collector {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Migrates the database and imports a synthetic tree of `units` units made from `seed`
    /// with the CLI (`units import`, as an operator would); returns the tree.
    pub async fn import_tree(&self, units: usize, seed: u64) -> anyhow::Result<Vec<tree::Unit>> {
        self.cli(&["migrate"]).await?;
        let units = tree::generate(units, seed);
        let csv = self.dir.path().join("units.csv");
        std::fs::write(&csv, tree::csv(&units))?;
        self.cli(&["units", "import", &csv.display().to_string()])
            .await?;
        Ok(units)
    }

    /// Writes the configuration `serve` and the CLI read.
    pub fn configure(&self, toml: &str) -> anyhow::Result<()> {
        std::fs::write(self.config_path(), toml)?;
        Ok(())
    }

    /// Starts `serve` and returns how long it took until `/readyz` answered 200.
    pub async fn start(&mut self, client: &reqwest::Client) -> anyhow::Result<Duration> {
        let log = std::fs::File::create(self.dir.path().join("collector.log"))?;
        let started = Instant::now();
        let child = Command::new(&self.bin)
            .args([
                "serve",
                "--listen",
                &self.addr,
                "--database",
                &self.url,
                "--config",
            ])
            .arg(self.config_path())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", self.bin.display()))?;
        self.child = Some(child);
        let ready = format!("{}/readyz", self.base_url());
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                bail!("the collector exited with {status}: {}", self.log());
            }
            if let Ok(r) = client.get(&ready).send().await
                && r.status().is_success()
            {
                return Ok(started.elapsed());
            }
            if started.elapsed() > Duration::from_secs(60) {
                bail!("the collector was not ready within 60 s: {}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// The `serve` process id, as `/proc` names it.
    pub fn pid(&self) -> Option<String> {
        self.child
            .as_ref()
            .and_then(Child::id)
            .map(|p| p.to_string())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("collector.log")).unwrap_or_default()
    }

    /// Stops `serve` and removes what the run created (`keep`: leaves the files and database).
    pub async fn finish(mut self, keep: bool) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
        if keep {
            let dir = self.dir.keep();
            eprintln!("kept {} and the database {}", dir.display(), self.url);
            return Ok(());
        }
        if let Database::Postgres { admin, name } = &self.database {
            let mut conn = sqlx::PgConnection::connect(admin).await?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&mut conn)
            .await?;
        }
        Ok(())
    }
}

/// Size of the database a run left: the SQLite file with its WAL, or PostgreSQL's own figure.
pub async fn database_bytes(url: &str) -> Option<u64> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        let size = |p: String| std::fs::metadata(p).map_or(0, |m| m.len());
        return Some(size(path.to_string()) + size(format!("{path}-wal")));
    }
    let mut conn = sqlx::PgConnection::connect(url).await.ok()?;
    let bytes: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())")
        .fetch_one(&mut conn)
        .await
        .ok()?;
    u64::try_from(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_name_is_swapped_in_the_url() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:55432/hatang", "b"),
            "postgres://postgres@127.0.0.1:55432/b"
        );
        assert_eq!(
            with_database("postgres://u:p@h/db?sslmode=disable", "b"),
            "postgres://u:p@h/b?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "b"), "postgres://h/b");
    }
}
