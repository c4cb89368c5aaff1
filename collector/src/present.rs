//! How lists read for people: times in UTC for tables and CSV, and CSV that spreadsheets open
//! right. Shared by the command line (`coverage`, `token list`, `agent list`) and the API's
//! `.csv` endpoints, so both show one format.

/// A Unix time as `YYYY-MM-DD HH:MM` UTC; spreadsheets read it as a date and time.
pub fn when(t: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]");
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|t| t.format(format).ok())
        .unwrap_or_else(|| t.to_string())
}

/// `x` with `places` decimals, rounded down: a ratio just short of its target must never print
/// as the target itself (0.8796 as "88.0%" beside a target of "88.0%" and a "not met"). The
/// nudge of 1e-9 keeps a value whose binary form falls a hair short (0.88 × 100 is
/// 87.99999…) from losing its last digit.
pub fn decimals_down(x: f64, places: usize) -> String {
    let scale = 10f64.powi(i32::try_from(places).unwrap_or(i32::MAX));
    let down = ((x * scale) + 1e-9).floor() / scale;
    format!("{down:.places$}")
}

/// `header` and `rows` as CSV starting with a UTF-8 byte-order mark, so spreadsheet programs
/// show Vietnamese names intact instead of guessing a legacy code page. Every field is
/// [`inert`]: the names in these files come from agents and unit files, and the planners who
/// read them open them in a spreadsheet.
pub fn spreadsheet_csv(header: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    // Writing to a Vec cannot fail.
    let _ = w.write_record(header);
    for row in rows {
        let fields: Vec<_> = row.iter().map(|field| inert(field)).collect();
        let _ = w.write_record(fields.iter().map(|field| field.as_bytes()));
    }
    let bytes = w.into_inner().unwrap_or_default();
    format!("\u{feff}{}", String::from_utf8_lossy(&bytes))
}

/// `field` as a spreadsheet will take it as text, never as a formula: one that starts with
/// `=`, `+`, `-`, `@`, a tab or a carriage return gets a leading `'` (OWASP's advice against
/// CSV injection), so a machine named `=HYPERLINK(…)` cannot put a live link, or worse, into a
/// planner's workbook. A number (`-3`, `+0.5`) stays a number.
fn inert(field: &str) -> std::borrow::Cow<'_, str> {
    let risky = field.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if risky && field.parse::<f64>().is_err() {
        format!("'{field}").into()
    } else {
        field.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_minutes_and_csv_opens_with_a_bom() {
        assert_eq!(when(1_735_689_600), "2025-01-01 00:00");
        assert_eq!(when(i64::MAX), i64::MAX.to_string());
        let text = spreadsheet_csv(&["a", "b"], [vec!["Xã Hòa Bình".into(), "1,2".into()]]);
        assert_eq!(text, "\u{feff}a,b\nXã Hòa Bình,\"1,2\"\n");
    }

    #[test]
    fn ratios_print_rounded_down_so_short_of_a_target_never_reads_as_it() {
        let cases = [
            (0.879_96, 4, "0.8799"),
            (0.88, 4, "0.8800"),
            (0.8796 * 100.0, 1, "87.9"),
            (0.88 * 100.0, 1, "88.0"),
            (0.98 * 100.0, 1, "98.0"),
            (1.0, 4, "1.0000"),
            (0.0, 1, "0.0"),
            (2.0 / 3.0, 4, "0.6666"),
            (0.375, 4, "0.3750"),
        ];
        for (x, places, shown) in cases {
            assert_eq!(decimals_down(x, places), shown, "{x} to {places}");
        }
    }

    #[test]
    fn a_field_a_spreadsheet_would_run_is_written_as_text() {
        let fields = [
            (
                "=HYPERLINK(\"http://x.example/\",\"y\")",
                "\"'=HYPERLINK(\"\"http://x.example/\"\",\"\"y\"\")\"",
            ),
            ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
            ("-2+3", "'-2+3"),
            ("@SUM(1+1)", "'@SUM(1+1)"),
            ("\t=1", "'\t=1"),
            ("\r=1", "\"'\r=1\""),
            // numbers and ordinary names are left as they are
            ("-3", "-3"),
            ("+0.5", "+0.5"),
            ("pc-01", "pc-01"),
            ("a=b", "a=b"),
            // (the csv crate quotes a lone empty field, so the row is not an empty line)
            ("", "\"\""),
        ];
        for (field, written) in fields {
            let text = spreadsheet_csv(&["f"], [vec![field.to_owned()]]);
            assert_eq!(text, format!("\u{feff}f\n{written}\n"), "{field:?}");
        }
    }
}
