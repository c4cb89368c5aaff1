//! `push::flush`: delivery order, acknowledgement and what each answer does to the spool.

use std::time::Duration;

use hatang_agent::push::{self, Flushed, PushError};

use crate::support::{AGENT_KEY, Answer, FakeCollector, closed_port_url, pending_ids, spooled};

fn client() -> reqwest::Client {
    push::client(Duration::from_secs(5), &Default::default()).unwrap()
}

#[tokio::test]
async fn delivers_oldest_first_and_forgets_only_acknowledged_reports() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, ids) = spooled(dir.path(), 3);
    let server = FakeCollector::start([202, 200, 202]).await;
    server.watch_spool(&dir.path().join("spool"));

    let (flushed, result) = push::flush(&client(), &server.url, AGENT_KEY, &spool, 100).await;

    result.unwrap();
    assert_eq!(
        flushed,
        Flushed {
            delivered: 3,
            dropped: 0,
            waiting: 0
        }
    );
    let received = server.received();
    assert_eq!(server.report_ids(), ids);
    // Each report was still on disk while it was being sent: removed only after the answer.
    let spooled: Vec<Option<usize>> = received.iter().map(|r| r.spooled).collect();
    assert_eq!(spooled, [Some(3), Some(2), Some(1)]);
    for r in &received {
        assert_eq!(r.path, "/api/v1/reports");
        let bearer = format!("Bearer {AGENT_KEY}");
        assert_eq!(r.header("authorization"), Some(bearer.as_str()));
        assert_eq!(r.header("content-encoding"), Some("gzip"));
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert!(r.header("user-agent").unwrap().starts_with("hatang-agent/"));
        let report = r.report();
        report.validate(&Default::default()).unwrap();
        assert_eq!(report.interval_secs, 60);
    }
    assert!(pending_ids(&spool).is_empty());
}

#[tokio::test]
async fn each_report_says_how_long_it_waited_in_the_spool() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = spooled(dir.path(), 1);
    // One more, spooled ten minutes ago by this machine's clock.
    let id = uuid::Uuid::now_v7();
    let ten_minutes_ago = std::time::SystemTime::now() - Duration::from_secs(600);
    spool.push(id, b"old", ten_minutes_ago).unwrap();
    let server = FakeCollector::start([202]).await;

    let (_, result) = push::flush(&client(), &server.url, AGENT_KEY, &spool, 100).await;

    result.unwrap();
    let ages: Vec<u64> = server
        .received()
        .iter()
        .map(|r| {
            r.header(hatang_protocol::REPORT_AGE_HEADER)
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert_eq!(ages.len(), 2);
    assert!(ages[0] <= 5, "just spooled: {ages:?}");
    assert!((600..=605).contains(&ages[1]), "ten minutes: {ages:?}");
}

#[tokio::test]
async fn a_503_stops_the_flush_and_a_later_one_delivers_the_rest_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, ids) = spooled(dir.path(), 3);
    let server = FakeCollector::start([202, 503, 202]).await;

    let (flushed, result) = push::flush(&client(), &server.url, AGENT_KEY, &spool, 100).await;

    match result {
        Err(PushError::Refused {
            status,
            message,
            retry_after,
        }) => {
            assert_eq!((status, message.as_str()), (503, "scripted 503"));
            assert_eq!(retry_after, None, "none was asked for");
        }
        other => panic!("expected a 503 refusal, got {other:?}"),
    }
    assert_eq!(
        flushed,
        Flushed {
            delivered: 1,
            dropped: 0,
            waiting: 2
        }
    );
    assert_eq!(pending_ids(&spool), ids[1..]);
    assert_eq!(server.received().len(), 2, "no request after the 503");

    let (flushed, result) = push::flush(&client(), &server.url, AGENT_KEY, &spool, 100).await;

    result.unwrap();
    assert_eq!((flushed.delivered, flushed.waiting), (2, 0));
    assert!(pending_ids(&spool).is_empty());
    assert_eq!(server.report_ids(), [ids[0], ids[1], ids[1], ids[2]]);
    assert_eq!(server.deliveries(), [(ids[0], 1), (ids[1], 1), (ids[2], 1)]);
}

#[tokio::test]
async fn an_unreachable_collector_keeps_every_report_for_later() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, ids) = spooled(dir.path(), 3);

    let (flushed, result) =
        push::flush(&client(), &closed_port_url(), AGENT_KEY, &spool, 100).await;

    assert!(
        matches!(&result, Err(PushError::Unreachable(_))),
        "{result:?}"
    );
    assert_eq!(
        flushed,
        Flushed {
            delivered: 0,
            dropped: 0,
            waiting: 3
        }
    );
    assert_eq!(pending_ids(&spool), ids);

    let server = FakeCollector::start([202]).await;
    let (flushed, result) = push::flush(&client(), &server.url, AGENT_KEY, &spool, 100).await;
    result.unwrap();
    assert_eq!(flushed.delivered, 3);
    assert_eq!(server.deliveries(), [(ids[0], 1), (ids[1], 1), (ids[2], 1)]);
    assert_eq!(server.received().len(), 3);
    assert!(pending_ids(&spool).is_empty());
}

#[tokio::test]
async fn a_refused_key_stops_and_keeps_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, ids) = spooled(dir.path(), 2);
    let server = FakeCollector::start([401]).await;

    let (flushed, result) = push::flush(&client(), &server.url, AGENT_KEY, &spool, 100).await;

    assert!(
        matches!(&result, Err(PushError::KeyRefused(message)) if message == "scripted 401"),
        "{result:?}"
    );
    assert_eq!((flushed.delivered, flushed.waiting), (0, 2));
    assert_eq!(server.received().len(), 1);
    assert_eq!(pending_ids(&spool), ids);
}

/// A collector that wants a client certificate this agent lacks answers 401 too, but the key is
/// not at fault: the report is kept and tried again, and nothing says to enrol again.
#[tokio::test]
async fn a_missing_client_certificate_is_not_a_refused_key() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, ids) = spooled(dir.path(), 2);
    let message = "this collector requires agents to present a client certificate";
    let body =
        serde_json::json!({"error": {"code": "client_certificate_required", "message": message}});
    let server = FakeCollector::answering(vec![Answer::json(401, body)]).await;

    let (flushed, result) = push::flush(&client(), &server.url, AGENT_KEY, &spool, 100).await;

    assert!(
        matches!(&result, Err(PushError::Refused { status: 401, message: m, .. }) if m == message),
        "{result:?}"
    );
    assert_eq!((flushed.delivered, flushed.waiting), (0, 2));
    assert_eq!(pending_ids(&spool), ids);
}

#[tokio::test]
async fn a_422_drops_only_that_report_and_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, ids) = spooled(dir.path(), 3);
    let server = FakeCollector::start([202, 422, 202]).await;

    let (flushed, result) = push::flush(&client(), &server.url, AGENT_KEY, &spool, 100).await;

    result.unwrap();
    assert_eq!(
        flushed,
        Flushed {
            delivered: 2,
            dropped: 1,
            waiting: 0
        }
    );
    assert_eq!(server.report_ids(), ids);
    assert_eq!(server.deliveries(), [(ids[0], 1), (ids[2], 1)]);
    assert!(pending_ids(&spool).is_empty());
    assert_eq!(
        spool.drops().unwrap().refused,
        1,
        "counted for the next report"
    );
}

#[tokio::test]
async fn answers_that_are_not_the_collectors_keep_every_report() {
    // A captive portal's page with 200, a proxy asking to log in, a firewall's 403 page: none
    // of them stored anything, and none of them says anything about the report.
    let page = serde_json::json!("<html><body>Log in to use the Internet</body></html>");
    for (status, body) in [(200, page.clone()), (407, page.clone()), (403, page)] {
        let dir = tempfile::tempdir().unwrap();
        let (spool, ids) = spooled(dir.path(), 2);
        let server = FakeCollector::answering(vec![Answer::json(status, body)]).await;

        let (flushed, result) = push::flush(&client(), &server.url, AGENT_KEY, &spool, 100).await;

        assert!(
            matches!(&result, Err(PushError::Refused { status: s, .. }) if *s == status),
            "{status}: {result:?}"
        );
        assert_eq!(
            flushed,
            Flushed {
                delivered: 0,
                dropped: 0,
                waiting: 2
            },
            "{status}"
        );
        assert_eq!(pending_ids(&spool), ids, "{status}");
        assert_eq!(spool.drops().unwrap().refused, 0, "{status}");
    }
}

#[tokio::test]
async fn a_pass_sends_one_batch_oldest_first_and_the_next_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, ids) = spooled(dir.path(), 5);
    let server = FakeCollector::start([202]).await;

    let (first, result) = push::flush(&client(), &server.url, AGENT_KEY, &spool, 2).await;

    result.unwrap();
    assert_eq!((first.delivered, first.waiting), (2, 3));
    assert_eq!(server.report_ids(), ids[..2]);
    assert_eq!(pending_ids(&spool), ids[2..]);

    let (second, result) = push::flush(&client(), &server.url, AGENT_KEY, &spool, 2).await;

    result.unwrap();
    assert_eq!((second.delivered, second.waiting), (2, 1));
    assert_eq!(server.report_ids(), ids[..4]);
}

#[tokio::test]
async fn a_damaged_report_is_skipped_and_counted_and_the_rest_go() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, ids) = spooled(dir.path(), 3);
    // A power cut on a filesystem that renamed before it wrote: the name, half the data.
    let torn = &spool.pending().unwrap()[1].path;
    let len = std::fs::metadata(torn).unwrap().len();
    std::fs::File::options()
        .write(true)
        .open(torn)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let server = FakeCollector::start([202]).await;

    let (flushed, result) = push::flush(&client(), &server.url, AGENT_KEY, &spool, 100).await;

    result.unwrap();
    assert_eq!((flushed.delivered, flushed.waiting), (2, 0));
    assert_eq!(server.report_ids(), [ids[0], ids[2]]);
    assert!(pending_ids(&spool).is_empty());
    assert_eq!(spool.drops().unwrap().damaged, 1);
    let stats = spool.stats().unwrap();
    assert_eq!((stats.dropped_reports, stats.waiting_reports), (1, 0));
}

#[tokio::test]
async fn a_404_keeps_the_report_for_a_retry() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, ids) = spooled(dir.path(), 2);
    let server = FakeCollector::start([404]).await;

    let (flushed, result) = push::flush(&client(), &server.url, AGENT_KEY, &spool, 100).await;

    assert!(
        matches!(&result, Err(PushError::Refused { status: 404, .. })),
        "{result:?}"
    );
    assert_eq!(
        flushed,
        Flushed {
            delivered: 0,
            dropped: 0,
            waiting: 2
        }
    );
    assert_eq!(server.received().len(), 1);
    assert_eq!(pending_ids(&spool), ids);
}

#[tokio::test]
async fn a_429_keeps_the_report_and_says_how_long_the_collector_asked_to_wait() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, ids) = spooled(dir.path(), 2);
    let server = FakeCollector::answering(vec![Answer::status(429).retry_after(42)]).await;

    let (flushed, result) = push::flush(&client(), &server.url, AGENT_KEY, &spool, 100).await;

    let err = result.unwrap_err();
    assert!(
        matches!(err, PushError::Refused { status: 429, .. }),
        "{err:?}"
    );
    assert_eq!(err.retry_after(), Some(Duration::from_secs(42)));
    assert_eq!(flushed.waiting, 2);
    assert_eq!(pending_ids(&spool), ids);
    assert_eq!(server.received().len(), 1, "no request after the 429");
}
