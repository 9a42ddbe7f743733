//! Search as Korean fans type it, against the seeded catalog (issue 16): team names without
//! spaces, Latin and Hangul mixed, initials only (초성), venue nicknames, typos; the abuse cases
//! (a lone initial, junk, SQL wildcards, an over-long query); and the quality figure over the
//! fixed query set in `tests/search_queries.tsv` (hits@5, see docs/benchmarks.md).
//!
//! Every team and venue query is compared with the listing's own filter (`team=`, `venue_id=`)
//! over the same window: the search must find exactly those events, first page of 100 alike.

use catalog::seed::layout::venue_id;
use serde_json::Value;

use crate::{
    seeded::seeded_at,
    support::{App, saturday_noon},
};

/// The seeded catalog with its clock pinned to Saturday noon in Seoul.
async fn seeded(label: &str) -> App {
    seeded_at(label, saturday_noon()).await
}

/// The items of `GET /api/v1/events` with `params` (sent URL-encoded), checking it is a 200.
async fn list(app: &App, params: &[(&str, &str)]) -> Vec<Value> {
    let r = app
        .server
        .client
        .get(app.server.url("/api/v1/events"))
        .query(params)
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    assert_eq!(status, 200, "{params:?}: {body}");
    body["items"].as_array().cloned().unwrap_or_default()
}

fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|i| i["id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn plays(item: &Value, team: &str) -> bool {
    item["home_team"]["code"] == team || item["away_team"]["code"] == team
}

/// `q` finds exactly the games of `team` (the `team=` filter's first 100), home and away.
async fn finds_team(app: &App, q: &str, team: &str) {
    let found = list(app, &[("q", q), ("limit", "100")]).await;
    let expected = list(app, &[("team", team), ("limit", "100")]).await;
    assert_eq!(expected.len(), 100, "the seed has a season of {team} games");
    assert!(
        found.iter().all(|i| plays(i, team)),
        "{q}: not only {team}'s games: {:?}",
        found
            .iter()
            .filter(|i| !plays(i, team))
            .map(|i| &i["title"])
            .collect::<Vec<_>>()
    );
    assert!(
        found.iter().any(|i| i["home_team"]["code"] == team)
            && found.iter().any(|i| i["away_team"]["code"] == team),
        "{q}: home and away games of {team}"
    );
    assert_eq!(ids(&found), ids(&expected), "{q}: every game of {team}");
}

/// `q` finds exactly the events at the seeded stadium `slug` (the `venue_id=` filter's first
/// 100).
async fn finds_venue(app: &App, q: &str, slug: &str) {
    let id = venue_id(slug).to_string();
    let found = list(app, &[("q", q), ("limit", "100")]).await;
    let expected = list(app, &[("venue_id", &id), ("limit", "100")]).await;
    assert!(expected.len() > 20, "the seed has games at {slug}");
    assert!(
        found.iter().all(|i| i["venue"]["id"] == id.as_str()),
        "{q}: only events at {slug}: {:?}",
        found
            .iter()
            .filter(|i| i["venue"]["id"] != id.as_str())
            .map(|i| &i["venue"]["name"])
            .collect::<Vec<_>>()
    );
    assert_eq!(ids(&found), ids(&expected), "{q}: every event at {slug}");
}

macro_rules! team_query {
    ($($name:ident: $q:literal => $team:literal;)*) => {$(
        #[tokio::test]
        async fn $name() {
            let app = seeded(stringify!($name)).await;
            finds_team(&app, $q, $team).await;
            app.finish().await;
        }
    )*};
}

macro_rules! venue_query {
    ($($name:ident: $q:literal => $slug:literal;)*) => {$(
        #[tokio::test]
        async fn $name() {
            let app = seeded(stringify!($name)).await;
            finds_venue(&app, $q, $slug).await;
            app.finish().await;
        }
    )*};
}

team_query! {
    no_space_doosan_bears: "두산베어스" => "doosan";
    no_space_lotte_giants: "롯데자이언츠" => "lotte";
    no_space_elji_twins: "엘지트윈스" => "lg";
    no_space_hanwha_eagles: "한화이글스" => "hanwha";
    mixed_lg_twins: "LG트윈스" => "lg";
    mixed_kt_wiz: "KT위즈" => "kt";
    mixed_ssg_landers: "SSG랜더스" => "ssg";
    initials_lotte: "ㄹㄷ" => "lotte";
}

venue_query! {
    nickname_lapak_is_samsung_lions_park: "라팍" => "daegu";
    nickname_enpak_is_nc_park: "엔팍" => "changwon";
    nickname_gocheok_dome: "고척돔" => "gocheok";
    nickname_champil_is_champions_field: "챔필" => "gwangju";
    nickname_jamsil: "잠실" => "jamsil";
}

/// `ㄹㄷ` is 롯데's initials, not "any ㄹ followed by ㄷ": 인천SSG랜더스필드 and 챔피언스 필드
/// (필드), and 샤롯데씨어터 (whose name holds 롯데), are not found by it.
#[tokio::test]
async fn initials_match_whole_names_not_letters_anywhere() {
    let app = seeded("cat_initials").await;
    let found = list(&app, &[("q", "ㄹㄷ"), ("limit", "100")]).await;
    for venue in [
        "인천SSG랜더스필드",
        "광주-기아 챔피언스 필드",
        "샤롯데씨어터",
    ] {
        assert!(
            !found
                .iter()
                .any(|i| i["venue"]["name"] == venue && !plays(i, "lotte")),
            "{venue}"
        );
    }
    // The whole name's initials, and a club's nickname's.
    finds_team(&app, "ㄹㄷㅈㅇㅇㅊ", "lotte").await;
    finds_team(&app, "ㄷㅅㅂㅇㅅ", "doosan").await;
    // Initials mixed with words: both must match.
    let found = list(&app, &[("q", "ㄹㄷ 사직"), ("limit", "100")]).await;
    assert!(!found.is_empty());
    assert!(
        found
            .iter()
            .all(|i| plays(i, "lotte") && i["venue"]["name"] == "사직야구장")
    );
    app.finish().await;
}

/// A lone initial, laughter, junk, SQL wildcards and punctuation find nothing (not the whole
/// catalog); an empty or blank `q` is no search; an over-long one is a 400 naming `q`.
#[tokio::test]
async fn abuse_finds_nothing_or_is_refused() {
    let app = seeded("cat_search_abuse").await;
    let everything = list(&app, &[("limit", "100")]).await;
    assert_eq!(everything.len(), 100);
    for q in [
        "ㄱ",
        "ㅎ",
        "ㄱ ㄴ",
        "ㅋㅋ",
        "ㅋㅋㅋㅋㅋㅋ",
        "zzqxv",
        "%",
        "_",
        "%%",
        "%_%",
        "\\",
        "'",
        "--",
        "🙂",
        "'; DROP TABLE events; --",
        "ㄹㄷ ㄱ",
    ] {
        let found = list(&app, &[("q", q), ("limit", "100")]).await;
        assert!(
            found.is_empty(),
            "{q:?} found {:?}",
            found
                .iter()
                .map(|i| &i["title"])
                .take(3)
                .collect::<Vec<_>>()
        );
    }
    for q in ["", " ", "   "] {
        let found = list(&app, &[("q", q), ("limit", "100")]).await;
        assert_eq!(ids(&found), ids(&everything), "{q:?}");
    }
    // Wildcards are literal (and, being punctuation, not part of any word): `두_산` is the two
    // terms 두 and 산, not "두, any letter, 산"; `두산 %` is `두산`.
    let two_terms = ids(&list(&app, &[("q", "두 산"), ("limit", "100")]).await);
    assert!(!two_terms.is_empty());
    assert_eq!(
        ids(&list(&app, &[("q", "두_산"), ("limit", "100")]).await),
        two_terms
    );
    let doosan = ids(&list(&app, &[("q", "두산"), ("limit", "100")]).await);
    for q in ["두산 %", "%두산%", "_ 두산 _"] {
        assert_eq!(
            ids(&list(&app, &[("q", q), ("limit", "100")]).await),
            doosan,
            "{q}"
        );
    }
    // The longest query accepted, of words, initials and junk, answers (bounded work);
    // one more character is refused.
    let long: String = "두산베어스 ㄹㄷ 라팍 zzqxv %_ "
        .repeat(5)
        .chars()
        .take(100)
        .collect();
    let found = list(&app, &[("q", &long), ("limit", "100")]).await;
    assert!(found.is_empty(), "every term must match");
    let initials = "ㄹ".repeat(100);
    assert!(
        list(&app, &[("q", &initials), ("limit", "100")])
            .await
            .is_empty()
    );
    let r = app
        .server
        .client
        .get(app.server.url("/api/v1/events"))
        .query(&[("q", "ㄹ".repeat(101))])
        .send()
        .await
        .expect("request");
    assert_eq!(r.status().as_u16(), 400);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .is_ok_and(|c| c.starts_with("application/problem+json"))
    );
    let body: Value = r.json().await.unwrap_or(Value::Null);
    assert_eq!(body["code"], "validation_failed");
    assert_eq!(body["errors"][0]["field"], "q");
    app.finish().await;
}

/// Typo correction still works, and reaches the new spellings: a typo of a no-space name.
#[tokio::test]
async fn typos_are_still_corrected() {
    let app = seeded("cat_search_typos").await;
    let found = list(&app, &[("q", "뚜산"), ("limit", "100")]).await;
    assert!(found.iter().any(|i| plays(i, "doosan")));
    finds_team(&app, "두산 베어즈", "doosan").await;
    finds_team(&app, "두산베어즈", "doosan").await;
    finds_team(&app, "Lotte Gaints", "lotte").await;
    finds_venue(&app, "Jamsl", "jamsil").await;
    app.finish().await;
}

/// One expectation of the quality set.
enum Expected {
    Team(String),
    Venue(String),
    Kind(String),
    Nothing,
}

impl Expected {
    fn parse(s: &str) -> Self {
        match s.split_once(':') {
            Some(("team", t)) => Self::Team(t.to_owned()),
            Some(("venue", v)) => Self::Venue(v.to_owned()),
            Some(("kind", k)) => Self::Kind(k.to_owned()),
            _ if s == "none" => Self::Nothing,
            _ => panic!("unknown expectation {s:?}"),
        }
    }

    fn relevant(&self, item: &Value) -> bool {
        match self {
            Self::Team(t) => plays(item, t),
            Self::Venue(v) => item["venue"]["name"] == v.as_str(),
            Self::Kind(k) => item["kind"] == k.as_str(),
            Self::Nothing => false,
        }
    }
}

/// The quality figure: over the fixed set in `tests/search_queries.tsv`, hits@5 (the share of
/// queries with a relevant event among the first five results), precision@5 (the mean share of
/// the first five that are relevant, 0 when nothing is found) and how many of the queries
/// meant to find nothing found nothing. Prints them (`--no-capture`) and holds a floor.
#[tokio::test]
async fn search_quality_hits_at_5() {
    let app = seeded("cat_search_quality").await;
    let set = include_str!("../search_queries.tsv");
    let (mut queries, mut hits, mut precision, mut nothing, mut nothing_ok) = (0, 0, 0.0, 0, 0);
    let mut misses = Vec::new();
    for line in set
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let (q, expected) = line.split_once('\t').expect("query<TAB>expected");
        let expected = Expected::parse(expected.trim());
        let top = list(&app, &[("q", q), ("limit", "5")]).await;
        if let Expected::Nothing = expected {
            nothing += 1;
            if top.is_empty() {
                nothing_ok += 1;
            } else {
                misses.push(format!("{q:?}: expected nothing, found {}", top.len()));
            }
            continue;
        }
        queries += 1;
        let relevant = top.iter().filter(|i| expected.relevant(i)).count();
        if relevant > 0 {
            hits += 1;
        }
        if !top.is_empty() {
            precision += relevant as f64 / top.len() as f64;
        }
        if relevant < top.len() || top.is_empty() {
            misses.push(format!(
                "{q:?}: {relevant} of {} relevant: {:?}",
                top.len(),
                top.iter().map(|i| &i["title"]).collect::<Vec<_>>()
            ));
        }
    }
    let hits_at_5 = f64::from(hits) / f64::from(queries);
    let precision_at_5 = precision / f64::from(queries);
    eprintln!("{}", misses.join("\n"));
    eprintln!(
        "search quality: {queries} queries, hits@5 = {hits}/{queries} = {hits_at_5:.3}, \
         precision@5 = {precision_at_5:.3}; nothing expected: {nothing_ok}/{nothing} found nothing"
    );
    assert!(queries >= 40, "at least 40 queries");
    // Measured 0.689 before issue 16's changes and 1.000 after (docs/benchmarks.md); the floor
    // leaves room for a query or two, not for a regression of a kind.
    assert!(hits_at_5 >= 0.95, "hits@5 {hits_at_5:.3} under 0.95");
    assert!(
        precision_at_5 >= 0.95,
        "precision@5 {precision_at_5:.3} under 0.95"
    );
    assert_eq!(
        nothing_ok, nothing,
        "queries meant to find nothing found something"
    );
    app.finish().await;
}
