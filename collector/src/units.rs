//! Reading and validating a unit-tree CSV (`code,name,level,parent_code,staff`, and optionally
//! `merged_into`).
//!
//! A reorganisation is a new file: units it lists are the current tree, units it leaves out are
//! retired. A unit that was merged into another is written as a row with `merged_into` set to
//! the unit that absorbs it (its other fields may be empty): its agents and enrolment tokens move
//! there, so the machines keep being counted without being enrolled again.
//!
//! Validation is all-or-nothing and reports every problem with its line number, so an operator
//! fixes a spreadsheet in one pass. Nothing here touches the database: the store imports the
//! checked list in one transaction.

use std::collections::HashMap;
use std::fmt;
use std::io::Read;

/// The columns a unit file must have (in any order).
pub const COLUMNS: [&str; 5] = ["code", "name", "level", "parent_code", "staff"];
/// The optional column naming the unit a retired unit was merged into.
pub const MERGED_INTO: &str = "merged_into";

const MAX_CODE_BYTES: usize = 64;
const MAX_NAME_BYTES: usize = 256;
const MAX_STAFF: u32 = 1_000_000;

/// One validated unit, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUnit {
    pub code: String,
    pub name: String,
    pub level: String,
    pub parent_code: Option<String>,
    pub staff: u32,
    /// Distance from the root of the tree (the root is 0).
    pub depth: u32,
}

/// A retired unit and the unit that absorbed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merge {
    pub code: String,
    pub into: String,
}

/// A checked unit file: the current tree in file order, and the merges it records.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UnitFile {
    pub units: Vec<NewUnit>,
    pub merges: Vec<Merge>,
}

/// A problem in the file; `line` is 1-based as a spreadsheet shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportError {
    pub line: u64,
    pub message: String,
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

struct Row {
    line: u64,
    code: String,
    name: String,
    level: String,
    parent_code: Option<String>,
    staff: u32,
}

/// Parses and checks a whole file; either every unit or every error.
pub fn parse(input: impl Read) -> Result<UnitFile, Vec<ImportError>> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(true)
        .from_reader(input);
    let mut errors = Vec::new();
    let columns = match header_columns(&mut reader) {
        Ok(c) => c,
        Err(e) => return Err(vec![e]),
    };
    let mut rows = Vec::new();
    let mut merges: Vec<(u64, Merge)> = Vec::new();
    // Every code seen, valid row or not, so a duplicate of a broken row is reported too.
    let mut first_line: HashMap<String, u64> = HashMap::new();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                errors.push(ImportError {
                    line,
                    message: format!("unreadable CSV: {e}"),
                });
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line());
        if record.iter().all(str::is_empty) {
            continue;
        }
        if record.len() != columns.width {
            errors.push(ImportError {
                line,
                message: format!("{} fields, the header has {}", record.len(), columns.width),
            });
            continue;
        }
        let field = |i: usize| record.get(i).unwrap_or("").to_string();
        let code = field(columns.code);
        if !code.is_empty() {
            if let Some(first) = first_line.get(&code) {
                errors.push(ImportError {
                    line,
                    message: format!("duplicate code {code} (first on line {first})"),
                });
                continue;
            }
            first_line.insert(code.clone(), line);
        }
        let into = columns.merged_into.map(field).unwrap_or_default();
        if !into.is_empty() {
            if code.is_empty() {
                errors.push(ImportError {
                    line,
                    message: "code is empty".into(),
                });
            } else if into == code {
                errors.push(ImportError {
                    line,
                    message: format!("unit {code} is merged into itself"),
                });
            } else {
                merges.push((line, Merge { code, into }));
            }
            continue;
        }
        match check_row(
            line,
            field(columns.code),
            field(columns.name),
            field(columns.level),
            field(columns.parent_code),
            &field(columns.staff),
        ) {
            Ok(row) => rows.push(row),
            Err(mut row_errors) => errors.append(&mut row_errors),
        }
    }
    let units = check_tree(&rows, &mut errors);
    for (line, merge) in &merges {
        if !rows.iter().any(|r| r.code == merge.into) {
            errors.push(ImportError {
                line: *line,
                message: format!(
                    "merged_into {} is not a current unit of this file",
                    merge.into
                ),
            });
        }
    }
    if errors.is_empty() {
        if units.is_empty() {
            return Err(vec![ImportError {
                line: 1,
                message: "the file has a header but no units".into(),
            }]);
        }
        Ok(UnitFile {
            units,
            merges: merges.into_iter().map(|(_, m)| m).collect(),
        })
    } else {
        errors.sort_by_key(|e| e.line);
        Err(errors)
    }
}

struct Columns {
    width: usize,
    code: usize,
    name: usize,
    level: usize,
    parent_code: usize,
    staff: usize,
    merged_into: Option<usize>,
}

fn header_columns<R: Read>(reader: &mut csv::Reader<R>) -> Result<Columns, ImportError> {
    let header = reader.headers().map_err(|e| ImportError {
        line: 1,
        message: format!("unreadable header: {e}"),
    })?;
    // Spreadsheets save UTF-8 with a byte-order mark; it is not part of the first name.
    let names: Vec<String> = header
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}').trim().to_ascii_lowercase())
        .collect();
    let find = |col: &str| names.iter().position(|n| n == col);
    let missing: Vec<&str> = COLUMNS
        .iter()
        .copied()
        .filter(|c| find(c).is_none())
        .collect();
    let unknown: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|n| !COLUMNS.contains(n) && *n != MERGED_INTO)
        .collect();
    let expected = COLUMNS.len() + usize::from(find(MERGED_INTO).is_some());
    if !missing.is_empty() || !unknown.is_empty() || names.len() != expected {
        let mut why = Vec::new();
        if !missing.is_empty() {
            why.push(format!("missing {}", missing.join(", ")));
        }
        if !unknown.is_empty() {
            why.push(format!("unknown {}", unknown.join(", ")));
        }
        if why.is_empty() {
            why.push("a column appears twice".into());
        }
        return Err(ImportError {
            line: 1,
            message: format!(
                "header must be {}[,{MERGED_INTO}] ({})",
                COLUMNS.join(","),
                why.join("; ")
            ),
        });
    }
    let at = |col: &str| find(col).unwrap_or_default();
    Ok(Columns {
        width: names.len(),
        code: at("code"),
        name: at("name"),
        level: at("level"),
        parent_code: at("parent_code"),
        staff: at("staff"),
        merged_into: find(MERGED_INTO),
    })
}

fn check_row(
    line: u64,
    code: String,
    name: String,
    level: String,
    parent_code: String,
    staff: &str,
) -> Result<Row, Vec<ImportError>> {
    let mut errors = Vec::new();
    let mut fail = |message: String| errors.push(ImportError { line, message });
    if code.is_empty() {
        fail("code is empty".into());
    } else if code.len() > MAX_CODE_BYTES {
        fail(format!("code is longer than {MAX_CODE_BYTES} bytes"));
    } else if code.chars().any(|c| c.is_whitespace() || c.is_control()) {
        fail(format!(
            "code {code:?} contains spaces or control characters"
        ));
    }
    if name.is_empty() {
        fail("name is empty".into());
    } else if name.len() > MAX_NAME_BYTES {
        fail(format!("name is longer than {MAX_NAME_BYTES} bytes"));
    } else if name.chars().any(char::is_control) {
        fail("name contains control characters".into());
    }
    if level.is_empty() {
        fail("level is empty".into());
    } else if !level
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        || level.len() > 32
    {
        fail(format!(
            "level {level:?} must be a short lower-case word such as province, district or commune"
        ));
    } else if level == crate::figures::UNASSIGNED_LEVEL {
        // The figures count the agents of retired units under this name; a level of the tree
        // called so would be added to them and repeat their series in /metrics.
        fail(format!(
            "level {level:?} is reserved for agents whose unit was retired; name the level otherwise"
        ));
    }
    let staff = match staff.parse::<i64>() {
        Ok(n) if n < 0 => {
            fail(format!("staff {n} is negative"));
            0
        }
        Ok(n) if n > i64::from(MAX_STAFF) => {
            fail(format!("staff {n} is more than {MAX_STAFF}"));
            0
        }
        Ok(n) => u32::try_from(n).unwrap_or(0),
        Err(_) => {
            fail(format!("staff {staff:?} is not a whole number"));
            0
        }
    };
    if parent_code == code && !code.is_empty() {
        fail(format!("unit {code} is its own parent"));
    }
    if errors.is_empty() {
        Ok(Row {
            line,
            code,
            name,
            level,
            parent_code: (!parent_code.is_empty()).then_some(parent_code),
            staff,
        })
    } else {
        Err(errors)
    }
}

/// Checks parents exist and the parent links form a tree; computes depths. Codes are unique
/// by now (`parse` refused duplicates).
fn check_tree(rows: &[Row], errors: &mut Vec<ImportError>) -> Vec<NewUnit> {
    let index: HashMap<&str, usize> = rows
        .iter()
        .enumerate()
        .map(|(i, row)| (row.code.as_str(), i))
        .collect();
    let mut parent: Vec<Option<usize>> = vec![None; rows.len()];
    for (i, row) in rows.iter().enumerate() {
        if let Some(p) = &row.parent_code {
            match index.get(p.as_str()) {
                Some(&j) => parent[i] = Some(j),
                None => errors.push(ImportError {
                    line: row.line,
                    message: format!("unknown parent_code {p}"),
                }),
            }
        }
    }
    // Depth by walking up; a walk longer than the number of units means a cycle.
    let mut depths = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        let mut depth = 0u32;
        let mut at = i;
        let mut cyclic = false;
        while let Some(p) = parent[at] {
            depth += 1;
            at = p;
            if depth as usize > rows.len() {
                cyclic = true;
                break;
            }
        }
        if cyclic {
            errors.push(ImportError {
                line: row.line,
                message: format!("unit {} is part of a parent cycle", row.code),
            });
        }
        depths.push(depth);
    }
    rows.iter()
        .zip(depths)
        .map(|(r, depth)| NewUnit {
            code: r.code.clone(),
            name: r.name.clone(),
            level: r.level.clone(),
            parent_code: r.parent_code.clone(),
            staff: r.staff,
            depth,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The current units of a file that must parse.
    fn parse_units(input: impl Read) -> Vec<NewUnit> {
        let file = parse(input).unwrap();
        assert!(file.merges.is_empty());
        file.units
    }

    fn errors(csv: &str) -> Vec<String> {
        parse(csv.as_bytes())
            .expect_err("should be refused")
            .into_iter()
            .map(|e| e.to_string())
            .collect()
    }

    #[test]
    fn reads_a_tree_with_depths_and_vietnamese_names() {
        let units = parse_units(
            "\u{feff}code,name,level,parent_code,staff\n\
             17,Tỉnh Hoà Bình,province,,0\n\
             17-SYT,Sở Y tế,province,17,95\n\
             148,Thành phố Hòa Bình,district,17,120\n\
             4351,Phường Tân Hòa,commune,148,21\n"
                .as_bytes(),
        );
        assert_eq!(units.len(), 4);
        assert_eq!(units[0].parent_code, None);
        assert_eq!(units[1].name, "Sở Y tế");
        assert_eq!(
            units.iter().map(|u| u.depth).collect::<Vec<_>>(),
            [0, 1, 1, 2]
        );
        assert_eq!(units[3].staff, 21);
    }

    #[test]
    fn columns_may_come_in_any_order() {
        let units = parse_units("staff,level,code,parent_code,name\n5,province,1,,P\n".as_bytes());
        assert_eq!((units[0].code.as_str(), units[0].staff), ("1", 5));
    }

    #[test]
    fn every_row_error_is_reported_with_its_line() {
        let got = errors(
            "code,name,level,parent_code,staff\n\
             1,Province,province,,10\n\
             2,A,commune,1,-3\n\
             3,B,commune,1,many\n\
             2,C,commune,1,4\n\
             4,D,commune,99,4\n\
             5,,commune,1,4\n",
        );
        assert_eq!(
            got,
            [
                "line 3: staff -3 is negative",
                "line 4: staff \"many\" is not a whole number",
                "line 5: duplicate code 2 (first on line 3)",
                "line 6: unknown parent_code 99",
                "line 7: name is empty",
            ]
        );
    }

    #[test]
    fn cycles_are_refused() {
        let got = errors(
            "code,name,level,parent_code,staff\n\
             1,Root,province,,0\n\
             a,A,commune,b,1\n\
             b,B,commune,a,1\n\
             c,C,commune,c,1\n",
        );
        assert_eq!(
            got,
            [
                "line 3: unit a is part of a parent cycle",
                "line 4: unit b is part of a parent cycle",
                "line 5: unit c is its own parent",
            ]
        );
    }

    #[test]
    fn wrong_header_is_refused_before_any_row() {
        assert_eq!(
            errors("code,name,tier,parent,staff\n1,P,province,,1\n"),
            [
                "line 1: header must be code,name,level,parent_code,staff[,merged_into] (missing level, parent_code; unknown tier, parent)"
            ]
        );
        assert_eq!(
            errors("code,name,level,parent_code,staff,code\n"),
            [
                "line 1: header must be code,name,level,parent_code,staff[,merged_into] (a column appears twice)"
            ]
        );
    }

    #[test]
    fn ragged_rows_and_empty_files_are_refused() {
        assert_eq!(
            errors("code,name,level,parent_code,staff\n1,P,province,,1,extra\n"),
            ["line 2: 6 fields, the header has 5"]
        );
        assert_eq!(
            errors("code,name,level,parent_code,staff\n"),
            ["line 1: the file has a header but no units"]
        );
    }

    #[test]
    fn levels_are_data_but_must_be_words() {
        let units = parse_units("code,name,level,parent_code,staff\n1,P,ward,,1\n".as_bytes());
        assert_eq!(units[0].level, "ward");
        assert_eq!(
            errors("code,name,level,parent_code,staff\n1,P,Cấp xã,,1\n"),
            [
                "line 2: level \"Cấp xã\" must be a short lower-case word such as province, district or commune"
            ]
        );
        assert_eq!(
            errors("code,name,level,parent_code,staff\n1,P,unassigned,,1\n"),
            [
                "line 2: level \"unassigned\" is reserved for agents whose unit was retired; name the level otherwise"
            ]
        );
    }

    #[test]
    fn the_shared_trees_parse() {
        for (file, count) in [
            ("units-hoa-binh-2024.csv", 176),
            ("units-phu-tho-2025.csv", 163),
        ] {
            let path = format!("{}/../testdata/{file}", env!("CARGO_MANIFEST_DIR"));
            let units = parse_units(std::fs::File::open(&path).unwrap());
            assert_eq!(units.len(), count, "{file}");
        }
    }

    #[test]
    fn a_merged_unit_names_the_unit_that_absorbed_it() {
        let file = parse(
            "code,name,level,parent_code,staff,merged_into\n\
             25,Phú Thọ,province,,0,\n\
             4792,Phường Tân Hòa,commune,25,30,\n\
             4795,,,,,4792\n"
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(file.units.len(), 2);
        assert_eq!(
            file.merges,
            [Merge {
                code: "4795".into(),
                into: "4792".into()
            }]
        );
    }

    #[test]
    fn a_merge_must_name_a_current_unit_of_the_file() {
        assert_eq!(
            errors(
                "code,name,level,parent_code,staff,merged_into\n\
                 25,Phú Thọ,province,,0,\n\
                 4795,,,,,4799\n\
                 4796,,,,,4796\n\
                 4797,,,,,4795\n"
            ),
            [
                "line 3: merged_into 4799 is not a current unit of this file",
                "line 4: unit 4796 is merged into itself",
                "line 5: merged_into 4795 is not a current unit of this file",
            ]
        );
    }
}
