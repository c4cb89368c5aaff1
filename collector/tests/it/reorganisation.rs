//! A reorganisation imports a new tree; a merged unit hands its machines and its enrolment
//! tokens to the unit that absorbed it, and the figures follow at once.

use axum::http::StatusCode;

use crate::support::{Harness, TREE_3, on_every_backend, report};

/// TREE_3 after the reform: no district, and commune 4352 merged into 4351.
const MERGED: &str = "code,name,level,parent_code,staff,merged_into
17,Tỉnh Hoà Bình,province,,0,
17-SYT,Sở Y tế,province,17,4,
4351,Phường Tân Hòa,commune,17,9,
148,,,,,17
4352,,,,,4351
";

on_every_backend! {
    #[tokio::test]
    async fn merged_units_hand_over_their_machines_and_tokens(db) {
        let h = Harness::with_tree_on(&db, TREE_3).await;
        let token_4352 = h.enrol_token("4352", None).await;
        let a = h.enrolled(&token_4352, "m-4352-a").await;
        let b = h.enrolled(&token_4352, "m-4352-b").await;
        for agent in [&a, &b] {
            h.report(&agent.key, &report()).await.json(StatusCode::ACCEPTED);
        }

        let summary = h.import(MERGED).await;
        assert_eq!((summary.merged, summary.agents_moved), (2, 2));
        assert_eq!(summary.retired, 2, "148 and 4352 leave the current tree");

        let m = h.metrics().await;
        let commune = [("unit", "4351"), ("level", "commune")];
        assert_eq!(m.value("hatang_unit_active_workstations", &commune), 2.0);
        assert_eq!(m.value("hatang_unit_equipped_staff", &commune), 2.0);
        assert_eq!(m.value("hatang_equipment_ratio", &[("level", "commune")]), 2.0 / 9.0);
        assert_eq!(m.get("hatang_unit_staff", &[("unit", "4352"), ("level", "commune")]), None);
        assert_eq!(
            m.get("hatang_agents", &[("level", "unassigned"), ("role", "workstation"), ("state", "online")]),
            None,
            "no agent is left behind in a retired unit"
        );

        // The old commune's token now enrols into the unit that absorbed it.
        let c = h.enroll(&token_4352, "m-4352-c").await.json(StatusCode::CREATED);
        assert_eq!(c["unit"], "4351");
    }

    #[tokio::test]
    async fn a_unit_retired_without_a_merge_leaves_its_agents_unassigned(db) {
        let h = Harness::with_tree_on(&db, TREE_3).await;
        let token = h.enrol_token("4352", None).await;
        let a = h.enrolled(&token, "m-orphan").await;
        h.report(&a.key, &report()).await.json(StatusCode::ACCEPTED);
        let without_4352 = TREE_3.replace("4352,Xã Hòa Bình,commune,148,5\n", "");
        let summary = h.import(&without_4352).await;
        assert_eq!((summary.retired, summary.merged), (1, 0));
        let m = h.metrics().await;
        assert_eq!(
            m.value("hatang_agents", &[("level", "unassigned"), ("role", "workstation"), ("state", "online")]),
            1.0
        );
        let refused = h.enroll(&token, "m-new").await;
        refused.error(StatusCode::FORBIDDEN, "unit_retired");
    }
}

on_every_backend! {
    #[tokio::test]
    async fn a_merge_of_a_code_never_imported_is_refused_and_nothing_changes(db) {
        let h = Harness::with_tree_on(&db, TREE_3).await;
        // 4353 is a typo for 4352: its machines would stay behind in a retired unit.
        let typo = MERGED.replace("4352,,,,,4351", "4353,,,,,4351");
        let file = hatang_collector::units::parse(typo.as_bytes()).unwrap();
        let e = h
            .store()
            .import_units(&file, hatang_collector::now())
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "unit 4353 (merged into 4351) was never imported, so it has no machines to move; \
             check the code on its merged_into row (nothing was imported)"
        );
        let codes: Vec<String> = h.store().units().await.unwrap().into_iter().map(|u| u.code).collect();
        assert_eq!(codes, ["17", "17-SYT", "148", "4351", "4352"], "the tree as it was");
        // A code retired by an earlier import is a unit that was: re-importing the same file
        // with its merges is fine.
        h.import(MERGED).await;
        assert_eq!(h.import(MERGED).await.merged, 2);
    }
}
