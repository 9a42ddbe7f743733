//! Full-text search that works for Korean and English, as fans type it, with typo tolerance.
//!
//! Every event carries a `search_doc`: its title, kind words, team names (Korean, English, short
//! forms), venue names and city, normalized by [`normalize`] — lower-cased, punctuation turned to
//! spaces, and each Hangul syllable decomposed into its jamo (`잠` → `ㅈㅏㅁ`). A query is
//! normalized the same way and split into terms; an event matches when every term matches, a
//! term matching when one of its *alternatives* is a substring of the document (so `잠실`, `lg`,
//! `트윈스`, `jams` match, prefixes included), which a pg_trgm GIN index serves. Punctuation is
//! no part of any term, so `%` and `_` are never wildcards (and are escaped all the same); a
//! query of punctuation only, given, finds nothing, while an empty one is no search.
//!
//! A term's alternatives are the term itself, its typo corrections, and the canonical names of
//! the clubs and venues it is a spelling of ([`aliases`]): `두산베어스`, `LG트윈스`, `엘지트윈스`,
//! `SSG랜더스` stand for the club's name as documents hold it (`두산 베어스`, `LG 트윈스`); `라팍`,
//! `엔팍`, `고척돔`, `챔필`, `문학` for the venue's name. This expansion is done on the query, not
//! written into documents: it needs no rewrite of stored documents (those written before it are
//! found alike), a new nickname works at once, and the canonical names it yields are ordinary
//! substrings that the same trigram index serves.
//!
//! Initials (초성): a term made only of initial consonants (`ㄹㄷ`, `ㄷㅅㅂㅇㅅ`) is never
//! compared with a document's letters (there `ㄹㄷ` would match the `ㄹ` + `ㄷ` of 필드 in any
//! field's name) but, whole, with the initials of the clubs' and venues' names and aliases: `ㄹㄷ`
//! is 롯데's, so it finds 롯데's games. Shorter than [`MIN_INITIALS`] (a lone `ㄱ`, which begins
//! too many names to mean one) it matches nothing, and neither does one that is no known name's
//! (`ㅋㅋ`); like any term, it must match for the query to.
//!
//! Typos: a term found in no word of the catalog's vocabulary (the distinct words of every
//! document, and the spellings of [`aliases`]) is replaced by the vocabulary words nearest to it
//! by Damerau–Levenshtein distance (one edit for terms of 4–7 letters, two from 8; shorter terms
//! are never corrected), compared on the whole word and on its prefix. Working on jamo makes this
//! useful for Korean too: `뚜산` is one jamo away from `두산`, while the syllables share nothing;
//! `두산베어즈` is one from the spelling `두산베어스`, which then stands for the club. Initials
//! are not corrected.
//!
//! Its cost is bounded: at most [`MAX_TERMS`] terms, each corrected only up to
//! [`MAX_CORRECTED_CHARS`] letters, against at most [`MAX_VOCABULARY`] words and the alias
//! table's spellings (a fixed couple of hundred) in one pass (each word's first letters decoded
//! once for all terms), each compared by a banded distance that gives up past the edit budget
//! (at most `(2 × 2 + 1) × 40` cells a comparison, whatever the word's length, no allocation), to
//! at most [`MAX_ALTERNATIVES`] words; the expansion of a term is a scan of the alias table for
//! each of its alternatives, and a term keeps at most [`MAX_EXPANDED`] alternatives. The listing
//! runs it on the blocking pool, off the async workers.

pub mod aliases;

/// Most terms taken from one query.
pub const MAX_TERMS: usize = 8;
/// Longest term (in normalized letters: jamo count, a Hangul syllable being 2–3) that is
/// corrected; a longer one is searched as it is.
pub const MAX_CORRECTED_CHARS: usize = 40;
/// Most vocabulary words a query is corrected against (the most frequent ones).
pub const MAX_VOCABULARY: i64 = 20_000;
/// Fewest initial consonants an initials-only term must have to match anything.
pub const MIN_INITIALS: usize = 2;
/// Most alternatives a term is searched with (corrections and the names they stand for).
pub const MAX_EXPANDED: usize = 16;

const INITIALS: [char; 19] = [
    'ㄱ', 'ㄲ', 'ㄴ', 'ㄷ', 'ㄸ', 'ㄹ', 'ㅁ', 'ㅂ', 'ㅃ', 'ㅅ', 'ㅆ', 'ㅇ', 'ㅈ', 'ㅉ', 'ㅊ', 'ㅋ',
    'ㅌ', 'ㅍ', 'ㅎ',
];
const MEDIALS: [char; 21] = [
    'ㅏ', 'ㅐ', 'ㅑ', 'ㅒ', 'ㅓ', 'ㅔ', 'ㅕ', 'ㅖ', 'ㅗ', 'ㅘ', 'ㅙ', 'ㅚ', 'ㅛ', 'ㅜ', 'ㅝ', 'ㅞ',
    'ㅟ', 'ㅠ', 'ㅡ', 'ㅢ', 'ㅣ',
];
const FINALS: [Option<char>; 28] = [
    None,
    Some('ㄱ'),
    Some('ㄲ'),
    Some('ㄳ'),
    Some('ㄴ'),
    Some('ㄵ'),
    Some('ㄶ'),
    Some('ㄷ'),
    Some('ㄹ'),
    Some('ㄺ'),
    Some('ㄻ'),
    Some('ㄼ'),
    Some('ㄽ'),
    Some('ㄾ'),
    Some('ㄿ'),
    Some('ㅀ'),
    Some('ㅁ'),
    Some('ㅂ'),
    Some('ㅄ'),
    Some('ㅅ'),
    Some('ㅆ'),
    Some('ㅇ'),
    Some('ㅈ'),
    Some('ㅊ'),
    Some('ㅋ'),
    Some('ㅌ'),
    Some('ㅍ'),
    Some('ㅎ'),
];

/// The initial consonant of a Hangul syllable (`롯` → `ㄹ`); None for anything else.
pub fn initial(c: char) -> Option<char> {
    let code = u32::from(c);
    (0xAC00..0xAC00 + 11172)
        .contains(&code)
        .then(|| INITIALS[(code - 0xAC00) as usize / 588])
}

/// Whether a normalized term is initial consonants only (`ㄹㄷ`, `ㄷㅅㅂㅇㅅ`: 초성).
pub fn is_initials(term: &str) -> bool {
    !term.is_empty() && term.chars().all(|c| INITIALS.contains(&c))
}

fn push_decomposed(out: &mut String, c: char) {
    let code = u32::from(c);
    if (0xAC00..0xAC00 + 11172).contains(&code) {
        let s = (code - 0xAC00) as usize;
        out.push(INITIALS[s / 588]);
        out.push(MEDIALS[(s % 588) / 28]);
        if let Some(f) = FINALS[s % 28] {
            out.push(f);
        }
    } else {
        out.extend(c.to_lowercase());
    }
}

/// Lower-cases, decomposes Hangul syllables into jamo, turns everything that is not a letter or
/// a digit into a single space.
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    let mut space = true;
    for c in text.chars() {
        if c.is_alphanumeric() {
            push_decomposed(&mut out, c);
            space = false;
        } else if !space {
            out.push(' ');
            space = true;
        }
    }
    if out.ends_with(' ') {
        out.pop();
    }
    out
}

/// The normalized terms of a query (at most [`MAX_TERMS`]); empty when it has none.
pub fn terms(query: &str) -> Vec<String> {
    normalize(query)
        .split(' ')
        .filter(|t| !t.is_empty())
        .take(MAX_TERMS)
        .map(str::to_owned)
        .collect()
}

/// Builds the normalized search document from its parts.
pub fn document<'a>(parts: impl IntoIterator<Item = &'a str>) -> String {
    let joined: Vec<&str> = parts.into_iter().filter(|p| !p.is_empty()).collect();
    normalize(&joined.join(" "))
}

/// Edit distance with adjacent transpositions (optimal string alignment).
pub fn distance(a: &[char], b: &[char]) -> usize {
    let (n, m) = (a.len(), b.len());
    let mut d = vec![vec![0usize; m + 1]; n + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=n {
        for j in 1..=m {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[n][m]
}

/// Row length [`within`] keeps on the stack.
const STACK_ROW: usize = 64;

/// [`distance`] when it is at most `k`, else None, computing only the cells within `k` of the
/// diagonal (O(len × k)) and stopping once a row is all over `k`.
pub fn within(a: &[char], b: &[char], k: usize) -> Option<usize> {
    let (n, m) = (a.len(), b.len());
    if n.abs_diff(m) > k {
        return None;
    }
    let inf = k + 1;
    // Three rows; on the stack for the words correction compares (at most 43 letters).
    let mut stack = [0usize; 3 * STACK_ROW];
    let mut heap = Vec::new();
    let rows: &mut [usize] = if m < STACK_ROW {
        &mut stack[..3 * (m + 1)]
    } else {
        heap.resize(3 * (m + 1), 0);
        &mut heap
    };
    let (prev2, rest) = rows.split_at_mut(m + 1);
    let (mut prev, mut cur) = rest.split_at_mut(m + 1);
    let mut prev2 = prev2;
    prev2.fill(inf);
    for (j, cell) in prev.iter_mut().enumerate() {
        *cell = j.min(inf);
    }
    cur.fill(inf);
    for i in 1..=n {
        let lo = i.saturating_sub(k).max(1);
        let hi = (i + k).min(m);
        cur[0] = i.min(inf);
        if lo > 1 {
            cur[lo - 1] = inf;
        }
        if hi < m {
            cur[hi + 1] = inf;
        }
        let mut row_min = cur[0];
        for j in lo..=hi {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(prev2[j - 2] + 1);
            }
            cur[j] = v.min(inf);
            row_min = row_min.min(cur[j]);
        }
        if row_min > k {
            return None;
        }
        std::mem::swap(&mut prev2, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    Some(prev[m]).filter(|d| *d <= k)
}

/// How many edits a term of `len` letters may be away from a word (none past
/// [`MAX_CORRECTED_CHARS`]).
fn budget(len: usize) -> usize {
    match len {
        0..=3 => 0,
        4..=7 => 1,
        8..=MAX_CORRECTED_CHARS => 2,
        _ => 0,
    }
}

/// The alternatives a normalized `term` stands for: itself when some vocabulary word contains
/// it, else the nearest vocabulary words within the edit budget, else itself (matching nothing).
pub fn correct(term: &str, vocabulary: &[String]) -> Vec<String> {
    correct_all(&[term], &[vocabulary])
        .pop()
        .unwrap_or_else(|| vec![term.to_owned()])
}

/// Most alternatives one term is corrected to (the first found: the vocabulary comes most
/// frequent first).
pub const MAX_ALTERNATIVES: usize = 8;

/// A term being corrected.
struct Pending {
    term: Vec<char>,
    budget: usize,
    best: usize,
    out: Vec<String>,
}

impl Pending {
    /// Compares `word`, of which `w` holds the first letters (at least the term's length plus
    /// its budget plus one, when the word has them).
    fn consider(&mut self, word: &str, w: &[char]) {
        let n = self.term.len();
        // At most the letters a match can use: a longer word can only match on its prefix.
        let w = &w[..w.len().min(n + self.budget + 1)];
        // Within the best so far (or the budget): nothing farther can be kept.
        let k = self.best.min(self.budget);
        let whole = within(&self.term, w, k);
        let prefix = if w.len() > n {
            within(&self.term, &w[..n], k)
        } else {
            None
        };
        let Some(d) = whole.into_iter().chain(prefix).min() else {
            return;
        };
        if d < self.best {
            self.best = d;
            self.out.clear();
        }
        if self.out.len() < MAX_ALTERNATIVES && !self.out.iter().any(|o| o == word) {
            self.out.push(word.to_owned());
        }
    }
}

/// [`correct`] of each of `terms` in one pass over the vocabularies (most frequent words first).
fn correct_all(terms: &[&str], vocabularies: &[&[String]]) -> Vec<Vec<String>> {
    let vocabulary = || vocabularies.iter().flat_map(|v| v.iter());
    let mut pending: Vec<(usize, Pending)> = Vec::new();
    let mut out: Vec<Vec<String>> = terms.iter().map(|t| vec![(*t).to_owned()]).collect();
    for (i, term) in terms.iter().enumerate() {
        let t: Vec<char> = term.chars().collect();
        let budget = budget(t.len());
        if budget > 0 && !vocabulary().any(|w| w.contains(term)) {
            pending.push((
                i,
                Pending {
                    term: t,
                    budget,
                    best: budget + 1,
                    out: Vec::new(),
                },
            ));
        }
    }
    let Some(longest) = pending
        .iter()
        .map(|(_, p)| p.term.len() + p.budget + 1)
        .max()
    else {
        return out;
    };
    let mut w: Vec<char> = Vec::with_capacity(longest);
    for word in vocabulary() {
        w.clear();
        w.extend(word.chars().take(longest));
        for (_, p) in &mut pending {
            p.consider(word, &w);
        }
    }
    for (i, p) in pending {
        if !p.out.is_empty() {
            out[i] = p.out;
        }
    }
    out
}

/// [`correct`] for every term of a query: each term's alternatives, the term itself kept among
/// them (the vocabulary may lack a word that is newer than it, or rarer than its
/// [`MAX_VOCABULARY`] words).
pub fn correct_terms(terms: Vec<Vec<String>>, vocabulary: &[String]) -> Vec<Vec<String>> {
    let firsts: Vec<&str> = terms
        .iter()
        .map(|alts| alts.first().map_or("", String::as_str))
        .collect();
    correct_all(&firsts, &[vocabulary])
        .into_iter()
        .zip(&firsts)
        .map(|(mut corrected, term)| {
            if !corrected.iter().any(|c| c == term) {
                corrected.push((*term).to_owned());
            }
            corrected
        })
        .collect()
}

/// The alternatives of every term of a query (each group's first entry is the term; an empty
/// group matches nothing and stays empty): initials-only terms become the names whose initials
/// they are (none below [`MIN_INITIALS`]); other terms are corrected against `vocabulary` and the
/// alias spellings ([`correct_terms`]), and each alternative brings the names it is a spelling
/// of ([`aliases::expand`]); at most [`MAX_EXPANDED`] a term.
pub fn expand(terms: Vec<Vec<String>>, vocabulary: &[String]) -> Vec<Vec<String>> {
    let words: Vec<&str> = terms
        .iter()
        .filter_map(|alts| alts.first())
        .map(String::as_str)
        .filter(|t| !is_initials(t))
        .collect();
    let mut corrected = correct_all(&words, &[vocabulary, aliases::spellings()]).into_iter();
    terms
        .iter()
        .map(|alts| {
            let Some(term) = alts.first() else {
                return Vec::new();
            };
            let mut out: Vec<String> = Vec::new();
            let push = |a: &str, out: &mut Vec<String>| {
                if out.len() < MAX_EXPANDED && !out.iter().any(|o| o == a) {
                    out.push(a.to_owned());
                }
            };
            if is_initials(term) {
                if term.chars().count() >= MIN_INITIALS {
                    for name in aliases::by_initials(term) {
                        push(name, &mut out);
                    }
                }
                return out;
            }
            let mut found = corrected.next().unwrap_or_default();
            if !found.iter().any(|c| c == term) {
                found.push(term.clone());
            }
            for a in &found {
                push(a, &mut out);
            }
            for a in &found {
                for name in aliases::expand(a) {
                    push(name, &mut out);
                }
            }
            out
        })
        .collect()
}

/// The search document of an event: title, kind words, team names, venue names and city.
pub fn event_document(
    kind: crate::domain::EventKind,
    title: &str,
    teams: &[&crate::domain::teams::Team],
    venue: &crate::model::VenueSummary,
) -> String {
    let team_words: Vec<String> = teams
        .iter()
        .map(|t| crate::domain::teams::search_words(t))
        .collect();
    let mut parts = vec![title, kind.as_str(), kind.search_words()];
    parts.extend(team_words.iter().map(String::as_str));
    parts.extend([
        venue.name.as_str(),
        venue.name_en.as_str(),
        venue.city.as_str(),
    ]);
    document(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hangul_decomposes_into_jamo() {
        assert_eq!(normalize("잠실"), "ㅈㅏㅁㅅㅣㄹ");
        assert_eq!(normalize("두산"), "ㄷㅜㅅㅏㄴ");
        assert_eq!(normalize("LG 트윈스!"), "lg ㅌㅡㅇㅟㄴㅅㅡ");
    }

    #[test]
    fn a_syllable_query_is_a_substring_of_the_document() {
        let doc = document([
            "두산 베어스 vs LG 트윈스",
            "잠실야구장",
            "Jamsil Baseball Stadium",
        ]);
        for q in ["잠실", "두산", "LG 트윈스", "jamsil", "베어"] {
            for t in terms(q) {
                assert!(doc.contains(&t), "{q}: {t} in {doc}");
            }
        }
    }

    #[test]
    fn typos_are_corrected_to_the_nearest_words() {
        let vocab: Vec<String> =
            normalize("musical museum midsummer 두산 부산 lotte giants jamsil 잠실야구장")
                .split(' ')
                .map(str::to_owned)
                .collect();
        assert_eq!(correct("muscial", &vocab), vec!["musical"]);
        assert_eq!(correct("gaints", &vocab), vec!["giants"]);
        assert_eq!(correct("midsumer", &vocab), vec!["midsummer"]);
        assert_eq!(correct("jamsl", &vocab), vec!["jamsil"]);
        assert_eq!(
            correct(&normalize("뚜산"), &vocab),
            vec![normalize("두산"), normalize("부산")]
        );
        assert_eq!(
            correct(&normalize("잠실"), &vocab),
            vec![normalize("잠실")],
            "a substring stays"
        );
        assert_eq!(correct("jam", &vocab), vec!["jam"]);
        assert_eq!(correct("zzqxv", &vocab), vec!["zzqxv"]);
        assert_eq!(
            correct("lgo", &vocab),
            vec!["lgo"],
            "short terms are not corrected"
        );
    }

    #[test]
    fn the_banded_distance_agrees_with_the_full_one() {
        let words = [
            "",
            "a",
            "ab",
            "ba",
            "abc",
            "acb",
            "kitten",
            "sitting",
            "musical",
            "muscial",
            "museum",
            "giants",
            "gaints",
            "ㄷㅜㅅㅏㄴ",
            "ㄸㅜㅅㅏㄴ",
            "ㅂㅜㅅㅏㄴ",
            "midsummer",
            "midsumer",
        ];
        for a in words {
            for b in words {
                let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
                let full = distance(&a, &b);
                for k in 0..4 {
                    assert_eq!(
                        within(&a, &b, k),
                        Some(full).filter(|d| *d <= k),
                        "{a:?} {b:?} {k}"
                    );
                }
            }
        }
    }

    #[test]
    fn long_terms_are_not_corrected_and_terms_are_kept() {
        let vocab: Vec<String> = vec!["musical".into(), "a".repeat(50)];
        let long = format!("{}b", "a".repeat(49));
        assert_eq!(correct(&long, &vocab), vec![long.clone()]);
        // At most MAX_ALTERNATIVES, the first (most frequent) ones.
        let near: Vec<String> = ('a'..='t').map(|c| format!("abcd{c}")).collect();
        assert_eq!(correct("abcdz", &near), near[..MAX_ALTERNATIVES].to_vec());
        assert_eq!(
            correct_terms(vec![vec!["muscial".into()], vec!["musical".into()]], &vocab),
            vec![
                vec!["musical".to_owned(), "muscial".to_owned()],
                vec!["musical".to_owned()]
            ]
        );
    }

    #[test]
    fn distance_counts_transpositions_once() {
        let c = |s: &str| s.chars().collect::<Vec<_>>();
        assert_eq!(distance(&c("ab"), &c("ba")), 1);
        assert_eq!(distance(&c("kitten"), &c("sitting")), 3);
        assert_eq!(distance(&c(""), &c("abc")), 3);
    }

    fn expanded(q: &str, vocab: &[String]) -> Vec<Vec<String>> {
        expand(terms(q).into_iter().map(|t| vec![t]).collect(), vocab)
    }

    #[test]
    fn names_without_spaces_stand_for_the_spaced_name() {
        let vocab: Vec<String> = Vec::new();
        let doosan = normalize("두산 베어스");
        for q in ["두산베어스", "두산베어즈", "뚜산베어스"] {
            let alts = &expanded(q, &vocab)[0];
            assert!(alts.contains(&doosan), "{q}: {alts:?}");
        }
        let lg = &expanded("LG트윈스", &vocab)[0];
        assert_eq!(lg, &vec![normalize("LG트윈스"), normalize("LG 트윈스")]);
        // A word that is no name stays itself.
        assert_eq!(
            expanded("musical", &vocab),
            vec![vec!["musical".to_owned()]]
        );
    }

    #[test]
    fn initials_match_names_only_and_not_alone() {
        let vocab: Vec<String> = vec![normalize("필드"), normalize("롯데")];
        assert_eq!(
            expanded("ㄹㄷ", &vocab),
            vec![vec![normalize("롯데 자이언츠")]]
        );
        assert!(
            is_initials("ㄹㄷ") && is_initials("ㄲ") && !is_initials("ㄹ데") && !is_initials("")
        );
        assert!(!is_initials(&normalize("롯데")));
        for q in ["ㄱ", "ㅋㅋ", "ㅋㅋㅋㅋㅋㅋㅋㅋㅋㅋㅋㅋ"] {
            assert_eq!(expanded(q, &vocab), vec![Vec::<String>::new()], "{q}");
        }
        assert_eq!(
            expanded("ㄹㄷ ㄱ", &vocab),
            vec![vec![normalize("롯데 자이언츠")], vec![]]
        );
        // Empty groups stay empty; a term's alternatives are bounded.
        assert_eq!(expand(vec![vec![]], &vocab), vec![Vec::<String>::new()]);
        let near: Vec<String> = ('a'..='z').map(|c| format!("abcd{c}")).collect();
        assert!(expanded("abcd", &near)[0].len() <= MAX_EXPANDED);
    }

    #[test]
    fn terms_never_hold_like_wildcards() {
        for q in ["%", "_", "\\", "두%산", "a_b", "100%", "%_\\%"] {
            assert!(
                terms(q).iter().all(|t| !t.contains(['%', '_', '\\'])),
                "{q}"
            );
        }
        assert_eq!(terms("두_산"), terms("두 산"));
    }

    #[test]
    fn punctuation_and_case_are_ignored() {
        assert_eq!(terms("  Musical, 'Hamlet'  "), vec!["musical", "hamlet"]);
        assert!(terms(" - ").is_empty());
        assert_eq!(terms("a b c d e f g h i j").len(), MAX_TERMS);
        assert_eq!(normalize("100%_done"), "100 done");
    }
}
