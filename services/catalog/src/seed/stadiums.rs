//! The nine KBO home stadiums of the 2026 season: names, clubs, approximate capacities, seat
//! grade names and KRW prices (weekday Tue–Thu / weekend Fri–Sun). Figures are approximate,
//! gathered from the clubs' ticket pages, Namu Wiki and Wikipedia as of the 2024–2025 seasons;
//! docs/services/catalog.md lists the sources. The seat maps are generated to these capacities
//! (see `layout.rs`); they are not the real section plans.

/// Where in the bowl a grade sits (see `layout.rs` for the shapes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zone {
    /// Field level behind home plate.
    Premium,
    /// Beside the premium block, tables.
    Table,
    /// Field-level seats along the foul lines.
    Exciting,
    /// Lower infield, between the bases.
    Central,
    /// Lower infield toward first and third base.
    WingNear,
    /// Lower infield past the bases.
    WingFar,
    /// Upper deck behind the plate.
    UpperCentral,
    /// Upper deck along the lines.
    UpperWing,
    /// Outfield stands.
    Outfield,
    /// Outfield lawn (general admission).
    Lawn,
}

/// A seat grade of a stadium.
#[derive(Debug, Clone, Copy)]
pub struct GradeDef {
    /// Code, e.g. `blue`.
    pub code: &'static str,
    /// Korean name as the club writes it.
    pub name: &'static str,
    /// English name.
    pub name_en: &'static str,
    /// Colour on the map.
    pub color: &'static str,
    /// Where it sits.
    pub zones: &'static [Zone],
    /// Share of the stadium's capacity, in per mille.
    pub share: u32,
    /// Weekday (Tue–Thu) price, KRW.
    pub weekday: i64,
    /// Weekend (Fri–Sun) price, KRW.
    pub weekend: i64,
}

/// A stadium.
#[derive(Debug, Clone, Copy)]
pub struct Stadium {
    /// Stable slug (natural key of the seeded venue).
    pub slug: &'static str,
    /// Korean name.
    pub name: &'static str,
    /// English name.
    pub name_en: &'static str,
    /// City.
    pub city: &'static str,
    /// Address.
    pub address: &'static str,
    /// Approximate capacity (seats and lawn).
    pub capacity: i32,
    /// Grades, best first.
    pub grades: &'static [GradeDef],
}

use Zone::*;

#[allow(clippy::too_many_arguments)] // a table row, read positionally
const fn g(
    code: &'static str,
    name: &'static str,
    name_en: &'static str,
    color: &'static str,
    zones: &'static [Zone],
    share: u32,
    weekday: i64,
    weekend: i64,
) -> GradeDef {
    GradeDef {
        code,
        name,
        name_en,
        color,
        zones,
        share,
        weekday,
        weekend,
    }
}

/// The nine stadiums.
#[rustfmt::skip] // a table: one grade per line
pub const STADIUMS: &[Stadium] = &[
    Stadium {
        slug: "jamsil",
        name: "잠실야구장",
        name_en: "Jamsil Baseball Stadium",
        city: "서울 Seoul",
        address: "서울특별시 송파구 올림픽로 25",
        capacity: 23_750,
        grades: &[
            g("premium", "프리미엄석", "Premium", "#6b2fa0", &[Premium], 10, 80_000, 90_000),
            g("table", "테이블석", "Table", "#c9a227", &[Table], 30, 45_000, 53_000),
            g("exciting", "익사이팅존", "Exciting Zone", "#2e8b57", &[Exciting], 20, 25_000, 30_000),
            g("blue", "블루석", "Blue", "#1f5fbf", &[Central], 160, 20_000, 22_000),
            g("orange", "오렌지석", "Orange", "#f28c28", &[WingNear], 160, 18_000, 20_000),
            g("red", "레드석", "Red", "#d63a3a", &[WingFar], 160, 16_000, 17_000),
            g("navy", "네이비석", "Navy", "#1b2a49", &[UpperCentral, UpperWing], 240, 13_000, 14_000),
            g("outfield", "외야그린석", "Outfield (Green)", "#5aa469", &[Outfield], 220, 8_000, 9_000),
        ],
    },
    Stadium {
        slug: "gocheok",
        name: "고척스카이돔",
        name_en: "Gocheok Sky Dome",
        city: "서울 Seoul",
        address: "서울특별시 구로구 경인로 430",
        capacity: 16_000,
        grades: &[
            g("diamond", "다이아몬드석", "Diamond", "#7fd3f7", &[Premium], 15, 70_000, 80_000),
            g("table", "테이블석", "Table", "#c9a227", &[Table], 35, 40_000, 45_000),
            g("infield_1f", "1층 내야지정석", "1F Infield Reserved", "#8b1e3f", &[Central, WingNear], 330, 15_000, 20_000),
            g("infield_2f", "2층 내야지정석", "2F Infield Reserved", "#b5475c", &[WingFar], 150, 12_000, 15_000),
            g("infield_4f", "4층 내야지정석", "4F Infield Reserved", "#d98c9a", &[UpperCentral, UpperWing], 250, 9_000, 11_000),
            g("outfield", "외야일반석", "Outfield", "#5aa469", &[Outfield], 220, 8_000, 10_000),
        ],
    },
    Stadium {
        slug: "incheon",
        name: "인천SSG랜더스필드",
        name_en: "Incheon SSG Landers Field",
        city: "인천 Incheon",
        address: "인천광역시 미추홀구 매소홀로 618",
        capacity: 23_000,
        grades: &[
            g("live_zone", "라이브존", "Live Zone", "#ce0e2d", &[Premium], 10, 60_000, 70_000),
            g("table", "테이블석", "Table", "#c9a227", &[Table], 40, 35_000, 40_000),
            g("cheering", "으쓱이존", "Cheering Zone", "#f2a900", &[WingNear], 150, 18_000, 20_000),
            g("infield_field", "내야필드석", "Infield Field", "#1f5fbf", &[Central, WingFar], 300, 16_000, 18_000),
            g("sky_view", "스카이뷰석", "Sky View", "#5b6770", &[UpperCentral, UpperWing], 220, 10_000, 12_000),
            g("outfield_field", "외야필드석", "Outfield Field", "#5aa469", &[Outfield], 230, 10_000, 12_000),
            g("green_zone", "그린존", "Green Zone (lawn)", "#8cc63f", &[Lawn], 50, 8_000, 10_000),
        ],
    },
    Stadium {
        slug: "suwon",
        name: "수원KT위즈파크",
        name_en: "Suwon KT Wiz Park",
        city: "수원 Suwon",
        address: "경기도 수원시 장안구 경수대로 893",
        capacity: 18_700,
        grades: &[
            g("central", "중앙지정석", "Central Reserved", "#111111", &[Premium], 20, 30_000, 35_000),
            g("table", "테이블석", "Table", "#c9a227", &[Table], 40, 35_000, 40_000),
            g("high_five", "하이파이브존", "High-Five Zone", "#e60012", &[Exciting], 20, 20_000, 25_000),
            g("cheering", "응원지정석", "Cheering Reserved", "#ed1c24", &[WingNear], 170, 15_000, 18_000),
            g("infield", "내야지정석", "Infield Reserved", "#4d4d4d", &[Central, WingFar], 330, 13_000, 15_000),
            g("sky_zone", "스카이존", "Sky Zone", "#7f7f7f", &[UpperCentral, UpperWing], 200, 9_000, 11_000),
            g("outfield_lawn", "외야잔디자유석", "Outfield Lawn (free seating)", "#8cc63f", &[Lawn], 220, 8_000, 9_000),
        ],
    },
    Stadium {
        slug: "daejeon",
        name: "대전한화생명볼파크",
        name_en: "Daejeon Hanwha Life Ballpark",
        city: "대전 Daejeon",
        address: "대전광역시 중구 대종로 373",
        capacity: 17_000,
        grades: &[
            g("catcher", "포수후면석", "Behind the Catcher", "#ff6600", &[Premium], 15, 60_000, 70_000),
            g("central_table", "중앙탁자석", "Central Table", "#c9a227", &[Table], 40, 35_000, 40_000),
            g("infield_a", "내야지정석A", "Infield Reserved A", "#f37321", &[Central], 200, 16_000, 18_000),
            g("cheering", "응원단석", "Cheering Section", "#ff9a3c", &[WingNear], 150, 15_000, 17_000),
            g("infield_b", "내야지정석B", "Infield Reserved B", "#ffb36b", &[WingFar, UpperCentral, UpperWing], 340, 14_000, 16_000),
            g("outfield", "외야지정석", "Outfield Reserved", "#5aa469", &[Outfield], 200, 10_000, 12_000),
            g("lawn", "잔디석", "Lawn", "#8cc63f", &[Lawn], 55, 8_000, 9_000),
        ],
    },
    Stadium {
        slug: "gwangju",
        name: "광주-기아 챔피언스 필드",
        name_en: "Gwangju-Kia Champions Field",
        city: "광주 Gwangju",
        address: "광주광역시 북구 서림로 10",
        capacity: 20_500,
        grades: &[
            g("champion", "챔피언석", "Champion", "#ea0029", &[Premium], 12, 50_000, 60_000),
            g("central_table", "중앙테이블석", "Central Table", "#c9a227", &[Table], 38, 40_000, 45_000),
            g("k9", "K9석", "K9", "#06141f", &[Central], 200, 20_000, 22_000),
            g("k8", "K8석", "K8", "#3a3a3a", &[WingNear], 170, 17_000, 19_000),
            g("k5", "K5석", "K5", "#6d6e71", &[WingFar], 160, 14_000, 16_000),
            g("k3", "K3석", "K3", "#a7a9ac", &[UpperCentral, UpperWing], 200, 12_000, 13_000),
            g("outfield", "외야석", "Outfield", "#5aa469", &[Outfield], 220, 9_000, 10_000),
        ],
    },
    Stadium {
        slug: "daegu",
        name: "대구삼성라이온즈파크",
        name_en: "Daegu Samsung Lions Park",
        city: "대구 Daegu",
        address: "대구광역시 수성구 야구전설로 1",
        capacity: 24_000,
        grades: &[
            g("vip", "VIP석", "VIP", "#074ca1", &[Premium], 10, 50_000, 60_000),
            g("table", "테이블석", "Table", "#c9a227", &[Table], 40, 35_000, 40_000),
            g("blue_zone", "블루존", "Blue Zone", "#1f5fbf", &[Central], 170, 18_000, 20_000),
            g("infield", "내야지정석", "Infield Reserved", "#5b8fd6", &[WingNear], 180, 14_000, 16_000),
            g("away_cheering", "원정응원석", "Away Cheering", "#9e9e9e", &[WingFar], 120, 14_000, 16_000),
            g("sky_lower", "SKY하단지정석", "Sky Lower Reserved", "#7aa7e0", &[UpperCentral], 90, 10_000, 12_000),
            g("sky_upper", "SKY상단지정석", "Sky Upper Reserved", "#a9c6ef", &[UpperWing], 150, 8_000, 9_000),
            g("outfield", "외야지정석", "Outfield Reserved", "#5aa469", &[Outfield], 190, 9_000, 10_000),
            g("lawn", "잔디석", "Lawn", "#8cc63f", &[Lawn], 50, 7_000, 8_000),
        ],
    },
    Stadium {
        slug: "changwon",
        name: "창원NC파크",
        name_en: "Changwon NC Park",
        city: "창원 Changwon",
        address: "경상남도 창원시 마산회원구 삼호로 63",
        capacity: 17_983,
        grades: &[
            g("premium", "프리미엄석", "Premium", "#315288", &[Premium], 15, 40_000, 45_000),
            g("table", "테이블석", "Table", "#c9a227", &[Table], 45, 30_000, 35_000),
            g("infield", "내야석", "Infield", "#315288", &[Central, WingNear], 330, 15_000, 17_000),
            g("cheering", "응원석", "Cheering", "#aa8b56", &[WingFar], 130, 14_000, 16_000),
            g("infield_upper", "3층 내야석", "3F Infield", "#7b93b8", &[UpperCentral, UpperWing], 200, 10_000, 12_000),
            g("outfield", "외야석", "Outfield", "#5aa469", &[Outfield], 220, 9_000, 10_000),
            g("lawn", "외야잔디석", "Outfield Lawn", "#8cc63f", &[Lawn], 60, 7_000, 8_000),
        ],
    },
    Stadium {
        slug: "sajik",
        name: "사직야구장",
        name_en: "Sajik Baseball Stadium",
        city: "부산 Busan",
        address: "부산광역시 동래구 사직로 45",
        capacity: 22_990,
        grades: &[
            g("central_table", "중앙탁자석", "Central Table", "#041e42", &[Premium], 15, 45_000, 50_000),
            g("wide_table", "와이드탁자석", "Wide Table", "#c9a227", &[Table], 35, 35_000, 40_000),
            g("cheering_table", "응원탁자석", "Cheering Table", "#d00f31", &[Exciting], 20, 30_000, 35_000),
            g("infield_field", "내야필드석", "Infield Field", "#1f5fbf", &[Central, WingNear], 330, 15_000, 18_000),
            g("infield_upper", "내야상단석", "Infield Upper", "#7aa7e0", &[WingFar, UpperCentral, UpperWing], 350, 12_000, 14_000),
            g("outfield", "외야석", "Outfield", "#5aa469", &[Outfield], 250, 9_000, 10_000),
        ],
    },
];

/// The stadium with this slug.
pub fn by_slug(slug: &str) -> Option<&'static Stadium> {
    STADIUMS.iter().find(|s| s.slug == slug)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up_and_prices_rise_on_weekends() {
        assert_eq!(STADIUMS.len(), 9);
        for s in STADIUMS {
            let total: u32 = s.grades.iter().map(|g| g.share).sum();
            assert_eq!(total, 1000, "{}", s.slug);
            for g in s.grades {
                assert!(
                    g.weekend >= g.weekday && g.weekday > 0,
                    "{} {}",
                    s.slug,
                    g.code
                );
            }
        }
        for t in crate::domain::teams::TEAMS {
            assert!(by_slug(t.home).is_some(), "{}", t.code);
        }
    }
}
