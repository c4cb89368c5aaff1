//! The data-centre page (`GET /datacentre`): the servers with their state and size, and the
//! shared applications with the collector's last check (status, latency, certificate days
//! left); `GET /datacentre/services.csv` downloads the latter.

use std::fmt::Write as _;

use axum::extract::State;
use axum::response::Response;

use super::{Ctx, E, badge, csv_download, failed, heading, page, state_badge, url};
use crate::http::AppState;

const DAY: i64 = 86_400;

pub(super) async fn show(State(state): State<AppState>, ctx: Ctx) -> Response {
    let lang = ctx.lang;
    let t = lang.t();
    let f = match state.figures().await {
        Ok(f) => f,
        Err(e) => return failed(lang, e),
    };
    let now = crate::now();
    let mut body = format!(
        "<h1 class=\"title\">{}</h1><section class=\"card\">",
        E(t.datacentre_title)
    );
    body.push_str(&heading(
        lang,
        t.hosts_title,
        Some("/api/v1/agents.csv?role=server"),
    ));
    if f.hosts.is_empty() {
        let _ = write!(body, "<p class=\"muted\">{}</p>", E(t.no_hosts));
    } else {
        let _ = write!(
            body,
            "<table><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th class=\"num\">{}</th></tr></thead><tbody>",
            E(t.host),
            E(t.unit),
            E(t.state),
            E(t.last_report),
            E(t.memory)
        );
        for h in &f.hosts {
            let memory = h.memory_total_bytes.map_or("–".to_string(), |b| {
                format!("{} GiB", lang.dec(b as f64 / 1073741824.0, 1))
            });
            let _ = write!(
                body,
                "<tr data-host=\"{host}\" data-state=\"{st}\"><th scope=\"row\"><a href=\"/machines/{href}\">{host}</a></th>\
                 <td data-label=\"{h_unit}\"><a href=\"/units/{uhref}\">{unit}</a></td><td data-label=\"{h_state}\">{badge}</td>\
                 <td data-label=\"{h_last}\">{last}</td><td class=\"num\" data-label=\"{h_mem}\">{memory}</td></tr>",
                host = E(&h.host),
                st = h.state.as_str(),
                href = url(&h.agent_id),
                uhref = url(&h.unit_code),
                unit = E(&h.unit_code),
                h_unit = E(t.unit),
                h_state = E(t.state),
                h_last = E(t.last_report),
                h_mem = E(t.memory),
                badge = state_badge(lang, h.state.as_str()),
                last = ctx.when(h.last_report_at),
            );
        }
        body.push_str("</tbody></table>");
    }
    body.push_str("</section><section class=\"card\">");
    let services = state.services().snapshot();
    body.push_str(&heading(
        lang,
        t.services_title,
        Some("/datacentre/services.csv"),
    ));
    if services.is_empty() {
        let _ = write!(body, "<p class=\"muted\">{}</p>", E(t.no_services));
    } else {
        let _ = write!(
            body,
            "<table><thead><tr><th>{}</th><th>{}</th><th class=\"num\">{}</th><th class=\"num\">{}</th><th>{}</th></tr></thead><tbody>",
            E(t.service),
            E(t.status),
            E(t.latency),
            E(t.cert_days),
            E(t.checked)
        );
        for s in &services {
            let status = if s.up {
                badge("ok", t.up)
            } else {
                badge("low", t.down)
            };
            let latency = s.latency_seconds.map_or("–".to_string(), |l| {
                format!("{} ms", lang.dec(l * 1000.0, 0))
            });
            let days = s
                .tls_not_after
                .map_or("–".to_string(), |n| ((n - now) / DAY).to_string());
            let error = s
                .error
                .as_deref()
                .map(|e| format!("<small class=\"error\">{}</small>", E(e)))
                .unwrap_or_default();
            let _ = write!(
                body,
                "<tr data-service=\"{name}\" data-up=\"{up}\"><th scope=\"row\">{name}<small class=\"code\">{target}</small></th>\
                 <td data-label=\"{h_status}\">{status} {error}</td><td class=\"num\" data-label=\"{h_lat}\">{latency}</td>\
                 <td class=\"num\" data-label=\"{h_days}\">{days}</td><td data-label=\"{h_checked}\">{checked}</td></tr>",
                name = E(&s.name),
                up = s.up,
                target = E(&s.target),
                h_status = E(t.status),
                h_lat = E(t.latency),
                h_days = E(t.cert_days),
                h_checked = E(t.checked),
                checked = ctx.when(Some(s.checked_at)),
            );
        }
        body.push_str("</tbody></table>");
    }
    body.push_str("</section>");
    page(&ctx, &state, t.datacentre_title, "datacentre", &body)
}

/// `GET /datacentre/services.csv`: the last check of every shared application.
pub(super) async fn services_csv(State(state): State<AppState>, _ctx: Ctx) -> Response {
    let header = [
        "name",
        "target",
        "up",
        "latency_seconds",
        "http_status",
        "tls_not_after_utc",
        "error",
        "checked_utc",
    ];
    let rows = state.services().snapshot().into_iter().map(|s| {
        vec![
            s.name,
            s.target,
            if s.up { "1" } else { "0" }.to_string(),
            s.latency_seconds
                .map(|l| format!("{l:.4}"))
                .unwrap_or_default(),
            s.http_status.map(|h| h.to_string()).unwrap_or_default(),
            s.tls_not_after
                .map(crate::present::when)
                .unwrap_or_default(),
            s.error.unwrap_or_default(),
            crate::present::when(s.checked_at),
        ]
    });
    csv_download(
        "hatang-services.csv",
        crate::present::spreadsheet_csv(&header, rows),
    )
}
