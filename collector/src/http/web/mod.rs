//! The web UI: server-rendered HTML pages for planners and IT staff, in Vietnamese (default) or
//! English, behind a sign-in with an API token.
//!
//! No front-end build and no script: pages are strings written here, every value from the
//! database goes through [`E`] (HTML escaping), charts are inline SVG, and one stylesheet
//! (`hatang.css`, compiled in) is served at `/static/hatang.css`. The pages are not part of the
//! JSON API (they are listed in [`ROUTES`], not in `openapi.json`).
//!
//! # Sessions
//! `POST /login` with a valid viewer or admin token creates a session: a random 256-bit id in
//! the cookie `hatang_session` (HttpOnly, SameSite=Strict, Path=/, Secure when the collector
//! serves TLS), and in the database only the id's SHA-256 digest next to the token's digest and
//! an expiry ([`SESSION_SECS`]). Every request joins the session to the token table, so revoking
//! the token (or its expiry) ends its sessions at once, on every replica. A signed cookie was
//! rejected: it cannot be revoked without a server-side list anyway, and sign-out would only
//! forget it in one browser.
//!
//! The JSON API also accepts the session cookie, for `GET` only (the CSV links on the pages
//! download through it); anything that changes state still needs a bearer token.
//!
//! # CSRF
//! The session cookie is SameSite=Strict, so a cross-site request carries none. On top of that
//! both forms carry a token: the sign-in form a random value also set in the pre-session cookie
//! `hatang_csrf` (double submit, so a cross-site page cannot sign a browser in with the
//! attacker's token), the sign-out form a digest of the session id, which only a page of the
//! session can know. A POST whose `Origin` names another host is refused before either check.

mod datacentre;
mod i18n;
mod login;
mod machine;
mod overview;
mod units;

use std::fmt::{self, Write as _};

use axum::Router;
use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

use super::AppState;
use crate::figures::agent_state;
use crate::store::{AgentRecord, ApiRole, StoreError};
use i18n::Lang;

/// The pages and forms of the web UI, as (method, path template). The OpenAPI document does
/// not describe them (they answer HTML); the `web` integration tests check this list against
/// the routes in this folder both ways.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/"),
    ("GET", "/login"),
    ("POST", "/login"),
    ("POST", "/logout"),
    ("GET", "/static/hatang.css"),
    ("GET", "/trend.csv"),
    ("GET", "/units"),
    ("GET", "/units/{code}"),
    ("GET", "/machines/{id}"),
    ("GET", "/machines/{id}/changes.csv"),
    ("GET", "/datacentre"),
    ("GET", "/datacentre/services.csv"),
];

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(overview::show))
        .route("/trend.csv", get(overview::trend_csv))
        .route("/login", get(login::form).post(login::sign_in))
        .route("/logout", post(login::sign_out))
        .route("/static/hatang.css", get(stylesheet))
        .route("/units", get(units::roots))
        .route("/units/{code}", get(units::unit))
        .route("/machines/{id}", get(machine::show))
        .route("/machines/{id}/changes.csv", get(machine::changes_csv))
        .route("/datacentre", get(datacentre::show))
        .route("/datacentre/services.csv", get(datacentre::services_csv))
}

/// How long a session lasts after sign-in.
pub const SESSION_SECS: i64 = 12 * 3600;
const SESSION_COOKIE: &str = "hatang_session";
const CSRF_COOKIE: &str = "hatang_csrf";
const LANG_COOKIE: &str = "hatang_lang";

const CSS: &str = include_str!("hatang.css");

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        CSS,
    )
        .into_response()
}

/// HTML-escapes what it wraps when displayed: `&`, `<`, `>`, `"` and `'`, so a value is safe in
/// text and in a quoted attribute.
struct E<'a>(&'a str);

impl fmt::Display for E<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(i) = rest.find(['&', '<', '>', '"', '\'']) {
            f.write_str(&rest[..i])?;
            f.write_str(match rest.as_bytes()[i] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                _ => "&#39;",
            })?;
            rest = &rest[i + 1..];
        }
        f.write_str(rest)
    }
}

/// `text` percent-encoded for a path segment or a query value (unreserved characters kept).
fn url(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The value of cookie `name` in the request, if it sent one.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, and Secure when served over TLS, here or
/// at the reverse proxy `public_url` names.
fn set_cookie(state: &AppState, name: &str, value: &str, path: &str, max_age: i64) -> HeaderValue {
    let config = state.config();
    let secure = if config.tls.is_some() || config.public_url.as_ref().is_some_and(|u| u.is_https())
    {
        "; Secure"
    } else {
        ""
    };
    let text = format!(
        "{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
    );
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("invalid=1"))
}

/// A fresh random value (256 bits, hex): session ids and CSRF tokens.
fn random_hex() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(hex::encode(bytes))
}

/// The role of the request's session, if it carries a live one.
pub(crate) async fn session_role(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<ApiRole>, StoreError> {
    let Some(id) = cookie(headers, SESSION_COOKIE).filter(|id| valid_session_id(id)) else {
        return Ok(None);
    };
    state
        .store()
        .session_role(&crate::secret::digest(id), crate::now())
        .await
}

fn valid_session_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The CSRF token of the sign-out form of a session: only a page of the session can know it.
fn logout_token(session_id: &str) -> String {
    hex::encode(crate::secret::digest(&format!(
        "hatang-logout:{session_id}"
    )))
}

/// The page's language: `?lang=` (then remembered in a cookie), else the cookie, else Vietnamese.
/// The second value is the language to remember, when the query chose one.
fn language(uri: &Uri, headers: &HeaderMap) -> (Lang, Option<Lang>) {
    let asked = Query::<std::collections::BTreeMap<String, String>>::try_from_uri(uri)
        .ok()
        .and_then(|q| q.0.get("lang").and_then(|l| Lang::parse(l)));
    match asked {
        Some(l) => (l, Some(l)),
        None => (
            cookie(headers, LANG_COOKIE)
                .and_then(Lang::parse)
                .unwrap_or(Lang::Vi),
            None,
        ),
    }
}

/// What every signed-in page knows about its request. Without a live session the page answers
/// a redirect to `/login`.
#[derive(Debug)]
struct Ctx {
    lang: Lang,
    remember: Option<Lang>,
    session_id: String,
    /// The request's path, for the language switch link.
    path: String,
    /// The collector's `utc_offset`: pages show times in it.
    offset: UtcOffset,
}

impl Ctx {
    /// A time for people in the collector's `utc_offset`, or `never`: HTML, a `<time>` element
    /// whose `datetime` is the UTC instant (RFC 3339) and whose text is the local
    /// `27/11/2026 12:05`.
    fn when(&self, t: Option<i64>) -> String {
        let Some(t) = t else {
            return E(self.lang.t().never).to_string();
        };
        let instant = OffsetDateTime::from_unix_timestamp(t).ok();
        let utc = instant.and_then(|i| i.format(&Rfc3339).ok());
        let local = instant.and_then(|i| local_time(i, self.offset));
        match (utc, local) {
            (Some(utc), Some(local)) => format!("<time datetime=\"{utc}\">{local}</time>"),
            // Outside the calendar the time crate knows: the raw number, as `present` does.
            _ => t.to_string(),
        }
    }
}

/// `instant` at `offset` as `DD/MM/YYYY HH:MM`, the order Vietnamese readers (and British ones)
/// expect; `None` when the shifted date leaves the supported calendar.
fn local_time(instant: OffsetDateTime, offset: UtcOffset) -> Option<String> {
    let format = time::macros::format_description!("[day]/[month]/[year] [hour]:[minute]");
    instant.checked_to_offset(offset)?.format(format).ok()
}

/// A snapshot's date (`YYYY-MM-DD`) in the order [`local_time`] writes dates, `DD/MM/YYYY`; a
/// text that is no such date, as it is.
fn day(date: &str) -> String {
    let format = time::macros::format_description!("[day]/[month]/[year]");
    crate::history::parse_date(date)
        .ok()
        .and_then(|d| d.format(format).ok())
        .unwrap_or_else(|| date.to_string())
}

/// The time zone of an offset for people: `UTC+07:00`, `UTC-03:30`, `UTC+00:00`.
fn zone_name(offset: UtcOffset) -> String {
    let sign = if offset.is_negative() { '-' } else { '+' };
    let (h, m, _) = offset.as_hms();
    format!("UTC{sign}{:02}:{:02}", h.unsigned_abs(), m.unsigned_abs())
}

impl FromRequestParts<AppState> for Ctx {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let (lang, remember) = language(&parts.uri, &parts.headers);
        let role = session_role(state, &parts.headers)
            .await
            .map_err(|e| failed(lang, e))?;
        let session_id = cookie(&parts.headers, SESSION_COOKIE).unwrap_or_default();
        if role.is_none() {
            let mut to_login = Redirect::to("/login").into_response();
            if let Some(l) = remember {
                to_login
                    .headers_mut()
                    .append(header::SET_COOKIE, lang_cookie(state, l));
            }
            return Err(to_login);
        }
        Ok(Ctx {
            lang,
            remember,
            session_id: session_id.to_string(),
            path: parts.uri.path().to_string(),
            offset: state.config().utc_offset,
        })
    }
}

fn lang_cookie(state: &AppState, lang: Lang) -> HeaderValue {
    set_cookie(state, LANG_COOKIE, lang.code(), "/", 365 * 24 * 3600)
}

/// Headers every HTML answer carries: no caching of figures behind a sign-in, no framing, no
/// script, no sniffing.
fn html_response(status: StatusCode, html: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "same-origin"),
        ],
        html,
    )
        .into_response()
}

/// The document around a page's `body`: head, header with navigation, language switch and
/// sign-out (when signed in), footer (naming the time zone of the times on signed-in pages).
/// The empty `data:,` icon keeps browsers from asking for a `/favicon.ico` that does not exist.
fn document(lang: Lang, title: &str, nav: Option<(&Ctx, &str)>, body: &str) -> String {
    let t = lang.t();
    let mut out = String::with_capacity(body.len() + 2048);
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"{code}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · {app}</title><link rel=\"stylesheet\" href=\"/static/hatang.css\">\
         <link rel=\"icon\" href=\"data:,\"></head>\
         <body><header class=\"top\"><div class=\"wrap bar\">\
         <a class=\"brand\" href=\"/\"><span class=\"logo\" aria-hidden=\"true\">▦</span>\
         <span><strong>{app}</strong><small>{tagline}</small></span></a>",
        code = lang.code(),
        title = E(title),
        app = E(t.app_name),
        tagline = E(t.app_tagline),
    );
    if let Some((ctx, active)) = nav {
        out.push_str("<nav class=\"nav\">");
        for (href, key, label) in [
            ("/", "overview", t.nav_overview),
            ("/units", "units", t.nav_units),
            ("/datacentre", "datacentre", t.nav_datacentre),
        ] {
            let current = if key == active {
                " aria-current=\"page\""
            } else {
                ""
            };
            let _ = write!(out, "<a href=\"{href}\"{current}>{}</a>", E(label));
        }
        let _ = write!(
            out,
            "<a class=\"lang\" href=\"{path}?lang={other}\" hreflang=\"{other}\">{switch}</a>\
             <form method=\"post\" action=\"/logout\" class=\"logout\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <button type=\"submit\">{sign_out}</button></form></nav>",
            path = E(&ctx.path),
            other = lang.other().code(),
            switch = E(t.switch_to),
            csrf = logout_token(&ctx.session_id),
            sign_out = E(t.sign_out),
        );
    }
    let zone = nav
        .map(|(ctx, _)| format!(" · {} {}.", E(t.times_in), zone_name(ctx.offset)))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "</div></header><main class=\"wrap\">{body}</main>\
         <footer class=\"wrap foot\">{app}{zone}</footer></body></html>",
        app = E(t.app_name),
    );
    out
}

/// A signed-in page with status 200.
fn page(ctx: &Ctx, state: &AppState, title: &str, active: &str, body: &str) -> Response {
    page_with_status(ctx, state, StatusCode::OK, title, active, body)
}

fn page_with_status(
    ctx: &Ctx,
    state: &AppState,
    status: StatusCode,
    title: &str,
    active: &str,
    body: &str,
) -> Response {
    let mut response = html_response(status, document(ctx.lang, title, Some((ctx, active)), body));
    if let Some(l) = ctx.remember {
        response
            .headers_mut()
            .append(header::SET_COOKIE, lang_cookie(state, l));
    }
    response
}

/// The 404 page of a signed-in user.
fn not_found(ctx: &Ctx, state: &AppState, what: &str) -> Response {
    let t = ctx.lang.t();
    let body = format!(
        "<section class=\"card\"><h1>{}</h1><p>{}</p></section>",
        E(t.not_found),
        E(what)
    );
    page_with_status(ctx, state, StatusCode::NOT_FOUND, t.not_found, "", &body)
}

/// The 404 page of an address that names nothing, for a browser that may not be signed in:
/// no navigation, a link home.
fn no_page(lang: Lang) -> Response {
    let t = lang.t();
    let body = format!(
        "<section class=\"card\"><h1>{}</h1><p><a href=\"/\">{}</a></p></section>",
        E(t.not_found),
        E(t.nav_overview)
    );
    html_response(
        StatusCode::NOT_FOUND,
        document(lang, t.not_found, None, &body),
    )
}

/// The router's answer to a path no route takes. A browser navigating outside the API (it
/// asks for HTML: `/units/` typed with a slash) gets the 404 page in its language; anything
/// else gets the API's JSON error, as the contract says of every error.
pub(crate) async fn no_such_path(headers: HeaderMap, uri: Uri) -> Response {
    let asks_html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    if !asks_html || uri.path().starts_with("/api/") {
        return super::ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
            .into_response();
    }
    no_page(language(&uri, &headers).0)
}

/// The 500 page: the cause is logged, the page says nothing internal. A NUL character in the
/// address (`/machines/%00`), which PostgreSQL refuses to compare, names nothing: 404.
fn failed(lang: Lang, e: StoreError) -> Response {
    let t = lang.t();
    if e.is_nul_in_text() {
        return no_page(lang);
    }
    tracing::error!(error = %e, "web page: store error");
    let body = format!("<section class=\"card\"><p>{}</p></section>", E(t.failed));
    html_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        document(lang, t.failed, None, &body),
    )
}

/// A section heading with its CSV link.
fn heading(lang: Lang, title: &str, csv: Option<&str>) -> String {
    let mut out = format!("<div class=\"head\"><h2>{}</h2>", E(title));
    if let Some(href) = csv {
        let _ = write!(
            out,
            "<a class=\"csv\" href=\"{}\" download>{}</a>",
            E(href),
            E(lang.t().csv)
        );
    }
    out.push_str("</div>");
    out
}

/// A horizontal bar for `ratio` (0..1) with a tick at `target`, coloured by whether it meets
/// it. The numbers are in `data-` attributes for tests and tools.
fn bar(lang: Lang, ratio: Option<f64>, target: Option<f64>) -> String {
    let r = ratio.unwrap_or(0.0).clamp(0.0, 1.0);
    let class = match (ratio, target) {
        (None, _) => "none",
        (Some(r), Some(t)) if r >= t => "ok",
        (Some(r), Some(t)) if r >= t - 0.05 => "near",
        (Some(_), Some(_)) => "low",
        (Some(_), None) => "plain",
    };
    let label = match target {
        Some(t) => format!(
            "{} / {} {}",
            lang.pct(ratio),
            lang.t().target.to_lowercase(),
            lang.pct(Some(t))
        ),
        None => lang.pct(ratio),
    };
    let mut out = format!(
        "<svg class=\"meter {class}\" viewBox=\"0 0 100 10\" preserveAspectRatio=\"none\" role=\"img\" aria-label=\"{}\">\
         <rect class=\"track\" x=\"0\" y=\"0\" width=\"100\" height=\"10\" rx=\"2\"/>\
         <rect class=\"fill\" x=\"0\" y=\"0\" width=\"{:.2}\" height=\"10\" rx=\"2\"/>",
        E(&label),
        r * 100.0
    );
    if let Some(t) = target {
        let _ = write!(
            out,
            "<rect class=\"tick\" x=\"{:.2}\" y=\"0\" width=\"0.8\" height=\"10\"/>",
            (t.clamp(0.0, 1.0) * 100.0 - 0.4).max(0.0)
        );
    }
    out.push_str("</svg>");
    out
}

/// A coloured badge for an agent state or an up/down verdict.
fn badge(class: &str, text: &str) -> String {
    format!("<span class=\"badge {}\">{}</span>", E(class), E(text))
}

/// The badge of an agent state, or of `revoked`.
fn state_badge(lang: Lang, state: &str) -> String {
    let class = match state {
        "online" => "ok",
        "stale" => "near",
        _ => "low",
    };
    badge(class, lang.word(state))
}

/// A machine's state as its pages show it (the name, for `data-state`, and its badge):
/// `revoked` once its key is revoked, whatever it last reported, since it then counts for
/// nothing in the figures beside it; else online, stale or offline by its last report.
fn machine_state(lang: Lang, agent: &AgentRecord, now: i64) -> (&'static str, String) {
    let state = if agent.revoked_at.is_some() {
        "revoked"
    } else {
        let interval = agent.interval_secs.and_then(|i| u32::try_from(i).ok());
        agent_state(agent.last_report_at, interval, now).as_str()
    };
    (state, state_badge(lang, state))
}

fn yes_no(lang: Lang, v: bool) -> String {
    let t = lang.t();
    if v {
        badge("ok", t.yes)
    } else {
        badge("low", t.no)
    }
}

/// A download rate in Mbit/s, or a dash.
fn mbps(lang: Lang, bps: Option<f64>) -> String {
    bps.map_or("–".to_string(), |b| {
        format!("{} Mbit/s", lang.dec(b / 1e6, 1))
    })
}

/// A CSV download answered by a page route.
fn csv_download(filename: &str, text: String) -> Response {
    let disposition = format!("attachment; filename=\"{filename}\"");
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        text,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_text_and_attributes() {
        assert_eq!(
            E("<script>alert('x') & \"y\"</script>").to_string(),
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
        assert_eq!(E("Xã Hòa Bình").to_string(), "Xã Hòa Bình");
        assert_eq!(url("a b/ộ"), "a%20b%2F%E1%BB%99");
    }

    #[test]
    fn times_read_in_the_collectors_offset() {
        let offset = |text: &str| {
            UtcOffset::parse(
                text,
                time::macros::format_description!("[offset_hour]:[offset_minute]"),
            )
            .unwrap()
        };
        // 2025-01-01 00:00 UTC
        let new_year = OffsetDateTime::from_unix_timestamp(1_735_689_600).unwrap();
        assert_eq!(
            local_time(new_year, offset("+07:00")).as_deref(),
            Some("01/01/2025 07:00")
        );
        assert_eq!(
            local_time(new_year, offset("-03:30")).as_deref(),
            Some("31/12/2024 20:30")
        );
        assert_eq!(day("2026-01-03"), "03/01/2026");
        assert_eq!(day("2026-1-3x"), "2026-1-3x");
        assert_eq!(zone_name(offset("+07:00")), "UTC+07:00");
        assert_eq!(zone_name(offset("-03:30")), "UTC-03:30");
        assert_eq!(zone_name(offset("-00:30")), "UTC-00:30");
        assert_eq!(zone_name(UtcOffset::UTC), "UTC+00:00");
        // the last representable instant cannot move east
        let last_hour = time::Time::from_hms(23, 0, 0).unwrap();
        let end = OffsetDateTime::new_utc(time::Date::MAX, last_hour);
        assert_eq!(local_time(end, offset("+07:00")), None);
        assert_eq!(
            local_time(end, offset("-07:00")).as_deref(),
            Some("31/12/9999 16:00")
        );
    }

    #[test]
    fn cookies_are_found_by_exact_name() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("hatang_session_x=1; hatang_session=abc; other=2"),
        );
        assert_eq!(cookie(&h, "hatang_session"), Some("abc"));
        assert_eq!(cookie(&h, "missing"), None);
    }
}
