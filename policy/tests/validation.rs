//! Every invalid-file case we could think of, each with its exact error message.
#![expect(clippy::unwrap_used, reason = "a test: a failure is a failed test")]

mod common;
use common::*;
use policy::compile_toml;

fn assert_errors(src: &str, expected: &[&str]) {
    let got = errors(src);
    assert_eq!(
        got,
        expected,
        "\nfull rendering:\n{}",
        compile_toml(src).err().unwrap().render("t.toml", src)
    );
}

#[test]
fn the_minimal_covenant_is_valid() {
    let cc = compile(MINI);
    assert_eq!(cc.covenant().partners.len(), 3);
    assert!(cc.version().as_str().starts_with("sha256:"));
}

#[test]
fn toml_syntax_error_has_line_and_column() {
    let src = edit("name = \"Dossier\"", "name = Dossier");
    let d = compile_toml(&src).err().unwrap();
    let rendered = d.render("c.toml", &src);
    let line = src.lines().position(|l| l == "name = Dossier").unwrap() + 1;
    assert!(
        rendered.starts_with(&format!("c.toml:{line}:8: error: ")),
        "{rendered}"
    );
    assert!(rendered.contains("help: fix the TOML syntax"), "{rendered}");
}

#[test]
fn unknown_key_is_rejected() {
    let src = edit(
        "ground = \"Wet PGA art. 3\"",
        "ground = \"Wet PGA art. 3\"\ngrond = \"typo\"",
    );
    let d = compile_toml(&src).err().unwrap();
    assert_eq!(d.0.len(), 1);
    assert!(
        d.0[0]
            .message
            .starts_with("unknown field `grond`, expected one of"),
        "{}",
        d.0[0].message
    );
    assert_eq!(
        d.0[0].help.as_deref(),
        Some("remove or rename the key; the accepted keys are listed above")
    );
}

#[test]
fn missing_key_is_rejected() {
    let src = edit("action = \"disclose\"\n", "");
    let d = compile_toml(&src).err().unwrap();
    assert_eq!(d.0[0].message, "missing field `action`");
}

#[test]
fn duplicate_ids() {
    assert_errors(
        &edit("id = \"b\"", "id = \"a\""),
        &[
            "duplicate partner id `a`",
            // The rule's `to = ["b"]` now names a partner that does not exist.
            "unknown partner `b` in `to`",
        ],
    );
    assert_errors(
        &with(
            "[[rule]]\nid = \"r-naam\"\nto = [\"b\"]\nroles = [\"regisseur\"]\npurposes = [\"regie\"]\nfields = [\"a.dossier.geboortedatum\"]\naction = \"disclose\"\nground = \"g\"",
        ),
        &["duplicate rule id `r-naam`"],
    );
    assert_errors(
        &edit("{ name = \"diagnose\"", "{ name = \"naam\""),
        &["duplicate field id `naam`"],
    );
}

#[test]
fn unknown_partner_in_rule() {
    assert_errors(
        &edit("to = [\"b\"]", "to = [\"politie\"]"),
        &["unknown partner `politie` in `to`"],
    );
}

#[test]
fn unknown_kind() {
    assert_errors(
        &edit(
            "held_by = [\"kind:kernpartner\"]",
            "held_by = [\"kind:kern\"]",
        ),
        &["unknown partner kind `kern` in `held_by`"],
    );
    assert_errors(
        &edit("kind = \"peer\"", "kind = \"buurgemeente\""),
        &["unknown partner kind `buurgemeente`"],
    );
}

#[test]
fn unknown_field_role_purpose_product_category() {
    assert_errors(
        &edit(
            "fields = [\"a.dossier.naam\"]",
            "fields = [\"a.dossier.voornaam\"]",
        ),
        &["unknown field `a.dossier.voornaam`"],
    );
    assert_errors(
        &edit(
            "roles = [\"regisseur\"]\npurposes",
            "roles = [\"casusregisseur\"]\npurposes",
        ),
        &["unknown role `casusregisseur` in `roles`"],
    );
    assert_errors(
        &edit("purposes = [\"regie\"]", "purposes = [\"regievoering\"]"),
        &["unknown purpose `regievoering` in `purposes`"],
    );
    assert_errors(
        &edit("fields = [\"a.dossier.naam\"]", "products = [\"a.dosier\"]"),
        &["unknown product `a.dosier` in `products`"],
    );
    assert_errors(
        &edit(
            "categories = [\"gezondheid\"]",
            "categories = [\"medisch\"]",
        ),
        &["unknown category `medisch`"],
    );
    assert_errors(
        &edit("category = \"gezondheid\"", "category = \"medisch\""),
        &["unknown category `medisch`"],
    );
}

#[test]
fn unknown_vocabulary_values() {
    assert_errors(
        &edit("relation = \"is-regisseur\"", "relation = \"regisseur\""),
        &["unknown relation `regisseur`"],
    );
    assert_errors(
        &edit("level = \"aggregate\"", "level = \"totaal\""),
        &["unknown level `totaal`"],
    );
    assert_errors(
        &edit("type = \"date\"", "type = \"datum\""),
        &["unknown field type `datum`"],
    );
    assert_errors(
        &edit("action = \"disclose\"", "action = \"share\""),
        &["unknown action `share`"],
    );
    assert_errors(
        &edit("case_status = [\"opgenomen\"]", "case_status = [\"open\"]"),
        &["unknown case status `open`"],
    );
}

#[test]
fn purpose_without_roles() {
    assert_errors(
        &edit("roles = [\"peer\"]\nrelation", "roles = []\nrelation"),
        &["purpose fenomeen has no roles"],
    );
}

#[test]
fn case_purpose_without_statuses_and_aggregate_purpose_with_relation() {
    assert_errors(
        &edit("case_status = [\"opgenomen\"]\n", ""),
        &["case-level purpose regie names no case statuses"],
    );
    assert_errors(
        &edit(
            "roles = [\"peer\"]\nrelation = \"none\"",
            "roles = [\"peer\"]\nrelation = \"on-case\"",
        ),
        &[
            "aggregate purpose fenomeen cannot require relation `on-case`: aggregates are about no single case",
        ],
    );
}

#[test]
fn missing_legal_ground() {
    assert_errors(
        &edit("ground = \"Wet PGA art. 3\"\n", ""),
        &["rule r-naam (disclose) has no legal ground"],
    );
}

#[test]
fn withhold_needs_a_known_code_but_no_ground() {
    let base = "[[rule]]\nid = \"r-diag\"\nto = [\"b\"]\nroles = [\"regisseur\"]\npurposes = [\"regie\"]\nfields = [\"a.dossier.diagnose\"]\naction = \"withhold\"\n";
    compile(&with(&format!("{base}code = \"5.1.2.e\"")));
    compile(&with(
        "[[rule]]\nid = \"r-diag\"\nto = [\"b\"]\nroles = [\"regisseur\"]\npurposes = [\"regie\"]\nfields = [\"a.dossier.diagnose\"]\naction = \"omit\"",
    ));
    assert_errors(
        &with(base),
        &["rule r-diag withholds without a redaction `code`"],
    );
    assert_errors(
        &with(&format!("{base}code = \"5.1.2.x\"")),
        &["unknown redaction code `5.1.2.x`"],
    );
    assert_errors(
        &edit(
            "ground = \"Wet PGA art. 3\"",
            "ground = \"Wet PGA art. 3\"\ncode = \"5.1.2.e\"",
        ),
        &["rule r-naam has a `code` but action `disclose`"],
    );
}

#[test]
fn product_owned_by_unknown_partner() {
    assert_errors(
        &edit("owner = \"a\"", "owner = \"ggd\""),
        &[
            "product id `a.dossier` does not start with its owner `ggd.`",
            "product a.dossier is owned by unknown partner `ggd`",
        ],
    );
}

#[test]
fn product_without_fields() {
    let src = with("[[product]]\nid = \"b.leeg\"\nowner = \"b\"\nname = \"Leeg\"\nfields = []");
    assert_errors(&src, &["product b.leeg has no fields"]);
}

#[test]
fn rule_without_data_selector() {
    assert_errors(
        &edit("fields = [\"a.dossier.naam\"]\n", ""),
        &["rule r-naam does not say which data it covers"],
    );
}

#[test]
fn rule_whose_selectors_exclude_each_other() {
    assert_errors(
        &edit(
            "fields = [\"a.dossier.naam\"]",
            "categories = [\"gezondheid\"]\nfields = [\"a.dossier.naam\"]",
        ),
        &["field `a.dossier.naam` is excluded by this rule's own `products` or `categories`"],
    );
}

#[test]
fn rule_that_can_never_apply_because_no_partner_holds_the_role() {
    // Peers cannot hold `regisseur`.
    assert_errors(
        &edit("to = [\"b\"]", "to = [\"p\"]"),
        &[
            "rule r-naam can never apply: no partner in `to` may hold one of its roles for one of its case-level purposes",
        ],
    );
}

#[test]
fn rule_naming_an_aggregate_purpose() {
    assert_errors(
        &edit("purposes = [\"regie\"]", "purposes = [\"fenomeen\"]"),
        &["rule r-naam names aggregate purpose `fenomeen`: field rules never apply to it"],
    );
}

#[test]
fn rule_always_overridden_can_never_apply() {
    let src = with(
        "[[rule]]\nid = \"r-alles\"\nto = [\"*\"]\nroles = [\"*\"]\npurposes = [\"*\"]\nfields = [\"a.dossier.naam\"]\naction = \"withhold\"\ncode = \"5.1.2.e\"\noverrides = [\"r-naam\"]",
    );
    assert_errors(
        &src,
        &[
            "rule r-naam can never apply: wherever it applies, rule r-alles decides instead (e.g. for a.dossier.naam to b (role regisseur, purpose regie))",
        ],
    );
}

#[test]
fn duplicate_rule_with_same_outcome_can_never_apply() {
    let src = with(
        "[[rule]]\nid = \"r-naam-2\"\nto = [\"b\"]\nroles = [\"regisseur\"]\npurposes = [\"regie\"]\nfields = [\"a.dossier.naam\"]\naction = \"disclose\"\nground = \"ook\"",
    );
    assert_errors(
        &src,
        &[
            "rule r-naam-2 can never apply: wherever it applies, rule r-naam decides instead (e.g. for a.dossier.naam to b (role regisseur, purpose regie))",
        ],
    );
}

/// MINI where r-naam covers two fields, so that a rule overriding it on one field leaves it
/// deciding the other.
fn two_field_mini() -> String {
    edit(
        "fields = [\"a.dossier.naam\"]",
        "fields = [\"a.dossier.naam\", \"a.dossier.geboortedatum\"]",
    )
}

#[test]
fn overlap_with_different_outcomes_needs_precedence() {
    let rule = "[[rule]]\nid = \"r-mask\"\nto = [\"kind:kernpartner\"]\nroles = [\"regisseur\"]\npurposes = [\"regie\"]\nfields = [\"a.dossier.naam\"]\naction = \"mask\"\nkeep_last = 2\nground = \"g\"";
    let base = two_field_mini();
    assert_errors(
        &format!("{base}\n{rule}"),
        &[
            "rules r-naam and r-mask overlap with different outcomes (disclose vs mask(keep_last=2)) and neither overrides the other, e.g. for a.dossier.naam to b (role regisseur, purpose regie)",
        ],
    );
    // Stating the precedence resolves it, in either direction.
    let cc = compile(&format!("{base}\n{rule}\noverrides = [\"r-naam\"]"));
    let c = cc.covenant();
    let (b, r, u) = (
        c.partner("b").unwrap(),
        c.role("regisseur").unwrap(),
        c.purpose("regie").unwrap(),
    );
    assert_eq!(
        cc.decide(b, r, u, c.field("a.dossier.naam").unwrap())
            .rule_id,
        "r-mask"
    );
    assert_eq!(
        cc.decide(b, r, u, c.field("a.dossier.geboortedatum").unwrap())
            .rule_id,
        "r-naam"
    );
    let src = base.replace(
        "ground = \"Wet PGA art. 3\"",
        "ground = \"Wet PGA art. 3\"\noverrides = [\"r-mask\"]",
    );
    let cc = compile(&format!("{src}\n{rule}"));
    let c = cc.covenant();
    let f = c.field("a.dossier.naam").unwrap();
    assert_eq!(cc.decide(b, r, u, f).rule_id, "r-naam");
    // For partner a only r-mask applies.
    assert_eq!(
        cc.decide(c.partner("a").unwrap(), r, u, f).rule_id,
        "r-mask"
    );
}

#[test]
fn a_rule_overridden_everywhere_can_never_apply() {
    let rule = "[[rule]]\nid = \"r-mask\"\nto = [\"kind:kernpartner\"]\nroles = [\"regisseur\"]\npurposes = [\"regie\"]\nfields = [\"a.dossier.naam\"]\naction = \"mask\"\nkeep_last = 2\nground = \"g\"\noverrides = [\"r-naam\"]";
    assert_errors(
        &with(rule),
        &[
            "rule r-naam can never apply: wherever it applies, rule r-mask decides instead (e.g. for a.dossier.naam to b (role regisseur, purpose regie))",
        ],
    );
}

#[test]
fn precedence_is_transitive() {
    // r3 overrides r2, r2 overrides r-naam; r3 and r-naam meet at b/naam without r2.
    let src = format!(
        "{}\n{}",
        two_field_mini(),
        concat!(
            "[[rule]]\nid = \"r2\"\nto = [\"a\"]\nroles = [\"regisseur\"]\npurposes = [\"regie\"]\nfields = [\"a.dossier.naam\"]\naction = \"exists\"\nground = \"g\"\noverrides = [\"r-naam\"]\n",
            "[[rule]]\nid = \"r3\"\nto = [\"b\"]\nroles = [\"regisseur\"]\npurposes = [\"regie\"]\nfields = [\"a.dossier.naam\"]\naction = \"omit\"\noverrides = [\"r2\"]\n",
        )
    );
    let cc = compile(&src);
    let c = cc.covenant();
    let (r, u, f) = (
        c.role("regisseur").unwrap(),
        c.purpose("regie").unwrap(),
        c.field("a.dossier.naam").unwrap(),
    );
    assert_eq!(cc.decide(c.partner("b").unwrap(), r, u, f).rule_id, "r3");
    assert_eq!(cc.decide(c.partner("a").unwrap(), r, u, f).rule_id, "r2");
}

#[test]
fn overrides_errors() {
    assert_errors(
        &edit(
            "ground = \"Wet PGA art. 3\"",
            "ground = \"Wet PGA art. 3\"\noverrides = [\"r-nam\"]",
        ),
        &["rule r-naam overrides unknown rule `r-nam`"],
    );
    assert_errors(
        &edit(
            "ground = \"Wet PGA art. 3\"",
            "ground = \"Wet PGA art. 3\"\noverrides = [\"r-naam\"]",
        ),
        &["rule r-naam overrides itself"],
    );
    let src = edit(
        "ground = \"Wet PGA art. 3\"",
        "ground = \"Wet PGA art. 3\"\noverrides = [\"r2\"]",
    );
    let src = format!(
        "{src}\n[[rule]]\nid = \"r2\"\nto = [\"b\"]\nroles = [\"regisseur\"]\npurposes = [\"regie\"]\nfields = [\"a.dossier.naam\"]\naction = \"exists\"\nground = \"g\"\noverrides = [\"r-naam\"]\n"
    );
    let got = errors(&src);
    assert!(
        got.contains(&"rule r-naam is part of an `overrides` cycle".to_owned()),
        "{got:?}"
    );
    assert!(
        got.contains(&"rule r2 is part of an `overrides` cycle".to_owned()),
        "{got:?}"
    );
}

#[test]
fn action_parameters() {
    assert_errors(
        &edit("action = \"disclose\"", "action = \"mask\""),
        &["rule r-naam: mask needs `keep_last`"],
    );
    assert_errors(
        &edit("action = \"disclose\"", "action = \"generalize\""),
        &["rule r-naam: generalize needs `level`"],
    );
    assert_errors(
        &edit(
            "action = \"disclose\"",
            "action = \"disclose\"\nkeep_last = 3",
        ),
        &["rule r-naam: `keep_last` does not apply to action `disclose`"],
    );
    assert_errors(
        &edit(
            "action = \"disclose\"",
            "action = \"disclose\"\nlevel = \"year\"",
        ),
        &["rule r-naam: `level` does not apply to action `disclose`"],
    );
    assert_errors(
        &edit(
            "fields = [\"a.dossier.naam\"]\naction = \"disclose\"",
            "fields = [\"a.dossier.geboortedatum\"]\naction = \"generalize\"\nlevel = \"decade\"",
        ),
        &["unknown generalize level `decade`"],
    );
    assert_errors(
        &edit(
            "fields = [\"a.dossier.naam\"]\naction = \"disclose\"",
            "fields = [\"a.dossier.geboortedatum\"]\naction = \"generalize\"\nlevel = \"year\"\nband = 5",
        ),
        &["rule r-naam: `band` applies only to level \"age-band\""],
    );
    assert_errors(
        &edit(
            "fields = [\"a.dossier.naam\"]\naction = \"disclose\"",
            "fields = [\"a.dossier.geboortedatum\"]\naction = \"generalize\"\nlevel = \"age-band\"\nband = 0",
        ),
        &["rule r-naam: an age band of 0 years"],
    );
}

#[test]
fn transform_must_fit_the_field_type() {
    assert_errors(
        &edit(
            "action = \"disclose\"",
            "action = \"generalize\"\nlevel = \"month\"",
        ),
        &[
            "rule r-naam applies generalize(month) to field a.dossier.naam of type text; generalize to month, year or age-band applies only to date fields",
        ],
    );
    assert_errors(
        &edit(
            "fields = [\"a.dossier.naam\"]\naction = \"disclose\"",
            "categories = [\"identiteit\", \"adres\"]\naction = \"generalize\"\nlevel = \"district\"",
        ),
        &[
            "rule r-naam applies generalize(district) to field a.dossier.naam of type text (and 1 more); generalize to postcode-area or district applies only to postcode fields",
        ],
    );
    assert_errors(
        &edit(
            "fields = [\"a.dossier.naam\"]\naction = \"disclose\"",
            "fields = [\"a.dossier.geboortedatum\"]\naction = \"mask\"\nkeep_last = 2",
        ),
        &[
            "rule r-naam applies mask(keep_last=2) to field a.dossier.geboortedatum of type date; mask applies only to text, bsn and postcode fields",
        ],
    );
}

#[test]
fn prohibition_violation_names_rule_prohibition_and_combination() {
    let src = with(
        "[[rule]]\nid = \"r-diag\"\nto = [\"b\"]\nroles = [\"regisseur\"]\npurposes = [\"regie\"]\nfields = [\"a.dossier.diagnose\"]\naction = \"exists\"\nground = \"g\"",
    );
    assert_errors(
        &src,
        &[
            "rule r-diag violates prohibition geen-gezondheid: it sends a.dossier.diagnose (gezondheid) to b (role regisseur, purpose regie) as exists, but the prohibition allows only withhold, omit",
        ],
    );
    let d = compile_toml(&src).err().unwrap();
    assert_eq!(
        d.0[0].help.as_deref(),
        Some(
            "the covenant says: \"Gezondheid nooit.\"; narrow the rule (`to`, `except_to`, `fields`) or change its action"
        )
    );
}

#[test]
fn prohibition_is_checked_even_where_rules_tie() {
    // Without precedence, both outcomes are candidates: the violating one must still be named.
    let src = with(concat!(
        "[[rule]]\nid = \"r-diag-w\"\nto = [\"b\"]\nroles = [\"regisseur\"]\npurposes = [\"regie\"]\nfields = [\"a.dossier.diagnose\"]\naction = \"withhold\"\ncode = \"5.1.2.e\"\n",
        "[[rule]]\nid = \"r-diag-d\"\nto = [\"b\"]\nroles = [\"regisseur\"]\npurposes = [\"regie\"]\nfields = [\"a.dossier.diagnose\"]\naction = \"disclose\"\nground = \"g\"\n",
    ));
    let got = errors(&src);
    assert!(
        got.iter()
            .any(|m| m.starts_with("rules r-diag-w and r-diag-d overlap")),
        "{got:?}"
    );
    assert!(
        got.iter()
            .any(|m| m.starts_with("rule r-diag-d violates prohibition geen-gezondheid")),
        "{got:?}"
    );
    assert!(
        !got.iter().any(|m| m.contains("can never apply")),
        "{got:?}"
    );
}

#[test]
fn prohibition_must_allow_withhold_and_know_its_actions() {
    assert_errors(
        &edit("allowed = [\"withhold\", \"omit\"]", "allowed = [\"omit\"]"),
        &["prohibition geen-gezondheid does not allow `withhold`"],
    );
    assert_errors(
        &edit("allowed = [\"withhold\", \"omit\"]", "allowed = []"),
        &["prohibition geen-gezondheid allows nothing"],
    );
    assert_errors(
        &edit(
            "allowed = [\"withhold\", \"omit\"]",
            "allowed = [\"withhold\", \"hide\"]",
        ),
        &["unknown action `hide`"],
    );
}

#[test]
fn token_keys_refuse_hmac_and_none() {
    assert_errors(
        &edit("alg = \"ES256\"", "alg = \"HS256\""),
        &["token algorithm `HS256` is refused: HMAC keys are shared secrets"],
    );
    assert_errors(
        &edit("alg = \"ES256\"", "alg = \"none\""),
        &["token algorithm `none` is refused: unsigned tokens prove nothing"],
    );
    assert_errors(
        &edit("alg = \"ES256\"", "alg = \"PS512\""),
        &["unknown token algorithm `PS512`"],
    );
    assert_errors(
        &edit(
            "token_keys = [{ kid = \"a-1\", alg = \"ES256\", key = \"file:a/token.pem\" }]",
            "token_keys = []",
        ),
        &["partner a has no token-signing keys"],
    );
    assert_errors(
        &edit("key = \"file:a/token.pem\"", "key = \"MFkwEwYHKoZIzj0CAQ\""),
        &["public key of partner a is neither inline key material nor `file:`"],
    );
}

#[test]
fn partner_identity_material() {
    assert_errors(
        &edit("oin = \"00000099000000000001\"", "oin = \"12345\""),
        &["OIN `12345` of partner a is not 20 digits"],
    );
    assert_errors(
        &edit("oin = \"00000099000000000001\"\n", ""),
        &["partner a has no way to recognise its certificate"],
    );
    assert_errors(
        &edit("cert_sha256 = [\"AB:CD", "cert_sha256 = [\"ZZ:CD"),
        &["certificate fingerprint of partner p is not a SHA-256 hex digest"],
    );
    assert_errors(
        &edit(
            "recipient = \"age1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqq\"",
            "recipient = \"ssh-ed25519 AAAA\"",
        ),
        &["age recipient of partner a is neither inline key material nor `file:`"],
    );
}

#[test]
fn role_held_by_nobody_and_empty_selectors() {
    assert_errors(
        &edit("held_by = [\"kind:peer\"]", "held_by = []"),
        &["role peer is held by nobody"],
    );
    let got = errors(&edit("to = [\"b\"]", "to = []"));
    assert_eq!(got, vec!["rule r-naam has an empty `to`"]);
}

#[test]
fn district_ranges() {
    assert_errors(
        &edit("postcodes = [\"1011-1018\"]", "postcodes = [\"1018-1011\"]"),
        &["`1018-1011` is not a postcode area or range"],
    );
    assert_errors(
        &edit("postcodes = [\"1011-1018\"]", "postcodes = [\"Centrum\"]"),
        &["`Centrum` is not a postcode area or range"],
    );
}

#[test]
fn all_errors_are_reported_together_in_file_order() {
    let src = edit("oin = \"00000099000000000001\"", "oin = \"1\"")
        .replace("relation = \"is-regisseur\"", "relation = \"x\"");
    let got = errors(&src);
    assert_eq!(
        got,
        vec![
            "OIN `1` of partner a is not 20 digits",
            "unknown relation `x`"
        ]
    );
}

#[test]
fn version_ignores_layout_but_not_content() {
    let a = compile(MINI);
    let b = compile(&format!(
        "# a comment\n{}",
        MINI.replace("name = \"A\"", "name   =   \"A\"")
    ));
    assert_eq!(a.version(), b.version());
    let c = compile(&MINI.replace("ground = \"Wet PGA art. 3\"", "ground = \"Wet PGA art. 4\""));
    assert_ne!(a.version(), c.version());
}

const REGISTER: &str = "[case_register]\ncreate = [\"regisseur\"]\nupdate = [\"regisseur\"]\nread = [\"regisseur\"]\nread_classification = []\n";

#[test]
fn case_register_and_transitions() {
    let cc = compile(&with(&format!(
        "{REGISTER}[[transition]]\nfrom = [\"melding\"]\nto = \"duiding\"\nroles = [\"regisseur\"]\n"
    )));
    let c = cc.covenant();
    let r = c.role("regisseur").unwrap();
    use policy::CaseStatus::*;
    assert!(c.case_register.may_create(r));
    assert!(c.case_register.may_transition(Melding, Duiding, r));
    assert!(!c.case_register.may_transition(Duiding, Opgenomen, r));
    assert!(!c.case_register.may_read_classification(r));
}

#[test]
fn appointments_name_their_decision_makers_and_never_the_regisseur_for_itself() {
    let appoint = "[case_register.appoint.regisseur]\nroles = [\"peer\"]\nstatuses = [\"duiding\", \"uitvoering\"]\n[case_register.appoint.uvo_partners]\nroles = [\"regisseur\"]\nstatuses = [\"plan\"]\n";
    let cc = compile(&with(&format!("{REGISTER}{appoint}")));
    let c = cc.covenant();
    let (peer, reg) = (c.role("peer").unwrap(), c.role("regisseur").unwrap());
    use policy::CaseStatus::*;
    let r = &c.case_register;
    assert!(r.appoint_regisseur.by(peer) && !r.appoint_regisseur.by(reg));
    assert!(r.appoint_regisseur.open_in(Uitvoering) && !r.appoint_regisseur.open_in(Melding));
    assert!(r.compose_uvo.by(reg) && r.compose_uvo.open_in(Plan));
    // Without the table, nobody appoints anybody.
    let none = compile(&with(REGISTER));
    assert!(!none.covenant().case_register.appoint_regisseur.by(peer));
    assert!(!none.covenant().case_register.compose_uvo.by(reg));
    // A regisseur role appointing regisseurs would let a requester grant itself the relation.
    assert_errors(
        &with(&format!(
            "{REGISTER}[case_register.appoint.regisseur]\nroles = [\"regisseur\"]\nstatuses = [\"duiding\"]\n"
        )),
        &["`regisseur` may not appoint regisseurs"],
    );
    assert_errors(
        &with(&format!(
            "{REGISTER}[case_register.appoint.uvo_partners]\nroles = [\"ghost\"]\nstatuses = [\"open\"]\n"
        )),
        &[
            "unknown role `ghost` in `appoint.uvo_partners`",
            "unknown case status `open`",
        ],
    );
}

#[test]
fn transition_errors() {
    // The moves are the covenant's (the 2016 and 2019 processes differ); only what no process
    // does is refused.
    compile(&with(&format!(
        "{REGISTER}[[transition]]\nfrom = [\"melding\"]\nto = \"uitvoering\"\nroles = [\"regisseur\"]\n"
    )));
    for (from, to) in [
        ("afgesloten", "uitvoering"),
        ("duiding", "melding"),
        ("plan", "plan"),
    ] {
        assert_errors(
            &with(&format!(
                "{REGISTER}[[transition]]\nfrom = [\"{from}\"]\nto = \"{to}\"\nroles = [\"regisseur\"]\n"
            )),
            &[&format!(
                "no work process lets a case go from {from} to {to}"
            )],
        );
    }
    // Who may make a case static is the covenant's [governance] static_role, and only it.
    assert_errors(
        &with(&format!(
            "{REGISTER}[[transition]]\nfrom = [\"uitvoering\"]\nto = \"statisch\"\nroles = [\"regisseur\"]\n"
        )),
        &["a transition to statisch needs [governance] static_role"],
    );
    let governed = with(&format!(
        "{REGISTER}[[transition]]\nfrom = [\"uitvoering\"]\nto = \"statisch\"\nroles = [\"peer\"]\n"
    ))
    .replace(
        "[governance]\n",
        "[governance]\nstatic_role = \"regisseur\"\n",
    );
    assert_errors(
        &governed,
        &["only regisseur may make a case statisch, not `peer`"],
    );
    assert_errors(
        &with(&format!(
            "{REGISTER}[[transition]]\nfrom = [\"melding\"]\nto = \"duiding\"\nroles = [\"regisseur\"]\n[[transition]]\nfrom = [\"melding\"]\nto = \"duiding\"\nroles = [\"peer\"]\n"
        )),
        &["transition melding → duiding is declared twice"],
    );
    assert_errors(
        &with(&format!(
            "{REGISTER}[[transition]]\nfrom = [\"open\"]\nto = \"duiding\"\nroles = [\"regisseur\"]\n"
        )),
        &["unknown case status `open`"],
    );
    assert_errors(
        &with(
            "[case_register]\ncreate = [\"secretaris\"]\nupdate = []\nread = []\nread_classification = []\n",
        ),
        &["unknown role `secretaris` in `create`"],
    );
}

#[test]
fn aggregate_views() {
    let ok = with(
        "[aggregates]\nthreshold = 10\nrounding = 5\n[[view]]\nid = \"v\"\nname = \"V\"\npurposes = [\"fenomeen\"]\ndimensions = [\"ideology\", \"risk-group\"]\nmeasure = \"count\"\n",
    );
    let cc = compile(&ok);
    assert_eq!(
        cc.covenant().aggregates.view("v").unwrap().dimensions.len(),
        2
    );
    assert_errors(
        &ok.replace("purposes = [\"fenomeen\"]", "purposes = [\"regie\"]"),
        &["view v is open to case-level purpose regie"],
    );
    assert_errors(
        &ok.replace("\"risk-group\"]", "\"risk-group\", \"status\"]"),
        &["view v has 3 dimensions; count allows at most 2"],
    );
    assert_errors(
        &ok.replace("\"ideology\",", "\"district\","),
        &["unknown dimension `district`"],
    );
    assert_errors(
        &ok.replace("threshold = 10", "threshold = 1"),
        &["an aggregate threshold below 2 protects nobody"],
    );
}

#[test]
fn prohibitions_bar_categories_outside_the_field_rules_too() {
    let cc = compile(MINI);
    let c = cc.covenant();
    let a = c.partner("a").unwrap();
    assert!(c.category_barred(a, policy::Category::Gezondheid));
    assert!(!c.category_barred(a, policy::Category::Identiteit));
    // A prohibition scoped to some purposes does not bar a category everywhere.
    let scoped = compile(&edit(
        "categories = [\"gezondheid\"]",
        "purposes = [\"regie\"]\ncategories = [\"gezondheid\"]",
    ));
    assert!(!scoped.covenant().category_barred(
        scoped.covenant().partner("a").unwrap(),
        policy::Category::Gezondheid
    ));
}

#[test]
fn deposit_roles_must_exist_and_be_held_by_the_owner() {
    // `peer` exists but partner `a` (a core partner) may not hold it; `bron` does not exist.
    let src = edit(
        "name = \"Dossier\"",
        "name = \"Dossier\"\ndeposit_roles = [\"regisseur\", \"peer\", \"bron\"]",
    );
    assert_errors(
        &src,
        &[
            "role `peer` may deposit product a.dossier, but its owner `a` may not hold that role",
            "unknown role `bron` in `deposit_roles`",
        ],
    );
    // A valid list compiles, and is what the product lets deposit.
    let cc = compile(&edit(
        "name = \"Dossier\"",
        "name = \"Dossier\"\ndeposit_roles = [\"regisseur\"]",
    ));
    let c = cc.covenant();
    let p = &c.products[0];
    assert!(p.may_deposit(c.role("regisseur").unwrap()));
    assert!(!p.may_deposit(c.role("peer").unwrap()));
    // Without the key, nobody deposits.
    assert!(!compile(MINI).covenant().products[0].may_deposit(c.role("regisseur").unwrap()));
}

#[test]
fn governance_names_existing_ids_and_every_relation_its_role() {
    assert_errors(
        &MINI.replace(
            "[governance]\n",
            "[governance]\nprogramme_partner = \"x\"\ncheck_purpose = \"fenomeen\"\nstatic_role = \"pto\"\n",
        ),
        &[
            "unknown partner `x` in [governance] programme_partner",
            "the check purpose `fenomeen` is aggregate-level",
            "unknown role `pto` in [governance] static_role",
        ],
    );
    // A purpose whose relation needs a role the covenant does not name.
    assert_errors(
        &MINI.replace("[governance]\nregisseur_role = \"regisseur\"\n", ""),
        &[
            "purpose regie requires relation `is-regisseur`, but [governance] names no regisseur_role",
        ],
    );
    let src = MINI.replace(
        "[governance]\n",
        "[governance]\nprogramme_partner = \"a\"\napproach = \"Mini-aanpak\"\n",
    );
    let cc = compile(&src);
    let g = &cc.covenant().governance;
    assert_eq!(g.programme_partner, cc.covenant().partner("a"));
    assert_eq!(g.approach, "Mini-aanpak");
    assert_eq!(
        compile(MINI).covenant().governance.approach,
        "mini",
        "the covenant id by default"
    );
}

const WITNESS_KEY: &str = "w.politie+0a1b2c3d+BAvalidlookingbase64keymaterialAAAAAAAAAAAAAAAAA=";

fn with_witnesses(extra: &str) -> String {
    format!("{MINI}\n{extra}")
}

#[test]
fn witnesses_and_their_quorum_are_read() {
    let src = with_witnesses(&format!(
        "[[witness]]\npartner = \"a\"\nname = \"w.politie\"\nvkey = \"{WITNESS_KEY}\"\nurl = \"https://w.politie.example/\"\n\n[witnessing]\nquorum = 1\nblind_after_secs = 600\n"
    ));
    let cc = compile(&src);
    let w = &cc.covenant().witnessing;
    assert_eq!(w.witnesses.len(), 1);
    assert_eq!(w.quorum, 1);
    assert_eq!(w.blind_after_secs, 600);
    assert_eq!(w.witnesses[0].name, "w.politie");
    // Without witnesses: none, and the canonical form (the version hash) is as before.
    let plain = compile(MINI);
    assert!(plain.covenant().witnessing.witnesses.is_empty());
    assert_eq!(plain.covenant().witnessing.blind_after_secs, 4 * 3600);
}

#[test]
fn witness_mistakes_are_named() {
    let src = with_witnesses(&format!(
        "[[witness]]\npartner = \"a\"\nname = \"w.politie\"\nvkey = \"{WITNESS_KEY}\"\nurl = \"https://w.politie.example/\"\n\n\
         [[witness]]\npartner = \"a\"\nname = \"w.two\"\nvkey = \"w.other+0a1b2c3d+AAAA\"\nurl = \"ftp://x\"\n\n\
         [[witness]]\npartner = \"nobody\"\nname = \"w.three\"\nvkey = \"w.three+zz+AAAA\"\nurl = \"https://x/\"\n\n\
         [witnessing]\nquorum = 4\nblind_after_secs = 0\n"
    ));
    assert_errors(
        &src,
        &[
            "partner a runs two witnesses",
            "the vkey of witness w.two names `w.other`, not the witness",
            "the url of witness w.two is not an http(s) URL",
            "unknown partner `nobody` of witness w.three",
            "a quorum of 4 with 3 witness(es)",
            "blind_after_secs = 0 stops every disclosure",
        ],
    );
    let no_quorum = with_witnesses(&format!(
        "[[witness]]\npartner = \"a\"\nname = \"w.politie\"\nvkey = \"{WITNESS_KEY}\"\nurl = \"https://w.politie.example/\"\n"
    ));
    assert_errors(&no_quorum, &["1 witness(es) but no quorum"]);
    assert_errors(
        &with_witnesses("[witnessing]\nquorum = 1\n"),
        &["[witnessing] without any [[witness]]"],
    );
}

#[test]
fn other_approaches_and_the_check_limit_are_read_and_checked() {
    let cc = compile(&with_witnesses(
        "[[approach]]\nid = \"top600\"\nname = \"Top600\"\npartner = \"a\"\ncontact = \"Regieteam Top600\"\n\n[checks]\nper_staff_per_minute = 5\n",
    ));
    let c = &cc.covenant().checks;
    assert_eq!(c.approaches.len(), 1);
    assert_eq!(c.approaches[0].name, "Top600");
    assert_eq!(c.per_staff_per_minute, 5);
    assert_eq!(compile(MINI).covenant().checks.per_staff_per_minute, 30);
    assert_errors(
        &with_witnesses(
            "[[approach]]\nid = \"top600\"\nname = \"Top600\"\npartner = \"nobody\"\ncontact = \"\"\n\n[checks]\nper_staff_per_minute = 0\n",
        ),
        &[
            "approach top600 needs a name and a contact",
            "unknown partner `nobody` of approach top600",
            "per_staff_per_minute must be 1 or more",
        ],
    );
}

const RETENTION: &str = "[retention]\n\
deposits = { days = 90, ground = \"convenant art. 12\" }\n\
cases = { days = 1826, ground = \"convenant art. 12\" }\n\n\
[[retention.log]]\nid = \"log-verstrekkingen\"\nkinds = [\"disclosure\", \"check\"]\ndays = 2557\nground = \"Archiefwet\"\n\n\
[[retention.log]]\nid = \"log-regie\"\nkinds = [\"disclosure\"]\npurposes = [\"regie\"]\ndays = 365\nground = \"convenant art. 12\"\n";

#[test]
fn retention_periods_are_read_and_the_purpose_rule_overrides_the_kind_rule() {
    use policy::covenant::ExpiringKind;
    let cc = compile(&with_witnesses(RETENTION));
    let c = cc.covenant();
    let r = &c.retention;
    assert_eq!(r.deposits.as_ref().map(|p| p.days), Some(90));
    assert_eq!(r.cases.as_ref().map(|p| p.secs()), Some(1826 * 86_400));
    let regie = c.purpose("regie");
    assert_eq!(
        r.log_rule(ExpiringKind::Disclosure, regie)
            .map(|x| x.id.as_str()),
        Some("log-regie")
    );
    assert_eq!(
        r.log_rule(ExpiringKind::Disclosure, None)
            .map(|x| x.id.as_str()),
        Some("log-verstrekkingen")
    );
    assert_eq!(
        r.log_rule(ExpiringKind::Check, regie)
            .map(|x| x.id.as_str()),
        Some("log-verstrekkingen")
    );
    assert!(r.log_rule(ExpiringKind::CaseChange, None).is_none(), "kept");
    // Without [retention]: nothing is removed.
    assert!(compile(MINI).covenant().retention.is_empty());
    assert_ne!(
        compile(MINI).version().as_str(),
        cc.version().as_str(),
        "retention is part of the reviewed text"
    );
}

#[test]
fn retention_mistakes_are_named() {
    let src = with_witnesses(
        "[retention]\ncases = { days = 99999, ground = \"\" }\n\n\
         [[retention.log]]\nid = \"a\"\nkinds = [\"disclosure\", \"policy\", \"nonsense\"]\ndays = 10\nground = \"g\"\n\n\
         [[retention.log]]\nid = \"b\"\nkinds = [\"disclosure\"]\npurposes = [\"nergens\"]\ndays = 10\nground = \"g\"\n\n\
         [[retention.log]]\nid = \"c\"\nkinds = [\"disclosure\"]\ndays = 10\nground = \"g\"\n",
    );
    assert_errors(
        &src,
        &[
            "[retention] cases: 99999 days is more than a century",
            "[retention] cases has no ground",
            "retention rule a: `policy` entries are never removed",
            "retention rule a: unknown kind `nonsense`",
            "retention rule b: unknown purpose `nergens`",
            "retention rules a and c both keep `disclosure` entries for any purpose",
        ],
    );
}

#[test]
fn a_transition_can_be_a_bodys_decision_and_the_body_must_be_able_to_decide() {
    let body = "[[body]]\nid = \"overleg\"\nname = \"Overleg\"\nroles = [\"regisseur\"]\nquorum = 2\npartners = 2\n";
    let t = "[[transition]]\nfrom = [\"melding\"]\nto = \"duiding\"\nroles = [\"regisseur\"]\nbody = \"overleg\"\n";
    let cc = compile(&with(&format!("{REGISTER}{body}{t}")));
    let reg = &cc.covenant().case_register;
    use policy::CaseStatus::*;
    let b = reg.body_for(Melding, Duiding).unwrap();
    assert_eq!((b.id.as_str(), b.quorum, b.partners), ("overleg", 2, 2));
    assert!(reg.body_for(Melding, NietOpgenomen).is_none());
    assert!(reg.review_for(Melding, Duiding).is_none());
    // A review by a body that precedes the decision (the ITAT-R before the Regieoverleg).
    let reviewed = compile(&with(&format!(
        "{REGISTER}{body}{}",
        t.replace("body = \"overleg\"", "review = \"overleg\"")
    )));
    let reg = &reviewed.covenant().case_register;
    assert_eq!(reg.review_for(Melding, Duiding).unwrap().id, "overleg");
    assert!(reg.body_for(Melding, Duiding).is_none());
    assert_errors(
        &with(&format!(
            "{REGISTER}{body}{}",
            t.replace("body = \"overleg\"", "review = \"ghost\"")
        )),
        &["unknown body `ghost`"],
    );
    assert_errors(
        &with(&format!("{REGISTER}{}", t.replace("overleg", "ghost"))),
        &["unknown body `ghost`"],
    );
    assert_errors(
        &with(&format!(
            "{REGISTER}{}{t}",
            body.replace("partners = 2", "partners = 3")
        )),
        &["body `overleg`: quorum 2 of at least 3 partners cannot be met"],
    );
}

#[test]
fn an_approval_threshold_needs_every_core_partners_governance_key() {
    const KEY: &str = "a.governance+0a1b2c3d+AX+validlookingbase64keymaterialAAAAAAAAAAAAAAAA=";
    let keyed = |threshold: u32| {
        edit(
            "oin = \"00000099000000000001\"\n",
            &format!("oin = \"00000099000000000001\"\ngovernance_vkey = \"{KEY}\"\n"),
        )
        .replace(
            "oin = \"00000099000000000002\"\n",
            &format!(
                "oin = \"00000099000000000002\"\ngovernance_vkey = \"{}\"\n",
                KEY.replace("a.", "b.")
            ),
        )
        .replace(
            "regisseur_role = \"regisseur\"\n",
            &format!("regisseur_role = \"regisseur\"\napproval_threshold = {threshold}\n"),
        )
    };
    let cc = compile(&keyed(2));
    assert_eq!(cc.covenant().governance.approval_threshold, Some(2));
    assert!(cc.covenant().partners[0].governance_vkey.is_some());
    assert!(
        errors(&keyed(3))
            .iter()
            .any(|e| e.contains("approval_threshold = 3, but there are 2 core partners")),
        "{:?}",
        errors(&keyed(3))
    );
    let one_key = edit(
        "oin = \"00000099000000000001\"\n",
        &format!("oin = \"00000099000000000001\"\ngovernance_vkey = \"{KEY}\"\n"),
    )
    .replace(
        "regisseur_role = \"regisseur\"\n",
        "regisseur_role = \"regisseur\"\napproval_threshold = 1\n",
    );
    assert!(
        errors(&one_key)
            .iter()
            .any(|e| e.contains("core partners b have no governance_vkey"))
    );
    let bad = edit(
        "oin = \"00000099000000000001\"\n",
        "oin = \"00000099000000000001\"\ngovernance_vkey = \"not a key\"\n",
    );
    assert!(
        errors(&bad)
            .iter()
            .any(|e| e.contains("governance key of partner a"))
    );
}

/// A key added to the covenant after versions were stored stays out of the canonical form (the
/// version hash's input) when a covenant does not write it: otherwise every stored version would
/// no longer compile to its hash, and an upgraded gateway would refuse its own database.
#[test]
fn keys_added_later_are_absent_from_the_canonical_form_when_not_written() {
    let raw: policy::raw::RawCovenant = toml::from_str(MINI).unwrap();
    let canonical = serde_json::to_string(&raw).unwrap();
    for key in [
        "governance_vkey",
        "approval_threshold",
        "before_inclusion",
        "witnesses",
        "witnessing",
        "appoint",
        "notification_days",
        "confidential_ground",
        "review",
        "example_grounds",
    ] {
        assert!(
            !canonical.contains(&format!("\"{key}\"")),
            "{key} in {canonical}"
        );
    }
}

/// Issue 31: a purpose left out of the data subject's access report states the law that allows it.
#[test]
fn a_confidential_purpose_states_its_legal_basis() {
    let hidden = "relation = \"is-regisseur\"\nconfidential = true";
    assert_errors(
        &edit("relation = \"is-regisseur\"", hidden),
        &["purpose regie is confidential without a legal basis"],
    );
    let grounded = compile(&edit(
        "relation = \"is-regisseur\"",
        &format!("{hidden}\nconfidential_ground = \"UAVG art. 41\""),
    ));
    let regie = grounded
        .covenant()
        .purposes
        .iter()
        .find(|u| u.id == "regie")
        .unwrap();
    assert_eq!(regie.confidential_ground.as_deref(), Some("UAVG art. 41"));
}

/// Issue 31: grounds the partners have not confirmed say so wherever they reach a person.
#[test]
fn example_grounds_are_labelled_until_the_covenant_says_they_are_confirmed() {
    let plain = compile(MINI);
    let grounds = |cc: &policy::CompiledCovenant| -> Vec<String> {
        cc.covenant()
            .rules
            .iter()
            .filter(|r| !r.ground.is_empty())
            .map(|r| r.ground.clone())
            .collect()
    };
    assert!(!grounds(&plain).is_empty());
    assert!(
        grounds(&plain)
            .iter()
            .all(|g| !g.starts_with("voorbeeldgrond"))
    );
    let labelled =
        compile(&MINI.replace("[governance]\n", "[governance]\nexample_grounds = true\n"));
    assert!(
        grounds(&labelled)
            .iter()
            .all(|g| g.starts_with(policy::covenant::EXAMPLE_GROUND)),
        "{:?}",
        grounds(&labelled)
    );
}
