//! The privacy officer's console through the real binaries: a gateway and a console, the
//! console reaching the gateway only through its API. Login by the one-time link, search by BSN
//! (posted, never in a URL, never shown back), an entry with its proof verified by the console,
//! CSRF and Host refused, strict headers, logout.

use crate::helpers::*;
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

pub(crate) struct Console {
    child: std::process::Child,
    pub(crate) addr: String,
    pub(crate) login: String,
    pub(crate) stderr: std::path::PathBuf,
}

impl Drop for Console {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_console(gw: &Gateway) -> Console {
    start_console_as(gw, "fg.1", "privacy-officer")
}

/// A console for one member of oov's staff with these roles (comma-separated).
pub(crate) fn start_console_as(gw: &Gateway, staff: &str, roles: &str) -> Console {
    let dir = scratch().join(format!("console-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = |s: &str| pki().join(s).to_str().unwrap().to_owned();
    let vkey = crate::audit::log_key().vkey();
    let token = json!([
        BIN,
        "token",
        "--dir",
        p(""),
        "--covenant",
        covenant_path().to_str().unwrap(),
        "--partner",
        "oov",
        "--sub",
        staff,
        "--roles",
        roles,
        "--cert",
        p("oov/client.pem")
    ]);
    let cfg = format!(
        "listen = \"127.0.0.1:0\"\ngateway_url = \"https://{}\"\nca = {:?}\nclient_cert = {:?}\nclient_key = {:?}\nlog_vkey = {:?}\ntoken_command = {token}\n",
        gw.api,
        p("ca.pem"),
        p("oov/client.pem"),
        p("oov/client.key"),
        vkey
    );
    let path = dir.join("console.toml");
    std::fs::write(&path, cfg).unwrap();
    let stderr = dir.join("console.stderr");
    let mut child = Command::new(BIN)
        .args(["console", "--config", path.to_str().unwrap()])
        .env("GATEWAY_LOG_LEVEL", "info")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| {
        panic!(
            "{e}: {line}{}",
            std::fs::read_to_string(&stderr).unwrap_or_default()
        )
    });
    Console {
        child,
        addr: v["console"].as_str().unwrap().to_owned(),
        login: v["login"].as_str().unwrap().to_owned(),
        stderr,
    }
}

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A form body, URL-encoded.
fn encoded(pairs: &[(&str, &str)]) -> String {
    reqwest::Url::parse_with_params("http://form/", pairs)
        .unwrap()
        .query()
        .unwrap_or_default()
        .to_owned()
}

fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").unwrap() + "name=\"csrf\" value=\"".len();
    html[at..at + 64].to_owned()
}

#[tokio::test]
async fn an_officer_logs_in_searches_by_bsn_and_sees_an_entry_verified() {
    let gw = Gateway::start();
    let bsn = "999990123";
    let case = crate::disclose::case_with_records(&gw, bsn).await;
    // One refusal (the regisseur has no role in the case yet), then one disclosure.
    let (s, v) = crate::disclose::ask(&gw, "rn", "reg.mulder", "regisseur", "regie", &case).await;
    assert_eq!(s, 404, "{v}");
    crate::disclose::include(&gw, &case).await;
    crate::disclose::answered(&gw, "rn", "reg.mulder", "regisseur", "regie", &case).await;
    let console = start_console(&gw);
    let b = browser();
    let base = format!("http://{}", console.addr);

    // Without a session: the login page, nothing else.
    let r = b.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let h = r.headers().clone();
    assert!(
        h["content-security-policy"]
            .to_str()
            .unwrap()
            .starts_with("default-src 'none'")
    );
    assert_eq!(h["x-frame-options"], "DENY");
    // The link logs in once.
    let r = b.get(&console.login).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let cookie = cookie.split(';').next().unwrap().to_owned();
    assert_eq!(b.get(&console.login).send().await.unwrap().status(), 401);
    let home = get_page(&b, &console, &cookie, "/").await;
    assert_eq!(home.status(), 200);
    let html = home.text().await.unwrap();
    assert!(html.contains("Uw zoekopdrachten worden gelogd"));
    assert!(
        !html.contains("<script") && !html.contains("src=\"http") && !html.contains("href=\"http")
    );
    let csrf = csrf_of(&html);

    // Search by BSN: posted, answered with the subject's entries, the BSN not shown back.
    let r = post_form(
        &b,
        &console,
        &cookie,
        "/search",
        &[("csrf", csrf.as_str()), ("bsn", bsn)],
    )
    .await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("case-change"), "{html}");
    assert!(!html.contains(bsn), "the BSN is never shown back");
    // The same subject again without typing the BSN (as the results page posts it), narrowed
    // to disclosures; then a time range before anything happened: nothing.
    let count = |html: &str| html.matches("href=\"/entry/").count();
    let search = |pairs: Vec<(&'static str, &'static str)>| {
        let mut body = vec![("csrf", csrf.as_str()), ("same_subject", "1")];
        body.extend(pairs);
        b.post(format!("{base}/search"))
            .header("cookie", &cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(encoded(&body))
            .send()
    };
    let narrowed = search(vec![("kind", "disclosure")])
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        count(&narrowed),
        2,
        "the refusal and the disclosure: {narrowed}"
    );
    assert!(narrowed.contains("name=\"same_subject\""), "{narrowed}");
    let before = search(vec![("to", "2020-01-01")])
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(count(&before), 0, "{before}");
    let at = html.find("href=\"/entry/").unwrap() + "href=\"/entry/".len();
    let seq: String = html[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    // One entry, its inclusion proof checked by the console against the signed checkpoint.
    let r = get_page(&b, &console, &cookie, &format!("/entry/{seq}")).await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("Bewijs van opname geverifieerd door deze console"),
        "{html}"
    );

    // The CSV of the same search is the gateway's own (each column as the API gives it).
    let r = post_form(
        &b,
        &console,
        &cookie,
        "/search.csv",
        &[("csrf", csrf.as_str()), ("kind", "case-change")],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    let from_console = r.text().await.unwrap();
    let from_api = client("oov")
        .get(gw.url("/v1/audit/disclosures?kind=case-change&limit=200&format=csv"))
        .bearer_auth(token("oov", "fg.1", &["privacy-officer"]))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(from_console, from_api);
    assert!(from_console.lines().count() >= 2, "{from_console}");

    // The art. 15 letter: printable, the BSN not in it, the registration's reading listed.
    let r = get_page(&b, &console, &cookie, "/report").await;
    assert_eq!(r.status(), 200);
    let r = post_form(
        &b,
        &console,
        &cookie,
        "/report",
        &[("csrf", csrf.as_str()), ("bsn", bsn)],
    )
    .await;
    assert_eq!(r.status(), 200);
    let letter = r.text().await.unwrap();
    assert!(
        letter.contains("Overzicht van verstrekkingen (AVG art. 15)"),
        "{letter}"
    );
    assert!(letter.contains("@media print") || letter.contains("console.css"));
    assert!(!letter.contains(bsn));
    // Issue 28: the console checked the report's proof itself, both ways, before saying so.
    assert!(
        letter.contains("Volledig bewezen tegen checkpoint ")
            && letter.contains("dit overzicht laat er geen weg"),
        "{letter}"
    );

    // The log's state: the served checkpoint checked with the log key, the latest entries'
    // proofs; at the second visit, a consistency proof from the first.
    let health = || async {
        let r = get_page(&b, &console, &cookie, "/log").await;
        assert_eq!(r.status(), 200);
        r.text().await.unwrap()
    };
    let html = health().await;
    assert!(html.contains("ondertekend met de logsleutel"), "{html}");
    assert!(
        html.contains("De laatste 10 regels zijn opgenomen"),
        "{html}"
    );
    let html = health().await;
    assert!(html.contains("consistentiebewijs geverifieerd"), "{html}");

    // The overview: the disclosure and the refusal, as a chart and its table.
    let r = get_page(&b, &console, &cookie, "/overview?weeks=4").await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("<svg")
            && html.contains("Tabel: Verstrekkingen per week, per aanvragende partner"),
        "{html}"
    );
    assert!(
        html.contains("purpose-role") || html.contains("case-"),
        "the refusal's type: {html}"
    );

    // A post without the CSRF token, and a foreign Host, are refused.
    let r = post_form(&b, &console, &cookie, "/search", &[("bsn", bsn)]).await;
    assert_eq!(r.status(), 403);
    let r = b
        .get(format!("{base}/"))
        .header("cookie", &cookie)
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 421);

    // Logged out: the session is gone.
    let r = post_form(&b, &console, &cookie, "/logout", &[("csrf", csrf.as_str())]).await;
    assert_eq!(r.status(), 200);
    let r = get_page(&b, &console, &cookie, "/").await;
    assert_eq!(r.status(), 401);

    // The search is on the record, by the officer; the console's own log holds no BSN.
    let db = gateway::store::Db::connect(&gw.database_url).await.unwrap();
    let queries = db
        .search(&gateway::store::LogFilter {
            kinds: vec!["audit-query"],
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        queries
            .iter()
            .any(|(_, e, _)| e.contains("\"staff_id\":\"fg.1\"")),
        "{queries:?}"
    );
    let log = std::fs::read_to_string(&console.stderr).unwrap();
    assert!(!log.contains(bsn), "{log}");
}

/// A console page with the session cookie.
async fn get_page(
    b: &reqwest::Client,
    console: &Console,
    cookie: &str,
    path: &str,
) -> reqwest::Response {
    b.get(format!("http://{}{path}", console.addr))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
}

/// Logs in by the link: the session cookie and the CSRF token of the home page.
async fn log_in(b: &reqwest::Client, console: &Console) -> (String, String) {
    let r = b.get(&console.login).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let cookie = r.headers()["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let html = b
        .get(format!("http://{}/", console.addr))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    (cookie.clone(), csrf_of(&html))
}

async fn post_form(
    b: &reqwest::Client,
    console: &Console,
    cookie: &str,
    path: &str,
    pairs: &[(&str, &str)],
) -> reqwest::Response {
    b.post(format!("http://{}{path}", console.addr))
        .header("cookie", cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encoded(pairs))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn administrators_draft_approve_activate_and_roll_back_through_the_console() {
    let gw = Gateway::start();
    let author = start_console_as(&gw, "beheerder-1", "beheerder");
    let second = start_console_as(&gw, "beheerder-2", "beheerder");
    let b = browser();
    let (ac, acsrf) = log_in(&b, &author).await;
    let (sc, scsrf) = log_in(&b, &second).await;
    let b2 = b.clone();
    let get = move |console: &Console, cookie: &str, path: &str| {
        let r = b2
            .get(format!("http://{}{path}", console.addr))
            .header("cookie", cookie.to_owned())
            .send();
        async move { r.await.unwrap().text().await.unwrap() }
    };

    // The active version, its approval, and a new draft prefilled with its text.
    let html = get(&author, &ac, "/policy").await;
    assert!(
        html.contains("Actieve versie") && html.contains("bootstrap"),
        "{html}"
    );
    let html = get(&author, &ac, "/policy/new").await;
    assert!(
        html.contains("[[rule]]"),
        "the active text to start from: {html}"
    );

    // An invalid draft: its errors with line and column, the text kept.
    let broken = crate::lifecycle::draft_text()
        .replace("action = \"withhold\"\ncode", "action = \"shred\"\ncode");
    let r = post_form(
        &b,
        &author,
        &ac,
        "/policy/new",
        &[("csrf", &acsrf), ("source", &broken)],
    )
    .await;
    assert_eq!(r.status(), 422);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("shred") && html.contains("id=\"errors\""),
        "{html}"
    );

    // The draft, submitted with the browser's CR LF line ends.
    let text = crate::lifecycle::draft_text().replace('\n', "\r\n");
    let r = post_form(
        &b,
        &author,
        &ac,
        "/policy/new",
        &[("csrf", &acsrf), ("source", &text)],
    )
    .await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    let to = r.headers()["location"].to_str().unwrap().to_owned();
    let id = to.trim_start_matches("/policy/drafts/").to_owned();

    // Its author sees why approval is not theirs; posting anyway, the gateway refuses.
    let html = get(&author, &ac, &to).await;
    assert!(
        html.contains("U bent de auteur") && html.contains("disabled"),
        "{html}"
    );
    let r = post_form(
        &b,
        &author,
        &ac,
        &format!("{to}/approve"),
        &[("csrf", &acsrf)],
    )
    .await;
    assert_eq!(r.status(), 502);
    assert!(r.text().await.unwrap().contains("Approval by the author"));

    // The simulation (on an empty history here), then the second administrator approves and
    // activates.
    let r = post_form(
        &b,
        &second,
        &sc,
        &format!("{to}/simulate"),
        &[("csrf", &scsrf), ("days", "30")],
    )
    .await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("Statisch verschil") && html.contains("ggd.screening.contactpersoon"),
        "{html}"
    );
    let html = get(&second, &sc, &to).await;
    assert!(!html.contains("U bent de auteur"), "{html}");
    let r = post_form(
        &b,
        &second,
        &sc,
        &format!("{to}/approve"),
        &[("csrf", &scsrf)],
    )
    .await;
    assert_eq!(r.status(), 303);
    // The change touches the GGD's data: without the GGD's signed approval, no activation;
    // pasted into the draft's page, it goes in.
    let r = post_form(
        &b,
        &second,
        &sc,
        &format!("{to}/activate"),
        &[("csrf", &scsrf)],
    )
    .await;
    assert_eq!(r.status(), 502);
    let html = r.text().await.unwrap();
    assert!(html.contains("signatures missing"), "{html}");
    let draft = oov_get(
        &gw,
        "beheerder-1",
        &["beheerder"],
        &format!("/v1/policy/drafts/{id}"),
    )
    .await;
    let active = oov_get(&gw, "beheerder-1", &["beheerder"], "/v1/policy").await;
    let note = approval_note(
        pki(),
        "ggd",
        draft["version"].as_str().unwrap(),
        active["version"].as_str().unwrap(),
        active["draft"].as_str().unwrap(),
    )
    .replace('\n', "\r\n");
    let r = post_form(
        &b,
        &second,
        &sc,
        &format!("{to}/signature"),
        &[("csrf", &scsrf), ("note", &note)],
    )
    .await;
    assert_eq!(r.status(), 303);
    let r = post_form(
        &b,
        &second,
        &sc,
        &format!("{to}/activate"),
        &[("csrf", &scsrf)],
    )
    .await;
    assert_eq!(r.status(), 303);
    let html = get(&second, &sc, "/policy").await;
    assert!(
        html.contains(&format!("href=\"/policy/drafts/{id}\"")),
        "{html}"
    );
    let status = oov_get(&gw, "beheerder-1", &["beheerder"], "/v1/policy").await;
    assert_eq!(status["draft"], id.as_str());
    assert_eq!(status["approver"]["staff_id"], "beheerder-2");

    // A rollback is a new draft, for a second administrator again.
    let at = html.find("action=\"/policy/versions/").unwrap() + "action=\"".len();
    let path: String = html[at..].chars().take_while(|c| *c != '"').collect();
    let r = post_form(&b, &second, &sc, &path, &[("csrf", &scsrf)]).await;
    assert_eq!(r.status(), 303);
    let html = get(&second, &sc, r.headers()["location"].to_str().unwrap()).await;
    assert!(
        html.contains("rollback") && html.contains("U bent de auteur"),
        "{html}"
    );

    // Without the CSRF token, nothing happens.
    let r = post_form(&b, &second, &sc, &format!("{to}/activate"), &[]).await;
    assert_eq!(r.status(), 403);
}

/// The overview's counts on both databases: the week arithmetic and grouping are SQL.
async fn overview_counts(gw: &Gateway) {
    let case = crate::disclose::case_with_records(gw, "999990093").await;
    let (s, _) = crate::disclose::ask(gw, "rn", "reg.mulder", "regisseur", "regie", &case).await;
    assert_eq!(
        s, 404,
        "not yet its regisseur: the case does not exist for it"
    );
    crate::disclose::include(gw, &case).await;
    crate::disclose::answered(gw, "rn", "reg.mulder", "regisseur", "regie", &case).await;
    let o = oov_get(
        gw,
        "fg.1",
        &["privacy-officer"],
        "/v1/audit/overview?weeks=2",
    )
    .await;
    assert_eq!(o["weeks"].as_array().unwrap().len(), 2, "{o}");
    let series = |k: &str| o[k].as_array().unwrap().clone();
    assert_eq!(
        series("disclosures_by_partner"),
        vec![json!({"key": "rn", "counts": [0, 1]})],
        "{o}"
    );
    assert_eq!(
        series("refusals_by_type"),
        vec![json!({"key": "case-not-found", "counts": [0, 1]})],
        "{o}"
    );
    assert_eq!(
        series("disclosures_by_purpose"),
        vec![json!({"key": "regie", "counts": [0, 1]})]
    );
    // Another partner's officer sees only what concerns its partner: rvdk asked nothing, but
    // its products went out in the disclosure.
    let rvdk = client("rvdk")
        .get(gw.url("/v1/audit/overview?weeks=2"))
        .bearer_auth(token("rvdk", "fg.rvdk", &["privacy-officer"]))
        .send()
        .await
        .unwrap();
    assert_eq!(rvdk.status(), 200);
    let v: serde_json::Value = rvdk.json().await.unwrap();
    assert_eq!(
        v["disclosures_by_partner"],
        json!([{"key": "rn", "counts": [0, 1]}])
    );
    assert_eq!(
        v["refusals_by_type"],
        json!([]),
        "the refusal named no rvdk product: {v}"
    );
}

#[tokio::test]
async fn the_overview_counts_per_week_on_sqlite() {
    overview_counts(&Gateway::start()).await;
}

#[tokio::test]
async fn the_overview_counts_per_week_on_postgres() {
    let Some(url) = postgres_database().await else {
        return;
    };
    overview_counts(&Gateway::start_with(&url, &[])).await;
}
