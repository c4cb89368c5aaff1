//! Validation refuses what serde accepts but the collector must not store.

use hatang_protocol::{Limits, Report};
use serde_json::Value;

fn golden() -> Value {
    serde_json::from_str(include_str!("../golden/report-v1.json")).unwrap()
}

fn problems(v: Value) -> Vec<String> {
    let report: Report = serde_json::from_value(v).unwrap();
    match report.validate(&Limits::default()) {
        Ok(()) => Vec::new(),
        Err(errors) => errors.into_iter().map(|e| e.to_string()).collect(),
    }
}

#[test]
fn unknown_schema_version_is_refused() {
    let mut v = golden();
    v["schema_version"] = Value::from(2);
    assert_eq!(
        problems(v),
        ["schema_version: version 2 is not supported (this collector reads 1)"]
    );
}

#[test]
fn nil_and_v1_uuids_are_refused() {
    for id in [
        "00000000-0000-0000-0000-000000000000",
        "c232ab00-9414-11ec-b3c8-9e6bdeced846",
    ] {
        let mut v = golden();
        v["report_id"] = Value::from(id);
        assert_eq!(
            problems(v),
            ["report_id: must be a UUID version 4 or 7"],
            "{id}"
        );
    }
}

#[test]
fn every_problem_is_reported_at_once() {
    let mut v = golden();
    v["interval_secs"] = Value::from(0);
    v["sample"]["cpu_usage_ratio"] = Value::from(1.5);
    v["inventory"]["hostname"] = Value::from("x".repeat(2000));
    v["probes"][0]["successes"] = Value::from(9);
    v["inventory"]["disks"][0]["model"] = Value::from("bad\u{0}model");
    let got = problems(v);
    assert_eq!(got.len(), 5, "{got:#?}");
    assert!(got.contains(&"interval_secs: must be between 5 and 86400".to_string()));
    assert!(got.contains(&"sample.cpu_usage_ratio: must be between 0 and 1".to_string()));
    assert!(got.contains(&"inventory.hostname: longer than 1024 bytes".to_string()));
    assert!(got.contains(&"probes[0].successes: more successes than attempts".to_string()));
    assert!(got.contains(&"inventory.disks[0].model: contains a NUL character".to_string()));
}

#[test]
fn too_many_items_are_refused() {
    let mut v = golden();
    let iface = v["sample"]["interfaces"][0].clone();
    v["sample"]["interfaces"] = Value::from(vec![iface; 513]);
    assert_eq!(problems(v), ["sample.interfaces: more than 512 items"]);
}

#[test]
fn impossible_temperatures_are_refused() {
    let mut v = golden();
    v["sample"]["temperatures"][0]["celsius"] = Value::from(-300.0);
    v["sample"]["temperatures"][1]["sensor"] = Value::from("nvme\nComposite");
    assert_eq!(
        problems(v),
        [
            "sample.temperatures[0].celsius: must be between -273.15 and 500",
            "sample.temperatures[1].sensor: contains a control character",
        ]
    );
}

#[test]
fn negative_rtt_is_refused() {
    let mut v = golden();
    v["probes"][0]["rtt_min_seconds"] = Value::from(-0.5);
    assert_eq!(
        problems(v),
        ["probes[0].rtt_min_seconds: must be a number of seconds between 0 and 3600"]
    );
}

#[test]
fn connectivity_numbers_out_of_range_are_refused() {
    let mut v = golden();
    v["probes"][1]["http_status"] = Value::from(42);
    v["gateway"]["successes"] = Value::from(5);
    v["gateway"]["rtt_avg_seconds"] = Value::from(-1.0);
    v["speed"]["download_bits_per_second"] = Value::from(-3.0);
    v["speed"]["upload_bits_per_second"] = Value::from(2e12);
    v["speed"]["duration_seconds"] = Value::from(4000.0);
    assert_eq!(
        problems(v),
        [
            "probes[1].http_status: must be between 100 and 599",
            "gateway.successes: more successes than attempts",
            "gateway.rtt_avg_seconds: must be a number of seconds between 0 and 3600",
            "speed.download_bits_per_second: must be between 0 and 1e12 bits per second",
            "speed.upload_bits_per_second: must be between 0 and 1e12 bits per second",
            "speed.duration_seconds: must be a number of seconds between 0 and 3600",
        ]
    );
}

#[test]
fn a_long_gateway_error_is_refused() {
    let mut v = golden();
    v["gateway"]["error"] = Value::from("e".repeat(1025));
    assert_eq!(problems(v), ["gateway.error: longer than 1024 bytes"]);
}

#[test]
fn control_characters_in_names_that_become_labels_are_refused() {
    let mut v = golden();
    v["inventory"]["hostname"] = Value::from("db\"}\nhatang_host_up{host=\"x");
    v["sample"]["interfaces"][0]["name"] = Value::from("eth0\r");
    // quotes, braces and backslashes are escaped in the exposition, not refused
    v["sample"]["filesystems"][0]["mount_point"] = Value::from("/mnt/a\"} 1 \\ {");
    assert_eq!(
        problems(v),
        [
            "inventory.hostname: contains a control character",
            "sample.interfaces[0].name: contains a control character",
        ]
    );
}

#[test]
fn integers_beyond_a_signed_64_bit_column_and_absurd_loads_are_refused() {
    let mut v = golden();
    v["sample"]["uptime_secs"] = Value::from(u64::MAX);
    v["sample"]["interfaces"][0]["rx_bytes"] = Value::from(1u64 << 63);
    v["sample"]["load"] = serde_json::json!([1e308, 0.5, 0.5]);
    v["inventory"]["memory"]["total_bytes"] = Value::from(i64::MAX as u64);
    let got = problems(v);
    assert_eq!(
        got,
        [
            "sample.load: must be between 0 and 1e6",
            "sample.uptime_secs: larger than 9223372036854775807",
            "sample.interfaces[0].rx_bytes: larger than 9223372036854775807",
        ],
        "i64::MAX itself is fine"
    );
}

#[test]
fn software_lists_have_their_own_bounds() {
    let limits = Limits::default();
    let mut v = golden();
    let entry = serde_json::json!({"name": "pkg", "version": "1.0"});
    v["inventory"]["software"] = Value::from(vec![entry; limits.max_software]);
    assert_eq!(
        problems(v.clone()),
        Vec::<String>::new(),
        "the limit itself is fine"
    );
    v["inventory"]["software"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"name": "one-more", "version": "1"}));
    v["inventory"]["software"][7]["version"] =
        Value::from("9".repeat(limits.max_software_text_bytes + 1));
    assert_eq!(
        problems(v),
        [
            "inventory.software: more than 5000 items",
            "inventory.software[7].version: longer than 64 bytes",
        ]
    );
}

#[test]
fn device_lists_are_bounded_and_checked() {
    let mut v = golden();
    let dimm = v["inventory"]["memory_modules"][0].clone();
    v["inventory"]["memory_modules"] = Value::from(vec![dimm; 513]);
    v["inventory"]["monitors"][0]["diagonal_inches"] = Value::from(-1.0);
    v["inventory"]["monitors"][0]["model"] = Value::from("P24\u{0}");
    v["inventory"]["gpus"][0]["driver"] = Value::from("d".repeat(1025));
    assert_eq!(
        problems(v),
        [
            "inventory.memory_modules: more than 512 items",
            "inventory.monitors[0].model: contains a NUL character",
            "inventory.monitors[0].diagonal_inches: must be between 0 and 1000",
            "inventory.gpus[0].driver: longer than 1024 bytes",
        ]
    );
}
