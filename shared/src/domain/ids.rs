//! Slack ids as distinct types, so a channel id can never be passed where a
//! user id is expected. Parsing checks the shape Slack uses (an uppercase
//! letter, then uppercase letters and digits), which also keeps hostile
//! strings out of SQL parameters, log fields and Block Kit.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a string is not a Slack id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not a Slack {kind} id")]
pub struct ParseIdError {
    /// Which kind of id was expected.
    pub kind: &'static str,
    /// The offending input, shortened.
    pub value: String,
}

fn valid_shape(s: &str, first: &[u8]) -> bool {
    let bytes = s.as_bytes();
    (2..=32).contains(&bytes.len())
        && first.contains(&bytes[0])
        && bytes[1..]
            .iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

macro_rules! slack_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $first:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Parses a Slack id of this kind.
            pub fn parse(s: &str) -> Result<Self, ParseIdError> {
                let s = s.trim();
                if valid_shape(s, $first) {
                    Ok(Self(s.to_owned()))
                } else {
                    Err(ParseIdError {
                        kind: $kind,
                        value: s.chars().take(40).collect(),
                    })
                }
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = ParseIdError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::parse(&s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl From<&$name> for String {
            fn from(id: &$name) -> String {
                id.0.clone()
            }
        }

        // Stored as `text`; read back only if it still has the shape, so
        // a row written by hand (or by a bug) cannot smuggle a malformed
        // id past the type.
        impl sqlx::Type<sqlx::Postgres> for $name {
            fn type_info() -> sqlx::postgres::PgTypeInfo {
                <String as sqlx::Type<sqlx::Postgres>>::type_info()
            }

            fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
                <String as sqlx::Type<sqlx::Postgres>>::compatible(ty)
            }
        }

        impl sqlx::Encode<'_, sqlx::Postgres> for $name {
            fn encode_by_ref(
                &self,
                buf: &mut sqlx::postgres::PgArgumentBuffer,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <&str as sqlx::Encode<sqlx::Postgres>>::encode(self.0.as_str(), buf)
            }
        }

        impl sqlx::Decode<'_, sqlx::Postgres> for $name {
            fn decode(
                value: sqlx::postgres::PgValueRef<'_>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                let text = <&str as sqlx::Decode<sqlx::Postgres>>::decode(value)?;
                Ok(Self::parse(text)?)
            }
        }
    };
}

slack_id!(
    /// A conversation: public (`C…`), private (`G…`) or direct (`D…`).
    ChannelId,
    "channel",
    b"CGD"
);
slack_id!(
    /// A person (`U…`, or `W…` on Enterprise Grid).
    UserId,
    "user",
    b"UW"
);
slack_id!(
    /// A workspace (`T…`) or an Enterprise Grid organisation (`E…`).
    TeamId,
    "team",
    b"TE"
);

impl UserId {
    /// How Slack renders a mention of this person: `<@U123>`.
    pub fn mention(&self) -> String {
        format!("<@{}>", self.0)
    }
}

/// Reads a user mention as Slack sends it in command text: `<@U123>` or
/// `<@U123|name>`. A bare id is not a mention.
pub fn parse_mention(s: &str) -> Option<UserId> {
    let inner = s.trim().strip_prefix("<@")?.strip_suffix('>')?;
    let id = inner.split_once('|').map_or(inner, |(id, _)| id);
    UserId::parse(id).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_shaped_ids_parse_by_kind() {
        assert_eq!(ChannelId::parse("C024BE91L").unwrap().as_ref(), "C024BE91L");
        assert!(ChannelId::parse("G8PSS9T3V").is_ok());
        assert!(ChannelId::parse("D0123").is_ok());
        assert!(UserId::parse("U2CERLKJA").is_ok());
        assert!(UserId::parse("W012A3CDE").is_ok());
        assert!(TeamId::parse("T1DC2JH3J").is_ok());
    }

    #[test]
    fn ids_of_the_wrong_kind_or_shape_are_refused() {
        assert!(ChannelId::parse("U2CERLKJA").is_err());
        assert!(UserId::parse("C024BE91L").is_err());
        for bad in [
            "",
            "U",
            "u2cerlkja",
            "U2CE RLKJA",
            "U2CE'--",
            "<@U123>",
            &"U".repeat(33),
        ] {
            assert!(UserId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn serde_validates_ids_on_the_way_in() {
        let ok: UserId = serde_json::from_str("\"U123\"").unwrap();
        assert_eq!(ok.mention(), "<@U123>");
        assert!(serde_json::from_str::<UserId>("\"not an id\"").is_err());
        assert_eq!(serde_json::to_string(&ok).unwrap(), "\"U123\"");
    }

    #[test]
    fn mentions_are_read_with_or_without_a_label() {
        assert_eq!(parse_mention("<@U123>"), UserId::parse("U123").ok());
        assert_eq!(
            parse_mention(" <@W9ZZ|jane.doe> "),
            UserId::parse("W9ZZ").ok()
        );
        for not_a_mention in ["U123", "<@u123>", "<#C123>", "<@U123", "<!channel>", "<@>"] {
            assert_eq!(parse_mention(not_a_mention), None, "{not_a_mention:?}");
        }
    }
}
