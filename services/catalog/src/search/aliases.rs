//! The names fans type for the clubs and the stadiums, and what each stands for in a search
//! document.
//!
//! An *entity* is a club ([`crate::domain::teams::TEAMS`]: its Korean and English names, code and
//! aliases) or a venue (its Korean name as stored, with the nicknames of [`VENUE_ALIASES`]). Its
//! *canonical* form is its Korean name normalized as documents hold it (`ㄹㅗㅅㄷㅔ ㅈㅏㅇㅣㅇㅓㄴㅊㅡ`,
//! `ㅈㅏㅁㅅㅣㄹㅇㅑㄱㅜㅈㅏㅇ`): every game of a club has its name in its document (title and
//! team words), every event at a venue has the venue's name, so the canonical form finds them
//! in documents written before this table existed, and the pg_trgm index serves it.
//!
//! Its *spellings* are what a query term may be to stand for it (normalized, without spaces):
//!
//! - every run of two or more consecutive words of a name, squashed (`두산베어스`, `lgtwins`,
//!   `기아챔피언스필드`, `챔피언스필드`), and the club's short names joined to its nickname
//!   (`엘지트윈스`, `LG트윈스`, `케이티위즈`, `에스에스지랜더스`, `kia타이거즈`);
//! - each alias and nickname (`라팍`, `엔팍`, `고척돔`, `챔필`, `문학`);
//! - a term that begins a squashed multi-word spelling and runs past its first word (`두산베어`)
//!   stands for it too, as a prefix of the spaced name would.
//!
//! Its *initials* (초성) are those of each spelling written all in Hangul (`롯데` → `ㄹㄷ`,
//! `롯데자이언츠` → `ㄹㄷㅈㅇㅇㅊ`, `라팍` → `ㄹㅍ`); an initials-only term is compared with them
//! whole, never with the letters of a document, so `ㄹㄷ` is 롯데 and not the ㄹ+ㄷ of `필드`.

use std::sync::LazyLock;

use super::normalize;
use crate::domain::teams::TEAMS;

/// The nicknames of venues, by the venue's Korean name as stored: the names fans and the press
/// commonly use for the nine KBO home stadiums (and one museum), not their official names (which
/// documents already hold). Every run of words of the official name is matched without this
/// table (`챔피언스필드`, `랜더스필드`, `라이온즈파크`, `사직야구장`).
pub const VENUE_ALIASES: &[(&str, &[&str])] = &[
    ("잠실야구장", &["잠실구장"]),
    ("고척스카이돔", &["고척돔", "고척구장"]),
    // The stadium's name until 2021 was 인천 문학야구장; fans still say 문학.
    (
        "인천SSG랜더스필드",
        &["문학", "문학구장", "문학야구장", "랜더스필드"],
    ),
    (
        "수원KT위즈파크",
        &["위팍", "위즈파크", "수원구장", "수원야구장"],
    ),
    ("대전한화생명볼파크", &["볼파크", "한화생명볼파크"]),
    ("광주-기아 챔피언스 필드", &["챔필", "챔스필드"]),
    (
        "대구삼성라이온즈파크",
        &["라팍", "라이온즈파크", "삼성라이온즈파크"],
    ),
    // Officially 창원NC파크 마산구장.
    ("창원NC파크", &["엔팍", "엔씨파크", "마산구장"]),
    ("사직야구장", &["사직구장"]),
    ("국립중앙박물관", &["국중박"]),
];

/// A club or a venue as search knows it.
#[derive(Debug)]
struct Entity {
    /// Its Korean name normalized, as documents hold it.
    canonical: String,
    /// Normalized spellings without spaces, each with the byte length of its first word.
    spellings: Vec<(String, usize)>,
    /// The initials of its all-Hangul spellings.
    initials: Vec<String>,
}

/// Every entity, and every spelling once (the words typo correction may correct to).
struct Table {
    entities: Vec<Entity>,
    words: Vec<String>,
}

static TABLE: LazyLock<Table> = LazyLock::new(build);

fn words(name: &str) -> Vec<String> {
    normalize(name)
        .split(' ')
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The initials of `text` when it is all Hangul syllables (spaces ignored), else None.
fn initials_of(text: &str) -> Option<String> {
    let mut out = String::new();
    for c in text.chars().filter(|c| !c.is_whitespace()) {
        out.push(super::initial(c)?);
    }
    (!out.is_empty()).then_some(out)
}

#[derive(Default)]
struct Builder {
    spellings: Vec<(String, usize)>,
    initials: Vec<String>,
}

impl Builder {
    /// A spelling of these original words (joined without spaces).
    fn add(&mut self, parts: &[&str]) {
        let normalized: Vec<String> = parts.iter().flat_map(|p| words(p)).collect();
        let Some(first) = normalized.first().map(String::len) else {
            return;
        };
        let squashed = normalized.concat();
        if !self.spellings.iter().any(|(s, _)| *s == squashed) {
            self.spellings.push((squashed, first));
        }
        if let Some(i) = initials_of(&parts.concat())
            && !self.initials.contains(&i)
        {
            self.initials.push(i);
        }
    }

    /// Every run of consecutive words of `name` (split as [`normalize`] splits), one word or
    /// more.
    fn add_runs(&mut self, name: &str) {
        let ws: Vec<&str> = name
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .collect();
        for i in 0..ws.len() {
            for j in i + 1..=ws.len() {
                self.add(&ws[i..j]);
            }
        }
    }

    fn finish(self, canonical: &str) -> Entity {
        Entity {
            canonical: normalize(canonical),
            spellings: self.spellings,
            initials: self.initials,
        }
    }
}

fn build() -> Table {
    let mut entities = Vec::new();
    for t in TEAMS {
        let mut b = Builder::default();
        b.add_runs(t.name);
        b.add_runs(t.name_en);
        b.add(&[t.code]);
        for a in t.aliases {
            b.add(&[a]);
        }
        // Short names joined to the nickname: 엘지트윈스, LG트윈스, kia tigers → kiatigers.
        let nicknames = [t.name, t.name_en].map(|n| n.split_whitespace().last().unwrap_or(n));
        let shorts = t
            .name
            .split_whitespace()
            .take(1)
            .chain(t.name_en.split_whitespace().take(1))
            .chain(t.aliases.iter().copied())
            .filter(|s| !nicknames.contains(s));
        for short in shorts {
            for nickname in nicknames {
                b.add(&[short, nickname]);
            }
        }
        entities.push(b.finish(t.name));
    }
    for (name, aliases) in VENUE_ALIASES {
        let mut b = Builder::default();
        b.add_runs(name);
        for a in *aliases {
            b.add(&[a]);
        }
        entities.push(b.finish(name));
    }
    let mut words: Vec<String> = Vec::new();
    for e in &entities {
        for (s, _) in &e.spellings {
            if !words.contains(s) {
                words.push(s.clone());
            }
        }
    }
    Table { entities, words }
}

/// Every spelling of every entity (normalized, without spaces), once.
pub fn spellings() -> &'static [String] {
    &TABLE.words
}

/// The canonical forms of the entities `term` (normalized, one word) is a spelling of, or a
/// prefix running past the first word of.
pub fn expand(term: &str) -> impl Iterator<Item = &'static str> + '_ {
    TABLE
        .entities
        .iter()
        .filter(move |e| {
            e.spellings
                .iter()
                .any(|(s, first)| s == term || (term.len() > *first && s.starts_with(term)))
        })
        .map(|e| e.canonical.as_str())
}

/// The canonical forms of the entities whose initials are `initials`, whole.
pub fn by_initials(initials: &str) -> impl Iterator<Item = &'static str> + '_ {
    TABLE
        .entities
        .iter()
        .filter(move |e| e.initials.iter().any(|i| i == initials))
        .map(|e| e.canonical.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expanded(q: &str) -> Vec<&'static str> {
        expand(&normalize(q)).collect()
    }

    #[test]
    fn no_space_and_mixed_forms_stand_for_their_club() {
        for (q, name) in [
            ("두산베어스", "두산 베어스"),
            ("롯데자이언츠", "롯데 자이언츠"),
            ("엘지트윈스", "LG 트윈스"),
            ("LG트윈스", "LG 트윈스"),
            ("lgtwins", "LG 트윈스"),
            ("한화이글스", "한화 이글스"),
            ("KT위즈", "KT 위즈"),
            ("케이티위즈", "KT 위즈"),
            ("SSG랜더스", "SSG 랜더스"),
            ("에스에스지랜더스", "SSG 랜더스"),
            ("NC다이노스", "NC 다이노스"),
            ("엔씨다이노스", "NC 다이노스"),
            ("KIA타이거즈", "KIA 타이거즈"),
            ("기아타이거즈", "KIA 타이거즈"),
            ("두산베어", "두산 베어스"),
        ] {
            assert_eq!(expanded(q), vec![normalize(name)], "{q}");
        }
        assert!(expanded("두산베어스파크").is_empty());
        assert!(
            expanded("두").is_empty(),
            "a prefix of a first word alone is not"
        );
    }

    #[test]
    fn nicknames_stand_for_their_venue() {
        for (q, venue) in [
            ("라팍", "대구삼성라이온즈파크"),
            ("엔팍", "창원NC파크"),
            ("고척돔", "고척스카이돔"),
            ("챔필", "광주-기아 챔피언스 필드"),
            ("챔피언스필드", "광주-기아 챔피언스 필드"),
            ("문학", "인천SSG랜더스필드"),
            ("사직구장", "사직야구장"),
        ] {
            assert_eq!(expanded(q), vec![normalize(venue)], "{q}");
        }
    }

    #[test]
    fn initials_are_of_whole_names() {
        let of = |i: &str| by_initials(i).collect::<Vec<_>>();
        assert_eq!(of("ㄹㄷ"), vec![normalize("롯데 자이언츠")]);
        assert_eq!(of("ㄹㄷㅈㅇㅇㅊ"), vec![normalize("롯데 자이언츠")]);
        assert_eq!(of("ㄷㅅ"), vec![normalize("두산 베어스")]);
        assert_eq!(of("ㄹㅍ"), vec![normalize("대구삼성라이온즈파크")]);
        assert_eq!(of("ㅈㅅㄱㅈ"), vec![normalize("잠실야구장")]);
        // 필드's ㄹ+ㄷ, 샤롯데's 롯데: not whole names.
        assert!(of("ㄹㄷㅅㅍ").is_empty());
        assert!(of("ㄷ").is_empty());
        assert!(of("ㅋㅋ").is_empty());
        // 엘지 and 위즈 share their initials: both.
        assert_eq!(
            of("ㅇㅈ"),
            vec![normalize("LG 트윈스"), normalize("KT 위즈")]
        );
    }

    #[test]
    fn every_spelling_is_normalized_and_one_word() {
        assert!(spellings().len() > 100);
        for s in spellings() {
            assert_eq!(&normalize(s), s);
            assert!(!s.contains(' '), "{s}");
        }
    }
}
