//! The ten KBO clubs of the 2026 season: code, names and home stadium. Events store team codes;
//! search and the `team` filter accept any of the names.

/// One club.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Team {
    /// Stable code stored on events, e.g. `doosan`.
    pub code: &'static str,
    /// Korean name, e.g. `두산 베어스`.
    pub name: &'static str,
    /// English name, e.g. `Doosan Bears`.
    pub name_en: &'static str,
    /// Other names fans type (short forms, the Latin initials read out in Hangul, the
    /// nickname); search also takes them joined (`엘지트윈스`) and as initials (see
    /// `search/aliases.rs`).
    pub aliases: &'static [&'static str],
    /// Slug of the home stadium (see seed/stadiums.rs).
    pub home: &'static str,
}

/// Every club, in the order the seed's schedule numbers them.
pub const TEAMS: &[Team] = &[
    Team {
        code: "lg",
        name: "LG 트윈스",
        name_en: "LG Twins",
        aliases: &["엘지", "트윈스"],
        home: "jamsil",
    },
    Team {
        code: "doosan",
        name: "두산 베어스",
        name_en: "Doosan Bears",
        aliases: &["두산", "베어스"],
        home: "jamsil",
    },
    Team {
        code: "kiwoom",
        name: "키움 히어로즈",
        name_en: "Kiwoom Heroes",
        aliases: &["키움", "히어로즈"],
        home: "gocheok",
    },
    Team {
        code: "ssg",
        name: "SSG 랜더스",
        name_en: "SSG Landers",
        aliases: &["에스에스지", "랜더스"],
        home: "incheon",
    },
    Team {
        code: "kt",
        name: "KT 위즈",
        name_en: "KT Wiz",
        aliases: &["케이티", "위즈"],
        home: "suwon",
    },
    Team {
        code: "hanwha",
        name: "한화 이글스",
        name_en: "Hanwha Eagles",
        aliases: &["한화", "이글스"],
        home: "daejeon",
    },
    Team {
        code: "kia",
        name: "KIA 타이거즈",
        name_en: "KIA Tigers",
        aliases: &["기아", "타이거즈"],
        home: "gwangju",
    },
    Team {
        code: "samsung",
        name: "삼성 라이온즈",
        name_en: "Samsung Lions",
        aliases: &["삼성", "라이온즈"],
        home: "daegu",
    },
    Team {
        code: "nc",
        name: "NC 다이노스",
        name_en: "NC Dinos",
        aliases: &["엔씨", "다이노스"],
        home: "changwon",
    },
    Team {
        code: "lotte",
        name: "롯데 자이언츠",
        name_en: "Lotte Giants",
        aliases: &["롯데", "자이언츠"],
        home: "sajik",
    },
];

fn squash(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect()
}

/// The club with this code.
pub fn by_code(code: &str) -> Option<&'static Team> {
    TEAMS.iter().find(|t| t.code == code)
}

/// The club a buyer means by `input` (code, Korean or English name, short name; case and spaces
/// ignored).
pub fn resolve(input: &str) -> Option<&'static Team> {
    let wanted = squash(input);
    if wanted.is_empty() {
        return None;
    }
    TEAMS.iter().find(|t| {
        squash(t.code) == wanted
            || squash(t.name) == wanted
            || squash(t.name_en) == wanted
            || t.name_en
                .split(' ')
                .next()
                .is_some_and(|w| squash(w) == wanted)
            || t.aliases.iter().any(|a| squash(a) == wanted)
    })
}

/// The words search should find a club by.
pub fn search_words(team: &Team) -> String {
    format!(
        "{} {} {} {}",
        team.code,
        team.name,
        team.name_en,
        team.aliases.join(" ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_every_spelling() {
        for input in [
            "doosan",
            "두산",
            "두산 베어스",
            "Doosan Bears",
            "DOOSAN",
            "베어스",
        ] {
            assert_eq!(resolve(input).map(|t| t.code), Some("doosan"), "{input}");
        }
        assert_eq!(resolve("LG 트윈스").map(|t| t.code), Some("lg"));
        assert_eq!(resolve("lg").map(|t| t.code), Some("lg"));
        assert_eq!(resolve("KIA").map(|t| t.code), Some("kia"));
        assert_eq!(resolve("기아").map(|t| t.code), Some("kia"));
        assert!(resolve("yankees").is_none());
        assert!(resolve(" ").is_none());
    }

    #[test]
    fn ten_clubs_nine_homes() {
        assert_eq!(TEAMS.len(), 10);
        let mut homes: Vec<_> = TEAMS.iter().map(|t| t.home).collect();
        homes.sort_unstable();
        homes.dedup();
        assert_eq!(homes.len(), 9);
    }
}
