//! The overview page (`GET /`): equipment ratio per level against target, broadband and LAN
//! share per level, machines by state, data-centre hosts and applications, and the trend from
//! the daily snapshots (`GET /trend.csv` downloads it).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use axum::extract::State;
use axum::response::Response;

use super::{Ctx, E, badge, bar, csv_download, day, failed, heading, page};
use crate::figures::{AgentState, Role};
use crate::http::AppState;

/// Days of snapshots the trend shows.
const TREND_DAYS: usize = 30;

async fn build(state: &AppState, ctx: &Ctx) -> Result<Response, crate::store::StoreError> {
    let lang = ctx.lang;
    let t = lang.t();
    let f = state.figures().await?;
    let mut body = String::new();

    // Machines, hosts and applications at a glance.
    let count = |s: AgentState| -> u64 {
        f.agents
            .iter()
            .filter(|a| a.state == s && a.role == Role::Workstation)
            .map(|a| a.agents)
            .sum()
    };
    let hosts_up = f
        .hosts
        .iter()
        .filter(|h| h.state == AgentState::Online)
        .count();
    let services = state.services().snapshot();
    let services_up = services.iter().filter(|s| s.up).count();
    let _ = write!(
        body,
        "<h1 class=\"title\">{title}</h1><p class=\"muted\">{at} {when} ({zone})</p>\
         <section class=\"tiles\">\
         <a class=\"tile\" href=\"/units\"><span class=\"label\">{agents}</span>\
           <span class=\"states\"><span data-state=\"online\">{b_on} <b>{on}</b></span>\
           <span data-state=\"stale\">{b_st} <b>{st}</b></span>\
           <span data-state=\"offline\">{b_off} <b>{off}</b></span></span></a>\
         <a class=\"tile\" href=\"/datacentre\"><span class=\"label\">{hosts}</span>\
           <span class=\"big\" data-hosts-up=\"{hosts_up}\" data-hosts=\"{hosts_total}\">{hosts_up}/{hosts_total}</span>\
           <span class=\"muted\">{hosts_word}</span></a>\
         <a class=\"tile\" href=\"/datacentre\"><span class=\"label\">{apps}</span>\
           <span class=\"big\" data-services-up=\"{services_up}\" data-services=\"{services_total}\">{services_up}/{services_total}</span>\
           <span class=\"muted\">{apps_word}</span></a></section>",
        title = E(t.nav_overview),
        at = E(t.figures_at),
        when = ctx.when(Some(f.at)),
        zone = super::zone_name(ctx.offset),
        agents = E(t.agents_title),
        b_on = badge("ok", t.online),
        b_st = badge("near", t.stale),
        b_off = badge("low", t.offline),
        on = lang.int(count(AgentState::Online)),
        st = lang.int(count(AgentState::Stale)),
        off = lang.int(count(AgentState::Offline)),
        hosts = E(t.hosts_title),
        hosts_total = f.hosts.len(),
        hosts_word = E(t.hosts_up),
        apps = E(t.services_title),
        services_total = services.len(),
        apps_word = E(t.services_up),
    );

    // Equipment per level.
    body.push_str("<section class=\"card\">");
    body.push_str(&heading(
        lang,
        t.equipment_title,
        Some("/api/v1/coverage.csv"),
    ));
    let _ = write!(
        body,
        "<p class=\"muted\">{}</p><table class=\"levels\"><thead><tr><th>{}</th><th class=\"num\">{}</th>\
         <th class=\"num\">{}</th><th class=\"num\">{}</th><th class=\"num\">{}</th><th class=\"num\">{}</th>\
         <th class=\"wide\">{}</th></tr></thead><tbody>",
        E(&lang.equipment_help(
            u64::try_from(state.config().equipment_window_secs / 86_400).unwrap_or(0)
        )),
        E(t.level),
        E(t.units),
        E(t.staff),
        E(t.equipped),
        E(t.ratio),
        E(t.target),
        E(t.against_target),
    );
    for l in &f.levels {
        let verdict = match (l.equipment_ratio, l.target_ratio) {
            (Some(r), Some(target)) if r >= target => badge("ok", t.met),
            (Some(_), Some(_)) => badge("low", t.below),
            _ => String::new(),
        };
        let _ = write!(
            body,
            "<tr data-level=\"{level}\" data-ratio=\"{ratio}\" data-target=\"{target}\">\
             <th scope=\"row\">{name}</th><td class=\"num\" data-label=\"{h_units}\">{units}</td>\
             <td class=\"num\" data-label=\"{h_staff}\">{staff}</td><td class=\"num\" data-label=\"{h_eq}\">{equipped}</td>\
             <td class=\"num strong\" data-label=\"{h_ratio}\">{pct}</td><td class=\"num\" data-label=\"{h_target}\">{tpct} {verdict}</td>\
             <td class=\"wide\">{bar}</td></tr>",
            level = E(&l.level),
            ratio = l.equipment_ratio.map(|r| r.to_string()).unwrap_or_default(),
            target = l.target_ratio.map(|r| r.to_string()).unwrap_or_default(),
            name = E(&lang.level(&l.level)),
            h_units = E(t.units),
            h_staff = E(t.staff),
            h_eq = E(t.equipped),
            h_ratio = E(t.ratio),
            h_target = E(t.target),
            units = lang.int(u64::from(l.units)),
            staff = lang.int(l.staff),
            equipped = lang.int(l.equipped_staff),
            pct = lang.pct(l.equipment_ratio),
            tpct = lang.pct(l.target_ratio),
            bar = bar(lang, l.equipment_ratio, l.target_ratio),
        );
    }
    body.push_str("</tbody></table></section>");

    // Connectivity per level.
    body.push_str("<section class=\"card\">");
    body.push_str(&heading(
        lang,
        t.connectivity_title,
        Some("/api/v1/units.csv"),
    ));
    let _ = write!(
        body,
        "<table class=\"levels\"><thead><tr><th>{}</th><th class=\"num\">{}</th><th class=\"wide\">{}</th>\
         <th class=\"num\">{}</th><th class=\"wide\">{}</th></tr></thead><tbody>",
        E(t.level),
        E(t.broadband_share),
        E(t.broadband),
        E(t.lan_share),
        E(t.lan),
    );
    for l in &f.levels {
        let _ = write!(
            body,
            "<tr data-level=\"{level}\" data-broadband=\"{bb}\" data-lan=\"{lan}\"><th scope=\"row\">{name}</th>\
             <td class=\"num strong\" data-label=\"{h_bb}\">{bb_pct} <small>({bbu}/{units})</small></td><td class=\"wide\">{bb_bar}</td>\
             <td class=\"num\" data-label=\"{h_lan}\">{lan_pct} <small>({lanu}/{units})</small></td><td class=\"wide\">{lan_bar}</td></tr>",
            level = E(&l.level),
            bb = l.broadband_ratio.map(|r| r.to_string()).unwrap_or_default(),
            lan = l.lan_ratio.map(|r| r.to_string()).unwrap_or_default(),
            name = E(&lang.level(&l.level)),
            h_bb = E(t.broadband_share),
            h_lan = E(t.lan_share),
            bb_pct = lang.pct(l.broadband_ratio),
            lan_pct = lang.pct(l.lan_ratio),
            bbu = l.broadband_units,
            lanu = l.lan_units,
            units = l.units,
            bb_bar = bar(lang, l.broadband_ratio, None),
            lan_bar = bar(lang, l.lan_ratio, None),
        );
    }
    body.push_str("</tbody></table></section>");

    // Trend from the daily snapshots.
    body.push_str("<section class=\"card\">");
    let rows = state.store().level_history(None, None, None).await?;
    let mut dates: Vec<&str> = rows.iter().map(|r| r.date.as_str()).collect();
    dates.dedup();
    let keep: Vec<&str> = dates[dates.len().saturating_sub(TREND_DAYS)..].to_vec();
    if keep.is_empty() {
        body.push_str(&heading(lang, t.trend_title, None));
        let _ = write!(body, "<p class=\"muted\">{}</p>", E(t.trend_empty));
    } else {
        body.push_str(&heading(lang, t.trend_title, Some("/trend.csv")));
        // level → date → ratio, levels in the order of their first appearance
        let mut order: Vec<&str> = Vec::new();
        let mut series: BTreeMap<&str, BTreeMap<&str, Option<f64>>> = BTreeMap::new();
        for r in rows.iter().filter(|r| keep.contains(&r.date.as_str())) {
            if !order.contains(&r.level.as_str()) {
                order.push(&r.level);
            }
            series
                .entry(&r.level)
                .or_default()
                .insert(&r.date, r.equipment_ratio);
        }
        body.push_str("<table class=\"levels\"><thead><tr><th>");
        let _ = write!(
            body,
            "{}</th><th class=\"wide\">{} → {}</th><th class=\"num\">{}</th></tr></thead><tbody>",
            E(t.level),
            E(&day(keep[0])),
            E(&day(keep[keep.len() - 1])),
            E(t.ratio)
        );
        for level in order {
            let points = &series[level];
            let last = keep
                .iter()
                .rev()
                .find_map(|d| points.get(d).copied().flatten());
            let _ = write!(
                body,
                "<tr data-level=\"{}\"><th scope=\"row\">{}</th><td class=\"wide\">{}</td><td class=\"num strong\">{}</td></tr>",
                E(level),
                E(&lang.level(level)),
                sparkline(&keep, points),
                lang.pct(last)
            );
        }
        body.push_str("</tbody></table>");
    }
    body.push_str("</section>");
    Ok(page(ctx, state, t.nav_overview, "overview", &body))
}

pub(super) async fn show(State(state): State<AppState>, ctx: Ctx) -> Response {
    build(&state, &ctx)
        .await
        .unwrap_or_else(|e| failed(ctx.lang, e))
}

/// A polyline of the ratios over `dates` (a gap where a day has none), 0..100 % high.
fn sparkline(dates: &[&str], points: &BTreeMap<&str, Option<f64>>) -> String {
    let n = dates.len().max(2) - 1;
    let mut path = String::new();
    let mut pen_up = true;
    for (i, d) in dates.iter().enumerate() {
        match points.get(d).copied().flatten() {
            Some(r) => {
                let x = i as f64 * 100.0 / n as f64;
                let y = 20.0 - r.clamp(0.0, 1.0) * 20.0;
                let _ = write!(path, "{}{x:.2},{y:.2} ", if pen_up { "M" } else { "L" });
                pen_up = false;
            }
            None => pen_up = true,
        }
    }
    format!(
        "<svg class=\"spark\" viewBox=\"-1 -1 102 22\" preserveAspectRatio=\"none\" aria-hidden=\"true\">\
         <path d=\"{}\"/></svg>",
        path.trim_end()
    )
}

/// `GET /trend.csv`: every level row of the daily snapshots.
pub(super) async fn trend_csv(State(state): State<AppState>, ctx: Ctx) -> Response {
    let rows = match state.store().level_history(None, None, None).await {
        Ok(rows) => rows,
        Err(e) => return failed(ctx.lang, e),
    };
    let header = [
        "date",
        "level",
        "units",
        "staff",
        "equipped_staff",
        "equipment_ratio",
        "target_ratio",
        "lan_units",
        "broadband_units",
    ];
    let text = crate::present::spreadsheet_csv(
        &header,
        rows.iter().map(|r| {
            vec![
                r.date.clone(),
                r.level.clone(),
                r.units.to_string(),
                r.staff.to_string(),
                r.equipped_staff.to_string(),
                crate::coverage::ratio(r.equipment_ratio),
                crate::coverage::ratio(r.target_ratio),
                r.lan.to_string(),
                r.broadband.to_string(),
            ]
        }),
    );
    csv_download("hatang-trend.csv", text)
}
