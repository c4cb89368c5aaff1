//! The machine page (`GET /machines/{id}`): an agent's state, last report, inventory summary,
//! connectivity probes and inventory change history (`…/changes.csv` downloads it).

use std::fmt::Write as _;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::Response;
use hatang_protocol::{Inventory, ProbeResult};

use super::i18n::Lang;
use super::{Ctx, E, csv_download, failed, heading, machine_state, not_found, page, url};
use crate::http::AppState;
use crate::store::{AgentEvidence, AgentRecord};

fn gib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0 * 1024.0)
}

/// A module's or a disk's size as the register writes it: whole GiB ("8 GiB"), one decimal
/// where that is not whole below 100 GiB ("1.5 GiB"), and MiB below one GiB ("512 MiB"), which
/// whole GiB alone would show as "0 GiB".
fn size(lang: Lang, bytes: u64) -> String {
    let g = gib(bytes);
    if g < 1.0 {
        format!("{} MiB", lang.dec(g * 1024.0, 0))
    } else if g < 100.0 && (g * 10.0).round() % 10.0 != 0.0 {
        format!("{} GiB", lang.dec(g, 1))
    } else {
        format!("{} GiB", lang.dec(g, 0))
    }
}

/// The inventory as (heading, text) rows: what the machine is, then its parts. The asset
/// register's questions (make, model, serial number; which RAM, which monitor) come first after
/// the basics; a list the agent did not report (no firmware tables, no monitor) has no row.
fn inventory_facts(lang: Lang, inv: &Inventory) -> Vec<(&'static str, String)> {
    let t = lang.t();
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
    let mut rows = vec![(t.os, os), (t.cpu, cpu)];
    if let Some(dmi) = &inv.dmi {
        if let Some(model) = words(&[&dmi.sys_vendor, &dmi.product_name]) {
            rows.push((t.model, model));
        }
        if let Some(serial) = &dmi.product_serial {
            rows.push((t.serial, serial.clone()));
        }
    }
    rows.push((
        t.memory,
        format!("{} GiB", lang.dec(gib(inv.memory.total_bytes), 1)),
    ));
    let modules: Vec<String> = inv
        .memory_modules
        .iter()
        .map(|m| {
            let mut text = format!("{} {}", m.locator, size(lang, m.size_bytes));
            let kind = [
                m.memory_type.clone(),
                m.speed_mts.map(|s| format!("{s} MT/s")),
            ];
            for part in kind.into_iter().flatten() {
                let _ = write!(text, " {part}");
            }
            described(&mut text, &[&m.manufacturer, &m.part_number], &m.serial);
            text
        })
        .collect();
    listed(&mut rows, t.memory_modules, modules);
    let disks: Vec<String> = inv
        .disks
        .iter()
        .map(|d| format!("{} {}", d.name, size(lang, d.size_bytes)))
        .collect();
    rows.push((t.disks, disks.join("; ")));
    let nics: Vec<String> = inv
        .interfaces
        .iter()
        .filter(|i| !i.loopback)
        .map(|i| format!("{} {}", i.name, i.addresses.join(", ")))
        .collect();
    rows.push((t.interfaces, nics.join("; ")));
    let monitors: Vec<String> = inv
        .monitors
        .iter()
        .map(|m| {
            let mut text = m.model.clone().unwrap_or_else(|| m.connector.clone());
            if let Some(d) = m.diagonal_inches {
                let _ = write!(text, " {}″", lang.dec(d, 1));
            }
            described(&mut text, &[&m.manufacturer], &m.serial);
            text
        })
        .collect();
    listed(&mut rows, t.monitors, monitors);
    let gpus: Vec<String> = inv
        .gpus
        .iter()
        .map(|g| {
            let mut text = format!("{}:{}", g.vendor_id, g.device_id);
            if let Some(vendor) = &g.vendor {
                text = format!("{vendor} {text}");
            }
            if let Some(driver) = &g.driver {
                let _ = write!(text, " ({driver})");
            }
            text
        })
        .collect();
    listed(&mut rows, t.gpus, gpus);
    if let Some(software) = &inv.software {
        rows.push((
            t.software,
            format!("{} {}", lang.int(software.len() as u64), t.packages),
        ));
    }
    rows
}

/// A row of `items` joined, unless there are none: a list the agent did not report has no row.
fn listed(rows: &mut Vec<(&'static str, String)>, heading: &'static str, items: Vec<String>) {
    if !items.is_empty() {
        rows.push((heading, items.join("; ")));
    }
}

/// The known ones of `parts`, joined by spaces; `None` when none is known.
fn words(parts: &[&Option<String>]) -> Option<String> {
    let known: Vec<&str> = parts.iter().filter_map(|v| v.as_deref()).collect();
    (!known.is_empty()).then(|| known.join(" "))
}

/// Appends `, maker part, S/N serial` for whichever of them are known.
fn described(text: &mut String, maker: &[&Option<String>], serial: &Option<String>) {
    if let Some(maker) = words(maker) {
        let _ = write!(text, ", {maker}");
    }
    if let Some(serial) = serial {
        let _ = write!(text, ", S/N {serial}");
    }
}

/// A `<dl class="facts">` of escaped rows.
fn facts(rows: &[(&'static str, String)]) -> String {
    let mut out = String::from("<dl class=\"facts\">");
    for (heading, text) in rows {
        let _ = write!(out, "<dt>{}</dt><dd>{}</dd>", E(heading), E(text));
    }
    out.push_str("</dl>");
    out
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
    let (record, evidence) = match machine(&ctx, &state, &id).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    let changes = match state.store().inventory_changes(&id, None, 100).await {
        Ok(c) => c,
        Err(e) => return failed(lang, e),
    };
    let (state_name, badge) = machine_state(lang, &record, crate::now());
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
        state = state_name,
        h_state = E(t.state),
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
        Some(inv) => body.push_str(&facts(&inventory_facts(lang, &inv))),
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
                E(lang.component(&c.component)),
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

/// The machine `id` names, or the page that says there is none (or that the store failed).
async fn machine(
    ctx: &Ctx,
    state: &AppState,
    id: &str,
) -> Result<(AgentRecord, AgentEvidence), Response> {
    match state.store().agent(id).await {
        Ok(Some(found)) => Ok(found),
        Ok(None) => Err(not_found(
            ctx,
            state,
            &format!("{} {id}", ctx.lang.t().machine_title),
        )),
        Err(e) => Err(failed(ctx.lang, e)),
    }
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
    if let Err(page) = machine(&ctx, &state, &id).await {
        return page;
    }
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

#[cfg(test)]
mod tests {
    use super::{Lang, size};

    #[test]
    fn sizes_below_a_gib_are_in_mib_and_fractions_are_kept() {
        const MIB: u64 = 1024 * 1024;
        let cases = [
            (8192 * MIB, "8 GiB"),
            (512 * MIB, "512 MiB"),
            (768 * MIB, "768 MiB"),
            (1536 * MIB, "1.5 GiB"),
            (500_107_862_016, "466 GiB"),
            (0, "0 MiB"),
        ];
        for (bytes, shown) in cases {
            assert_eq!(size(Lang::En, bytes), shown, "{bytes} bytes");
        }
        assert_eq!(size(Lang::Vi, 1536 * MIB), "1,5 GiB");
    }
}
