//! The review of a covenant change (issue 37): every difference between two covenant texts,
//! section by section and item by item, each line naming whose signature it needs. Built from
//! the documents themselves, not from the decisions they compile to, so that a change that
//! moves no decision today (a prohibition removed, a witness dropped, a retention period set to
//! 0) still shows; and a change of comments or layout alone shows as such.
//!
//! Whose signature: a change to partner X's registry entry, to X's products, or to a rule or
//! prohibition about X's data (the owners of the fields it covers, before or after) needs X;
//! everything shared (the partner list, roles, purposes, governance, witnesses, retention,
//! bodies, transitions, the case register, aggregates, texts) needs the covenant's threshold.

use crate::compile::CompiledCovenant;
use crate::covenant::Covenant;
use serde::Serialize;
use std::collections::BTreeSet;

/// What happened to an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeKind {
    /// In the new text only.
    Added,
    /// In the old text only.
    Removed,
    /// In both, different.
    Changed,
}

/// Whose signature a line needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "by", content = "partners")]
pub enum Needs {
    /// These partners' (the owners of what changes).
    Partners(BTreeSet<String>),
    /// The covenant's threshold of core partners (a shared part).
    Threshold,
}

/// One difference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReviewLine {
    /// The section's path (`prohibition`, `retention.log`, `case_register.appoint.regisseur`).
    pub section: String,
    /// The item within it (its `id`, else its `name`), if the section is a list.
    pub item: Option<String>,
    /// Added, removed or changed.
    pub change: ChangeKind,
    /// What changed, readably: `key: before → after` for each key of the item.
    pub detail: String,
    /// Whose signature it needs.
    pub needs: Needs,
}

/// The whole review of a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Review {
    /// Every difference, in the documents' order of sections.
    pub lines: Vec<ReviewLine>,
    /// Every partner whose signature some line needs.
    pub partners: BTreeSet<String>,
    /// Whether some line needs the threshold.
    pub threshold: bool,
}

/// Why two texts could not be compared.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a TOML document: {0}")]
pub struct ReviewError(String);

/// Compares two covenant texts and their compiled forms (for whose data a rule covers).
pub fn review(
    old_src: &str,
    old: &CompiledCovenant,
    new_src: &str,
    new: &CompiledCovenant,
) -> Result<Review, ReviewError> {
    let parse = |s: &str| {
        s.parse::<toml::Table>()
            .map_err(|e| ReviewError(e.message().to_owned()))
    };
    let (a, b) = (parse(old_src)?, parse(new_src)?);
    let mut raw = Vec::new();
    diff_table("", &a, &b, &mut raw);
    let mut lines: Vec<ReviewLine> = raw
        .into_iter()
        .map(|r| {
            let needs = needs(&r, old.covenant(), new.covenant());
            ReviewLine {
                section: r.section,
                item: r.item,
                change: r.change,
                detail: r.detail,
                needs,
            }
        })
        .collect();
    // Key material read from files changes the version without changing the text: compared
    // on the resolved keys, one line per partner whose keys changed so.
    for (id, what) in key_changes(old.covenant(), new.covenant()) {
        if !lines
            .iter()
            .any(|l| l.section == "partner" && l.item.as_deref() == Some(id.as_str()))
        {
            lines.push(ReviewLine {
                section: "partner".to_owned(),
                item: Some(id.clone()),
                change: ChangeKind::Changed,
                detail: format!("key material read from files: {what}"),
                needs: Needs::Partners(BTreeSet::from([id])),
            });
        }
    }
    if lines.is_empty() && old_src != new_src {
        lines.push(ReviewLine {
            section: "(text)".to_owned(),
            item: None,
            change: ChangeKind::Changed,
            detail: "comments or layout only: no value of the covenant changes".to_owned(),
            needs: Needs::Threshold,
        });
    }
    let mut partners = BTreeSet::new();
    let mut threshold = false;
    for l in &lines {
        match &l.needs {
            Needs::Partners(p) => partners.extend(p.iter().cloned()),
            Needs::Threshold => threshold = true,
        }
    }
    Ok(Review {
        lines,
        partners,
        threshold,
    })
}

/// Partners in both covenants whose resolved keys differ, and which keys.
fn key_changes(old: &Covenant, new: &Covenant) -> Vec<(String, String)> {
    let token = |p: &crate::covenant::Partner| -> Vec<(String, crate::covenant::KeyRef)> {
        p.token_keys
            .iter()
            .map(|k| (format!("{}:{:?}", k.kid, k.alg), k.key.clone()))
            .collect()
    };
    new.partners
        .iter()
        .filter_map(|n| {
            let o = old.partner(&n.id).and_then(|r| old.partner_at(r))?;
            let mut what = Vec::new();
            if o.recipient != n.recipient {
                what.push("recipient");
            }
            if token(o) != token(n) {
                what.push("token keys");
            }
            if o.governance_vkey != n.governance_vkey {
                what.push("governance key");
            }
            (!what.is_empty()).then(|| (n.id.clone(), what.join(", ")))
        })
        .collect()
}

/// A difference before its signers are known.
struct Raw {
    section: String,
    item: Option<String>,
    change: ChangeKind,
    detail: String,
    /// The item's `owner` before and after (for products).
    owners: Vec<String>,
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// Compact one-line form of a value.
fn show(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => format!("{s:?}"),
        toml::Value::Array(a) => format!("[{}]", a.iter().map(show).collect::<Vec<_>>().join(", ")),
        toml::Value::Table(t) => format!(
            "{{{}}}",
            t.iter()
                .map(|(k, v)| format!("{k} = {}", show(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    }
}

fn is_table_list(v: &toml::Value) -> bool {
    matches!(v, toml::Value::Array(a) if !a.is_empty() && a.iter().all(toml::Value::is_table))
}

/// An item's key in a list: its `id`, else its `name`, else its whole text.
fn item_key(v: &toml::Value) -> String {
    let field = |k: &str| v.get(k).and_then(toml::Value::as_str).map(str::to_owned);
    field("id")
        .or_else(|| field("name"))
        .unwrap_or_else(|| show(v))
}

fn owners_of(v: &toml::Value) -> Vec<String> {
    v.get("owner")
        .and_then(toml::Value::as_str)
        .map(|o| vec![o.to_owned()])
        .unwrap_or_default()
}

/// `key: before → after` for every key of two tables that differs.
fn changed_keys(a: &toml::Table, b: &toml::Table) -> String {
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| {
            let side = |t: &toml::Table| t.get(k).map_or_else(|| "(none)".to_owned(), show);
            format!("{k}: {} → {}", side(a), side(b))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn diff_table(path: &str, a: &toml::Table, b: &toml::Table, out: &mut Vec<Raw>) {
    // The sections in the new text's order, then those only the old one has.
    let mut keys: Vec<&String> = b.keys().collect();
    keys.extend(a.keys().filter(|k| !b.contains_key(*k)));
    for key in keys {
        let section = join(path, key);
        match (a.get(key), b.get(key)) {
            (Some(x), Some(y)) if x == y => {}
            (Some(toml::Value::Table(x)), Some(toml::Value::Table(y))) => {
                diff_table(&section, x, y, out);
            }
            (x, y) if x.is_none_or(is_table_list) && y.is_none_or(is_table_list) => {
                let empty = Vec::new();
                let list = |v: Option<&toml::Value>| {
                    v.and_then(toml::Value::as_array).unwrap_or(&empty).clone()
                };
                diff_list(&section, &list(x), &list(y), out);
            }
            (x, y) => out.push(Raw {
                section: path.to_owned(),
                item: None,
                change: match (x, y) {
                    (None, _) => ChangeKind::Added,
                    (_, None) => ChangeKind::Removed,
                    _ => ChangeKind::Changed,
                },
                detail: format!(
                    "{key}: {} → {}",
                    x.map_or_else(|| "(none)".to_owned(), show),
                    y.map_or_else(|| "(none)".to_owned(), show)
                ),
                owners: Vec::new(),
            }),
        }
    }
}

fn diff_list(section: &str, a: &[toml::Value], b: &[toml::Value], out: &mut Vec<Raw>) {
    let find = |list: &[toml::Value], k: &str| list.iter().find(|v| item_key(v) == k).cloned();
    let mut seen = BTreeSet::new();
    for y in b {
        let k = item_key(y);
        seen.insert(k.clone());
        match find(a, &k) {
            None => out.push(Raw {
                section: section.to_owned(),
                item: Some(k),
                change: ChangeKind::Added,
                detail: show(y),
                owners: owners_of(y),
            }),
            Some(x) if &x != y => {
                let detail = match (x.as_table(), y.as_table()) {
                    (Some(tx), Some(ty)) => changed_keys(tx, ty),
                    _ => format!("{} → {}", show(&x), show(y)),
                };
                let mut owners = owners_of(&x);
                owners.extend(owners_of(y));
                out.push(Raw {
                    section: section.to_owned(),
                    item: Some(k),
                    change: ChangeKind::Changed,
                    detail,
                    owners,
                });
            }
            Some(_) => {}
        }
    }
    for x in a {
        let k = item_key(x);
        if !seen.contains(&k) {
            out.push(Raw {
                section: section.to_owned(),
                item: Some(k),
                change: ChangeKind::Removed,
                detail: show(x),
                owners: owners_of(x),
            });
        }
    }
}

/// The owners of the fields a rule or prohibition (by id) covers in this covenant.
fn field_owners(c: &Covenant, section: &str, id: &str) -> BTreeSet<String> {
    let fields: Option<&Vec<bool>> = match section {
        "rule" => c.rules.iter().find(|r| r.id == id).map(|r| &r.fields),
        "prohibition" => c
            .prohibitions
            .iter()
            .find(|p| p.id == id)
            .map(|p| &p.fields),
        _ => None,
    };
    fields
        .into_iter()
        .flat_map(|f| f.iter().enumerate().filter(|(_, on)| **on).map(|(i, _)| i))
        .filter_map(|i| c.fields.get(i))
        .filter_map(|f| c.products.get(f.product.index()))
        .filter_map(|p| c.partner_at(p.owner))
        .map(|p| p.id.clone())
        .collect()
}

fn needs(r: &Raw, old: &Covenant, new: &Covenant) -> Needs {
    let partners: BTreeSet<String> = match (r.section.as_str(), &r.item, r.change) {
        // A partner's own entry; joining or leaving the covenant is everyone's business.
        ("partner", Some(id), ChangeKind::Changed) => BTreeSet::from([id.clone()]),
        ("product", Some(_), _) => r.owners.iter().cloned().collect(),
        (s @ ("rule" | "prohibition"), Some(id), _) => {
            let mut o = field_owners(old, s, id);
            o.extend(field_owners(new, s, id));
            o
        }
        _ => BTreeSet::new(),
    };
    if partners.is_empty() {
        Needs::Threshold
    } else {
        Needs::Partners(partners)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../ops/covenant/ipga-r.toml");

    fn compile(src: &str) -> CompiledCovenant {
        crate::compile_toml(src).unwrap_or_else(|d| panic!("{d:?}"))
    }

    fn review_of(new_src: &str) -> Review {
        review(EXAMPLE, &compile(EXAMPLE), new_src, &compile(new_src)).unwrap()
    }

    /// Changes the first textual (or else numeric) value found in `v`, depth first, skipping
    /// the keys other sections refer to.
    fn touch(v: &mut toml::Value) -> bool {
        const TEXT: [&str; 6] = ["name", "title", "description", "text", "ground", "approach"];
        match v {
            toml::Value::Table(t) => {
                for k in TEXT {
                    if let Some(toml::Value::String(s)) = t.get_mut(k) {
                        s.push_str(" (gewijzigd)");
                        return true;
                    }
                }
                for (k, x) in t.iter_mut() {
                    if let toml::Value::Integer(i) = x
                        && [
                            "days",
                            "threshold",
                            "rounding",
                            "quorum",
                            "per_staff_per_minute",
                        ]
                        .contains(&k.as_str())
                    {
                        *i += 1;
                        return true;
                    }
                }
                t.iter_mut().any(|(_, x)| touch(x))
            }
            toml::Value::Array(a) => a.iter_mut().any(touch),
            _ => false,
        }
    }

    #[test]
    fn the_same_text_has_no_lines_and_comments_alone_one() {
        assert!(review_of(EXAMPLE).lines.is_empty());
        let r = review_of(&format!("{EXAMPLE}\n# a note\n"));
        assert_eq!(r.lines.len(), 1);
        assert_eq!(r.lines[0].section, "(text)");
        assert!(r.threshold);
    }

    /// Every section of the example covenant, changed in turn, gives its line.
    #[test]
    fn a_change_to_each_section_shows_as_a_line_of_that_section() {
        let doc: toml::Table = EXAMPLE.parse().unwrap();
        for section in doc.keys() {
            let mut changed = doc.clone();
            let v = changed.get_mut(section).unwrap();
            if section == "redaction_codes" {
                let (_, text) = v.as_table_mut().unwrap().iter_mut().next().unwrap();
                *text = toml::Value::String(format!("{} (gewijzigd)", text.as_str().unwrap()));
            } else if !touch(v) {
                // Nothing textual or numeric (a list of ids): drop an entry of it instead.
                let list = match v {
                    toml::Value::Array(a) => Some(a),
                    toml::Value::Table(t) => t
                        .iter_mut()
                        .find_map(|(_, x)| x.as_array_mut().filter(|a| a.len() > 1)),
                    _ => None,
                };
                list.expect(section).pop();
            }
            let text = toml::to_string(&changed).unwrap();
            let r = review_of(&text);
            assert!(
                r.lines
                    .iter()
                    .any(|l| l.section.split('.').next() == Some(section.as_str())),
                "a change to [{section}] shows no line: {:?}",
                r.lines
            );
            assert!(
                r.lines.iter().all(|l| l.section != "(text)"),
                "[{section}]: {:?}",
                r.lines
            );
        }
    }

    /// A key file's content changed under the same text: the partner's line, and its signature.
    #[test]
    fn key_material_changed_under_the_same_text_shows() {
        let resolve = |rn_recipient: &'static str| {
            move |path: &str| -> Result<String, String> {
                Ok(if path.ends_with("age-recipient.txt") {
                    if path.starts_with("rn/") {
                        rn_recipient
                    } else {
                        "age1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq"
                    }
                    .to_owned()
                } else if path.ends_with(".vkey") {
                    format!(
                        "{}.governance+0a1b2c3d+AX+key",
                        path.split('/').next().unwrap_or("x")
                    )
                } else {
                    "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n".to_owned()
                })
            }
        };
        let old = crate::compile_toml_resolving(
            EXAMPLE,
            &mut resolve("age1rrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrr"),
        )
        .unwrap();
        let new = crate::compile_toml_resolving(
            EXAMPLE,
            &mut resolve("age1ssssssssssssssssssssssssssssssssssssssssssssssssssssssssss"),
        )
        .unwrap();
        let r = review(EXAMPLE, &old, EXAMPLE, &new).unwrap();
        assert_eq!(r.lines.len(), 1, "{:?}", r.lines);
        assert_eq!(r.lines[0].item.as_deref(), Some("rn"));
        assert!(r.lines[0].detail.contains("recipient"));
        assert_eq!(r.partners, BTreeSet::from(["rn".to_owned()]));
    }

    /// Fewer witnesses, or none, is a shared change: a line, and the threshold.
    #[test]
    fn witnesses_dropped_show() {
        let with = format!(
            "{EXAMPLE}\n[[witness]]\npartner = \"politie\"\nname = \"w.politie\"\nvkey = \"w.politie+0a1b2c3d+BAvalidlookingbase64keymaterialAAAAAAAAAAAAAAAAA=\"\nurl = \"https://w.politie.example/\"\n\n[witnessing]\nquorum = 1\n"
        );
        let r = review(&with, &compile(&with), EXAMPLE, &compile(EXAMPLE)).unwrap();
        let sections: Vec<(&str, ChangeKind)> = r
            .lines
            .iter()
            .map(|l| (l.section.as_str(), l.change))
            .collect();
        assert!(
            sections.contains(&("witness", ChangeKind::Removed)),
            "{sections:?}"
        );
        assert!(r.threshold);
    }

    #[test]
    fn whose_signature_each_change_needs() {
        let doc: toml::Table = EXAMPLE.parse().unwrap();
        let edit = |f: &dyn Fn(&mut toml::Table)| {
            let mut d = doc.clone();
            f(&mut d);
            review_of(&toml::to_string(&d).unwrap())
        };
        let list = |d: &mut toml::Table, s: &str| -> Vec<toml::Value> {
            d.get(s).and_then(|v| v.as_array()).cloned().unwrap()
        };
        // A partner's recipient: that partner alone.
        let r = edit(&|d| {
            let mut ps = list(d, "partner");
            let rn = ps
                .iter_mut()
                .find(|p| p["id"].as_str() == Some("rn"))
                .unwrap();
            rn.as_table_mut()
                .unwrap()
                .insert("recipient".into(), "file:oov/age-recipient.txt".into());
            d.insert("partner".into(), toml::Value::Array(ps));
        });
        assert_eq!(r.partners, BTreeSet::from(["rn".to_owned()]));
        assert!(!r.threshold);
        assert!(r.lines[0].detail.contains("recipient"), "{:?}", r.lines);
        // A prohibition protecting the GGD's data removed: the GGD's signature.
        let r = edit(&|d| {
            let ps: Vec<toml::Value> = list(d, "prohibition")
                .into_iter()
                .filter(|p| p["id"].as_str() != Some("diagnose-en-medicatie-nooit"))
                .collect();
            d.insert("prohibition".into(), toml::Value::Array(ps));
        });
        assert_eq!(r.lines.len(), 1, "{:?}", r.lines);
        assert_eq!(r.lines[0].change, ChangeKind::Removed);
        assert_eq!(r.partners, BTreeSet::from(["ggd".to_owned()]));
        // Retention set to 0: a shared part, the threshold.
        let r = edit(&|d| {
            d["retention"]["deposits"]
                .as_table_mut()
                .unwrap()
                .insert("days".into(), 0.into());
        });
        assert!(r.threshold && r.partners.is_empty(), "{:?}", r.lines);
        assert_eq!(r.lines[0].section, "retention.deposits");
        assert!(r.lines[0].detail.contains("days: 90 → 0"), "{:?}", r.lines);
    }
}
