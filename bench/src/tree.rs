//! Synthetic unit trees shaped like the one after the July 2025 reform: per province a root with
//! no staff of its own, fourteen province-level agencies and communes/wards, two levels
//! (`province`, `commune`). Staff ranges follow `testdata/units-phu-tho-2025.csv` (agencies 20-130,
//! communes 30-45); codes and names are made up but GSO-like (numeric commune codes, local agency
//! codes), with Vietnamese diacritics so label escaping is exercised.

use std::fmt::Write as _;

use crate::Rng;

/// One line of the import CSV (`code,name,level,parent_code,staff`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    pub code: String,
    pub name: String,
    pub level: &'static str,
    pub parent: Option<String>,
    pub staff: u32,
}

const AGENCIES: [(&str, &str); 14] = [
    ("VPUB", "Văn phòng UBND tỉnh"),
    ("SGDDT", "Sở Giáo dục và Đào tạo"),
    ("SYT", "Sở Y tế"),
    ("STC", "Sở Tài chính"),
    ("SNV", "Sở Nội vụ"),
    ("STP", "Sở Tư pháp"),
    ("SXD", "Sở Xây dựng"),
    ("SCT", "Sở Công Thương"),
    ("SNNMT", "Sở Nông nghiệp và Môi trường"),
    ("SKHCN", "Sở Khoa học và Công nghệ"),
    ("SVHTTDL", "Sở Văn hoá, Thể thao và Du lịch"),
    ("BHXH", "Bảo hiểm xã hội tỉnh"),
    ("CAT", "Công an tỉnh"),
    ("TTDL", "Trung tâm Dữ liệu tỉnh"),
];

const PLACES: [&str; 12] = [
    "Tân Lạc",
    "Việt Trì",
    "Thanh Sơn",
    "Lạc Thủy",
    "Mai Châu",
    "Phù Ninh",
    "Yên Lập",
    "Đoan Hùng",
    "Hạ Hòa",
    "Cẩm Khê",
    "Tam Nông",
    "Kim Bôi",
];

/// Units in one province block besides its communes: the root and its agencies.
pub const PER_PROVINCE_FIXED: usize = 1 + AGENCIES.len();
/// Communes of a typical province after the reform (Phú Thọ has 148, the country 3,321 in 34).
const COMMUNES_PER_PROVINCE: usize = 98;

/// A tree of exactly `units` units (at least one province block of [`PER_PROVINCE_FIXED`]):
/// as many provinces as a typical one's size fits, communes spread evenly over them.
pub fn generate(units: usize, seed: u64) -> Vec<Unit> {
    let units = units.max(PER_PROVINCE_FIXED);
    let provinces = (units / (PER_PROVINCE_FIXED + COMMUNES_PER_PROVINCE)).max(1);
    let communes = units - provinces * PER_PROVINCE_FIXED;
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(units);
    let mut commune_code = 10_000usize;
    for p in 0..provinces {
        let province = format!("{:02}", p + 1);
        out.push(Unit {
            code: province.clone(),
            name: format!("Tỉnh số {}", p + 1),
            level: "province",
            parent: None,
            staff: 0,
        });
        for (code, name) in AGENCIES {
            out.push(Unit {
                code: format!("{province}-{code}"),
                name: format!("{name} {}", p + 1),
                level: "province",
                parent: Some(province.clone()),
                staff: rng.range(20, 131) as u32,
            });
        }
        let share = communes / provinces + usize::from(p < communes % provinces);
        for c in 0..share {
            commune_code += 1;
            let kind = if rng.chance(0.2) { "Phường" } else { "Xã" };
            out.push(Unit {
                code: commune_code.to_string(),
                name: format!("{kind} {} {}", rng.pick(&PLACES), c + 1),
                level: "commune",
                parent: Some(province.clone()),
                staff: rng.range(30, 46) as u32,
            });
        }
    }
    out
}

/// The tree as the collector's import CSV.
pub fn csv(units: &[Unit]) -> String {
    let mut out = String::from("code,name,level,parent_code,staff\n");
    for u in units {
        // Names may hold commas ("Sở Văn hoá, Thể thao và Du lịch"): quote them.
        let _ = writeln!(
            out,
            "{},\"{}\",{},{},{}",
            u.code,
            u.name.replace('"', "\"\""),
            u.level,
            u.parent.as_deref().unwrap_or(""),
            u.staff
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_has_the_asked_size_and_two_levels() {
        for n in [1, 15, 163, 3500] {
            let t = generate(n, 1);
            assert_eq!(t.len(), n.max(PER_PROVINCE_FIXED), "{n}");
            assert!(
                t.iter()
                    .all(|u| u.level == "province" || u.level == "commune")
            );
            // every parent precedes its children and exists
            for (i, u) in t.iter().enumerate() {
                if let Some(p) = &u.parent {
                    assert!(t[..i].iter().any(|x| &x.code == p), "{} before {p}", u.code);
                }
            }
            let mut codes: Vec<&str> = t.iter().map(|u| u.code.as_str()).collect();
            codes.sort_unstable();
            codes.dedup();
            assert_eq!(codes.len(), t.len(), "codes are unique");
        }
        let national = generate(3500, 1);
        let provinces = national.iter().filter(|u| u.parent.is_none()).count();
        assert_eq!(provinces, 30);
    }

    #[test]
    fn names_with_commas_are_quoted() {
        let text = csv(&generate(15, 1));
        assert!(
            text.contains("\"Sở Văn hoá, Thể thao và Du lịch 1\""),
            "{text}"
        );
        assert_eq!(text.lines().count(), 16);
    }
}
