//! Unit-tree CSV import (`hatang_collector::units::parse`): never panics, and a file it accepts
//! is a proper tree: unique codes, every parent present, depths one more than the parent's,
//! merges pointing at current units and never at themselves.
#![no_main]

use std::collections::{HashMap, HashSet};

use hatang_collector::units;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(file) = units::parse(data) else {
        return;
    };
    assert!(!file.units.is_empty(), "an accepted file has units");
    let by_code: HashMap<&str, &units::NewUnit> =
        file.units.iter().map(|u| (u.code.as_str(), u)).collect();
    assert_eq!(by_code.len(), file.units.len(), "codes are unique");
    for unit in &file.units {
        assert!(!unit.code.is_empty(), "code is set");
        assert!(!unit.name.is_empty(), "name is set");
        assert!(!unit.level.is_empty(), "level is set");
        match &unit.parent_code {
            None => assert_eq!(unit.depth, 0, "a root has depth 0: {unit:?}"),
            Some(p) => {
                assert_ne!(p, &unit.code, "own parent: {unit:?}");
                let parent = by_code
                    .get(p.as_str())
                    .unwrap_or_else(|| panic!("parent of {unit:?} is missing"));
                assert_eq!(unit.depth, parent.depth + 1, "depth of {unit:?}");
            }
        }
    }
    let mut merged = HashSet::new();
    for merge in &file.merges {
        assert_ne!(merge.code, merge.into, "merged into itself: {merge:?}");
        assert!(
            by_code.contains_key(merge.into.as_str()),
            "merge into a unit that is not current: {merge:?}"
        );
        assert!(
            !by_code.contains_key(merge.code.as_str()),
            "a merged unit is also current: {merge:?}"
        );
        assert!(
            merged.insert(merge.code.as_str()),
            "merged twice: {merge:?}"
        );
    }
});
