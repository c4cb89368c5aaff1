//! The viewer API, health endpoints and the JSON answer to unknown paths.

use axum::http::{StatusCode, header};
use serde_json::{Value, json};

use crate::support::{Harness, TREE_3, report};

const VIEWER_PATHS: [&str; 6] = [
    "/api/v1/coverage",
    "/api/v1/coverage.csv",
    "/api/v1/units",
    "/api/v1/units/4351",
    "/api/v1/agents",
    "/api/v1/agents/AGENT",
];

/// A collector with [`TREE_3`], the shared fleet and a viewer token; the viewer paths with the
/// `AGENT` placeholder replaced by a real agent id.
async fn populated() -> (Harness, String, Vec<String>) {
    let h = Harness::with_tree(TREE_3).await;
    let fleet = h.fleet().await;
    let viewer = h.api_token("viewer").await;
    let paths = VIEWER_PATHS
        .iter()
        .map(|p| p.replace("AGENT", &fleet.server.id))
        .collect();
    (h, viewer, paths)
}

fn level<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["levels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["level"] == name)
        .unwrap_or_else(|| panic!("no level {name} in {doc}"))
}

#[tokio::test]
async fn viewer_endpoints_refuse_requests_without_a_valid_api_token() {
    let (h, viewer, paths) = populated().await;
    let agent_key = h
        .enrolled(&h.enrol_token("148", None).await, "m-key")
        .await
        .key;
    let enrol_token = h.enrol_token("148", None).await;
    let unknown = hatang_collector::secret::generate(hatang_collector::secret::Kind::Api)
        .unwrap()
        .plain;
    let expired = h
        .expired_api_token(hatang_collector::store::ApiRole::Viewer)
        .await;
    for path in &paths {
        h.get(path, None)
            .await
            .error(StatusCode::UNAUTHORIZED, "unauthorized");
        for token in [&agent_key, &enrol_token, &unknown, &expired] {
            let message = h
                .get(path, Some(token))
                .await
                .error(StatusCode::UNAUTHORIZED, "unauthorized");
            assert_eq!(message, "unknown, expired or revoked token", "{path}");
        }
        assert_eq!(
            h.get(path, Some(&viewer)).await.status,
            StatusCode::OK,
            "{path}"
        );
    }

    h.revoke_api_tokens().await;
    for path in &paths {
        h.get(path, Some(&viewer))
            .await
            .error(StatusCode::UNAUTHORIZED, "unauthorized");
    }
}

#[tokio::test]
async fn an_admin_token_reads_too() {
    let (h, _viewer, paths) = populated().await;
    let admin = h.api_token("admin").await;
    for path in &paths {
        assert_eq!(
            h.get(path, Some(&admin)).await.status,
            StatusCode::OK,
            "{path}"
        );
    }
}

#[tokio::test]
async fn coverage_gives_levels_and_units() {
    let (h, viewer, _) = populated().await;
    let doc = h
        .get("/api/v1/coverage", Some(&viewer))
        .await
        .json(StatusCode::OK);
    assert!((doc["at"].as_i64().unwrap() - hatang_collector::now()).abs() <= 5);
    let levels: Vec<&str> = doc["levels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["level"].as_str().unwrap())
        .collect();
    assert_eq!(levels, ["province", "district", "commune"]);
    assert_eq!(
        level(&doc, "commune"),
        &json!({
            "level": "commune", "units": 2, "staff": 8, "equipped_staff": 3,
            "equipment_ratio": 0.375, "target_ratio": 0.88,
            // The golden report's inventory shows LAN; its probe results are from January.
            "lan_units": 2, "broadband_units": 0, "lan_ratio": 1.0, "broadband_ratio": 0.0,
            "reachable_ratio": {"internet": 0.0, "gov-wan": 0.0, "datacentre": 0.0}
        })
    );
    assert_eq!(
        level(&doc, "province")["units"],
        1,
        "the staff-less root is left out"
    );
    let units = doc["units"].as_array().unwrap();
    assert_eq!(units.len(), 5);
    let c = units.iter().find(|u| u["code"] == "4351").unwrap();
    assert_eq!(
        c,
        &json!({
            "code": "4351", "name": "Phường Tân Hòa", "level": "commune", "parent_code": "148",
            "staff": 3, "active_workstations": 5, "equipped_staff": 3, "equipment_ratio": 1.0,
            "servers": 0, "lan": true, "broadband": false, "download_bps": 23500000.0,
            "reachable": {"internet": false, "gov-wan": false, "datacentre": false}
        })
    );
    let root = units.iter().find(|u| u["code"] == "17").unwrap();
    assert_eq!(root["equipment_ratio"], Value::Null);
    assert_eq!(root["parent_code"], Value::Null);

    let only = h
        .get("/api/v1/coverage?level=district", Some(&viewer))
        .await
        .json(StatusCode::OK);
    assert_eq!(only["levels"].as_array().unwrap().len(), 1);
    assert_eq!(level(&only, "district")["equipment_ratio"], 0.2);
    let codes: Vec<&str> = only["units"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["148"]);
}

#[tokio::test]
async fn coverage_csv_keeps_vietnamese_names_for_spreadsheets() {
    let (h, viewer, _) = populated().await;
    let reply = h.get("/api/v1/coverage.csv", Some(&viewer)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        reply.header(header::CONTENT_TYPE).starts_with("text/csv"),
        "{:?}",
        reply.headers
    );
    assert!(
        reply.body.starts_with(b"\xef\xbb\xbf"),
        "UTF-8 byte-order mark"
    );
    let text = reply.text().trim_start_matches('\u{feff}');
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            "level,code,name,parent_code,staff,active_workstations,equipped_staff,equipment_ratio,target_ratio,lan,broadband,scope,units",
            // the levels first: Σ equipped / Σ staff over the units with staff, units with LAN
            "province,,,,4,,1,0.2500,0.9800,1,0,level,1",
            "district,,,,10,,2,0.2000,0.9100,1,0,level,1",
            "commune,,,,8,,3,0.3750,0.8800,2,0,level,2",
            "province,17,Tỉnh Hoà Bình,,0,0,0,,0.9800,0,0,unit,0",
            "province,17-SYT,Sở Y tế,17,4,1,1,0.2500,0.9800,1,0,unit,1",
            "district,148,Thành phố Hòa Bình,17,10,2,2,0.2000,0.9100,1,0,unit,1",
            "commune,4351,Phường Tân Hòa,148,3,5,3,1.0000,0.8800,1,0,unit,1",
            "commune,4352,Xã Hòa Bình,148,5,0,0,0.0000,0.8800,1,0,unit,1",
        ]
    );
}

#[tokio::test]
async fn units_lists_the_tree_and_one_unit_has_its_agents_and_children() {
    let (h, viewer, _) = populated().await;
    let doc = h
        .get("/api/v1/units", Some(&viewer))
        .await
        .json(StatusCode::OK);
    let codes: Vec<&str> = doc["units"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["17", "17-SYT", "148", "4351", "4352"]);
    let communes = h
        .get("/api/v1/units?level=commune", Some(&viewer))
        .await
        .json(StatusCode::OK);
    assert_eq!(communes["units"].as_array().unwrap().len(), 2);

    let district = h
        .get("/api/v1/units/148", Some(&viewer))
        .await
        .json(StatusCode::OK);
    assert_eq!(district["unit"]["name"], "Thành phố Hòa Bình");
    assert_eq!(district["unit"]["equipped_staff"], 2);
    assert_eq!(district["children"], json!(["4351", "4352"]));
    let agents = district["agents"].as_array().unwrap();
    let mut states: Vec<&str> = agents
        .iter()
        .map(|a| a["state"].as_str().unwrap())
        .collect();
    states.sort_unstable();
    assert_eq!(states, ["offline", "online", "online"]);
    assert!(
        agents
            .iter()
            .all(|a| a["unit"] == "148" && a["role"] == "workstation")
    );
}

#[tokio::test]
async fn an_unknown_unit_or_agent_is_404_json() {
    let (h, viewer, _) = populated().await;
    let message = h
        .get("/api/v1/units/nope", Some(&viewer))
        .await
        .error(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(message, "unit nope not found");
    let message = h
        .get("/api/v1/agents/nope", Some(&viewer))
        .await
        .error(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(message, "agent nope not found");

    // a unit retired by a re-import is no longer in the tree the API shows
    h.import(crate::support::TREE_2).await;
    h.get("/api/v1/units/148", Some(&viewer))
        .await
        .error(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn agents_lists_every_agent_with_its_state() {
    let h = Harness::with_tree(TREE_3).await;
    let fleet = h.fleet().await;
    let viewer = h.api_token("viewer").await;
    let doc = h
        .get("/api/v1/agents", Some(&viewer))
        .await
        .json(StatusCode::OK);
    let agents = doc["agents"].as_array().unwrap();
    let mut ids: Vec<String> = agents
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    assert_eq!(ids, fleet.ids());
    let server: Vec<&Value> = agents.iter().filter(|a| a["role"] == "server").collect();
    assert_eq!(server.len(), 1);
    assert_eq!(server[0]["unit"], "4352");
    assert_eq!(server[0]["state"], "online");
    assert_eq!(server[0]["hostname"], "host-s-0");
    assert_eq!(server[0]["interval_secs"], 60);
    let silent = agents.iter().find(|a| a["id"] == fleet.silent.id).unwrap();
    assert_eq!(silent["machine_id"], "d-silent");
    assert_eq!(silent["state"], "offline");
    assert_eq!(silent["last_report_at"], Value::Null);
    // secrets never leave the store
    let text = doc.to_string();
    assert!(!text.contains("key") && !text.contains("hta_"), "{text}");
}

#[tokio::test]
async fn one_agent_shows_the_inventory_it_reported() {
    let h = Harness::with_tree(TREE_3).await;
    let viewer = h.api_token("viewer").await;
    let agent = h.enrolled(&h.enrol_token("4351", None).await, "m-1").await;
    let path = format!("/api/v1/agents/{}", agent.id);

    let before = h.get(&path, Some(&viewer)).await.json(StatusCode::OK);
    assert_eq!(before["inventory"], Value::Null);
    assert_eq!(before["state"], "offline");

    let sent = report();
    h.report(&agent.key, &sent).await.json(StatusCode::ACCEPTED);
    let doc = h.get(&path, Some(&viewer)).await.json(StatusCode::OK);
    assert_eq!(doc["id"], agent.id);
    assert_eq!(doc["unit"], "4351");
    assert_eq!(doc["state"], "online");
    assert_eq!(doc["agent_version"], "0.1.0");
    assert_eq!(doc["inventory"]["hostname"], "ub-xa-tan-lac-01");
    assert_eq!(doc["inventory"]["cpu"]["cores"], 6);
    assert_eq!(doc["inventory"]["dmi"]["product_serial"], "7XK2LD3");
    assert_eq!(doc["sample"]["cpu_usage_ratio"], 0.125);
    assert_eq!(doc["probes"][0]["name"], "portal");

    // a later report without inventory keeps the last one known
    let mut light = report();
    light.as_object_mut().unwrap().remove("inventory");
    h.report(&agent.key, &light)
        .await
        .json(StatusCode::ACCEPTED);
    let doc = h.get(&path, Some(&viewer)).await.json(StatusCode::OK);
    assert_eq!(doc["inventory"]["hostname"], "ub-xa-tan-lac-01");
}

#[tokio::test]
async fn health_and_readiness_need_no_token() {
    let h = Harness::empty().await;
    let live = h.get("/healthz", None).await;
    assert_eq!((live.status, live.text()), (StatusCode::OK, "ok\n"));
    let ready = h.get("/readyz", None).await;
    assert_eq!((ready.status, ready.text()), (StatusCode::OK, "ready\n"));
}

#[tokio::test]
async fn an_unknown_path_is_404_json() {
    let h = Harness::empty().await;
    for path in ["/nope", "/api/v1/nope", "/api/v2/coverage"] {
        let message = h
            .get(path, None)
            .await
            .error(StatusCode::NOT_FOUND, "not_found");
        assert_eq!(message, "no such endpoint");
    }
}

#[tokio::test]
async fn a_wrong_method_is_405_json() {
    let h = Harness::empty().await;
    for path in ["/api/v1/enroll", "/api/v1/reports"] {
        let reply = h.get(path, None).await;
        reply.error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
        assert_eq!(reply.header(header::ALLOW), "POST", "{path}");
    }
    let reply = h.post("/api/v1/coverage", &[], Vec::new()).await;
    reply.error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    assert_eq!(reply.header(header::ALLOW), "GET,HEAD");
}

#[tokio::test]
async fn a_misspelt_parameter_is_a_400_not_another_answer() {
    let h = Harness::with_tree(TREE_3).await;
    let fleet = h.fleet().await;
    let viewer = h.api_token("viewer").await;
    let changes = format!("/api/v1/agents/{}/changes", fleet.server.id);
    // `date` for `at` would otherwise answer today's figures as if they were 1 January's.
    for (path, field) in [
        ("/api/v1/coverage?date=2026-01-01".to_string(), "date"),
        ("/api/v1/coverage.csv?levl=commune".to_string(), "levl"),
        (
            "/api/v1/coverage/history?since=2026-01-01".to_string(),
            "since",
        ),
        (format!("{changes}?lmit=5"), "lmit"),
    ] {
        let message = h
            .get(&path, Some(&viewer))
            .await
            .error(StatusCode::BAD_REQUEST, "invalid_query");
        assert!(
            message.contains(&format!("unknown field `{field}`")),
            "{path}: {message}"
        );
    }
    // the parameters they take still go together
    for path in [
        "/api/v1/coverage?level=commune".to_string(),
        "/api/v1/coverage.csv?level=commune".to_string(),
        "/api/v1/coverage/history?level=commune&from=2026-01-01&to=2026-01-02".to_string(),
        format!("{changes}?limit=5&before=9"),
    ] {
        assert_eq!(
            h.get(&path, Some(&viewer)).await.status,
            StatusCode::OK,
            "{path}"
        );
    }
}

/// `?level=` with nothing after it, as a form's "all levels" sends it, is no filter, on the
/// coverage endpoints as on the listings: not a level called "" that does not exist.
#[tokio::test]
async fn an_empty_level_is_every_level() {
    // One figures value for both requests: their `at` is the same.
    let h = Harness::with_config(|c| c.figures_cache_secs = 3600).await;
    h.import(TREE_3).await;
    h.fleet().await;
    let viewer = h.api_token("viewer").await;
    for path in [
        "/api/v1/coverage",
        "/api/v1/coverage.csv",
        "/api/v1/coverage/history",
    ] {
        let every = h.get(path, Some(&viewer)).await;
        let empty = h.get(&format!("{path}?level="), Some(&viewer)).await;
        assert_eq!(empty.status, StatusCode::OK, "{path}?level=");
        assert_eq!(empty.body, every.body, "{path}?level=");
    }
}
