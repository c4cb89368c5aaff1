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

/// `header` and `rows` as CSV starting with a UTF-8 byte-order mark, so spreadsheet programs
/// show Vietnamese names intact instead of guessing a legacy code page.
pub fn spreadsheet_csv(header: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    // Writing to a Vec cannot fail.
    let _ = w.write_record(header);
    for row in rows {
        let _ = w.write_record(&row);
    }
    let bytes = w.into_inner().unwrap_or_default();
    format!("\u{feff}{}", String::from_utf8_lossy(&bytes))
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
}
