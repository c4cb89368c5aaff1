//! The distribution's name and version from os-release (`/etc/os-release`, else
//! `/usr/lib/os-release`, as the freedesktop specification orders them).

use std::path::Path;

use super::read_text;
use crate::collect::OsRelease;

pub(crate) fn read(root: &Path) -> OsRelease {
    ["etc/os-release", "usr/lib/os-release"]
        .iter()
        .find_map(|file| read_text(&root.join(file)))
        .map(|text| parse(&text))
        .unwrap_or_default()
}

/// `NAME` and `VERSION_ID` from os-release text: shell-style `KEY=value` lines, values optionally
/// quoted, `#` comments. Rolling distributions (Arch) have no `VERSION_ID`.
fn parse(text: &str) -> OsRelease {
    let mut release = OsRelease::default();
    for line in text.lines() {
        let Some((key, value)) = line.trim().split_once('=') else {
            continue;
        };
        let value = unquote(value.trim());
        if value.is_empty() {
            continue;
        }
        match key.trim() {
            "NAME" => release.name = Some(value),
            "VERSION_ID" => release.version = Some(value),
            _ => {}
        }
    }
    release
}

/// Strips one pair of matching quotes and undoes the backslash escapes the specification allows
/// inside double quotes (`\"`, `\\`, `\$`, `` \` ``).
fn unquote(value: &str) -> String {
    if let Some(inner) = value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
        return inner.to_owned();
    }
    let Some(inner) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) else {
        return value.to_owned();
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match (c, chars.clone().next()) {
            ('\\', Some(next @ ('"' | '\\' | '$' | '`'))) => {
                out.push(next);
                chars.next();
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::linux::fixture;

    fn release(name: &str, version: &str) -> OsRelease {
        OsRelease {
            name: Some(name.to_owned()),
            version: Some(version.to_owned()),
        }
    }

    #[test]
    fn quoted_unquoted_comments_and_escapes() {
        let text = "# written by the image builder\n\
                    NAME=\"Ubuntu \\\"LTS\\\"\"\n\
                    ID=ubuntu\n\
                    \n\
                    VERSION_ID='24.04'\n\
                    not a pair\n";
        assert_eq!(parse(text), release("Ubuntu \"LTS\"", "24.04"));
        assert_eq!(
            parse("NAME=Arch Linux\nID=arch\n"),
            OsRelease {
                name: Some("Arch Linux".to_owned()),
                version: None,
            }
        );
        assert_eq!(parse(""), OsRelease::default());
        assert_eq!(parse("NAME=\"\"\nVERSION_ID=\n"), OsRelease::default());
    }

    #[test]
    fn fixtures() {
        assert_eq!(read(&fixture("desktop")), release("Ubuntu", "24.04"));
        assert_eq!(read(&fixture("laptop")), release("Linux Mint", "21.3"));
        assert_eq!(read(&fixture("server")), release("Rocky Linux", "9.3"));
        assert_eq!(read(&fixture("vm")), release("Debian GNU/Linux", "12"));
    }

    #[test]
    fn falls_back_to_usr_lib_then_to_nothing() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("usr/lib")).unwrap();
        std::fs::write(
            dir.path().join("usr/lib/os-release"),
            "NAME=\"Fedora Linux\"\nVERSION_ID=40\n",
        )
        .unwrap();
        assert_eq!(read(dir.path()), release("Fedora Linux", "40"));
        assert_eq!(read(Path::new("/nonexistent")), OsRelease::default());
    }
}
