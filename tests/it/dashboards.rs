//! The Grafana dashboards and Prometheus rules in `dashboards/`: every PromQL expression parses
//! (`promtool check rules` on a generated rules file), every alert passes its `promtool test
//! rules` unit tests, and every metric they name exists in a real collector's exposition.
//!
//! Which metric names count as existing: the sample names of a collector that has a unit tree,
//! an enrolled server and workstation that reported once, and a `[[services]]` check of an
//! HTTP URL (its own `/healthz`), plus the recording rules of `dashboards/prometheus/`. The
//! families of [`CONFIG_ONLY`] need what this test does not set up (an HTTPS service with a
//! certificate, the collector serving HTTPS, an agent speed test, a running agent's second CPU
//! reading, temperature sensors, a spool with reports waiting or dropped); for them, and only
//! them, `docs/metrics.md` is the reference: its table is checked against the exposition by the
//! collector's own test (`reference_lists_every_family_on_its_endpoint`), so a name listed there
//! is one the collector exposes.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::support::{Agent, Collector, eventually, run_ok, testdata};

/// Metric families the test collector cannot show, with what it would take.
const CONFIG_ONLY: [(&str, &str); 7] = [
    (
        "hatang_host_cpu_usage_ratio",
        "a running agent's second sample (`once` has no earlier CPU reading)",
    ),
    (
        "hatang_service_tls_expiry_timestamp_seconds",
        "an https service",
    ),
    (
        "hatang_tls_certificate_expiry_timestamp_seconds",
        "the collector serving HTTPS",
    ),
    (
        "hatang_unit_download_bytes_per_second",
        "an agent speed test",
    ),
    (
        "hatang_host_temperature_celsius",
        "a server with hardware temperature sensors (a VM has none)",
    ),
    (
        "hatang_unit_spool_waiting_reports",
        "an agent with reports waiting in its spool",
    ),
    (
        "hatang_unit_spool_dropped_reports",
        "an agent that dropped reports",
    ),
];

fn dashboards_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../dashboards")
}

/// Files of `dir` whose name ends with `suffix`, sorted.
fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no *{suffix} in {}", dir.display());
    files
}

fn name_of(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

/// An expression and where it comes from.
struct Expr {
    origin: String,
    promql: String,
}

/// Every PromQL expression of every dashboard: panel targets (rows' panels included) and the
/// series selectors of `label_values(…)` / `query_result(…)` template variables.
fn dashboard_expressions() -> Vec<Expr> {
    let mut exprs = Vec::new();
    for (file, dash) in dashboards() {
        assert!(
            dash["uid"].as_str().is_some_and(|u| !u.is_empty()),
            "{file}: a uid, so links and provisioning are stable"
        );
        assert!(
            dash["schemaVersion"].as_u64().is_some_and(|v| v >= 36),
            "{file}: schemaVersion"
        );
        for panel in panels_of(&dash) {
            let title = panel["title"].as_str().unwrap_or("?");
            assert_eq!(
                panel["datasource"]["uid"], "${datasource}",
                "{file} / {title}: panels use the dashboard's data source variable"
            );
            let targets = panel["targets"].as_array();
            assert!(
                targets.is_some_and(|t| !t.is_empty()),
                "{file} / {title}: no query"
            );
            for target in targets.into_iter().flatten() {
                let expr = target["expr"].as_str().unwrap_or_default();
                assert!(!expr.trim().is_empty(), "{file} / {title}: empty expr");
                exprs.push(Expr {
                    origin: format!("{file} / {title}"),
                    promql: expr.to_string(),
                });
            }
        }
        for var in dash["templating"]["list"].as_array().expect("templating") {
            if var["type"] != "query" {
                continue;
            }
            let query = var["query"]["query"]
                .as_str()
                .or_else(|| var["query"].as_str())
                .expect("a variable query");
            let origin = format!("{file} / variable {}", var["name"]);
            let selector = template_selector(query)
                .unwrap_or_else(|| panic!("{origin}: unexpected query {query}"));
            exprs.push(Expr {
                origin,
                promql: selector.to_string(),
            });
        }
    }
    exprs
}

/// Every dashboard of `dashboards/grafana/`: (file name, parsed JSON).
fn dashboards() -> Vec<(String, serde_json::Value)> {
    files(&dashboards_dir().join("grafana"), ".json")
        .iter()
        .map(|path| {
            let file = name_of(path);
            let text = std::fs::read_to_string(path).unwrap();
            let dash = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
            (file, dash)
        })
        .collect()
}

/// The panels of a dashboard, those inside rows included, rows themselves left out.
fn panels_of(dash: &serde_json::Value) -> Vec<&serde_json::Value> {
    let mut panels = Vec::new();
    let mut stack: Vec<&serde_json::Value> =
        dash["panels"].as_array().expect("panels").iter().collect();
    while let Some(panel) = stack.pop() {
        if let Some(inner) = panel["panels"].as_array() {
            stack.extend(inner);
        }
        if panel["type"] != "row" {
            panels.push(panel);
        }
    }
    panels
}

/// Each level has a target of its own (`[targets]`), so no panel colours an equipment ratio
/// by fixed numbers: a province level at 92 % is below its 98 % target while communes at 90 %
/// are above their 88 %. Colour comes from the gap to the level's own target instead, red
/// below 0 and green from 0.
#[test]
fn no_panel_judges_an_equipment_ratio_by_fixed_thresholds() {
    for (file, dash) in dashboards() {
        for panel in panels_of(&dash) {
            let shows_a_ratio = panel["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t["expr"].as_str())
                .any(|e| e.contains("equipment_ratio") && !e.contains("target"));
            if !shows_a_ratio {
                continue;
            }
            let config = &panel["fieldConfig"];
            let overrides = config["overrides"].as_array().into_iter().flatten();
            let thresholds = std::iter::once(&config["defaults"]["thresholds"]).chain(
                overrides
                    .flat_map(|o| o["properties"].as_array().into_iter().flatten())
                    .filter(|p| p["id"] == "thresholds")
                    .map(|p| &p["value"]),
            );
            // The only line a panel with a ratio in it may draw: 0, where a gap to the
            // level's target changes sign.
            for t in thresholds {
                let steps = t["steps"].as_array().into_iter().flatten();
                assert!(
                    steps.map(|s| &s["value"]).all(|v| v.is_null() || v == 0),
                    "{file} / {}: an equipment ratio coloured by fixed thresholds {t}",
                    panel["title"]
                );
            }
        }
    }
}

/// The PromQL inside a Grafana variable query: `label_values(SELECTOR, label)` → SELECTOR,
/// `query_result(EXPR)` → EXPR.
fn template_selector(query: &str) -> Option<&str> {
    let query = query.trim();
    if let Some(args) = query
        .strip_prefix("label_values(")
        .and_then(|r| r.strip_suffix(')'))
    {
        return args.rsplit_once(',').map(|(selector, _)| selector.trim());
    }
    query
        .strip_prefix("query_result(")
        .and_then(|r| r.strip_suffix(')'))
}

/// `expr:` values and `record:` names of a rules file as written in `dashboards/prometheus/`:
/// a one-line expression or a block scalar (`|`, `>-`) indented below its key.
fn rule_file(path: &Path) -> (Vec<Expr>, Vec<String>) {
    let text = std::fs::read_to_string(path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let (mut exprs, mut records) = (Vec::new(), Vec::new());
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start().trim_start_matches("- ");
        let indent = line.len() - line.trim_start().len();
        if let Some(name) = trimmed.strip_prefix("record:") {
            records.push(name.trim().to_string());
        }
        let Some(value) = trimmed.strip_prefix("expr:").map(str::trim) else {
            continue;
        };
        let promql = if matches!(value, "|" | "|-" | ">" | ">-") {
            lines[i + 1..]
                .iter()
                .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > indent)
                .map(|l| l.trim())
                .collect::<Vec<_>>()
                .join("\n")
        } else {
            value.trim_matches(|c| c == '\'' || c == '"').to_string()
        };
        exprs.push(Expr {
            origin: format!("{}:{}", name_of(path), i + 1),
            promql,
        });
    }
    (exprs, records)
}

fn rule_files() -> Vec<PathBuf> {
    files(&dashboards_dir().join("prometheus"), ".yml")
}

/// Metric names an expression selects: identifiers outside string literals that start with
/// `hatang_`, or recording-rule names (`level:hatang_…:…`). Function names, label names,
/// keywords and Grafana variables (`$level`) are none of these.
fn metric_names(promql: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut chars = promql.chars().peekable();
    let mut previous = ' ';
    while let Some(c) = chars.next() {
        if c == '"' || c == '\'' || c == '`' {
            let mut escaped = false;
            for s in chars.by_ref() {
                if !escaped && s == c {
                    break;
                }
                escaped = !escaped && s == '\\';
            }
            previous = c;
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let mut ident = c.to_string();
            while let Some(&n) = chars.peek() {
                if n.is_ascii_alphanumeric() || n == '_' || n == ':' {
                    ident.push(n);
                    chars.next();
                } else {
                    break;
                }
            }
            let word_start = !(previous.is_ascii_alphanumeric() || previous == '$');
            if word_start
                && (ident.starts_with("hatang_")
                    || (ident.contains(':') && ident.contains("hatang_")))
            {
                names.insert(ident);
            }
            previous = 'a';
            continue;
        }
        previous = c;
    }
    names
}

/// Grafana's variables replaced by values promtool accepts.
fn without_grafana_variables(expr: &str) -> String {
    let mut out = expr
        .replace("$__rate_interval", "5m")
        .replace("$__interval", "1m")
        .replace("$__range", "1d");
    while let Some(start) = out.find('$') {
        let rest = &out[start + 1..];
        let (name, len) = if let Some(inner) = rest.strip_prefix('{') {
            let end = inner.find('}').expect("closing brace of a ${variable}");
            (inner[..end].split(':').next().unwrap().to_string(), end + 2)
        } else {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            (rest[..end].to_string(), end)
        };
        out.replace_range(start..=start + len, &name);
        assert!(!name.is_empty(), "a lone $ in {expr}");
    }
    out
}

/// `promtool ARGS`: `None` (said on stderr) when promtool is missing outside CI; under `CI` its
/// absence fails the test.
fn promtool(args: &[&str], dir: &Path) -> Option<Output> {
    match Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
    {
        Ok(output) => Some(output),
        Err(_) if std::env::var_os("CI").is_none() => {
            eprintln!("skipped: promtool is not installed (CI installs it and fails without it)");
            None
        }
        Err(e) => panic!("promtool is required in CI: {e}"),
    }
}

fn assert_success(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn every_dashboard_expression_parses_and_every_alert_passes_its_unit_tests() {
    let exprs = dashboard_expressions();
    assert!(exprs.len() > 50, "only {} expressions found", exprs.len());
    let dir = tempfile::tempdir().unwrap();
    let mut rules = String::from("groups:\n  - name: dashboards\n    rules:\n");
    for (i, expr) in exprs.iter().enumerate() {
        let promql = without_grafana_variables(&expr.promql);
        rules.push_str(&format!(
            "      # {}\n      - record: dashboard:expr_{i}\n        expr: {}\n",
            expr.origin.replace('\n', " "),
            serde_json::to_string(&promql).unwrap()
        ));
    }
    let generated = dir.path().join("dashboards.rules.yml");
    std::fs::write(&generated, &rules).unwrap();

    let prometheus = dashboards_dir().join("prometheus");
    let mut check = vec!["check".to_string(), "rules".to_string()];
    check.push(generated.display().to_string());
    check.extend(rule_files().iter().map(|p| p.display().to_string()));
    let check: Vec<&str> = check.iter().map(String::as_str).collect();
    let Some(output) = promtool(&check, &prometheus) else {
        return;
    };
    assert_success(&output, &format!("promtool check rules\n{rules}"));

    let tests = files(&prometheus.join("tests"), ".yml");
    let mut test = vec!["test".to_string(), "rules".to_string()];
    test.extend(tests.iter().map(|p| name_of(p)));
    let test: Vec<&str> = test.iter().map(String::as_str).collect();
    let output = promtool(&test, &prometheus.join("tests")).expect("promtool ran above");
    assert_success(&output, "promtool test rules");

    // Every alert has a unit test; each test file names the alerts it covers.
    let tested: String = tests
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    for path in rule_files() {
        let text = std::fs::read_to_string(&path).unwrap();
        for alert in text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("- alert:"))
        {
            let alert = alert.trim();
            assert!(
                tested.contains(&format!("alertname: {alert}\n")),
                "{alert} ({}) has no promtool unit test",
                name_of(&path)
            );
        }
    }
}

#[test]
fn every_metric_of_the_dashboards_and_rules_is_exposed_by_the_collector() {
    // The collector checks its own /healthz as a shared application, so hatang_service_*
    // series exist.
    let mut collector = Collector::new();
    run_ok(
        collector
            .cli(&["units", "import"])
            .arg(testdata("units-hoa-binh-2024.csv")),
    );
    let config = format!(
        "figures_cache_secs = 0\n\n[[services]]\nname = \"collector\"\ntarget = \"http://{}/healthz\"\ninterval_secs = 60\ntimeout_secs = 5\n",
        collector.addr
    );
    collector.start_configured(&config, |c| {
        crate::support::get(&c.addr, "/healthz").is_ok_and(|(status, _)| status == 200)
    });
    for (unit, role, machine) in [
        ("17-VPUB", "server", "e2e-dashboards-server"),
        ("4792", "workstation", "e2e-dashboards-workstation"),
    ] {
        let token = collector.token(&["--unit", unit, "--role", role]);
        let agent = Agent::new(machine);
        agent.enroll(&collector, &token);
        agent.once();
    }
    let exposition = eventually(Duration::from_secs(20), || {
        let text = collector.exposition("/metrics");
        (text.contains("\nhatang_service_up{") && text.contains("\nhatang_host_up{"))
            .then_some(text)
    });
    // The two scrape jobs together: /metrics and the detail endpoint.
    let detail = collector.exposition("/metrics/detail");
    let mut known: BTreeSet<String> = [exposition, detail]
        .iter()
        .flat_map(|text| text.lines())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split(['{', ' ']).next().unwrap().to_string())
        .collect();

    let reference =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/metrics.md"))
            .unwrap();
    for (name, needs) in CONFIG_ONLY {
        assert!(
            reference.contains(&format!("| `{name}` |")),
            "{name} (needs {needs}) is not in docs/metrics.md's table"
        );
        known.insert(name.to_string());
    }

    let mut exprs = dashboard_expressions();
    for path in rule_files() {
        let (rule_exprs, records) = rule_file(&path);
        exprs.extend(rule_exprs);
        known.extend(records);
    }
    // Series the promtool unit tests feed in must be real ones too.
    for path in files(&dashboards_dir().join("prometheus/tests"), ".yml") {
        let text = std::fs::read_to_string(&path).unwrap();
        for (i, line) in text.lines().enumerate() {
            if let Some(series) = line.trim().strip_prefix("- series: '") {
                exprs.push(Expr {
                    origin: format!("{}:{}", name_of(&path), i + 1),
                    promql: series.split('{').next().unwrap().to_string(),
                });
            }
        }
    }

    let mut missing = Vec::new();
    let mut used = BTreeSet::new();
    for expr in &exprs {
        let names = metric_names(&expr.promql);
        // Prometheus's own `up` (is the collector scraped at all?), which the collector-down
        // alerts read: a series no exposition has, by design.
        let promql = expr.promql.trim();
        if names.is_empty()
            && (promql == "up" || promql.starts_with("up{") || promql.starts_with("absent(up{"))
        {
            continue;
        }
        assert!(
            !names.is_empty(),
            "{}: names no hatang metric: {}",
            expr.origin,
            expr.promql
        );
        for name in names {
            if !known.contains(&name) {
                missing.push(format!("{}: {name}", expr.origin));
            }
            used.insert(name);
        }
    }
    assert!(
        missing.is_empty(),
        "metrics not in the collector's exposition:\n{}\nexposed: {known:?}",
        missing.join("\n")
    );
    // The dashboards cover the families an operator looks at first.
    for family in [
        "hatang_equipment_ratio",
        "hatang_unit_broadband_up",
        "hatang_host_filesystem_available_bytes",
        "hatang_service_latency_seconds",
        "hatang_agents",
        "hatang_reports_received_total",
        "hatang_report_clock_skew_seconds_bucket",
    ] {
        assert!(used.contains(family), "no dashboard or rule uses {family}");
    }
}

#[test]
fn metric_names_are_told_apart_from_functions_labels_and_strings() {
    let names = metric_names(
        r#"sum by (level) (rate(hatang_reports_received_total{outcome="hatang_x", level=~"$level"}[5m])) / on (level) level:hatang_unit_staff:sum and $hatang_var"#,
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        [
            "hatang_reports_received_total",
            "level:hatang_unit_staff:sum"
        ]
    );
    assert_eq!(
        without_grafana_variables(
            r#"rate(x{unit=~"$unit", level=~"${level:regex}"}[$__rate_interval])"#
        ),
        r#"rate(x{unit=~"unit", level=~"level"}[5m])"#
    );
    assert_eq!(
        template_selector(r#"label_values(hatang_unit_info{level=~"$level"}, unit)"#),
        Some(r#"hatang_unit_info{level=~"$level"}"#)
    );
}

/// A Prometheus server on a loopback port with its own storage; killed when dropped.
struct Prometheus {
    child: std::process::Child,
    addr: String,
    dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts `/usr/bin/prometheus` (Debian's package) scraping the collectors at `targets`
    /// every second, as the two jobs of `dashboards/README.md` (`/metrics` and
    /// `/metrics/detail`), with the recording rules of `dashboards/prometheus/`. `None` when it
    /// is not installed outside CI; under `CI` its absence fails the test.
    fn start(targets: &[&str]) -> Option<Self> {
        let binary = Path::new("/usr/bin/prometheus");
        if !binary.exists() {
            assert!(
                std::env::var_os("CI").is_none(),
                "prometheus is required in CI (Debian's prometheus package)"
            );
            eprintln!("skipped: /usr/bin/prometheus is not installed");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let rules = dashboards_dir().join("prometheus/hatang-recording.yml");
        let config = dir.path().join("prometheus.yml");
        let targets = targets.join("\", \"");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n  - job_name: hatang\n    static_configs:\n      - targets: [\"{targets}\"]\n  - job_name: hatang-detail\n    metrics_path: /metrics/detail\n    static_configs:\n      - targets: [\"{targets}\"]\n",
                rules.display()
            ),
        )
        .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        assert_ne!(port, 9090);
        let addr = format!("127.0.0.1:{port}");
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("prometheus starts");
        Some(Self { child, addr, dir })
    }

    /// The value of an instant query's only sample, once there is one.
    fn value(&self, query: &str) -> Option<f64> {
        let encoded: String = query
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b':' | b'.' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        let (status, body) =
            crate::support::get(&self.addr, &format!("/api/v1/query?query={encoded}")).ok()?;
        if status != 200 {
            return None;
        }
        let answer: serde_json::Value = serde_json::from_str(&body).ok()?;
        let result = answer["data"]["result"].as_array()?;
        assert!(result.len() <= 1, "{query}: {body}");
        result.first()?["value"][1].as_str()?.parse().ok()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_real_prometheus_scrapes_both_endpoints_and_answers_the_equipment_ratio() {
    let file = testdata("units-hoa-binh-2024.csv");
    let tree = crate::support::units(&file);
    let commune_staff: u32 = tree
        .values()
        .filter(|(level, _)| level == "commune")
        .map(|(_, staff)| staff)
        .sum();
    let mut collector = Collector::new();
    run_ok(collector.cli(&["units", "import"]).arg(&file));
    collector.start(0);
    // Two workstations of one commune with 1+ staff: min(staff, 2) equipped.
    let unit = "4792";
    let equipped = tree[unit].1.min(2);
    let token = collector.token(&["--unit", unit]);
    for machine in ["e2e-prometheus-1", "e2e-prometheus-2"] {
        let agent = Agent::new(machine);
        agent.enroll(&collector, &token);
        agent.once();
    }
    let Some(prometheus) = Prometheus::start(&[&collector.addr]) else {
        return;
    };
    let expected = f64::from(equipped) / f64::from(commune_staff);
    let ratio = eventually(Duration::from_secs(60), || {
        prometheus.value(r#"hatang_equipment_ratio{level="commune",job="hatang"}"#)
    });
    assert!(
        (ratio - expected).abs() < 1e-12,
        "Prometheus answered {ratio}, expected {expected} = {equipped} / {commune_staff}\n{}",
        prometheus.log()
    );
    // The recording rules the dashboards rely on are evaluated by a real Prometheus too.
    let staff = eventually(Duration::from_secs(60), || {
        prometheus.value(r#"level:hatang_unit_staff:sum{level="commune"}"#)
    });
    assert_eq!(staff, f64::from(commune_staff));
    let gap = eventually(Duration::from_secs(60), || {
        prometheus.value(r#"level:hatang_equipment_ratio:target_gap{level="commune"}"#)
    });
    assert!((gap - (expected - 0.88)).abs() < 1e-9, "{gap}");
    // The detail job's series join the main job's on `unit`, as the alerts and panels do.
    let online = eventually(Duration::from_secs(60), || {
        prometheus.value(&format!(
            r#"hatang_unit_agents_online{{unit="{unit}",job="hatang-detail"}} * on (unit) group_left (name) hatang_unit_info{{job="hatang"}}"#
        ))
    });
    assert_eq!(online, 2.0, "{}", prometheus.log());
}

/// Two replicas on one PostgreSQL, both scraped as `dashboards/README.md` says: the recording
/// rules see each figure once (one replica publishes them), so sums are not doubled and the
/// joins on `unit` and `level` find one series a side.
#[test]
fn a_real_prometheus_scraping_two_replicas_counts_each_figure_once() {
    let file = testdata("units-phu-tho-2025.csv");
    let commune_staff: u32 = crate::support::units(&file)
        .values()
        .filter(|(level, _)| level == "commune")
        .map(|(_, staff)| staff)
        .sum();
    let Some(mut a) = Collector::on_postgres() else {
        return;
    };
    let mut b = a.replica();
    run_ok(a.cli(&["units", "import"]).arg(&file));
    a.start(0);
    b.start(0);
    let unit = "7900";
    let agent = Agent::new("e2e-replicas-1");
    agent.enroll(&b, &a.token(&["--unit", unit]));
    run_ok(agent.cmd(&["once"]).env("HATANG_COLLECTOR", b.url()));
    let Some(prometheus) = Prometheus::start(&[&a.addr, &b.addr]) else {
        return;
    };
    // Both replicas scraped, both jobs.
    let scraped = eventually(Duration::from_secs(60), || {
        prometheus.value("count(up == 1)").filter(|&n| n == 4.0)
    });
    assert_eq!(scraped, 4.0);
    let staff = eventually(Duration::from_secs(60), || {
        prometheus.value(r#"level:hatang_unit_staff:sum{level="commune"}"#)
    });
    assert_eq!(staff, f64::from(commune_staff), "{}", prometheus.log());
    let gap = eventually(Duration::from_secs(60), || {
        prometheus.value(r#"level:hatang_equipment_ratio:target_gap{level="commune"}"#)
    });
    let expected = 1.0 / f64::from(commune_staff) - 0.88;
    assert!((gap - expected).abs() < 1e-9, "{gap}\n{}", prometheus.log());
    let ratio = eventually(Duration::from_secs(60), || {
        prometheus.value(&format!(
            r#"unit:hatang_equipment_ratio:ratio{{unit="{unit}"}}"#
        ))
    });
    assert!(ratio > 0.0, "{ratio}");
    assert_eq!(prometheus.value("sum(hatang_figures_published)"), Some(1.0));
}
