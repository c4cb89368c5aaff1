//! The web UI: sign-in and sign-out with their CSRF defences, sessions that end with their
//! token, the pages' figures against the API's, languages, escaping and the route list.

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use hatang_collector::http::WEB_ROUTES;
use serde_json::{Value, json};

use crate::support::{Harness, Reply, TREE_3, report, report_from};

/// The value of `name` in the reply's `Set-Cookie` headers, with the whole header.
fn set_cookie(reply: &Reply, name: &str) -> Option<(String, String)> {
    reply
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| {
            let value = v[name.len() + 1..].split(';').next().unwrap().to_string();
            (value, v)
        })
}

/// The value of the hidden `csrf` field of a form in `html`.
fn csrf_field(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    html[at..at + html[at..].find('"').unwrap()].to_string()
}

async fn request(
    h: &Harness,
    method: Method,
    path: &str,
    cookies: &str,
    form: Option<String>,
) -> Reply {
    let mut b = Request::builder().method(method).uri(path);
    if !cookies.is_empty() {
        b = b.header(header::COOKIE, cookies);
    }
    let body = match form {
        Some(f) => {
            b = b.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
            Body::from(f)
        }
        None => Body::empty(),
    };
    h.send(b.body(body).unwrap()).await
}

async fn get(h: &Harness, path: &str, cookies: &str) -> Reply {
    request(h, Method::GET, path, cookies, None).await
}

/// `POST /login` with `token`, through the form and its CSRF cookie as a browser would.
async fn sign_in(h: &Harness, token: &str) -> Reply {
    let form = get(h, "/login", "").await;
    assert_eq!(form.status, StatusCode::OK);
    let (csrf, _) = set_cookie(&form, "hatang_csrf").expect("a csrf cookie");
    assert_eq!(csrf_field(form.text()), csrf);
    request(
        h,
        Method::POST,
        "/login",
        &format!("hatang_csrf={csrf}"),
        Some(format!("csrf={csrf}&token={token}")),
    )
    .await
}

/// The `Cookie` header of a signed-in browser.
async fn session(h: &Harness, token: &str) -> String {
    let reply = sign_in(h, token).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text());
    let (id, _) = set_cookie(&reply, "hatang_session").unwrap();
    format!("hatang_session={id}")
}

#[tokio::test]
async fn a_good_token_signs_in_with_a_strict_http_only_cookie() {
    let h = Harness::with_tree(TREE_3).await;
    let viewer = h.api_token("viewer").await;
    let reply = sign_in(&h, &viewer).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(reply.header(header::LOCATION), "/");
    let (id, whole) = set_cookie(&reply, "hatang_session").unwrap();
    assert_eq!(id.len(), 64, "256 random bits in hex: {whole}");
    for part in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(whole.contains(part), "{whole}");
    }
    assert!(!whole.contains("Secure"), "plain HTTP here: {whole}");
    let page = get(&h, "/", &format!("hatang_session={id}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.header(header::CONTENT_TYPE).starts_with("text/html"));
}

#[tokio::test]
async fn a_bad_token_gets_the_form_again_with_the_reason_and_no_session() {
    let h = Harness::with_tree(TREE_3).await;
    let unknown = hatang_collector::secret::generate(hatang_collector::secret::Kind::Api)
        .unwrap()
        .plain;
    let enrol = h.enrol_token("148", None).await;
    for token in [unknown.as_str(), enrol.as_str(), ""] {
        let reply = sign_in(&h, token).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{token}");
        assert!(set_cookie(&reply, "hatang_session").is_none());
        assert!(
            reply.text().contains("Mã truy cập không đúng"),
            "{}",
            reply.text()
        );
        assert!(reply.text().contains("name=\"token\""));
    }
}

#[tokio::test]
async fn sign_in_refuses_a_form_without_its_csrf_cookie_or_from_another_site() {
    let h = Harness::with_tree(TREE_3).await;
    let viewer = h.api_token("viewer").await;
    let form = format!("csrf=abc&token={viewer}");
    // no pre-session cookie: the double submit fails
    let reply = request(&h, Method::POST, "/login", "", Some(form.clone())).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert!(set_cookie(&reply, "hatang_session").is_none());
    // a cookie that does not match the field
    let reply = request(
        &h,
        Method::POST,
        "/login",
        "hatang_csrf=abd",
        Some(form.clone()),
    )
    .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert!(set_cookie(&reply, "hatang_session").is_none());
    // another site's Origin
    let request = Request::post("/login")
        .header(header::HOST, "collector.example")
        .header(header::ORIGIN, "https://evil.example")
        .header(header::COOKIE, "hatang_csrf=abc")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form))
        .unwrap();
    let reply = h.send(request).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert!(set_cookie(&reply, "hatang_session").is_none());
}

/// A sign-in through a reverse proxy that sends its own `Host` (the collector's address) and
/// the browser's `Origin`, with a matching CSRF cookie and field.
async fn proxied_sign_in(h: &Harness, origin: &str, token: &str) -> Reply {
    let request = Request::post("/login")
        .header(header::HOST, "127.0.0.1:8080")
        .header(header::ORIGIN, origin)
        .header(header::COOKIE, "hatang_csrf=abc")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("csrf=abc&token={token}")))
        .unwrap();
    h.send(request).await
}

/// Behind a reverse proxy the request's `Host` is often the proxy's way to the collector
/// (nginx's default), not the address in the browser: with `public_url` the sign-in form's
/// `Origin` is checked against that address, and the cookie is `Secure` for an https one.
#[tokio::test]
async fn behind_a_proxy_sign_in_is_checked_against_the_public_url() {
    const PUBLIC: &str = "https://hatang.example.gov.vn";
    let without = Harness::with_tree(TREE_3).await;
    let viewer = without.api_token("viewer").await;
    let reply = proxied_sign_in(&without, PUBLIC, &viewer).await;
    assert_eq!(
        reply.status,
        StatusCode::FORBIDDEN,
        "the Host is the proxy's"
    );

    let behind = Harness::with_config(|c| {
        c.public_url = Some(hatang_collector::config::PublicUrl::parse(PUBLIC).unwrap());
    })
    .await;
    behind.import(TREE_3).await;
    let viewer = behind.api_token("viewer").await;
    let reply = proxied_sign_in(&behind, PUBLIC, &viewer).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text());
    let (_, cookie) = set_cookie(&reply, "hatang_session").expect("a session");
    assert!(cookie.contains("; Secure"), "{cookie}");
    for elsewhere in ["https://evil.example", "http://hatang.example.gov.vn"] {
        let reply = proxied_sign_in(&behind, elsewhere, &viewer).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{elsewhere}");
        assert!(set_cookie(&reply, "hatang_session").is_none());
    }
}

#[tokio::test]
async fn pages_redirect_to_the_sign_in_without_a_live_session() {
    let h = Harness::with_tree(TREE_3).await;
    for path in [
        "/",
        "/units",
        "/units/148",
        "/datacentre",
        "/machines/x",
        "/trend.csv",
    ] {
        for cookies in [
            "",
            &format!("hatang_session={}", "ab".repeat(32)),
            "hatang_session=junk",
        ] {
            let reply = get(&h, path, cookies).await;
            assert_eq!(reply.status, StatusCode::SEE_OTHER, "{path} {cookies}");
            assert_eq!(reply.header(header::LOCATION), "/login");
        }
    }
}

#[tokio::test]
async fn revoking_the_token_ends_its_sessions_at_once_and_sign_out_ends_one() {
    let h = Harness::with_tree(TREE_3).await;
    let viewer = h.api_token("viewer").await;
    let cookie = session(&h, &viewer).await;
    assert_eq!(get(&h, "/units", &cookie).await.status, StatusCode::OK);
    assert_eq!(
        get(&h, "/api/v1/coverage.csv", &cookie).await.status,
        StatusCode::OK
    );
    h.revoke_api_tokens().await;
    assert_eq!(
        get(&h, "/units", &cookie).await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        get(&h, "/api/v1/coverage.csv", &cookie).await.status,
        StatusCode::UNAUTHORIZED
    );

    let viewer = h.api_token("viewer").await;
    let cookie = session(&h, &viewer).await;
    let page = get(&h, "/", &cookie).await;
    let token = csrf_field(page.text());
    // a sign-out without the page's token is refused and ends nothing
    let reply = request(
        &h,
        Method::POST,
        "/logout",
        &cookie,
        Some("csrf=wrong".into()),
    )
    .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(get(&h, "/", &cookie).await.status, StatusCode::OK);
    let reply = request(
        &h,
        Method::POST,
        "/logout",
        &cookie,
        Some(format!("csrf={token}")),
    )
    .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(reply.header(header::LOCATION), "/login");
    assert_eq!(get(&h, "/", &cookie).await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn the_session_reads_the_api_for_get_only() {
    let h = Harness::with_tree(TREE_3).await;
    let admin = h.api_token("admin").await;
    let cookie = session(&h, &admin).await;
    assert_eq!(
        get(&h, "/api/v1/units.csv", &cookie).await.status,
        StatusCode::OK
    );
    // admin routes and writes still need the bearer token
    let reply = get(&h, "/api/v1/tokens", &cookie).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let reply = request(&h, Method::POST, "/api/v1/tokens", &cookie, None).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
}

/// `(level, data-ratio)` of every `<tr data-level=… data-ratio=…>` in the overview.
fn shown_ratios(html: &str) -> Vec<(String, Option<f64>)> {
    let mut out = Vec::new();
    for (i, _) in html.match_indices("<tr data-level=\"") {
        let rest = &html[i + 16..];
        let level = &rest[..rest.find('"').unwrap()];
        let tag = &rest[..rest.find('>').unwrap()];
        let Some(at) = tag.find("data-ratio=\"") else {
            continue;
        };
        let value = &tag[at + 12..];
        let value = &value[..value.find('"').unwrap()];
        out.push((level.to_string(), value.parse().ok()));
    }
    out
}

#[tokio::test]
async fn the_overview_shows_the_apis_figures() {
    let h = Harness::with_tree(TREE_3).await;
    h.fleet().await;
    let viewer = h.api_token("viewer").await;
    let api: Value = h
        .get("/api/v1/coverage", Some(&viewer))
        .await
        .json(StatusCode::OK);
    let cookie = session(&h, &viewer).await;
    let page = get(&h, "/", &cookie).await;
    assert_eq!(page.status, StatusCode::OK);
    let shown = shown_ratios(page.text());
    let levels = api["levels"].as_array().unwrap();
    assert_eq!(shown.len(), levels.len(), "{shown:?}");
    for (l, (level, ratio)) in levels.iter().zip(&shown) {
        assert_eq!(l["level"], level.as_str());
        assert_eq!(l["equipment_ratio"].as_f64(), *ratio, "{level}");
    }
    assert!(
        shown.iter().any(|(_, r)| r.is_some_and(|r| r > 0.0)),
        "{shown:?}"
    );

    // and a unit's page its unit's
    let unit: Value = h
        .get("/api/v1/units/148", Some(&viewer))
        .await
        .json(StatusCode::OK);
    let page = get(&h, "/units/148", &cookie).await;
    let want = format!(
        "data-unit=\"148\" data-ratio=\"{}\"",
        unit["unit"]["equipment_ratio"].as_f64().unwrap()
    );
    assert!(page.text().contains(&want), "{want}");
}

#[tokio::test]
async fn vietnamese_by_default_english_on_request_and_remembered() {
    let h = Harness::with_tree(TREE_3).await;
    let viewer = h.api_token("viewer").await;
    let cookie = session(&h, &viewer).await;
    let page = get(&h, "/", &cookie).await;
    assert!(page.text().contains("<html lang=\"vi\">"));
    assert!(page.text().contains("Tỷ lệ cán bộ được trang bị máy tính"));
    assert!(page.text().contains("Cấp xã"));

    let page = get(&h, "/?lang=en", &cookie).await;
    assert!(page.text().contains("<html lang=\"en\">"));
    assert!(page.text().contains("Staff equipped with a computer"));
    let (lang, _) = set_cookie(&page, "hatang_lang").unwrap();
    assert_eq!(lang, "en");
    let page = get(&h, "/units", &format!("{cookie}; hatang_lang=en")).await;
    assert!(page.text().contains("Administrative units"));
    assert!(
        get(&h, "/login?lang=en", "")
            .await
            .text()
            .contains("Access token")
    );
}

#[tokio::test]
async fn the_overview_says_the_configured_equipment_window() {
    let h = Harness::with_config(|c| c.equipment_window_secs = 90 * 86_400).await;
    h.import(TREE_3).await;
    let viewer = h.api_token("viewer").await;
    let cookie = session(&h, &viewer).await;
    let vi = get(&h, "/", &cookie).await;
    assert!(
        vi.text().contains("hoạt động trong 90 ngày qua"),
        "{}",
        vi.text()
    );
    let en = get(&h, "/?lang=en", &cookie).await;
    assert!(
        en.text().contains("active in the last 90 days"),
        "{}",
        en.text()
    );
    assert!(!en.text().contains("30 days"));
}

#[tokio::test]
async fn the_trend_dates_read_as_the_pages_other_dates() {
    let h = Harness::with_tree(TREE_3).await;
    h.fleet().await;
    let figures = hatang_collector::http::compute_figures(h.store(), h.config())
        .await
        .unwrap();
    for date in ["2026-01-01", "2026-01-03"] {
        hatang_collector::history::write(h.store(), date, &figures)
            .await
            .unwrap();
    }
    let viewer = h.api_token("viewer").await;
    let cookie = session(&h, &viewer).await;
    let page = get(&h, "/", &cookie).await;
    assert!(
        page.text().contains(">01/01/2026 → 03/01/2026</th>"),
        "{}",
        page.text()
    );
    assert!(!page.text().contains("2026-01-01"));
}

/// Unix time `t` as a page should show it `east_secs` east of UTC: the instant shifted, then
/// read as UTC (a different path from the collector's change of offset).
fn shifted(t: i64, east_secs: i64) -> String {
    let format = time::macros::format_description!("[day]/[month]/[year] [hour]:[minute]");
    time::OffsetDateTime::from_unix_timestamp(t + east_secs)
        .unwrap()
        .format(format)
        .unwrap()
}

#[tokio::test]
async fn pages_show_times_in_the_configured_offset_and_csv_keeps_utc() {
    let cases = [
        (None, 7 * 3600, "UTC+07:00"),
        (
            Some(time::UtcOffset::from_hms(-3, -30, 0).unwrap()),
            -(3 * 3600 + 30 * 60),
            "UTC-03:30",
        ),
    ];
    for (offset, east_secs, zone) in cases {
        let h = Harness::with_config(|c| {
            if let Some(o) = offset {
                c.utc_offset = o;
            }
        })
        .await;
        h.import(TREE_3).await;
        let fleet = h.fleet().await;
        let viewer = h.api_token("viewer").await;
        let cookie = session(&h, &viewer).await;
        let id = &fleet.server.id;
        let api: Value = h
            .get(&format!("/api/v1/agents/{id}"), Some(&viewer))
            .await
            .json(StatusCode::OK);
        let last = api["last_report_at"].as_i64().unwrap();
        let utc = time::OffsetDateTime::from_unix_timestamp(last).unwrap();
        let iso = utc
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        let shown = format!(
            "<time datetime=\"{iso}\">{}</time>",
            shifted(last, east_secs)
        );

        let machine = get(&h, &format!("/machines/{id}"), &cookie).await;
        assert!(machine.text().contains(&shown), "{zone}: {shown}");
        let enrolled = shifted(api["enrolled_at"].as_i64().unwrap(), east_secs);
        assert!(machine.text().contains(&enrolled), "{zone}: {enrolled}");
        for path in ["/", "/units/4352", "/datacentre"] {
            let page = get(&h, path, &cookie).await;
            assert!(
                page.text().contains(&format!("{zone}.</footer>")),
                "{zone}: {path}"
            );
            assert!(!page.text().contains("UTC.<"), "{path}");
        }
        for path in ["/units/4352", "/datacentre"] {
            let page = get(&h, path, &cookie).await;
            assert!(page.text().contains(&shown), "{zone}: {path}");
        }
        let overview = get(&h, "/", &cookie).await;
        assert!(overview.text().contains(&format!("({zone})</p>")), "{zone}");

        // downloads stay in UTC, as their column names say
        let csv = get(&h, "/api/v1/agents.csv?role=server", &cookie).await;
        let text = csv.text().trim_start_matches('\u{feff}');
        let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
        let column = header.iter().position(|c| *c == "last_report_utc").unwrap();
        let row: Vec<&str> = text.lines().nth(1).unwrap().split(',').collect();
        let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]");
        assert_eq!(row[column], utc.format(format).unwrap(), "{zone}");
    }
}

#[tokio::test]
async fn unit_names_are_escaped() {
    let h = Harness::with_tree(TREE_3).await;
    h.import(
        "code,name,level,parent_code,staff
17,Tỉnh Hoà Bình,province,,0
666,<script>alert('x')</script>,district,17,3
",
    )
    .await;
    let viewer = h.api_token("viewer").await;
    let cookie = session(&h, &viewer).await;
    for path in ["/units/17", "/units/666"] {
        let page = get(&h, path, &cookie).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert!(!page.text().contains("<script>"), "{path}");
        assert!(
            page.text()
                .contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"),
            "{path}"
        );
    }
}

#[tokio::test]
async fn every_page_answers_and_has_its_csv() {
    let h = Harness::with_tree(TREE_3).await;
    let fleet = h.fleet().await;
    let viewer = h.api_token("viewer").await;
    let cookie = session(&h, &viewer).await;
    let machine = format!("/machines/{}", fleet.server.id);
    for path in [
        "/",
        "/units",
        "/units/17",
        "/units/4351",
        "/datacentre",
        machine.as_str(),
    ] {
        let page = get(&h, path, &cookie).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        // every CSV link the page shows downloads with the session
        for (i, _) in page.text().match_indices("class=\"csv\" href=\"") {
            let rest = &page.text()[i + 18..];
            let href = rest[..rest.find('"').unwrap()].replace("&amp;", "&");
            let csv = get(&h, &href, &cookie).await;
            assert_eq!(csv.status, StatusCode::OK, "{path}: {href}");
            assert!(
                csv.header(header::CONTENT_TYPE).starts_with("text/csv"),
                "{href}"
            );
        }
    }
    assert!(
        get(&h, "/units/4351", &cookie)
            .await
            .text()
            .contains(&fleet.commune[0].id)
    );
    assert_eq!(
        get(&h, "/units/nope", &cookie).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&h, "/machines/nope", &cookie).await.status,
        StatusCode::NOT_FOUND
    );
    let css = get(&h, "/static/hatang.css", "").await;
    assert_eq!(css.status, StatusCode::OK);
    assert!(css.header(header::CONTENT_TYPE).starts_with("text/css"));
}

#[tokio::test]
async fn a_browser_asking_for_no_page_gets_a_page_and_scripts_keep_json() {
    let h = Harness::with_tree(TREE_3).await;
    let viewer = h.api_token("viewer").await;
    let cookie = session(&h, &viewer).await;
    // what a browser sends when someone types an address
    let browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    let navigate = |path: &str, accept: &str| {
        Request::get(path)
            .header(header::COOKIE, &cookie)
            .header(header::ACCEPT, accept)
            .body(Body::empty())
            .unwrap()
    };
    for path in ["/units/", "/machines/x/y", "/nope?lang=en"] {
        let reply = h.send(navigate(path, browser)).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
        assert!(
            reply.header(header::CONTENT_TYPE).starts_with("text/html"),
            "{path}"
        );
        let said = if path.ends_with("lang=en") {
            "Not found"
        } else {
            "Không tìm thấy"
        };
        assert!(reply.text().contains(said), "{path}: {}", reply.text());
        assert!(reply.text().contains("<a href=\"/\">"), "{path}");
    }
    // the API's unknown paths, and anything asked for without HTML, stay JSON
    for (path, accept) in [("/api/v1/nope", browser), ("/units/", "*/*")] {
        h.send(navigate(path, accept))
            .await
            .error(StatusCode::NOT_FOUND, "not_found");
    }
}

/// Every `.route("…"` under src/http/web/ is in [`WEB_ROUTES`], and every entry is served.
#[tokio::test]
async fn the_web_routes_are_listed_and_served() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http/web");
    let listed: BTreeSet<&str> = WEB_ROUTES.iter().map(|(_, p)| *p).collect();
    let mut found = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap_or_default();
        for (i, _) in text.match_indices(".route(\"") {
            let rest = &text[i + 8..];
            let path = &rest[..rest.find('"').unwrap()];
            assert!(
                listed.contains(path),
                "{path} is routed but not in WEB_ROUTES"
            );
            found += 1;
        }
    }
    assert!(found >= 10, "{found}");
    let h = Harness::empty().await;
    for (method, template) in WEB_ROUTES {
        let path = template.replace("{code}", "x").replace("{id}", "x");
        let reply = request(&h, method.parse().unwrap(), &path, "", None).await;
        assert!(
            reply.status != StatusCode::METHOD_NOT_ALLOWED && reply.status != StatusCode::NOT_FOUND,
            "{method} {path}: {}",
            reply.status
        );
    }
}

#[tokio::test]
async fn the_machine_page_shows_what_the_asset_register_asks() {
    let h = Harness::with_tree(TREE_3).await;
    let fleet = h.fleet().await;
    let viewer = h.api_token("viewer").await;
    let cookie = session(&h, &viewer).await;
    let server = &fleet.server;
    let mut r = report();
    r["inventory"]["monitors"][0]["model"] = json!("P24<b>H");
    assert_eq!(h.report(&server.key, &r).await.status, StatusCode::ACCEPTED);
    let page = get(&h, &format!("/machines/{}?lang=en", server.id), &cookie).await;
    let text = page.text();
    // The golden report's inventory, as the page words it.
    for row in [
        "<dt>Make and model</dt><dd>Dell Inc. OptiPlex 3080</dd>",
        "<dt>Serial number</dt><dd>7XK2LD3</dd>",
        "<dt>Memory modules</dt><dd>DIMM1 8 GiB DDR4 3200 MT/s, SK Hynix HMA81GU6DJR8N-XN, S/N 3A1B2C4D</dd>",
        "<dt>Monitors</dt><dd>P24&lt;b&gt;H 23.8″, DEL, S/N CFV9N97G0ABL</dd>",
        "<dt>Graphics</dt><dd>Intel 8086:9bc8 (i915)</dd>",
        "<dt>Software</dt><dd>2 packages</dd>",
    ] {
        assert!(text.contains(row), "{row} not in {text}");
    }

    // A machine that reports none of these has no rows for them.
    let commune = &fleet.commune[0];
    let mut bare = report();
    for list in ["memory_modules", "monitors", "gpus"] {
        bare["inventory"][list] = json!([]);
    }
    bare["inventory"]["dmi"] = Value::Null;
    bare["inventory"]["software"] = Value::Null;
    assert_eq!(
        h.report(&commune.key, &bare).await.status,
        StatusCode::ACCEPTED
    );
    let page = get(&h, &format!("/machines/{}?lang=en", commune.id), &cookie).await;
    assert!(page.text().contains("<dt>Disks</dt>"));
    for heading in [
        "Make and model",
        "Serial number",
        "Memory modules",
        "Monitors",
        "Graphics",
        "Software",
    ] {
        assert!(
            !page.text().contains(&format!("<dt>{heading}</dt>")),
            "{heading}"
        );
    }
}

#[tokio::test]
async fn a_revoked_machine_reads_as_revoked_not_by_its_last_report() {
    let h = Harness::with_tree(TREE_3).await;
    let fleet = h.fleet().await;
    let viewer = h.api_token("viewer").await;
    let cookie = session(&h, &viewer).await;
    let revoked = &fleet.district[0];
    let kept = &fleet.district[1];
    h.store()
        .revoke_agent(&revoked.id, hatang_collector::now())
        .await
        .unwrap();
    // It reported a moment ago, but it counts for nothing in the figures the page shows.
    let unit = get(&h, "/units/148?lang=en", &cookie).await;
    let row = |id: &str| {
        let text = unit.text();
        let at = text.find(&format!("<tr data-agent=\"{id}\"")).unwrap();
        text[at..at + text[at..].find("</tr>").unwrap()].to_string()
    };
    assert!(
        row(&revoked.id).contains("<span class=\"badge low\">Revoked</span>"),
        "{}",
        row(&revoked.id)
    );
    assert!(
        row(&kept.id).contains("<span class=\"badge ok\">Online</span>"),
        "{}",
        row(&kept.id)
    );
    let machine = get(&h, &format!("/machines/{}", revoked.id), &cookie).await;
    assert!(machine.text().contains("data-state=\"revoked\""));
    assert!(
        machine
            .text()
            .contains("<span class=\"badge low\">Đã thu hồi</span>")
    );
}

#[tokio::test]
async fn a_revoked_server_is_no_data_centre_host() {
    let h = Harness::with_tree(TREE_3).await;
    let fleet = h.fleet().await;
    let viewer = h.api_token("viewer").await;
    let cookie = session(&h, &viewer).await;
    let server = &fleet.server;
    let row = format!("href=\"/machines/{}\"", server.id);
    assert!(get(&h, "/datacentre", &cookie).await.text().contains(&row));
    h.store()
        .revoke_agent(&server.id, hatang_collector::now())
        .await
        .unwrap();
    // Decommissioned: not listed, not counted, and no hatang_host_up to fall to 0 and alert.
    let datacentre = get(&h, "/datacentre", &cookie).await;
    assert!(!datacentre.text().contains(&row), "{}", datacentre.text());
    let overview = get(&h, "/", &cookie).await;
    assert!(
        overview
            .text()
            .contains("data-hosts-up=\"0\" data-hosts=\"0\"")
    );
    assert!(h.metrics().await.series("hatang_host_up").is_empty());
}

#[tokio::test]
async fn the_change_history_names_components_in_the_pages_language() {
    let h = Harness::with_tree(TREE_3).await;
    let fleet = h.fleet().await;
    let viewer = h.api_token("viewer").await;
    let cookie = session(&h, &viewer).await;
    let server = &fleet.server;
    let mut r = report_from("s-0");
    r["inventory"]["memory"]["total_bytes"] = json!(4u64 << 30);
    r["inventory"]["monitors"] = json!([]);
    r["inventory"]["memory_modules"][0]["locator"] = json!("DIMM2");
    assert_eq!(h.report(&server.key, &r).await.status, StatusCode::ACCEPTED);
    let path = format!("/machines/{}", server.id);
    for (lang, memory, module) in [
        ("vi", "Bộ nhớ", "Thanh RAM"),
        ("en", "Memory", "Memory modules"),
    ] {
        let page = get(&h, &format!("{path}?lang={lang}"), &cookie).await;
        let text = page.text();
        for (shown, key) in [(memory, "total"), (module, "DIMM2")] {
            let cell = format!("\">{shown} <small class=\"code\">{key}</small></td>");
            assert!(text.contains(&cell), "{lang}: {cell} not in {text}");
        }
        assert!(!text.contains(">memory_module <small"), "{lang}");
    }
}

crate::support::on_every_backend! {
    #[tokio::test]
    async fn a_nul_character_in_a_request_is_the_callers_mistake_on_every_backend(db) {
        // PostgreSQL refuses text holding NUL outright, where SQLite finds nothing: either way a
        // 4xx (or an empty answer), never a 5xx with "storage failure" in the log.
        let h = Harness::with_tree_on(&db, TREE_3).await;
        let viewer = h.api_token("viewer").await;
        let admin = h.api_token("admin").await;
        for path in [
            "/api/v1/agents/%00",
            "/api/v1/agents/%00/changes",
            "/api/v1/agents?unit=%00",
            "/api/v1/agents?q=a%00",
            "/api/v1/agents?after=%00",
            "/api/v1/coverage/history?level=%00",
        ] {
            let reply = h.get(path, Some(&viewer)).await;
            assert!(
                reply.status == StatusCode::OK || reply.status.is_client_error(),
                "{path}: {} {}",
                reply.status,
                reply.text()
            );
            if reply.status.is_client_error() {
                let body: Value = serde_json::from_str(reply.text()).unwrap();
                assert!(body["error"]["code"].is_string(), "{path}: {body}");
            }
        }
        let token = h
            .post(
                "/api/v1/tokens",
                &[("content-type", "application/json"), ("authorization", &format!("Bearer {admin}"))],
                json!({"unit": "17-SYT\u{0}"}).to_string().into_bytes(),
            )
            .await;
        assert!(token.status.is_client_error(), "{} {}", token.status, token.text());
        let cookie = session(&h, &viewer).await;
        for page in ["/machines/%00", "/machines/%00/changes.csv"] {
            assert_eq!(get(&h, page, &cookie).await.status, StatusCode::NOT_FOUND, "{page}");
        }
    }
}
