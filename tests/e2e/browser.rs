//! The console in a real browser: headless Chromium (Debian's `chromium` and `chromium-driver`)
//! driven by Selenium from `tests/browser/console.py`, against a real gateway and three real
//! consoles (a privacy officer, a draft's author, a second administrator). axe-core runs on every
//! page; screenshots land in `target/browser/`. `.ci/run` installs the browser, Selenium and
//! axe-core; elsewhere the test says what is missing and skips.

use crate::console::start_console_as;
use crate::helpers::*;
use serde_json::json;
use std::path::{Path, PathBuf};

/// The browser's tools, or what is missing.
fn tools() -> Result<(PathBuf, PathBuf, PathBuf, String), String> {
    let found = |p: &str| Path::new(p).exists().then(|| PathBuf::from(p));
    let chromium = found("/usr/bin/chromium").ok_or("chromium (apt install chromium)")?;
    let driver =
        found("/usr/bin/chromedriver").ok_or("chromedriver (apt install chromium-driver)")?;
    let axe = std::env::var_os("GATEWAY_AXE_JS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/ci-node/node_modules/axe-core/axe.min.js"));
    if !axe.exists() {
        return Err(format!(
            "axe-core ({}; npm install --prefix target/ci-node axe-core)",
            axe.display()
        ));
    }
    let python = std::env::var("GATEWAY_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let has_selenium = std::process::Command::new(&python)
        .args(["-c", "import selenium"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_selenium {
        return Err(format!("selenium for {python} (pip install selenium)"));
    }
    Ok((chromium, driver, axe, python))
}

#[tokio::test]
async fn the_console_works_in_a_real_browser_for_officers_and_administrators() {
    let (chromium, driver, axe, python) = match tools() {
        Ok(t) => t,
        Err(missing) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must run the browser suite: missing {missing}"
            );
            eprintln!("browser suite skipped: missing {missing}");
            return;
        }
    };
    let gw = Gateway::start();
    // The subject's history: a refusal (the regisseur is not appointed yet, so to it the case
    // does not exist), two disclosures.
    let bsn = "999990147";
    let case = crate::disclose::case_with_records(&gw, bsn).await;
    let (s, v) = crate::disclose::ask(&gw, "rn", "reg.mulder", "regisseur", "regie", &case).await;
    assert_eq!(s, 404, "{v}");
    crate::disclose::include(&gw, &case).await;
    for _ in 0..2 {
        crate::disclose::answered(&gw, "rn", "reg.mulder", "regisseur", "regie", &case).await;
    }
    // Another subject's disclosure, which the search by BSN must not show.
    let other = crate::disclose::case_with_records(&gw, "999990159").await;
    crate::disclose::include(&gw, &other).await;
    crate::disclose::answered(&gw, "rn", "reg.mulder", "regisseur", "regie", &other).await;
    let officer_token = token("oov", "fg.1", &["privacy-officer"]);
    // A search by person is a POST: the BSN in the body, never in a URL (issue 28).
    let api = |q: serde_json::Value| {
        client("oov")
            .post(gw.url("/v1/audit/disclosures/search"))
            .bearer_auth(officer_token.clone())
            .json(&q)
            .send()
    };
    let mine: serde_json::Value =
        api(serde_json::json!({"subject": bsn, "kind": "disclosure", "limit": 200}))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let disclosures: Vec<i64> = mine["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(disclosures.len(), 3, "{mine}");
    let answered: Vec<i64> = mine["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["outcome"] == "answered")
        .map(|i| i["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(answered.len(), 2, "{mine}");

    let officer = start_console_as(&gw, "fg.1", "privacy-officer");
    let author = start_console_as(&gw, "beheerder-1", "beheerder");
    let second = start_console_as(&gw, "beheerder-2", "beheerder");
    let out = repo().join("target/browser");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    // Chromium refuses a download directory with `..` in its path.
    let out = out.canonicalize().unwrap();
    let work = scratch().join(format!("browser-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&work).unwrap();
    let draft = crate::lifecycle::draft_text();
    let broken = draft.replace("action = \"withhold\"\ncode", "action = \"shred\"\ncode");
    std::fs::write(work.join("draft.toml"), &draft).unwrap();
    std::fs::write(work.join("broken.toml"), &broken).unwrap();
    // The GGD's signed approval of that draft against the version in force (issue 37): the
    // draft's version as the gateway will compute it, from the example PKI's key files.
    let version = policy::compile_toml_resolving(&draft, &mut |path| {
        std::fs::read_to_string(pki().join(path)).map_err(|e| e.to_string())
    })
    .unwrap()
    .version()
    .as_str()
    .to_owned();
    let active = oov_get(&gw, "beheerder-1", &["beheerder"], "/v1/policy").await;
    let note = approval_note(
        pki(),
        "ggd",
        &version,
        active["version"].as_str().unwrap(),
        active["draft"].as_str().unwrap(),
    );
    std::fs::write(work.join("ggd-note.txt"), &note).unwrap();
    let cfg = json!({
        "officer_login": officer.login,
        "author_login": author.login,
        "second_login": second.login,
        "bsn": bsn,
        "disclosures": disclosures,
        "answered": answered,
        "field": "ggd.screening.contactpersoon",
        "draft_file": work.join("draft.toml"),
        "broken_file": work.join("broken.toml"),
        "ggd_note_file": work.join("ggd-note.txt"),
        "out": out,
        "axe": axe,
        "chromium": chromium,
        "chromedriver": driver,
    });
    std::fs::write(work.join("browser.json"), cfg.to_string()).unwrap();
    let run = tokio::time::timeout(
        std::time::Duration::from_secs(300),
        tokio::process::Command::new(&python)
            .arg(repo().join("tests/browser/console.py"))
            .arg(work.join("browser.json"))
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the browser suite finishes within five minutes")
    .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    eprintln!("{stdout}\n{}", String::from_utf8_lossy(&run.stderr));
    assert!(run.status.success(), "the browser suite failed:\n{stdout}");

    // The downloaded CSV is the API's own for the same query.
    let downloaded = std::fs::read_to_string(out.join("logboek.csv")).unwrap();
    let from_api = api(serde_json::json!({"kind": "disclosure", "limit": 200, "format": "csv"}))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(downloaded, from_api);
    assert_eq!(downloaded.lines().count(), 1 + 4, "{downloaded}");
    // A screenshot of every page, and the letter as PDF.
    let shots = std::fs::read_dir(&out)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "png"))
        })
        .count();
    assert!(shots >= 17, "{shots} screenshots");
    assert!(out.join("inzage-art15.pdf").exists());
    // The browser's posts changed the policy for real: the second administrator's approval.
    let status = oov_get(&gw, "beheerder-1", &["beheerder"], "/v1/policy").await;
    assert_eq!(status["author"]["staff_id"], "beheerder-1", "{status}");
    assert_eq!(status["approver"]["staff_id"], "beheerder-2", "{status}");
    for c in [&officer, &author, &second] {
        let log = std::fs::read_to_string(&c.stderr).unwrap();
        assert!(!log.contains(bsn), "no BSN in a console's log: {log}");
    }
}
