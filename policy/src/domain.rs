//! Closed vocabularies of the domain: data categories, case statuses, partner kinds, relations,
//! field types, and the validated BSN.

use std::fmt;

macro_rules! vocabulary {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, ::serde::Serialize, ::serde::Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant),+
        }
        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// The name used in covenant files and the API.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
            /// All names, comma-separated, for error messages.
            pub fn names() -> String {
                Self::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
            }
        }
        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result { f.write_str(self.as_str()) }
        }
        impl ::std::str::FromStr for $name {
            type Err = ();
            fn from_str(s: &str) -> Result<Self, ()> {
                match s { $($text => Ok($name::$variant),)+ _ => Err(()) }
            }
        }
    };
}
pub(crate) use vocabulary;

vocabulary! {
    /// What a field is, in the covenant's (and the law's) terms.
    Category {
        /// Name, BSN, date of birth.
        Identiteit => "identiteit",
        /// Address.
        Adres => "adres",
        /// Contact details.
        Contact => "contact",
        /// Police data (Wet politiegegevens).
        Politiegegevens => "politiegegevens",
        /// Criminal-law data (GDPR art. 10).
        Strafrechtelijk => "strafrechtelijk",
        /// Health (GDPR art. 9 special category).
        Gezondheid => "gezondheid",
        /// Religious or political belief (special category).
        Ideologie => "ideologie",
        /// Income and benefits.
        Inkomen => "inkomen",
        /// Data on minors.
        Jeugd => "jeugd",
        /// Risk group and risk profile.
        Risico => "risico",
        /// Interventions and plan goals.
        Interventie => "interventie",
        /// Contacts and key locations.
        Netwerk => "netwerk",
        /// Case status, regisseur, dates.
        Casus => "casus",
    }
}

vocabulary! {
    /// Status of a case in the work process (werkproces).
    CaseStatus {
        /// A signal has been received.
        Melding => "melding",
        /// The voorportaal assesses the signal.
        Duiding => "duiding",
        /// Included in the approach; a regisseur is appointed.
        Opgenomen => "opgenomen",
        /// The plan of approach is being made or reviewed.
        Plan => "plan",
        /// The plan is being carried out.
        Uitvoering => "uitvoering",
        /// No perspective for action and no safety risk (decided by the PTO-R only).
        Statisch => "statisch",
        /// Phase-out.
        Afbouw => "afbouw",
        /// Closed.
        Afgesloten => "afgesloten",
        /// Assessed and not included.
        NietOpgenomen => "niet-opgenomen",
    }
}

impl CaseStatus {
    /// Whether any work process could move a case from `self` to `to`: not out of a closed
    /// status, not back to the first one, not to itself. Which moves exist beyond that, and
    /// who makes them, is the covenant's `[[transition]]` table (the 2016 and the 2019 process
    /// differ: docs/covenant.md).
    pub fn may_ever_become(self, to: CaseStatus) -> bool {
        !self.is_closed() && to != Self::INITIAL && self != to
    }

    /// The status a new case starts in.
    pub const INITIAL: CaseStatus = CaseStatus::Melding;

    /// Whether the case is over (closed, or assessed and not included): no step leads on.
    pub fn is_closed(self) -> bool {
        matches!(self, CaseStatus::Afgesloten | CaseStatus::NietOpgenomen)
    }
}

vocabulary! {
    /// To whom the notification letter went (the Handreiking, "2. De notificatiebrief").
    NotificationTo {
        /// The person, at the address where registered, or handed over in person.
        Betrokkene => "betrokkene",
        /// The parents or (family) guardian of a minor, besides the minor.
        OudersVoogd => "ouders-voogd",
        /// The parents or family members in a family approach, besides the person.
        Familie => "familie",
        /// The penitentiary institution, for a person detained at inclusion.
        Inrichting => "inrichting",
    }
}

vocabulary! {
    /// Ideology a case is registered under (seeds 001, 002), for aggregates and assessment.
    Ideology {
        /// Jihadist.
        Jihadistisch => "jihadistisch",
        /// Right-wing extremist.
        RechtsExtremistisch => "rechts-extremistisch",
        /// Left-wing extremist.
        LinksExtremistisch => "links-extremistisch",
        /// Single issue (animals, environment).
        SingleIssue => "single-issue",
        /// Other or mixed.
        Anders => "anders",
        /// Not (yet) known.
        Onbekend => "onbekend",
    }
}

vocabulary! {
    /// How a partner relates to the covenant.
    PartnerKind {
        /// One of the seven core partners.
        Kernpartner => "kernpartner",
        /// An organisation that delivers regisseurs or takes part in meetings, not a core partner.
        Affiliated => "affiliated",
        /// Another municipality: phenomenon-level aggregates only.
        Peer => "peer",
    }
}

vocabulary! {
    /// The relation the requester must have to the case for a purpose.
    Relation {
        /// No relation required.
        None => "none",
        /// The requester is the case's own regisseur.
        IsRegisseur => "is-regisseur",
        /// The requester's partner is on the case's UVO.
        OnCase => "on-case",
        /// The requester works in the voorportaal.
        Voorportaal => "voorportaal",
    }
}

vocabulary! {
    /// Whether a purpose works on single cases or only on aggregates.
    Level {
        /// Case-level data about one person.
        Case => "case",
        /// Phenomenon-level figures only.
        Aggregate => "aggregate",
    }
}

vocabulary! {
    /// The type of a catalogue field; decides which transforms apply and how records are checked.
    FieldType {
        /// Free text.
        Text => "text",
        /// A whole number.
        Integer => "integer",
        /// Yes or no.
        Boolean => "boolean",
        /// A calendar date, `YYYY-MM-DD`.
        Date => "date",
        /// A Dutch citizen service number (11-proef checked).
        Bsn => "bsn",
        /// A Dutch postcode, `1234 AB`.
        Postcode => "postcode",
        /// A list of texts.
        TextList => "text-list",
    }
}

impl FieldType {
    /// Whether `value` is a well-formed value of this type (`null` is accepted as "no value").
    pub fn accepts(self, value: &serde_json::Value) -> bool {
        use serde_json::Value;
        match (self, value) {
            (_, Value::Null) => true,
            (FieldType::Text, Value::String(_)) => true,
            (FieldType::Integer, Value::Number(n)) => n.is_i64() || n.is_u64(),
            (FieldType::Boolean, Value::Bool(_)) => true,
            (FieldType::Date, Value::String(s)) => parse_date(s).is_some(),
            (FieldType::Bsn, Value::String(s)) => Bsn::check(s).is_ok(),
            (FieldType::Postcode, Value::String(s)) => postcode_area(s).is_some(),
            (FieldType::TextList, Value::Array(items)) => items.iter().all(Value::is_string),
            _ => false,
        }
    }
}

/// Parses an ISO 8601 calendar date (`YYYY-MM-DD`), checking that the day exists.
pub fn parse_date(s: &str) -> Option<time::Date> {
    let b = s.as_bytes();
    if b.len() != 10 || b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        b.get(r)?.iter().try_fold(0u32, |acc, c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    let year = i32::try_from(num(0..4)?).ok()?;
    let month = time::Month::try_from(u8::try_from(num(5..7)?).ok()?).ok()?;
    let day = u8::try_from(num(8..10)?).ok()?;
    time::Date::from_calendar_date(year, month, day).ok()
}

/// The four-digit area of a Dutch postcode (`"1012 AB"` or `"1012AB"` gives 1012).
pub fn postcode_area(s: &str) -> Option<u16> {
    let mut buf = [0u8; 6];
    let mut n = 0;
    for c in s.bytes().filter(|c| !c.is_ascii_whitespace()) {
        *buf.get_mut(n)? = c;
        n += 1;
    }
    if n != 6 {
        return None;
    }
    let (digits, letters) = buf.split_at(4);
    let valid = digits.iter().all(u8::is_ascii_digit)
        && digits.first() != Some(&b'0')
        && letters.iter().all(u8::is_ascii_alphabetic);
    valid.then(|| {
        digits
            .iter()
            .fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0'))
    })
}

/// A Dutch citizen service number that passed the 11-proef. Never logged, never displayed.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Bsn(String);

/// Why a string is not a BSN.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BsnError {
    /// Not exactly nine digits.
    #[error("a BSN has exactly nine digits")]
    Format,
    /// Nine digits, but the 11-proef fails.
    #[error("the BSN fails the 11-proef (check digit); check for a typing error")]
    Checksum,
}

impl Bsn {
    /// Checks the format and the 11-proef.
    pub fn parse(s: &str) -> Result<Self, BsnError> {
        Self::check(s).map(|()| Bsn(s.to_owned()))
    }

    /// Checks the format and the 11-proef without keeping the number.
    pub fn check(s: &str) -> Result<(), BsnError> {
        let bytes = s.as_bytes();
        if bytes.len() != 9 || !bytes.iter().all(u8::is_ascii_digit) {
            return Err(BsnError::Format);
        }
        let sum: i64 = bytes
            .iter()
            .zip([9i64, 8, 7, 6, 5, 4, 3, 2, -1])
            .map(|(d, w)| i64::from(d - b'0') * w)
            .sum();
        if sum == 0 || sum % 11 != 0 {
            return Err(BsnError::Checksum);
        }
        Ok(())
    }

    /// The nine digits. Callers must not log them.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Bsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Bsn(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bsn_elfproef() {
        assert!(Bsn::parse("111222333").is_ok());
        assert!(Bsn::parse("123456782").is_ok());
        assert_eq!(Bsn::parse("123456789"), Err(BsnError::Checksum));
        assert_eq!(Bsn::parse("000000000"), Err(BsnError::Checksum));
        assert_eq!(Bsn::parse("12345678"), Err(BsnError::Format));
        assert_eq!(Bsn::parse("12345678a"), Err(BsnError::Format));
        assert_eq!(
            format!("{:?}", Bsn::parse("111222333").unwrap()),
            "Bsn(<redacted>)"
        );
    }

    #[test]
    fn postcodes() {
        assert_eq!(postcode_area("1012 AB"), Some(1012));
        assert_eq!(postcode_area("1012ab"), Some(1012));
        assert_eq!(postcode_area("0123 AB"), None);
        assert_eq!(postcode_area("1012 A"), None);
        assert_eq!(postcode_area("10123AB"), None);
        assert_eq!(postcode_area("1012 ABC"), None);
        assert_eq!(postcode_area("9999ZZ"), Some(9999));
    }

    #[test]
    fn field_types_check_values() {
        use serde_json::json;
        assert!(FieldType::Date.accepts(&json!("2024-02-29")));
        assert!(!FieldType::Date.accepts(&json!("2023-02-29")));
        assert!(!FieldType::Date.accepts(&json!("2023-2-09")));
        assert!(!FieldType::Date.accepts(&json!("2023-13-01")));
        assert!(!FieldType::Date.accepts(&json!("+023-12-01")));
        assert_eq!(
            parse_date("2024-02-29"),
            time::Date::from_calendar_date(2024, time::Month::February, 29).ok()
        );
        assert!(FieldType::Integer.accepts(&json!(3)));
        assert!(!FieldType::Integer.accepts(&json!(3.5)));
        assert!(FieldType::TextList.accepts(&json!(["a", "b"])));
        assert!(!FieldType::TextList.accepts(&json!(["a", 1])));
        assert!(FieldType::Text.accepts(&json!(null)));
        assert!(!FieldType::Boolean.accepts(&json!("ja")));
    }

    #[test]
    fn no_process_leaves_an_end_state_or_returns_to_the_start() {
        use CaseStatus::*;
        assert!(Melding.may_ever_become(Duiding));
        assert!(Uitvoering.may_ever_become(Afgesloten));
        assert!(!Uitvoering.may_ever_become(Uitvoering));
        for s in CaseStatus::ALL {
            assert!(!Afgesloten.may_ever_become(*s));
            assert!(!NietOpgenomen.may_ever_become(*s));
            assert!(!s.may_ever_become(Melding));
        }
    }

    proptest! {
        #[test]
        fn one_digit_change_breaks_the_elfproef(pos in 0usize..8, delta in 1u8..10) {
            // Every single-digit error in the first eight positions is caught by the 11-proef.
            let mut digits = b"111222333".to_vec();
            digits[pos] = b'0' + (digits[pos] - b'0' + delta) % 10;
            let s = String::from_utf8(digits).unwrap();
            prop_assert!(Bsn::parse(&s).is_err());
        }
    }
}
