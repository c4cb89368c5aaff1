//! Data-centre servers get per-host series; workstations never do.

use axum::http::StatusCode;

use crate::support::{Harness, TREE_3, on_every_backend, report_from};

on_every_backend! {
    #[tokio::test]
    async fn servers_get_host_series_from_their_latest_report(db) {
        let h = Harness::with_tree_on(&db, TREE_3).await;
        let servers = h.enrol_token("17-SYT", Some("server")).await;
        let workstations = h.enrol_token("17-SYT", Some("workstation")).await;
        let server = h.enrolled(&servers, "srv-1").await;
        let desk = h.enrolled(&workstations, "desk-1").await;
        let silent = h.enrolled(&servers, "srv-2").await;
        for (agent, machine) in [(&server, "srv-1"), (&desk, "desk-1")] {
            h.report(&agent.key, &report_from(machine))
                .await
                .json(StatusCode::ACCEPTED);
        }
        let _ = silent;

        let m = h.metrics().await;
        let host = [("host", "host-srv-1"), ("unit", "17-SYT")];
        assert_eq!(m.value("hatang_host_up", &host), 1.0);
        assert_eq!(
            m.value(
                "hatang_host_up",
                &[("host", "host-srv-2"), ("unit", "17-SYT")]
            ),
            0.0,
            "enrolled but never reported"
        );
        assert_eq!(
            m.series("hatang_host_up").len(),
            2,
            "no series for the workstation"
        );
        // Values from the golden report's sample and inventory, on the detail endpoint.
        let m = h.metrics_detail().await;
        assert_eq!(m.value("hatang_host_cpu_usage_ratio", &host), 0.125);
        assert_eq!(m.value("hatang_host_load1", &host), 0.5);
        assert_eq!(
            m.value("hatang_host_memory_total_bytes", &host),
            8_246_337_536.0
        );
        assert_eq!(
            m.value("hatang_host_memory_used_bytes", &host),
            3_221_225_472.0
        );
        let fs = [
            ("host", "host-srv-1"),
            ("unit", "17-SYT"),
            ("mountpoint", "/"),
        ];
        assert_eq!(
            m.value("hatang_host_filesystem_size_bytes", &fs),
            250_438_021_120.0
        );
        assert_eq!(
            m.value("hatang_host_filesystem_used_bytes", &fs),
            52_428_800_000.0
        );
        assert_eq!(
            m.value("hatang_host_filesystem_available_bytes", &fs),
            185_204_588_544.0
        );
        let nic = [
            ("host", "host-srv-1"),
            ("unit", "17-SYT"),
            ("interface", "enp2s0"),
        ];
        assert_eq!(
            m.value("hatang_host_network_receive_bytes_total", &nic),
            123_456_789.0
        );
        assert_eq!(
            m.value("hatang_host_network_transmit_errors_total", &nic),
            2.0
        );
        let sensor = [
            ("host", "host-srv-1"),
            ("unit", "17-SYT"),
            ("sensor", "nvme/Composite"),
        ];
        assert_eq!(m.value("hatang_host_temperature_celsius", &sensor), 38.85);
        assert_eq!(
            m.series("hatang_host_temperature_celsius").len(),
            2,
            "the server's two sensors; none for the workstation, which sent the same sample"
        );
    }
}
