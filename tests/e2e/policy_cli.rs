//! `gateway policy …` on the example covenant and on broken copies of it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn gateway(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(args)
        .output()
        .expect("run gateway")
}

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../ops/covenant/ipga-r.toml")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A copy of the example covenant with `extra` appended, in a temporary directory.
fn broken_copy(name: &str, extra: &str) -> (tempdir::Dir, PathBuf) {
    let dir = tempdir::Dir::new(name);
    let path = dir.path().join("ipga-r.toml");
    let src = std::fs::read_to_string(example()).unwrap();
    std::fs::write(&path, format!("{src}\n{extra}")).unwrap();
    (dir, path)
}

mod tempdir {
    //! A directory removed on drop; enough for these tests without another dependency.
    use std::path::{Path, PathBuf};
    pub struct Dir(PathBuf);
    impl Dir {
        pub fn new(name: &str) -> Dir {
            let p = std::env::temp_dir().join(format!("gateway-e2e-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            Dir(p)
        }
        pub fn path(&self) -> &Path {
            &self.0
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[test]
fn check_proves_the_example_covenant() {
    let out = gateway(&["policy", "check", example().to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains(": valid"), "{stdout}");
    assert!(
        stdout.contains("partners      13 (7 kernpartner, 5 affiliated, 1 peer)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("purposes      8 (6 case-level, 2 aggregate)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("prohibitions  8 proven over every combination:"),
        "{stdout}"
    );
    for id in [
        "gezondheid-alleen-ggd",
        "peers-nooit-casusniveau",
        "ideologie-nooit-naar-wpi",
        "aanpak-check-zonder-inhoud",
        "nctv-niet-in-de-uitvoering",
    ] {
        assert!(
            stdout.contains(&format!("proven  {id}")),
            "{id} not proven:\n{stdout}"
        );
    }
}

#[test]
fn check_json_summary() {
    let out = gateway(&[
        "policy",
        "check",
        example().to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["valid"], true);
    assert_eq!(v["prohibitions"].as_array().unwrap().len(), 8);
    assert!(v["version"].as_str().unwrap().starts_with("sha256:"));
}

#[test]
fn a_rule_sending_gezondheid_to_politie_fails_naming_rule_and_prohibition() {
    let (_dir, path) = broken_copy(
        "gezondheid",
        r#"
[[rule]]
id = "gezondheid-naar-politie"
to = ["politie"]
roles = ["regisseur"]
purposes = ["regie"]
categories = ["gezondheid"]
action = "disclose"
ground = "Een onjuiste regel"
overrides = ["regie-ggd-zorg", "gezondheid-details", "medicatie-nooit"]
"#,
    );
    let out = gateway(&["policy", "check", path.to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(out.stdout.is_empty());
    assert!(
        stderr.contains("error: rule gezondheid-naar-politie violates prohibition gezondheid-alleen-ggd: it sends ggd.screening.screeningsdatum (gezondheid) to politie (role regisseur, purpose regie) as disclose, but the prohibition allows only exists, withhold, omit"),
        "{stderr}"
    );
    assert!(
        stderr.contains("violates prohibition diagnose-en-medicatie-nooit"),
        "{stderr}"
    );
    // It points at the rule's id with line and column.
    let line = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .position(|l| l == "id = \"gezondheid-naar-politie\"")
        .unwrap()
        + 1;
    assert!(
        stderr.contains(&format!(
            "ipga-r.toml:{line}:6: error: rule gezondheid-naar-politie violates"
        )),
        "{stderr}"
    );
    assert!(
        stderr.ends_with("2 errors found; nothing was loaded\n"),
        "{stderr}"
    );
}

#[test]
fn unreadable_file_is_a_usage_error() {
    let out = gateway(&["policy", "check", "/nonexistent/covenant.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr)
            .starts_with("error: cannot read covenant file /nonexistent/covenant.toml")
    );
}

#[test]
fn explain_shows_decision_rule_and_why_others_did_not_apply() {
    let f = example();
    let out = gateway(&[
        "policy",
        "explain",
        f.to_str().unwrap(),
        "--to",
        "wpi",
        "--role",
        "regisseur",
        "--purpose",
        "regie",
        "--product",
        "oov.casusdossier",
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(stdout.contains("To wpi (Gemeente Amsterdam, Werk, Participatie en Inkomen), role regisseur, purpose regie"), "{stdout}");
    let ideologie = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("ideologie "))
        .unwrap();
    assert!(
        ideologie.contains("withhold") && ideologie.contains("rule ideologie-niet-naar-wpi"),
        "{ideologie}"
    );
    assert!(
        stdout.contains("not applied: regie-ideologie (`to` does not include wpi)"),
        "{stdout}"
    );
    assert!(
        stdout.contains(r#"marker {"ground":"voorbeeldgrond: Convenant art. 11"#),
        "{stdout}"
    );
}

#[test]
fn explain_a_combination_the_covenant_does_not_permit() {
    let out = gateway(&[
        "policy",
        "explain",
        example().to_str().unwrap(),
        "--to",
        "gemeente-utrecht",
        "--role",
        "peer",
        "--purpose",
        "regie",
        "--field",
        "naam",
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["permitted"], false);
    assert_eq!(
        v["not_permitted_reason"],
        "purpose regie is not open to role peer"
    );
    assert_eq!(v["fields"][0]["field"], "oov.casusdossier.naam");
    assert_eq!(v["fields"][0]["marker"]["redacted"], "not-permitted");
}

#[test]
fn explain_rejects_unknown_names_listing_known_ones() {
    let out = gateway(&[
        "policy",
        "explain",
        example().to_str().unwrap(),
        "--to",
        "politie",
        "--role",
        "regiseur",
        "--purpose",
        "regie",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(
            "error: unknown role `regiseur`; known roles: melder-intake, voorportaal, regisseur"
        ),
        "{stderr}"
    );
}

#[test]
fn matrix_in_three_formats() {
    let f = example();
    let table = gateway(&["policy", "matrix", f.to_str().unwrap()]);
    let t = text(&table.stdout);
    assert!(table.status.success());
    // GGD data reaches the politie regisseur only as exists/withhold/omit.
    let row = t
        .lines()
        .find(|l| l.starts_with("politie") && l.contains(" regie "))
        .unwrap();
    assert!(
        row.split_whitespace()
            .nth(7)
            .unwrap()
            .chars()
            .all(|c| "EWO".contains(c)),
        "{row}"
    );
    // Peers have no case-level row at all.
    assert!(!t.lines().any(|l| l.starts_with("gemeente-utrecht")), "{t}");

    let csv = gateway(&["policy", "matrix", f.to_str().unwrap(), "--format", "csv"]);
    let c = text(&csv.stdout);
    assert!(c.starts_with("partner,purpose,category,disclose,mask,generalize,pseudonymize,exists,withhold,omit,rules\n"), "{c}");
    let health = c
        .lines()
        .find(|l| l.starts_with("politie,regie,gezondheid,"))
        .unwrap();
    assert!(
        health.starts_with("politie,regie,gezondheid,0,0,0,0,3,1,1,"),
        "{health}"
    );

    let json = gateway(&["policy", "matrix", f.to_str().unwrap(), "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert!(
        v.as_array()
            .unwrap()
            .iter()
            .all(|cell| cell["partner"] != "gemeente-utrecht")
    );
}

#[test]
fn diff_names_every_changed_decision() {
    let f = example();
    let src = std::fs::read_to_string(&f).unwrap();
    // Withhold the RN supervisor's phone number from interventieplegers.
    let changed = src.replace(
        r#"fields = ["om.strafzaken.bijzondere_voorwaarden", "rn.toezicht.voorwaarden", "rn.toezicht.toezichthouder", "rn.toezicht.toezichthouder_telefoon"]"#,
        r#"fields = ["om.strafzaken.bijzondere_voorwaarden", "rn.toezicht.voorwaarden", "rn.toezicht.toezichthouder"]"#,
    );
    assert_ne!(src, changed);
    let dir = tempdir::Dir::new("diff");
    let new = dir.path().join("new.toml");
    std::fs::write(&new, changed).unwrap();
    let out = gateway(&[
        "policy",
        "diff",
        f.to_str().unwrap(),
        new.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let changes = v["changes"].as_array().unwrap();
    // Every kernpartner and affiliated partner but the NCTV may hold interventiepleger: 7 + 4.
    assert_eq!(changes.len(), 11, "{changes:#?}");
    assert!(changes.iter().all(
        |c| c["field"] == "rn.toezicht.toezichthouder_telefoon" && c["purpose"] == "uitvoering"
    ));
    assert!(
        changes[0]["before"]
            .as_str()
            .unwrap()
            .starts_with("disclose [uitvoering-voorwaarden]")
    );
    assert!(
        changes[0]["after"]
            .as_str()
            .unwrap()
            .starts_with("withhold [default-deny, code no-rule]")
    );

    // The review names the rule's line and whose data it is: the RN's.
    let review = v["review"]["lines"].as_array().unwrap();
    assert_eq!(review.len(), 1, "{review:#?}");
    assert_eq!(review[0]["section"], "rule");
    assert_eq!(
        review[0]["needs"],
        serde_json::json!({"by": "partners", "partners": ["om", "rn"]})
    );

    let same = gateway(&["policy", "diff", f.to_str().unwrap(), f.to_str().unwrap()]);
    assert!(text(&same.stdout).contains(
        "0 decisions change in 0 partner/purpose groups\n\nEvery change of the text (0)"
    ));
}
