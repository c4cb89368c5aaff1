//! The machine page (`GET /machines/{id}`): an agent's state, last report, inventory summary,
//! connectivity probes and inventory change history (`…/changes.csv` downloads it).

use std::fmt::Write as _;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::Response;
use hatang_protocol::{Inventory, ProbeResult};

use super::{Ctx, E, badge, csv_download, failed, heading, not_found, page, url};
use crate::figures::agent_state;
use crate::http::AppState;

fn gib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0 * 1024.0)
}

pub(super) async fn show(
    State(state): State<AppState>,
    ctx: Ctx,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    let lang = ctx.lang;
    let t = lang.t();
    let Ok(Path(id)) = id else {
        return not_found(&ctx, &state, t.machine_title);
    };
    let (record, evidence) = match state.store().agent(&id).await {
        Ok(Some(found)) => found,
        Ok(None) => return not_found(&ctx, &state, &format!("{} {id}", t.machine_title)),
        Err(e) => return failed(lang, e),
    };
    let changes = match state.store().inventory_changes(&id, None, 100).await {
        Ok(c) => c,
        Err(e) => return failed(lang, e),
    };
    let interval = record.interval_secs.and_then(|i| u32::try_from(i).ok());
    let s = agent_state(record.last_report_at, interval, crate::now());
    let class = match s.as_str() {
        "online" => "ok",
        "stale" => "near",
        _ => "low",
    };
    let mut body = format!(
        "<nav class=\"crumbs\"><a href=\"/units\">{units}</a> › <a href=\"/units/{href}\">{unit}</a></nav>\
         <h1 class=\"title\">{host}</h1>\
         <section class=\"card\"><dl class=\"facts\" data-agent=\"{id}\" data-state=\"{state}\">\
         <dt>{h_state}</dt><dd>{badge}</dd><dt>{h_role}</dt><dd>{role}</dd>\
         <dt>{h_last}</dt><dd>{last}</dd><dt>{h_enrolled}</dt><dd>{enrolled}</dd>\
         <dt>{h_version}</dt><dd>{version}</dd></dl></section>",
        units = E(t.nav_units),
        href = url(&record.unit_code),
        unit = E(&record.unit_code),
        host = E(&record.hostname),
        id = E(&record.id),
        state = s.as_str(),
        h_state = E(t.state),
        badge = badge(class, lang.word(s.as_str())),
        h_role = E(t.role),
        role = E(lang.word(&record.role)),
        h_last = E(t.last_report),
        last = ctx.when(record.last_report_at),
        h_enrolled = E(t.enrolled),
        enrolled = ctx.when(Some(record.enrolled_at)),
        h_version = E(t.agent_version),
        version = E(record.agent_version.as_deref().unwrap_or("–")),
    );

    body.push_str("<section class=\"card\">");
    body.push_str(&heading(lang, t.inventory, None));
    match evidence
        .inventory
        .and_then(|d| serde_json::from_str::<Inventory>(&d).ok())
    {
        None => {
            let _ = write!(body, "<p class=\"muted\">{}</p>", E(t.no_inventory));
        }
        Some(inv) => {
            let os = [
                inv.os.name.clone().unwrap_or(inv.os.family.clone()),
                inv.os.version.clone().unwrap_or_default(),
                inv.os.arch.clone(),
            ]
            .join(" ");
            let cpu = format!(
                "{} · {} / {}",
                inv.cpu.model.clone().unwrap_or_default(),
                inv.cpu.cores.map(|c| c.to_string()).unwrap_or("?".into()),
                inv.cpu.threads
            );
            let disks: Vec<String> = inv
                .disks
                .iter()
                .map(|d| format!("{} {} GiB", d.name, lang.dec(gib(d.size_bytes), 0)))
                .collect();
            let nics: Vec<String> = inv
                .interfaces
                .iter()
                .filter(|i| !i.loopback)
                .map(|i| format!("{} {}", i.name, i.addresses.join(", ")))
                .collect();
            let _ = write!(
                body,
                "<dl class=\"facts\"><dt>{}</dt><dd>{}</dd><dt>{}</dt><dd>{}</dd><dt>{}</dt><dd>{} GiB</dd>\
                 <dt>{}</dt><dd>{}</dd><dt>{}</dt><dd>{}</dd></dl>",
                E(t.os),
                E(&os),
                E(t.cpu),
                E(&cpu),
                E(t.memory),
                lang.dec(gib(inv.memory.total_bytes), 1),
                E(t.disks),
                E(&disks.join("; ")),
                E(t.interfaces),
                E(&nics.join("; ")),
            );
        }
    }
    body.push_str("</section><section class=\"card\">");
    body.push_str(&heading(lang, t.connectivity, None));
    let probes: Vec<ProbeResult> = evidence
        .probes
        .and_then(|d| serde_json::from_str(&d).ok())
        .unwrap_or_default();
    if probes.is_empty() {
        let _ = write!(body, "<p class=\"muted\">{}</p>", E(t.no_probes));
    } else {
        let _ = write!(
            body,
            "<table><thead><tr><th>{}</th><th>{}</th><th class=\"num\">{}</th><th class=\"num\">{}</th><th class=\"num\">{}</th></tr></thead><tbody>",
            E(t.probe),
            E(t.class),
            E(t.success),
            E(t.rtt),
            E(t.jitter)
        );
        let ms = |s: Option<f64>| {
            s.map_or("–".to_string(), |s| {
                format!("{} ms", lang.dec(s * 1000.0, 1))
            })
        };
        for p in &probes {
            let class = crate::figures::class_name(p.class);
            let _ = write!(
                body,
                "<tr><th scope=\"row\">{}<small class=\"code\">{}</small></th><td data-label=\"{}\">{}</td>\
                 <td class=\"num\" data-label=\"{}\">{}/{}</td><td class=\"num\" data-label=\"{}\">{}</td><td class=\"num\" data-label=\"{}\">{}</td></tr>",
                E(&p.name),
                E(&p.target),
                E(t.class),
                E(lang.word(class)),
                E(t.success),
                p.successes,
                p.attempts,
                E(t.rtt),
                ms(p.rtt_avg_seconds),
                E(t.jitter),
                ms(p.jitter_seconds),
            );
        }
        body.push_str("</tbody></table>");
    }
    body.push_str("</section><section class=\"card\">");
    let csv = format!("/machines/{}/changes.csv", url(&record.id));
    body.push_str(&heading(lang, t.changes_title, Some(&csv)));
    if changes.is_empty() {
        let _ = write!(body, "<p class=\"muted\">{}</p>", E(t.no_changes));
    } else {
        let _ = write!(
            body,
            "<table><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>",
            E(t.date),
            E(t.component),
            E(t.change),
            E(t.before),
            E(t.after)
        );
        for c in &changes {
            let _ = write!(
                body,
                "<tr><th scope=\"row\">{}</th><td data-label=\"{}\">{} <small class=\"code\">{}</small></td>\
                 <td data-label=\"{}\">{}</td><td data-label=\"{}\">{}</td><td data-label=\"{}\">{}</td></tr>",
                ctx.when(Some(c.at)),
                E(t.component),
                E(&c.component),
                E(&c.key),
                E(t.change),
                E(lang.word(&c.kind)),
                E(t.before),
                E(c.before.as_deref().unwrap_or("")),
                E(t.after),
                E(c.after.as_deref().unwrap_or("")),
            );
        }
        body.push_str("</tbody></table>");
    }
    body.push_str("</section>");
    page(&ctx, &state, &record.hostname, "units", &body)
}

/// `GET /machines/{id}/changes.csv`: the machine's whole inventory change log, newest first.
pub(super) async fn changes_csv(
    State(state): State<AppState>,
    ctx: Ctx,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    let Ok(Path(id)) = id else {
        return not_found(&ctx, &state, ctx.lang.t().machine_title);
    };
    let mut rows = Vec::new();
    let mut before = None;
    loop {
        let page = match state.store().inventory_changes(&id, before, 1000).await {
            Ok(p) => p,
            Err(e) => return failed(ctx.lang, e),
        };
        let full = page.len() == 1000;
        before = page.last().map(|c| c.id);
        rows.extend(page);
        if !full {
            break;
        }
    }
    let header = [
        "at_utc",
        "component",
        "key",
        "kind",
        "before",
        "after",
        "report_id",
    ];
    let text = crate::present::spreadsheet_csv(
        &header,
        rows.into_iter().map(|c| {
            vec![
                crate::present::when(c.at),
                c.component,
                c.key,
                c.kind,
                c.before.unwrap_or_default(),
                c.after.unwrap_or_default(),
                c.report_id,
            ]
        }),
    );
    csv_download("hatang-changes.csv", text)
}
