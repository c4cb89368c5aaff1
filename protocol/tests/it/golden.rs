//! Each schema version has a golden report; these tests pin its exact wire shape.

use hatang_protocol::{FormFactor, ProbeClass, ProbeKind, Report, SCHEMA_VERSION};
use serde_json::Value;

const V1: &str = include_str!("../golden/report-v1.json");

#[test]
fn v1_golden_reads_and_writes_back_identically() {
    let report: Report = serde_json::from_str(V1).expect("golden v1 parses");
    let written = serde_json::to_value(&report).unwrap();
    let golden: Value = serde_json::from_str(V1).unwrap();
    assert_eq!(written, golden, "serialising the golden report changed it");
}

#[test]
fn v1_golden_fields_land_where_expected() {
    let report: Report = serde_json::from_str(V1).unwrap();
    assert_eq!(report.schema_version, SCHEMA_VERSION);
    assert_eq!(report.report_id.get_version_num(), 7);
    let inv = report.inventory.as_ref().unwrap();
    assert_eq!(inv.cpu.threads, 12);
    assert_eq!(inv.interfaces[1].speed_bps, Some(1_000_000_000));
    assert!(inv.interfaces[1].default_route);
    assert_eq!(inv.default_gateway.unwrap().to_string(), "10.17.4.1");
    assert_eq!(
        inv.dmi.as_ref().unwrap().chassis_type.as_deref(),
        Some("desktop")
    );
    assert_eq!(inv.form_factor, Some(FormFactor::Desktop));
    let dimm = &inv.memory_modules[0];
    assert_eq!(
        (dimm.locator.as_str(), dimm.size_bytes, dimm.speed_mts),
        ("DIMM1", 8 << 30, Some(3200))
    );
    assert_eq!(dimm.memory_type.as_deref(), Some("DDR4"));
    let monitor = &inv.monitors[0];
    assert_eq!(
        (monitor.manufacturer.as_deref(), monitor.product_code),
        (Some("DEL"), Some(41200))
    );
    assert_eq!(monitor.diagonal_inches, Some(23.8));
    assert_eq!(inv.gpus[0].driver.as_deref(), Some("i915"));
    let software = inv.software.as_ref().unwrap();
    assert_eq!(software[1].name, "libreoffice-writer");
    let p = &report.probes[0];
    assert_eq!((p.kind, p.class), (ProbeKind::Tcp, ProbeClass::Datacentre));
    assert!((p.loss_ratio() - 0.25).abs() < 1e-12);
    let web = &report.probes[1];
    assert_eq!((web.kind, web.http_status), (ProbeKind::Http, Some(200)));
    assert_eq!(
        web.tls_not_after,
        Some(time::macros::datetime!(2026-03-14 23:59:59 UTC))
    );
    let gateway = report.gateway.as_ref().unwrap();
    assert_eq!(gateway.address.to_string(), "10.17.4.1");
    assert_eq!((gateway.attempts, gateway.successes), (4, 4));
    let speed = report.speed.as_ref().unwrap();
    assert_eq!(speed.download_bits_per_second, Some(23_500_000.0));
    assert_eq!(speed.bytes, 8 << 20);
    let temperatures = &report.sample.as_ref().unwrap().temperatures;
    assert_eq!(temperatures[1].sensor, "nvme/Composite");
    assert_eq!(temperatures[1].celsius, 38.85);
    let spool = report.spool.unwrap();
    assert_eq!((spool.dropped_reports, spool.waiting_reports), (3, 41));
    report
        .validate(&Default::default())
        .expect("golden report is valid");
}

#[test]
fn unknown_fields_are_tolerated_at_every_level() {
    let mut v: Value = serde_json::from_str(V1).unwrap();
    v["from_the_future"] = Value::from(1);
    v["inventory"]["os"]["edition"] = Value::from("Pro");
    v["sample"]["fan_rpm"] = Value::from(vec![1200]);
    v["probes"][0]["ttl"] = Value::from(57);
    let report: Report = serde_json::from_value(v).expect("unknown fields are ignored");
    assert_eq!(
        report.inventory.unwrap().os.name.as_deref(),
        Some("Debian GNU/Linux")
    );
}

#[test]
fn minimal_report_needs_no_inventory_sample_or_probes() {
    let report: Report = serde_json::from_str(
        r#"{"schema_version":1,"report_id":"6f1c1a4e-2b7d-4c1e-9a3b-5d6e7f8091a2",
            "agent_time":"2026-01-05T08:30:00+07:00","interval_secs":60,"agent_version":"0.1.0"}"#,
    )
    .unwrap();
    assert!(report.inventory.is_none() && report.sample.is_none() && report.probes.is_empty());
    report.validate(&Default::default()).unwrap();
}

#[test]
fn an_inventory_from_before_the_device_fields_still_reads() {
    let mut v: Value = serde_json::from_str(V1).unwrap();
    let inventory = v["inventory"].as_object_mut().unwrap();
    for field in [
        "form_factor",
        "memory_modules",
        "monitors",
        "gpus",
        "software",
    ] {
        assert!(inventory.remove(field).is_some(), "{field}");
    }
    let report: Report = serde_json::from_value(v).expect("an older agent's inventory parses");
    let inv = report.inventory.as_ref().unwrap();
    assert_eq!(inv.form_factor, None);
    assert!(inv.memory_modules.is_empty() && inv.monitors.is_empty() && inv.gpus.is_empty());
    assert_eq!(
        inv.software, None,
        "absent software is 'not collected', not 'none installed'"
    );
    report.validate(&Default::default()).unwrap();
}

#[test]
fn a_form_factor_from_a_later_agent_reads_as_other() {
    let mut v: Value = serde_json::from_str(V1).unwrap();
    v["inventory"]["form_factor"] = Value::from("tablet");
    let report: Report = serde_json::from_value(v).expect("an unknown form factor is no error");
    assert_eq!(
        report.inventory.unwrap().form_factor,
        Some(FormFactor::Other)
    );
    for kind in [
        FormFactor::Desktop,
        FormFactor::Laptop,
        FormFactor::Server,
        FormFactor::Vm,
        FormFactor::Other,
    ] {
        assert_eq!(
            serde_json::to_value(kind).unwrap(),
            Value::from(kind.as_str())
        );
    }
}
