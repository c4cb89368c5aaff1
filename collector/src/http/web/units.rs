//! The units pages: `GET /units` (the top of the tree) and `GET /units/{code}` (one unit: its
//! figures against its level's target, the units under it and its machines), so a planner
//! drills down from the province to a commune.

use std::fmt::Write as _;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::Response;

use super::i18n::Lang;
use super::{Ctx, E, bar, failed, heading, machine_state, mbps, not_found, page, url, yes_no};
use crate::figures::{Figures, UnitFigures};
use crate::http::AppState;

fn target_of(f: &Figures, level: &str) -> Option<f64> {
    f.levels
        .iter()
        .find(|l| l.level == level)
        .and_then(|l| l.target_ratio)
}

/// A table of units with their figures; each name links to its page.
fn units_table(lang: Lang, f: &Figures, units: &[&UnitFigures]) -> String {
    let t = lang.t();
    let mut out = format!(
        "<table class=\"units\"><thead><tr><th>{}</th><th>{}</th><th class=\"num\">{}</th><th class=\"num\">{}</th>\
         <th class=\"num\">{}</th><th class=\"wide\">{}</th><th>{}</th><th>{}</th><th class=\"num\">{}</th></tr></thead><tbody>",
        E(t.unit),
        E(t.level),
        E(t.staff),
        E(t.equipped),
        E(t.ratio),
        E(t.against_target),
        E(t.lan),
        E(t.broadband),
        E(t.speed),
    );
    for u in units {
        let _ = write!(
            out,
            "<tr data-unit=\"{code}\" data-ratio=\"{ratio}\"><th scope=\"row\"><a href=\"/units/{href}\">{name}</a>\
             <small class=\"code\">{code}</small></th><td data-label=\"{h_level}\">{level}</td>\
             <td class=\"num\" data-label=\"{h_staff}\">{staff}</td><td class=\"num\" data-label=\"{h_eq}\">{equipped}</td>\
             <td class=\"num strong\" data-label=\"{h_ratio}\">{pct}</td><td class=\"wide\">{bar}</td>\
             <td data-label=\"{h_lan}\">{lan}</td><td data-label=\"{h_bb}\">{bb}</td><td class=\"num\" data-label=\"{h_speed}\">{speed}</td></tr>",
            code = E(&u.code),
            href = url(&u.code),
            ratio = u.equipment_ratio.map(|r| r.to_string()).unwrap_or_default(),
            name = E(&u.name),
            h_level = E(t.level),
            h_staff = E(t.staff),
            h_eq = E(t.equipped),
            h_ratio = E(t.ratio),
            h_lan = E(t.lan),
            h_bb = E(t.broadband),
            h_speed = E(t.speed),
            level = E(&lang.level(&u.level)),
            staff = lang.int(u64::from(u.staff)),
            equipped = lang.int(u64::from(u.equipped_staff)),
            pct = lang.pct(u.equipment_ratio),
            bar = bar(lang, u.equipment_ratio, target_of(f, &u.level)),
            lan = yes_no(lang, u.lan),
            bb = yes_no(lang, u.broadband),
            speed = mbps(lang, u.download_bps),
        );
    }
    out.push_str("</tbody></table>");
    out
}

/// `GET /units`: the units at the top of the tree (normally the province).
pub(super) async fn roots(State(state): State<AppState>, ctx: Ctx) -> Response {
    let lang = ctx.lang;
    let t = lang.t();
    let f = match state.figures().await {
        Ok(f) => f,
        Err(e) => return failed(lang, e),
    };
    let top: Vec<&UnitFigures> = f
        .units
        .iter()
        .filter(|u| {
            u.parent_code
                .as_ref()
                .is_none_or(|p| !f.units.iter().any(|x| &x.code == p))
        })
        .collect();
    let mut body = format!(
        "<h1 class=\"title\">{}</h1><p class=\"muted\">{}</p><section class=\"card\">",
        E(t.units_title),
        E(t.units_help)
    );
    body.push_str(&heading(lang, t.units_title, Some("/api/v1/units.csv")));
    body.push_str(&units_table(lang, &f, &top));
    body.push_str("</section>");
    page(&ctx, &state, t.units_title, "units", &body)
}

/// `GET /units/{code}`: one unit, the units under it and its machines.
pub(super) async fn unit(
    State(state): State<AppState>,
    ctx: Ctx,
    code: Result<Path<String>, PathRejection>,
) -> Response {
    let lang = ctx.lang;
    let t = lang.t();
    let Ok(Path(code)) = code else {
        return not_found(&ctx, &state, t.unit);
    };
    let f = match state.figures().await {
        Ok(f) => f,
        Err(e) => return failed(lang, e),
    };
    let Some(u) = f.units.iter().find(|u| u.code == code) else {
        return not_found(&ctx, &state, &format!("{} {code}", t.unit));
    };
    let agents = match state.store().agents().await {
        Ok(a) => a,
        Err(e) => return failed(lang, e),
    };

    // The way back up: the unit's ancestors, root first.
    let mut trail = Vec::new();
    let mut up = u.parent_code.as_deref();
    while let Some(p) = up {
        let Some(parent) = f.units.iter().find(|x| x.code == p) else {
            break;
        };
        if trail.len() > 16 {
            break;
        }
        trail.push(parent);
        up = parent.parent_code.as_deref();
    }
    let mut body = format!(
        "<nav class=\"crumbs\" aria-label=\"breadcrumb\"><a href=\"/units\">{}</a>",
        E(t.nav_units)
    );
    for p in trail.iter().rev() {
        let _ = write!(
            body,
            " › <a href=\"/units/{}\">{}</a>",
            url(&p.code),
            E(&p.name)
        );
    }
    let target = target_of(&f, &u.level);
    let _ = write!(
        body,
        "</nav><h1 class=\"title\">{name}</h1><p class=\"muted\">{level} · <span class=\"code\">{code}</span></p>\
         <section class=\"tiles\" data-unit=\"{code}\" data-ratio=\"{ratio}\">\
         <div class=\"tile\"><span class=\"label\">{h_staff}</span><span class=\"big\">{staff}</span></div>\
         <div class=\"tile\"><span class=\"label\">{h_eq}</span><span class=\"big\">{equipped}</span></div>\
         <div class=\"tile\"><span class=\"label\">{h_ratio}</span><span class=\"big\">{pct}</span>{bar}</div>\
         <div class=\"tile\"><span class=\"label\">{h_conn}</span>\
           <span>{h_lan}: {lan}</span><span>{h_bb}: {bb}</span><span>{h_speed}: {speed}</span></div>",
        name = E(&u.name),
        level = E(&lang.level(&u.level)),
        code = E(&u.code),
        ratio = u.equipment_ratio.map(|r| r.to_string()).unwrap_or_default(),
        h_staff = E(t.staff),
        h_eq = E(t.equipped),
        h_ratio = E(t.ratio),
        h_conn = E(t.connectivity),
        h_lan = E(t.lan),
        h_bb = E(t.broadband),
        h_speed = E(t.speed),
        staff = lang.int(u64::from(u.staff)),
        equipped = lang.int(u64::from(u.equipped_staff)),
        pct = lang.pct(u.equipment_ratio),
        bar = bar(lang, u.equipment_ratio, target),
        lan = yes_no(lang, u.lan),
        bb = yes_no(lang, u.broadband),
        speed = mbps(lang, u.download_bps),
    );
    let _ = write!(
        body,
        "<div class=\"tile\"><span class=\"label\">{}</span>",
        E(t.reachable)
    );
    for (class, ok) in &u.reachable {
        let _ = write!(
            body,
            "<span>{}: {}</span>",
            E(lang.word(class)),
            yes_no(lang, *ok)
        );
    }
    body.push_str("</div></section>");

    let children: Vec<&UnitFigures> = f
        .units
        .iter()
        .filter(|x| x.parent_code.as_deref() == Some(u.code.as_str()))
        .collect();
    body.push_str("<section class=\"card\">");
    let csv = format!("/api/v1/units.csv?parent={}", url(&u.code));
    body.push_str(&heading(
        lang,
        t.sub_units,
        (!children.is_empty()).then_some(csv.as_str()),
    ));
    if children.is_empty() {
        let _ = write!(body, "<p class=\"muted\">{}</p>", E(t.no_sub_units));
    } else {
        body.push_str(&units_table(lang, &f, &children));
    }
    body.push_str("</section>");

    let now = crate::now();
    let mine: Vec<_> = agents.iter().filter(|a| a.unit_code == u.code).collect();
    body.push_str("<section class=\"card\">");
    let csv = format!("/api/v1/agents.csv?unit={}", url(&u.code));
    body.push_str(&heading(lang, t.machines, Some(&csv)));
    if mine.is_empty() {
        let _ = write!(body, "<p class=\"muted\">{}</p>", E(t.no_machines));
    } else {
        let _ = write!(
            body,
            "<table class=\"machines\"><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>",
            E(t.hostname),
            E(t.role),
            E(t.state),
            E(t.last_report),
            E(t.agent_version)
        );
        for a in mine {
            let (_, state) = machine_state(lang, a, now);
            let _ = write!(
                body,
                "<tr data-agent=\"{id}\"><th scope=\"row\"><a href=\"/machines/{href}\">{host}</a></th>\
                 <td data-label=\"{h_role}\">{role}</td><td data-label=\"{h_state}\">{state}</td>\
                 <td data-label=\"{h_last}\">{last}</td><td data-label=\"{h_ver}\">{version}</td></tr>",
                id = E(&a.id),
                href = url(&a.id),
                host = E(&a.hostname),
                h_role = E(t.role),
                h_state = E(t.state),
                h_last = E(t.last_report),
                h_ver = E(t.agent_version),
                role = E(lang.word(&a.role)),
                last = ctx.when(a.last_report_at),
                version = E(a.agent_version.as_deref().unwrap_or("–")),
            );
        }
        body.push_str("</tbody></table>");
    }
    body.push_str("</section>");
    page(&ctx, &state, &u.name, "units", &body)
}
