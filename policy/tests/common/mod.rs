//! A minimal valid covenant that tests mutate, and helpers to read the errors.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    dead_code,
    reason = "test helpers shared by several test crates: each uses a different part, so an expectation would go unfulfilled in some"
)]

use policy::{CompiledCovenant, compile_toml};

pub const MINI: &str = r#"
[covenant]
id = "mini"
title = "Mini"

[redaction_codes]
"5.1.2.e" = "Woo 5.1.2.e privacy"

[[partner]]
id = "a"
name = "A"
kind = "kernpartner"
oin = "00000099000000000001"
recipient = "age1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqq"
token_keys = [{ kid = "a-1", alg = "ES256", key = "file:a/token.pem" }]

[[partner]]
id = "b"
name = "B"
kind = "kernpartner"
oin = "00000099000000000002"
recipient = "file:b/age.txt"
token_keys = [{ kid = "b-1", alg = "EdDSA", key = "file:b/token.pem" }]

[[partner]]
id = "p"
name = "Peer"
kind = "peer"
cert_sha256 = ["AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89"]
recipient = "file:p/age.txt"
token_keys = [{ kid = "p-1", alg = "RS256", key = "file:p/token.pem" }]

[[role]]
id = "regisseur"
name = "Regisseur"
held_by = ["kind:kernpartner"]

[[role]]
id = "peer"
name = "Peer"
held_by = ["kind:peer"]

[[purpose]]
id = "regie"
name = "Regie"
level = "case"
roles = ["regisseur"]
case_status = ["opgenomen"]
relation = "is-regisseur"

[[purpose]]
id = "fenomeen"
name = "Fenomeen"
level = "aggregate"
roles = ["peer"]
relation = "none"

[[district]]
name = "Centrum"
postcodes = ["1011-1018"]

[governance]
regisseur_role = "regisseur"

[[product]]
id = "a.dossier"
owner = "a"
name = "Dossier"
fields = [
  { name = "naam", type = "text", category = "identiteit" },
  { name = "geboortedatum", type = "date", category = "identiteit" },
  { name = "postcode", type = "postcode", category = "adres" },
  { name = "diagnose", type = "text", category = "gezondheid" },
]

[[rule]]
id = "r-naam"
to = ["b"]
roles = ["regisseur"]
purposes = ["regie"]
fields = ["a.dossier.naam"]
action = "disclose"
ground = "Wet PGA art. 3"

[[prohibition]]
id = "geen-gezondheid"
text = "Gezondheid nooit."
to = ["*"]
categories = ["gezondheid"]
allowed = ["withhold", "omit"]
"#;

/// Compiles, panicking with the rendered errors if invalid.
pub fn compile(src: &str) -> CompiledCovenant {
    match compile_toml(src) {
        Ok(c) => c,
        Err(d) => panic!("expected a valid covenant:\n{}", d.render("test.toml", src)),
    }
}

/// The error messages, in file order.
pub fn errors(src: &str) -> Vec<String> {
    match compile_toml(src) {
        Ok(_) => panic!("expected errors, the covenant is valid"),
        Err(d) => d.0.into_iter().map(|d| d.message).collect(),
    }
}

/// MINI with `from` replaced by `to` (which must occur exactly once).
pub fn edit(from: &str, to: &str) -> String {
    assert_eq!(
        MINI.matches(from).count(),
        1,
        "`{from}` must occur once in MINI"
    );
    MINI.replacen(from, to, 1)
}

/// MINI with extra TOML appended.
pub fn with(extra: &str) -> String {
    format!("{MINI}\n{extra}")
}
