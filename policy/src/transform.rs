//! Transforms a field's value according to its decision, and applies a whole record.
//!
//! Every catalogue field except `omit` fields appears in the output whether or not the source
//! record has a value, so that the shape of an answer never reveals whether a withheld field
//! exists. Errors name fields, never values.

use crate::compile::{CompiledCovenant, DecisionRef};
use crate::covenant::{
    Action, District, FieldRef, Generalization, PartnerRef, ProductRef, PurposeRef, RoleRef,
};
use crate::domain::{FieldType, parse_date, postcode_area};
use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;
use std::fmt;

type HmacSha256 = Hmac<Sha256>;

/// HMAC-SHA256 key for pseudonyms sent to one receiving partner. Two partners get unlinkable
/// pseudonyms for the same input because their keys differ.
/// Holds the keyed HMAC state, so each pseudonym costs only the message's own compressions.
#[derive(Clone)]
pub struct PseudonymKey(HmacSha256);

impl PseudonymKey {
    /// Derives the key for `partner_id` from the gateway's pseudonym master secret.
    pub fn derive(master: &[u8], partner_id: &str) -> Self {
        let mut mac = keyed(master);
        mac.update(b"ipga-r/pseudonym/v1/");
        mac.update(partner_id.as_bytes());
        let key: [u8; 32] = mac.finalize().into_bytes().into();
        PseudonymKey(keyed(&key))
    }

    /// A key from its own secret (for pseudonyms that are not per partner, such as the
    /// log's subject pseudonym; derive that secret with its own label).
    pub fn from_secret(secret: &[u8]) -> Self {
        PseudonymKey(keyed(secret))
    }

    /// The pseudonym of `input`: 128 bits of HMAC-SHA256, hex.
    pub fn pseudonym(&self, input: &[u8]) -> String {
        let mut mac = self.0.clone();
        mac.update(input);
        let digest = mac.finalize().into_bytes();
        hex::encode(digest.get(..16).unwrap_or(&digest))
    }
}

fn keyed(key: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    match HmacSha256::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable_hmac(),
    }
}

#[expect(
    clippy::panic,
    reason = "HMAC accepts keys of every length: this is unreachable"
)]
#[cold]
fn unreachable_hmac() -> ! {
    // `Hmac::new_from_slice` is documented never to fail; keep the type system honest.
    panic!("HMAC rejected a key, which it never does")
}

impl fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PseudonymKey(<secret>)")
    }
}

/// What a transform needs besides the value: today's date (for age bands) and the receiving
/// partner's pseudonym key. Passed in so tests control time and keys.
#[derive(Debug, Clone, Copy)]
pub struct TransformContext<'a> {
    /// The date ages are computed at.
    pub today: time::Date,
    /// Key of the receiving partner.
    pub pseudonym_key: &'a PseudonymKey,
}

/// Who receives: the compiled table's three request dimensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Audience {
    /// Receiving partner.
    pub partner: PartnerRef,
    /// Role the requester acts in.
    pub role: RoleRef,
    /// Purpose of the request.
    pub purpose: PurposeRef,
}

/// Why a record could not be applied. Names fields, never values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// The record has a field the catalogue does not declare for the product.
    #[error("field `{field}` is not in the catalogue of product {product}")]
    UnknownField {
        /// Product id.
        product: String,
        /// The unexpected field name.
        field: String,
    },
    /// A value does not have the field's declared type.
    #[error("field {field} does not hold a valid {expected} value")]
    InvalidValue {
        /// Qualified field name.
        field: String,
        /// Declared type.
        expected: FieldType,
    },
    /// The product reference is not in this covenant.
    #[error("unknown product")]
    UnknownProduct,
}

/// One field's fate in an applied record, for the disclosure log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldOutcome {
    /// The field.
    pub field: FieldRef,
    /// The decision applied.
    pub decision: DecisionRef,
}

/// What is sent for one field: the original value, a new (transformed) value, or a marker.
#[derive(Debug, Clone, PartialEq)]
pub enum Sent<'a> {
    /// The value as the source holds it.
    Same(&'a Value),
    /// A transformed value.
    New(Value),
    /// The decision's redaction marker.
    Marker(&'a Value),
}

impl Sent<'_> {
    /// The value as it will be serialised.
    pub fn value(&self) -> &Value {
        match self {
            Sent::Same(v) | Sent::Marker(v) => v,
            Sent::New(v) => v,
        }
    }
}

/// A record as it may leave the gateway, with what was done to each field. Borrows field
/// names from the covenant and values from the source record, so building it copies little;
/// it serialises as a JSON object.
#[derive(Debug, Clone)]
pub struct AppliedRecord<'a> {
    /// Field name and what is sent, in catalogue order; `omit` fields are absent.
    pub fields: Vec<(&'a str, Sent<'a>)>,
    /// One entry per catalogue field of the product.
    pub outcomes: Vec<FieldOutcome>,
}

impl AppliedRecord<'_> {
    /// What is sent for a field, by name.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.fields
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, s)| s.value())
    }

    /// An owned JSON object (for tests and callers that need one).
    pub fn to_map(&self) -> Map<String, Value> {
        self.fields
            .iter()
            .map(|(n, s)| ((*n).to_owned(), s.value().clone()))
            .collect()
    }
}

impl serde::Serialize for AppliedRecord<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.fields.len()))?;
        for (name, sent) in &self.fields {
            map.serialize_entry(name, sent.value())?;
        }
        map.end()
    }
}

/// What `exists` sends: `{"exists": true}` when the source holds a value, `{"exists": false}`
/// when not. An object, so that it is never confused with the field's own value (a boolean field
/// that holds `false` exists: `{"exists": true}`, never a bare `true` that reads as the value).
pub fn exists_marker(present: bool) -> Value {
    let mut m = serde_json::Map::with_capacity(1);
    m.insert("exists".to_owned(), Value::Bool(present));
    Value::Object(m)
}

/// Applies `action` to one value (`Null` = no value). `Ok(None)` means: leave the field out.
pub fn transform<'a>(
    action: Action,
    value: &'a Value,
    marker: Option<&'a Value>,
    districts: &[District],
    cx: &TransformContext<'_>,
) -> Result<Option<Sent<'a>>, &'static str> {
    static NULL: Value = Value::Null;
    let marker = || Sent::Marker(marker.unwrap_or(&NULL));
    if value.is_null() {
        return Ok(match action {
            Action::Omit => None,
            Action::Exists => Some(Sent::New(exists_marker(false))),
            Action::Withhold => Some(marker()),
            _ => Some(Sent::Same(value)),
        });
    }
    Ok(Some(match action {
        Action::Disclose => Sent::Same(value),
        Action::Omit => return Ok(None),
        Action::Withhold => marker(),
        Action::Exists => Sent::New(exists_marker(match value {
            Value::String(s) => !s.is_empty(),
            Value::Array(a) => !a.is_empty(),
            _ => true,
        })),
        Action::Mask { keep_last } => {
            let s = value.as_str().ok_or("mask needs a text value")?;
            Sent::New(Value::String(mask(s, usize::from(keep_last))))
        }
        Action::Pseudonymize => Sent::New(match value {
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|v| Value::String(pseudonym_of(cx.pseudonym_key, v)))
                    .collect(),
            ),
            v => Value::String(pseudonym_of(cx.pseudonym_key, v)),
        }),
        Action::Generalize { to, band } => {
            let s = value.as_str().ok_or("generalize needs a text value")?;
            Sent::New(Value::String(generalize(s, to, band, districts, cx.today)?))
        }
    }))
}

fn pseudonym_of(key: &PseudonymKey, v: &Value) -> String {
    match v {
        Value::String(s) => key.pseudonym(s.as_bytes()),
        other => key.pseudonym(other.to_string().as_bytes()),
    }
}

/// Keeps the last `keep` characters; every other character becomes `*`. A value no longer than
/// `keep` is masked entirely, so a short value is never sent whole.
pub fn mask(s: &str, keep: usize) -> String {
    let n = s.chars().count();
    if n <= keep {
        return "*".repeat(n);
    }
    let mut out = "*".repeat(n - keep);
    out.extend(s.chars().skip(n - keep));
    out
}

/// Reduces a value's precision.
pub fn generalize(
    s: &str,
    to: Generalization,
    band: u8,
    districts: &[District],
    today: time::Date,
) -> Result<String, &'static str> {
    match to {
        Generalization::Month => {
            let d = parse_date(s).ok_or("not a date")?;
            Ok(format!("{:04}-{:02}", d.year(), u8::from(d.month())))
        }
        Generalization::Year => Ok(format!("{:04}", parse_date(s).ok_or("not a date")?.year())),
        Generalization::AgeBand => {
            let born = parse_date(s).ok_or("not a date")?;
            let age = age_at(born, today).ok_or("birth date lies after today")?;
            let band = u32::from(band.max(1));
            let lo = age / band * band;
            Ok(if band == 1 {
                format!("{lo}")
            } else {
                format!("{lo}-{}", lo + band - 1)
            })
        }
        Generalization::PostcodeArea => Ok(postcode_area(s).ok_or("not a postcode")?.to_string()),
        Generalization::District => {
            postcode_area(s).ok_or("not a postcode")?;
            Ok(districts
                .iter()
                .find(|d| d.contains(s))
                .map_or_else(|| "onbekend".to_owned(), |d| d.name.clone()))
        }
    }
}

/// Completed years between `born` and `today`.
pub fn age_at(born: time::Date, today: time::Date) -> Option<u32> {
    if born > today {
        return None;
    }
    let mut years = today.year() - born.year();
    if (u8::from(today.month()), today.day()) < (u8::from(born.month()), born.day()) {
        years -= 1;
    }
    u32::try_from(years).ok()
}

impl CompiledCovenant {
    /// Checks a record against its product's catalogue: no unknown fields, every value typed.
    pub fn check_record(
        &self,
        product: ProductRef,
        record: &Map<String, Value>,
    ) -> Result<(), ApplyError> {
        let c = self.covenant();
        let pr = c
            .products
            .get(product.index())
            .ok_or(ApplyError::UnknownProduct)?;
        let mut known = 0usize;
        for (_, field) in c.product_fields(product) {
            if let Some(v) = record.get(&field.name) {
                known += 1;
                if !field.ty.accepts(v) {
                    return Err(ApplyError::InvalidValue {
                        field: field.qualified.clone(),
                        expected: field.ty,
                    });
                }
            }
        }
        if known != record.len() {
            let unknown = record
                .keys()
                .find(|k| !c.product_fields(product).any(|(_, f)| &f.name == *k))
                .cloned()
                .unwrap_or_default();
            return Err(ApplyError::UnknownField {
                product: pr.id.clone(),
                field: unknown,
            });
        }
        Ok(())
    }

    /// Decides and transforms every field of one record for `audience`. Fails closed: an unknown
    /// field or a mistyped value fails the whole record.
    pub fn apply_record<'a>(
        &'a self,
        audience: Audience,
        product: ProductRef,
        record: &'a Map<String, Value>,
        cx: &TransformContext<'_>,
    ) -> Result<AppliedRecord<'a>, ApplyError> {
        static NULL: Value = Value::Null;
        let c = self.covenant();
        let pr = c
            .products
            .get(product.index())
            .ok_or(ApplyError::UnknownProduct)?;
        let mut fields = Vec::with_capacity(pr.fields.len());
        let mut outcomes = Vec::with_capacity(pr.fields.len());
        let mut seen = 0usize;
        for (fref, field) in c.product_fields(product) {
            let value = match record.get(&field.name) {
                Some(v) => {
                    seen += 1;
                    if !field.ty.accepts(v) {
                        return Err(ApplyError::InvalidValue {
                            field: field.qualified.clone(),
                            expected: field.ty,
                        });
                    }
                    v
                }
                None => &NULL,
            };
            let dref = self.decision_ref(audience.partner, audience.role, audience.purpose, fref);
            let d = self.decision(dref);
            let out = transform(d.action, value, d.marker(), &c.districts, cx).map_err(|_| {
                ApplyError::InvalidValue {
                    field: field.qualified.clone(),
                    expected: field.ty,
                }
            })?;
            if let Some(out) = out {
                fields.push((field.name.as_str(), out));
            }
            outcomes.push(FieldOutcome {
                field: fref,
                decision: dref,
            });
        }
        if seen != record.len() {
            self.check_record(product, record)?;
        }
        Ok(AppliedRecord { fields, outcomes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn date(y: i32, m: u8, d: u8) -> time::Date {
        time::Date::from_calendar_date(y, time::Month::try_from(m).unwrap(), d).unwrap()
    }

    #[test]
    fn mask_known_answers() {
        assert_eq!(mask("0612345678", 2), "********78");
        assert_eq!(mask("111222333", 3), "******333");
        assert_eq!(mask("abc", 3), "***");
        assert_eq!(mask("ab", 4), "**");
        assert_eq!(mask("", 2), "");
    }

    #[test]
    fn age_band_respects_birthdays() {
        let today = date(2026, 11, 22);
        assert_eq!(age_at(date(1996, 11, 22), today), Some(30));
        assert_eq!(age_at(date(1996, 11, 23), today), Some(29));
        assert_eq!(age_at(date(2027, 1, 1), today), None);
        assert_eq!(
            generalize("1996-11-23", Generalization::AgeBand, 10, &[], today),
            Ok("20-29".into())
        );
        assert_eq!(
            generalize("1996-11-22", Generalization::AgeBand, 5, &[], today),
            Ok("30-34".into())
        );
        assert_eq!(
            generalize("2030-01-01", Generalization::AgeBand, 5, &[], today),
            Err("birth date lies after today")
        );
        assert_eq!(
            generalize("1996-11", Generalization::Month, 10, &[], today),
            Err("not a date")
        );
    }

    #[test]
    fn pseudonym_derivation_is_pinned() {
        // Computed independently: HMAC(HMAC(master, "ipga-r/pseudonym/v1/" + partner), input)[..16].
        // A change here silently breaks every partner's stored pseudonyms: it must be deliberate.
        let k = PseudonymKey::derive(b"master", "politie");
        assert_eq!(
            k.pseudonym(b"111222333"),
            "4ce536aeeb9735a7e1b4ebd084a7f0e2"
        );
    }

    #[test]
    fn absent_values_keep_the_answer_shape() {
        let key = PseudonymKey::derive(b"m", "p");
        let cx = TransformContext {
            today: date(2026, 1, 1),
            pseudonym_key: &key,
        };
        let marker = json!({"redacted": "c", "rule": "r", "ground": "g"});
        let null = Value::Null;
        let t = |a| {
            transform(a, &null, Some(&marker), &[], &cx)
                .unwrap()
                .map(|s| s.value().clone())
        };
        assert_eq!(t(Action::Withhold), Some(marker.clone()));
        assert_eq!(t(Action::Exists), Some(json!({"exists": false})));
        // A boolean field that holds `false` exists: never a bare value to mistake for it.
        let no = json!(false);
        let sent = transform(Action::Exists, &no, None, &[], &cx)
            .unwrap()
            .map(|s| s.value().clone());
        assert_eq!(sent, Some(json!({"exists": true})));
        assert_eq!(t(Action::Omit), None);
        assert_eq!(t(Action::Disclose), Some(Value::Null));
        assert_eq!(t(Action::Pseudonymize), Some(Value::Null));
    }

    #[test]
    fn lists_are_pseudonymised_element_by_element() {
        let key = PseudonymKey::derive(b"m", "p");
        let cx = TransformContext {
            today: date(2026, 1, 1),
            pseudonym_key: &key,
        };
        let v = json!(["a", "b"]);
        let out = transform(Action::Pseudonymize, &v, None, &[], &cx)
            .unwrap()
            .unwrap();
        assert_eq!(
            out.value(),
            &json!([key.pseudonym(b"a"), key.pseudonym(b"b")])
        );
    }
}
