//! The store on its own: imports, the current tree, tokens, reports.

use hatang_collector::figures::Role;
use hatang_collector::secret::{self, Kind};
use hatang_collector::store::{self, ApiRole, EnrolRefusal, ImportSummary, StoreError, Stored};
use hatang_protocol::Report;

use crate::support::{Harness, TREE_2, TREE_3, report};

fn summary(added: u32, updated: u32, unchanged: u32, retired: u32) -> ImportSummary {
    ImportSummary {
        added,
        updated,
        unchanged,
        retired,
    }
}

fn codes(units: &[hatang_collector::figures::UnitRow]) -> Vec<&str> {
    units.iter().map(|u| u.code.as_str()).collect()
}

#[tokio::test]
async fn imports_report_what_they_changed() {
    let h = Harness::empty().await;
    assert_eq!(h.import(TREE_3).await, summary(5, 0, 0, 0));
    assert_eq!(h.import(TREE_3).await, summary(0, 0, 5, 0));
    // the reform: 148 retired, the communes re-parented, 4360 new
    assert_eq!(h.import(TREE_2).await, summary(1, 2, 2, 1));
    // going back revives 148 and retires 4360
    assert_eq!(h.import(TREE_3).await, summary(1, 2, 2, 1));
    let staff_change = TREE_3.replace(
        "4352,Xã Hòa Bình,commune,148,5",
        "4352,Xã Hòa Bình,commune,148,6",
    );
    assert_eq!(h.import(&staff_change).await, summary(0, 1, 4, 0));
}

#[tokio::test]
async fn the_current_tree_leaves_retired_units_out() {
    let h = Harness::with_tree(TREE_3).await;
    let units = h.store().units().await.unwrap();
    assert_eq!(codes(&units), ["17", "17-SYT", "148", "4351", "4352"]);
    assert_eq!(
        units.iter().map(|u| u.depth).collect::<Vec<_>>(),
        [0, 1, 1, 2, 2]
    );
    assert_eq!(units[1].name, "Sở Y tế");

    h.import(TREE_2).await;
    let units = h.store().units().await.unwrap();
    assert_eq!(codes(&units), ["17", "17-SYT", "4351", "4352", "4360"]);
    let commune = units.iter().find(|u| u.code == "4351").unwrap();
    assert_eq!(
        (commune.parent_code.as_deref(), commune.depth, commune.staff),
        (Some("17"), 1, 3)
    );
}

#[tokio::test]
async fn enrolment_tokens_need_a_current_unit() {
    let h = Harness::with_tree(TREE_3).await;
    h.import(TREE_2).await;
    let now = hatang_collector::now();
    for unit in ["148", "9999"] {
        let token = secret::generate(Kind::Enrol).unwrap();
        let err = h
            .store()
            .create_enrol_token(&token.digest, unit, Role::Workstation, now, None)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::NotFound(what) if what == &format!("unit {unit}")),
            "{err:?}"
        );
    }
    let token = secret::generate(Kind::Enrol).unwrap();
    h.store()
        .create_enrol_token(&token.digest, "4360", Role::Server, now, None)
        .await
        .unwrap();
}

#[tokio::test]
async fn enrolment_is_refused_for_the_right_reason() {
    let h = Harness::with_tree(TREE_3).await;
    let now = hatang_collector::now();
    let enrol = |digest: Vec<u8>, machine: &'static str| {
        let key = secret::generate(Kind::Agent).unwrap();
        let store = h.store();
        async move {
            store
                .enroll(&digest, machine, "pc", &key.digest, now)
                .await
                .unwrap()
        }
    };
    let unknown = secret::generate(Kind::Enrol).unwrap();
    assert_eq!(
        enrol(unknown.digest, "m").await,
        Err(EnrolRefusal::UnknownToken)
    );

    let expired = secret::generate(Kind::Enrol).unwrap();
    h.store()
        .create_enrol_token(
            &expired.digest,
            "148",
            Role::Workstation,
            now - 10,
            Some(now),
        )
        .await
        .unwrap();
    assert_eq!(enrol(expired.digest, "m").await, Err(EnrolRefusal::Expired));

    let good = secret::generate(Kind::Enrol).unwrap();
    h.store()
        .create_enrol_token(&good.digest, "148", Role::Workstation, now, Some(now + 60))
        .await
        .unwrap();
    let first = enrol(good.digest.clone(), "m").await.unwrap();
    assert_eq!(
        (first.unit_code.as_str(), first.role, first.reused),
        ("148", Role::Workstation, false)
    );
    let again = enrol(good.digest.clone(), "m").await.unwrap();
    assert_eq!(
        (again.agent_id.as_str(), again.reused),
        (first.agent_id.as_str(), true)
    );

    h.import(TREE_2).await;
    assert_eq!(
        enrol(good.digest, "m2").await,
        Err(EnrolRefusal::UnitRetired)
    );
}

#[tokio::test]
async fn api_tokens_have_a_role_until_they_expire() {
    let h = Harness::empty().await;
    let now = hatang_collector::now();
    let viewer = secret::generate(Kind::Api).unwrap();
    let admin = secret::generate(Kind::Api).unwrap();
    h.store()
        .create_api_token(&viewer.digest, ApiRole::Viewer, now, Some(now + 60))
        .await
        .unwrap();
    h.store()
        .create_api_token(&admin.digest, ApiRole::Admin, now, None)
        .await
        .unwrap();
    let store = h.store();
    let role =
        |digest: Vec<u8>, at: i64| async move { store.api_token_role(&digest, at).await.unwrap() };
    assert_eq!(
        role(viewer.digest.clone(), now).await,
        Some(ApiRole::Viewer)
    );
    assert_eq!(role(viewer.digest.clone(), now + 60).await, None);
    assert_eq!(
        role(admin.digest.clone(), now + 10_000_000).await,
        Some(ApiRole::Admin)
    );
    assert_eq!(role(secret::digest("htu_unknown"), now).await, None);
    assert!(ApiRole::Viewer < ApiRole::Admin);
}

#[tokio::test]
async fn a_report_is_stored_once_for_the_agent_its_key_names() {
    let h = Harness::with_tree(TREE_3).await;
    let agent = h.enrolled(&h.enrol_token("4351", None).await, "m").await;
    let identity = h
        .store()
        .agent_by_key(&secret::digest(&agent.key))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (identity.id.as_str(), identity.unit_code.as_str()),
        (agent.id.as_str(), "4351")
    );
    assert_eq!(
        h.store()
            .agent_by_key(&secret::digest("hta_x"))
            .await
            .unwrap(),
        None
    );

    let text = report().to_string();
    let parsed: Report = serde_json::from_str(&text).unwrap();
    let now = hatang_collector::now();
    let store = h.store();
    assert_eq!(
        store
            .store_report(&agent.id, &parsed, &text, now)
            .await
            .unwrap(),
        Stored::Accepted
    );
    assert_eq!(
        store
            .store_report(&agent.id, &parsed, &text, now)
            .await
            .unwrap(),
        Stored::Duplicate
    );
    assert_eq!(store.report_count(Some(&agent.id)).await.unwrap(), 1);
    assert_eq!(store.report_count(Some("other")).await.unwrap(), 0);
    let (record, evidence) = store.agent(&agent.id).await.unwrap().unwrap();
    assert_eq!(record.last_report_at, Some(now));
    let inventory: serde_json::Value = serde_json::from_str(&evidence.inventory.unwrap()).unwrap();
    assert_eq!(inventory["os"]["name"], "Debian GNU/Linux");
    assert_eq!(store.agent("nope").await.unwrap(), None);
}

#[tokio::test]
async fn everything_survives_reopening_the_database() {
    let h = Harness::with_tree(TREE_3).await;
    let agent = h.enrolled(&h.enrol_token("4351", None).await, "m").await;
    h.report(&agent.key, &report()).await;
    let reopened = store::open(&h.config().database).await.unwrap();
    reopened.ping().await.unwrap();
    assert_eq!(
        reopened.units().await.unwrap(),
        h.store().units().await.unwrap()
    );
    assert_eq!(
        reopened.agents().await.unwrap(),
        h.store().agents().await.unwrap()
    );
    assert_eq!(reopened.report_count(None).await.unwrap(), 1);
}

#[tokio::test]
async fn only_sqlite_urls_open() {
    let err = store::open("postgres://hatang:s3cret@db/hatang")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::UnsupportedUrl(_)), "{err:?}");
    assert!(!err.to_string().contains("s3cret"), "{err}");
}
