//! The kinds of events and venues the catalog knows.

use serde::{Deserialize, Serialize};

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The snake_case name used in JSON and in the database.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }

            /// Parses the snake_case name.
            pub fn parse(s: &str) -> Option<Self> {
                match s {
                    $($text => Some(Self::$variant),)+
                    _ => None,
                }
            }

            /// The accepted names, comma-separated (for error messages).
            pub fn names() -> String {
                Self::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ")
            }
        }
    };
}

string_enum! {
    /// What an event is.
    EventKind {
        /// A baseball game.
        Baseball = "baseball",
        /// A football (soccer) match.
        Football = "football",
        /// A basketball game.
        Basketball = "basketball",
        /// A concert.
        Concert = "concert",
        /// A musical.
        Musical = "musical",
        /// A play.
        Theatre = "theatre",
        /// Classical music, opera, ballet.
        Classical = "classical",
        /// An exhibition with timed entry.
        Exhibition = "exhibition",
        /// Anything else.
        Other = "other",
    }
}

string_enum! {
    /// What a venue is.
    VenueKind {
        /// An open-air stadium or a dome.
        Stadium = "stadium",
        /// An indoor arena.
        Arena = "arena",
        /// A concert hall.
        ConcertHall = "concert_hall",
        /// A theatre.
        Theatre = "theatre",
        /// A museum or gallery.
        Museum = "museum",
        /// Anything else.
        Other = "other",
    }
}

impl EventKind {
    /// Words a buyer may type for this kind, in Korean and English (for search).
    pub fn search_words(self) -> &'static str {
        match self {
            Self::Baseball => "baseball 야구 kbo",
            Self::Football => "football soccer 축구",
            Self::Basketball => "basketball 농구",
            Self::Concert => "concert 콘서트 공연",
            Self::Musical => "musical 뮤지컬 공연",
            Self::Theatre => "theatre theater play 연극 공연",
            Self::Classical => "classical 클래식 공연",
            Self::Exhibition => "exhibition museum 전시 전시회 박물관",
            Self::Other => "",
        }
    }

    /// Whether events of this kind are games between two teams.
    pub fn is_sport(self) -> bool {
        matches!(self, Self::Baseball | Self::Football | Self::Basketball)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for k in EventKind::ALL {
            assert_eq!(EventKind::parse(k.as_str()), Some(*k));
        }
        for k in VenueKind::ALL {
            assert_eq!(VenueKind::parse(k.as_str()), Some(*k));
        }
        assert_eq!(EventKind::parse("Baseball"), None);
        assert!(EventKind::names().contains("musical"));
    }
}
