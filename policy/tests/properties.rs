//! Property tests: transforms never release more than asked, and the compiled decision table
//! agrees with a naive reading of the rules on randomly generated covenants.
#![expect(
    clippy::unwrap_used,
    clippy::panic,
    clippy::needless_range_loop,
    clippy::indexing_slicing,
    reason = "a test: a failure is a failed test"
)]

mod common;
use policy::covenant::{District, Generalization};
use policy::transform::{age_at, generalize, mask};
use policy::{Action, Audience, PseudonymKey, TransformContext, compile_toml};
use proptest::prelude::*;
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;

fn today() -> time::Date {
    time::Date::from_calendar_date(2026, time::Month::November, 22).unwrap()
}

fn date_strategy() -> impl Strategy<Value = time::Date> {
    (1930i32..2026, 1u8..=12, 1u8..=28).prop_map(|(y, m, d)| {
        time::Date::from_calendar_date(y, time::Month::try_from(m).unwrap(), d).unwrap()
    })
}

proptest! {
    #[test]
    fn pseudonyms_are_stable_per_partner_and_unlinkable_across(master in any::<[u8; 32]>(), input in ".{1,40}") {
        let a = PseudonymKey::derive(&master, "politie");
        let a2 = PseudonymKey::derive(&master, "politie");
        let b = PseudonymKey::derive(&master, "wpi");
        prop_assert_eq!(a.pseudonym(input.as_bytes()), a2.pseudonym(input.as_bytes()));
        prop_assert_ne!(a.pseudonym(input.as_bytes()), b.pseudonym(input.as_bytes()));
        prop_assert!(!a.pseudonym(input.as_bytes()).contains(&input) || input.len() < 3);
        prop_assert_eq!(a.pseudonym(input.as_bytes()).len(), 32);
    }

    #[test]
    fn distinct_inputs_get_distinct_pseudonyms(master in any::<[u8; 32]>(), x in "[0-9]{9}", y in "[0-9]{9}") {
        prop_assume!(x != y);
        let k = PseudonymKey::derive(&master, "om");
        prop_assert_ne!(k.pseudonym(x.as_bytes()), k.pseudonym(y.as_bytes()));
    }

    #[test]
    fn generalize_month_and_year_keep_only_that_precision(d in date_strategy()) {
        let s = format!("{d}");
        let month = generalize(&s, Generalization::Month, 10, &[], today()).unwrap();
        let year = generalize(&s, Generalization::Year, 10, &[], today()).unwrap();
        prop_assert_eq!(month.len(), 7);
        prop_assert_eq!(&month[..], &s[..7]);
        prop_assert_eq!(year.len(), 4);
        prop_assert_eq!(&year[..], &s[..4]);
    }

    #[test]
    fn age_band_contains_the_age_and_is_exactly_as_wide_as_asked(d in date_strategy(), band in 2u8..20) {
        let s = format!("{d}");
        let out = generalize(&s, Generalization::AgeBand, band, &[], today()).unwrap();
        let (lo, hi) = out.split_once('-').unwrap();
        let (lo, hi): (u32, u32) = (lo.parse().unwrap(), hi.parse().unwrap());
        let age = age_at(d, today()).unwrap();
        prop_assert!(lo <= age && age <= hi);
        prop_assert_eq!(hi - lo + 1, u32::from(band));
        prop_assert_eq!(lo % u32::from(band), 0);
    }

    #[test]
    fn postcode_area_is_the_four_digits_only(area in 1000u16..9999, letters in "[A-Z]{2}") {
        let pc = format!("{area} {letters}");
        let out = generalize(&pc, Generalization::PostcodeArea, 10, &[], today()).unwrap();
        prop_assert_eq!(out, area.to_string());
        let districts = [District { name: "Centrum".into(), areas: vec![(1011, 1018)] }];
        let d = generalize(&pc, Generalization::District, 10, &districts, today()).unwrap();
        prop_assert_eq!(d, if (1011..=1018).contains(&area) { "Centrum" } else { "onbekend" });
    }

    #[test]
    fn mask_keeps_at_most_the_last_n(s in ".{0,30}", n in 0usize..8) {
        let out = mask(&s, n);
        let chars: Vec<char> = s.chars().collect();
        let masked: Vec<char> = out.chars().collect();
        prop_assert_eq!(masked.len(), chars.len());
        let visible = if chars.len() <= n { 0 } else { n };
        let hidden = chars.len() - visible;
        prop_assert!(masked[..hidden].iter().all(|c| *c == '*'));
        prop_assert_eq!(&masked[hidden..], &chars[hidden..]);
    }
}

// ----- The example covenant: what a receiver sees, for every audience -----

fn example() -> policy::CompiledCovenant {
    let src = include_str!("../../ops/covenant/ipga-r.toml");
    match compile_toml(src) {
        Ok(c) => c,
        Err(d) => panic!("{}", d.render("ipga-r.toml", src)),
    }
}

fn record_strategy() -> impl Strategy<Value = (String, String, bool, i64, Vec<String>)> {
    (
        "[A-Za-z ]{4,20}",
        "[A-Za-z0-9 ]{4,20}",
        any::<bool>(),
        0i64..100_000,
        proptest::collection::vec("[a-z]{3,10}", 0..4),
    )
}

/// A well-typed value for any field of the catalogue, built from random parts.
fn value_for(ty: policy::FieldType, parts: &(String, String, bool, i64, Vec<String>)) -> Value {
    use policy::FieldType as T;
    match ty {
        T::Text => json!(format!("{}-{}", parts.0, parts.1)),
        T::Integer => json!(parts.3),
        T::Boolean => json!(parts.2),
        T::Date => json!(format!(
            "{:04}-{:02}-{:02}",
            1950 + parts.3 % 70,
            1 + parts.3 % 12,
            1 + parts.3 % 28
        )),
        T::Bsn => json!("111222333"),
        T::Postcode => json!(format!("{} AB", 1011 + parts.3 % 90)),
        T::TextList => json!(parts.4),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn receivers_get_exactly_what_the_decisions_say(parts in record_strategy(), present in proptest::collection::vec(any::<bool>(), 20)) {
        let cc = example();
        let c = cc.covenant();
        let key = PseudonymKey::derive(b"test master secret", "x");
        let cx = TransformContext { today: today(), pseudonym_key: &key };
        for pi in 0..c.partners.len() {
            for ri in 0..c.roles.len() {
                for ui in 0..c.purposes.len() {
                    let a = Audience { partner: policy::PartnerRef(pi as u16), role: policy::RoleRef(ri as u16), purpose: policy::PurposeRef(ui as u16) };
                    for prod in 0..c.products.len() {
                        let pref = policy::ProductRef(prod as u16);
                        let mut record = Map::new();
                        for (i, (_, f)) in c.product_fields(pref).enumerate() {
                            if present[i % present.len()] {
                                record.insert(f.name.clone(), value_for(f.ty, &parts));
                            }
                        }
                        let out = cc.apply_record(a, pref, &record, &cx).unwrap();
                        for o in &out.outcomes {
                            let f = &c.fields[o.field.index()];
                            let d = cc.decision(o.decision);
                            let got = out.get(&f.name);
                            match d.action {
                                Action::Omit => prop_assert!(got.is_none()),
                                // Withheld: the marker, whether or not there is a value.
                                Action::Withhold => prop_assert_eq!(got, d.marker()),
                                Action::Disclose => prop_assert_eq!(got, Some(record.get(&f.name).unwrap_or(&Value::Null))),
                                Action::Exists => prop_assert_eq!(got, Some(&serde_json::json!({"exists": record.get(&f.name).is_some_and(|v| match v { Value::Null => false, Value::String(s) => !s.is_empty(), Value::Array(a) => !a.is_empty(), _ => true })}))),
                                _ => {
                                    // Transformed values never equal a non-trivial original.
                                    if let (Some(Value::String(orig)), Some(Value::String(sent))) = (record.get(&f.name), got) {
                                        prop_assert_ne!(orig, sent);
                                    }
                                }
                            }
                        }
                        // Nothing beyond the catalogue, ever.
                        prop_assert!(out.fields.iter().all(|(k, _)| c.product_fields(pref).any(|(_, f)| f.name == *k)));
                    }
                }
            }
        }
    }
}

#[test]
fn unknown_or_mistyped_fields_fail_the_record() {
    let cc = example();
    let c = cc.covenant();
    let key = PseudonymKey::derive(b"k", "x");
    let cx = TransformContext {
        today: today(),
        pseudonym_key: &key,
    };
    let a = Audience {
        partner: c.partner("oov").unwrap(),
        role: c.role("regisseur").unwrap(),
        purpose: c.purpose("regie").unwrap(),
    };
    let p = c.product("wpi.inkomen").unwrap();
    let mut rec = Map::new();
    rec.insert("uitkering".into(), json!("Participatiewet"));
    rec.insert("geheim".into(), json!("x"));
    let e = cc.apply_record(a, p, &rec, &cx).unwrap_err();
    assert_eq!(
        e.to_string(),
        "field `geheim` is not in the catalogue of product wpi.inkomen"
    );
    let mut rec = Map::new();
    rec.insert("bedrag_per_maand".into(), json!("veel"));
    let e = cc.apply_record(a, p, &rec, &cx).unwrap_err();
    assert_eq!(
        e.to_string(),
        "field wpi.inkomen.bedrag_per_maand does not hold a valid integer value"
    );
}

// ----- The compiled table against a naive evaluator on random covenants -----

#[derive(Debug, Clone)]
struct GenRule {
    to: Vec<usize>,
    roles: Vec<usize>,
    purposes: Vec<usize>,
    fields: Vec<usize>,
    action: usize,
    overrides: Vec<usize>,
}

const PARTNERS: [&str; 3] = ["a", "b", "c"];
const ROLES: [&str; 2] = ["r1", "r2"];
const PURPOSES: [&str; 2] = ["u1", "u2"];
const FIELDS: [&str; 4] = ["f0", "f1", "f2", "f3"];
const ACTIONS: [&str; 4] = ["disclose", "exists", "withhold", "omit"];

fn subset(n: usize) -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::btree_set(0..n, 1..=n).prop_map(|s| s.into_iter().collect())
}

fn rules_strategy() -> impl Strategy<Value = Vec<GenRule>> {
    proptest::collection::vec(
        (
            subset(3),
            subset(2),
            subset(2),
            subset(4),
            0usize..4,
            proptest::collection::vec(any::<bool>(), 8),
        ),
        1..6,
    )
    .prop_map(|raw| {
        raw.into_iter()
            .enumerate()
            .map(|(i, (to, roles, purposes, fields, action, ov))| GenRule {
                to,
                roles,
                purposes,
                fields,
                action,
                // Only earlier rules, so there are no cycles.
                overrides: (0..i).filter(|j| ov[*j]).collect(),
            })
            .collect()
    })
}

fn to_toml(rules: &[GenRule]) -> String {
    let mut s = String::from(
        "[covenant]\nid = \"gen\"\ntitle = \"Gen\"\n[redaction_codes]\n\"c\" = \"ground c\"\n",
    );
    for (i, p) in PARTNERS.iter().enumerate() {
        s += &format!(
            "[[partner]]\nid = \"{p}\"\nname = \"{p}\"\nkind = \"kernpartner\"\noin = \"0000009900000000000{i}\"\nrecipient = \"file:{p}\"\ntoken_keys = [{{ kid = \"{p}\", alg = \"ES256\", key = \"file:{p}.pem\" }}]\n"
        );
    }
    for r in ROLES {
        s += &format!("[[role]]\nid = \"{r}\"\nname = \"{r}\"\nheld_by = [\"*\"]\n");
    }
    for u in PURPOSES {
        s += &format!(
            "[[purpose]]\nid = \"{u}\"\nname = \"{u}\"\nlevel = \"case\"\nroles = [\"r1\", \"r2\"]\ncase_status = [\"*\"]\nrelation = \"none\"\n"
        );
    }
    s += "[[product]]\nid = \"a.p\"\nowner = \"a\"\nname = \"P\"\nfields = [";
    s += &FIELDS
        .iter()
        .map(|f| format!("{{ name = \"{f}\", type = \"text\", category = \"casus\" }}"))
        .collect::<Vec<_>>()
        .join(", ");
    s += "]\n";
    let list = |v: &[usize], names: &[&str]| {
        v.iter()
            .map(|i| format!("\"{}\"", names[*i]))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for (i, r) in rules.iter().enumerate() {
        let fields: Vec<String> = r
            .fields
            .iter()
            .map(|f| format!("a.p.{}", FIELDS[*f]))
            .collect();
        let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
        s += &format!(
            "[[rule]]\nid = \"R{i}\"\nto = [{}]\nroles = [{}]\npurposes = [{}]\nfields = [{}]\naction = \"{}\"\n",
            list(&r.to, &PARTNERS),
            list(&r.roles, &ROLES),
            list(&r.purposes, &PURPOSES),
            list(&(0..fields.len()).collect::<Vec<_>>(), &fields),
            ACTIONS[r.action]
        );
        match ACTIONS[r.action] {
            "withhold" => s += "code = \"c\"\n",
            "omit" => {}
            _ => s += "ground = \"g\"\n",
        }
        if !r.overrides.is_empty() {
            s += &format!(
                "overrides = [{}]\n",
                r.overrides
                    .iter()
                    .map(|j| format!("\"R{j}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    s
}

/// Naive reading: the rules that match, minus those some matching rule overrides (transitively).
fn reference(rules: &[GenRule], p: usize, r: usize, u: usize, f: usize) -> Vec<usize> {
    let beats = |a: usize, b: usize| -> bool {
        // Does a override b, directly or through a chain?
        let mut stack = vec![a];
        let mut seen = BTreeSet::new();
        while let Some(x) = stack.pop() {
            for &y in &rules[x].overrides {
                if y == b {
                    return true;
                }
                if seen.insert(y) {
                    stack.push(y);
                }
            }
        }
        false
    };
    let m: Vec<usize> = (0..rules.len())
        .filter(|&i| {
            rules[i].to.contains(&p)
                && rules[i].roles.contains(&r)
                && rules[i].purposes.contains(&u)
                && rules[i].fields.contains(&f)
        })
        .collect();
    m.iter()
        .copied()
        .filter(|&a| !m.iter().any(|&b| beats(b, a)))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]
    #[test]
    fn compiled_table_matches_the_naive_reading(rules in rules_strategy()) {
        let src = to_toml(&rules);
        let compiled = compile_toml(&src);
        let mut conflict = false;
        let mut decides = vec![false; rules.len()];
        for p in 0..3 { for r in 0..2 { for u in 0..2 { for f in 0..4 {
            let winners = reference(&rules, p, r, u, f);
            let outcomes: BTreeSet<usize> = winners.iter().map(|w| rules[*w].action).collect();
            if outcomes.len() > 1 { conflict = true; winners.iter().for_each(|w| decides[*w] = true); }
            if let Some(first) = winners.first() { decides[*first] = true; }
            if let Ok(cc) = &compiled {
                let c = cc.covenant();
                let d = cc.decide(c.partner(PARTNERS[p]).unwrap(), c.role(ROLES[r]).unwrap(), c.purpose(PURPOSES[u]).unwrap(), c.field(&format!("a.p.{}", FIELDS[f])).unwrap());
                match winners.first() {
                    None => prop_assert_eq!(&d.rule_id, "default-deny"),
                    Some(w) => prop_assert_eq!(&d.rule_id, &format!("R{w}")),
                }
            }
        }}}}
        let never = decides.iter().any(|d| !d);
        prop_assert_eq!(compiled.is_ok(), !conflict && !never, "{}", src);
    }
}

/// The ITAT-R's `toetsing` is barred from the identity by the example's prohibition; the
/// Regieoverleg's `besluitvorming` is not (issue 41, finding 4).
#[test]
fn the_identity_is_barred_exactly_where_a_prohibition_says_so() {
    let cc = example();
    let c = cc.covenant();
    let (itat, toetsing) = (c.role("itat-lid").unwrap(), c.purpose("toetsing").unwrap());
    let (ro, besluit) = (
        c.role("regieoverleg-lid").unwrap(),
        c.purpose("besluitvorming").unwrap(),
    );
    for p in ["oov", "politie", "om"] {
        let p = c.partner(p).unwrap();
        assert!(c.identity_barred(p, itat, toetsing));
        assert!(!c.identity_barred(p, ro, besluit));
    }
}

/// Issue 31: NCTV sits in the Regieoverleg and the PTO-R, not in the execution. Giving it the
/// regisseur role again is refused by the covenant's own prohibition, proven by the validator.
#[test]
fn nctv_as_regisseur_is_refused_by_the_prohibition() {
    let src = include_str!("../../ops/covenant/ipga-r.toml");
    assert!(
        example()
            .covenant()
            .prohibitions
            .iter()
            .any(|p| p.id == "nctv-niet-in-de-uitvoering")
    );
    let widened = src.replacen(
        "held_by = [\"oov\", \"politie\", \"om\", \"rn\", \"rvdk\", \"wpi\", \"jbra\", \"wsg\", \"scw\", \"leerplicht\"]",
        "held_by = [\"oov\", \"politie\", \"om\", \"rn\", \"rvdk\", \"wpi\", \"kind:affiliated\"]",
        1,
    );
    assert_ne!(widened, src);
    match policy::compile_toml(&widened) {
        Ok(_) => panic!("NCTV as regisseur was accepted"),
        Err(d) => assert!(
            d.render("ipga-r.toml", &widened)
                .contains("nctv-niet-in-de-uitvoering"),
            "{}",
            d.render("ipga-r.toml", &widened)
        ),
    }
}
