//! For the crate's own unit tests: a complete application (example PKI, covenant, SQLite
//! database, log) on a controllable clock, without HTTP, and calls as a requester would make
//! them.

use crate::app::App;
use crate::auth::Requester;
use crate::clock::FixedClock;
use crate::log::entry::{Kind, LogEntry, Start, new_id};
use crate::service::Call;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

/// 2026-12-01 12:00 UTC.
pub const T0: i64 = 1_796_126_400;

/// One example PKI for all unit tests of this process.
pub fn pki() -> &'static PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        crate::install_crypto_provider();
        let dir = std::env::temp_dir().join(format!("gateway-unit-pki-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let cc = policy::compile_toml(crate::demo::EXAMPLE_COVENANT).unwrap();
        crate::pki::init(&dir, &cc, T0).unwrap();
        let covenant = dir.join("ipga-r.toml");
        std::fs::write(&covenant, crate::demo::EXAMPLE_COVENANT).unwrap();
        std::fs::write(
            dir.join(crate::pki::layout::CONFIG),
            crate::pki::example_config(&dir, &covenant),
        )
        .unwrap();
        crate::pki::sign_installation(&dir, crate::demo::EXAMPLE_COVENANT, T0).unwrap();
        dir
    })
}

/// A fresh application on its own SQLite database, its clock at [`T0`].
pub async fn app() -> (Arc<App>, Arc<FixedClock>) {
    app_on(&pki().join(format!("unit-{}.db", uuid::Uuid::new_v4().simple()))).await
}

/// A second instance beside `app`, on the same database file (as two gateways share one
/// PostgreSQL database), with its own log writer, register and clock.
pub async fn beside(app: &App) -> (Arc<App>, Arc<FixedClock>) {
    app_on(&app.db.sqlite_file().unwrap()).await
}

async fn app_on(db: &std::path::Path) -> (Arc<App>, Arc<FixedClock>) {
    let dir = pki();
    let env = [(
        "GATEWAY_DATABASE_URL".to_owned(),
        format!("sqlite://{}", db.display()),
    )];
    let cfg = crate::config::Config::load(&dir.join(crate::pki::layout::CONFIG), env).unwrap();
    let loaded = crate::runtime::load(&cfg, true).unwrap_or_else(|p| panic!("{p:?}"));
    let clock = Arc::new(FixedClock::new(T0));
    let store = crate::store::Db::connect(&cfg.database_url).await.unwrap();
    let app = crate::startup::prepare(store, loaded, &cfg, clock.clone())
        .await
        .unwrap();
    (app, clock)
}

/// A call by `staff` of `partner` acting in `roles`, for an endpoint of `kind`.
pub fn call(app: &App, kind: Kind, partner: &str, staff: &str, roles: &[&str]) -> Call {
    let policy = app.policy.load_full();
    let c = policy.covenant.covenant();
    let requester = Requester {
        partner: c.partner(partner).unwrap(),
        partner_id: partner.into(),
        staff_id: staff.into(),
        roles: roles.iter().map(|r| c.role(r).unwrap()).collect(),
        expires: i64::MAX,
    };
    let mut record = LogEntry::new(Start {
        id: new_id(),
        at: app.clock.now(),
        trace_id: "unit-test-0001",
        kind,
        partner: partner.into(),
        policy_version: policy.version(),
    });
    record.staff_id = Some(staff.into());
    Call {
        requester,
        policy,
        record,
        committed: None,
    }
}

/// Every entry of the log, typed, oldest first.
pub async fn entries(app: &App) -> Vec<LogEntry> {
    app.db
        .entries(0, 10_000)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|e| e.record)
        .map(|r| LogEntry::parse(r.seq, &r.entry).unwrap())
        .collect()
}

/// A case registered for `bsn` by the police's voorportaal, as a signal arrives.
pub async fn register(app: &App, bsn: &str) -> crate::service::cases::CaseView {
    use crate::service::cases::{NewCase, SubjectIn};
    let mut c = call(app, Kind::CaseChange, "politie", "vp.1", &["voorportaal"]);
    let body = NewCase {
        subject: SubjectIn { bsn: bsn.into() },
        signal_date: None,
        risk_group: None,
        ideology: None,
    };
    crate::service::cases::create(app, &mut c, body)
        .await
        .unwrap()
}

/// A case registered for `bsn`, assessed by the voorportaal and included by the PTO-R's
/// decision (recorded by the secretaris) with `rn`/`reg.1` as its regisseur.
pub async fn included(app: &App, bsn: &str) -> crate::service::cases::CaseView {
    use crate::service::cases::{CasePatch, update};
    let case = register(app, bsn).await;
    for (partner, staff, role, patch) in [
        (
            "politie",
            "vp.1",
            "voorportaal",
            CasePatch {
                status: Some(policy::CaseStatus::Duiding),
                ..CasePatch::default()
            },
        ),
        (
            "oov",
            "sec.1",
            "secretaris",
            CasePatch {
                status: Some(policy::CaseStatus::Opgenomen),
                regisseur: Some(crate::store::Regisseur {
                    partner: "rn".into(),
                    staff_id: "reg.1".into(),
                }),
                decision: Some(pto_decision()),
                check_override: Some("testkit: included without an aanpak-check".into()),
                ..CasePatch::default()
            },
        ),
    ] {
        let mut u = call(app, Kind::CaseChange, partner, staff, &[role]);
        update(app, &mut u, &case.id, patch).await.unwrap();
    }
    case
}

/// An age payload opened with `partner`'s identity of the example PKI, as the partner would.
pub fn decrypt(partner: &str, armored: &str) -> serde_json::Value {
    let id = crate::crypto::read_age_identity(&pki().join(format!("{partner}/age-identity.txt")))
        .unwrap();
    let dec = age::Decryptor::new(age::armor::ArmoredReader::new(armored.as_bytes())).unwrap();
    let mut r = dec
        .decrypt(std::iter::once(&id as &dyn age::Identity))
        .unwrap();
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut r, &mut out).unwrap();
    serde_json::from_slice(&out).unwrap()
}

/// A body's decision (or review) as a change carries it: its reference, its date and the
/// members (partner, staff id) who took it.
fn decision_of(
    reference: &str,
    date: &str,
    members: &[(&str, &str)],
) -> crate::service::cases::DecisionIn {
    crate::service::cases::DecisionIn {
        reference: reference.into(),
        date: date.into(),
        members: members
            .iter()
            .map(|(partner, staff_id)| crate::store::Regisseur {
                partner: (*partner).into(),
                staff_id: (*staff_id).into(),
            })
            .collect(),
    }
}

/// A decision of the Regieoverleg as the example covenant's quorum needs it: three members of
/// three partners.
pub fn ro_decision() -> crate::service::cases::DecisionIn {
    decision_of(
        "RO-2026-11-01/7",
        "2026-11-01",
        &[
            ("oov", "ro.gemeente"),
            ("politie", "ro.politie"),
            ("om", "ro.om"),
        ],
    )
}

/// A decision of the PTO-R as the example covenant's quorum needs it (four members of four
/// partners): the 2019 process's inclusion.
pub fn pto_decision() -> crate::service::cases::DecisionIn {
    decision_of(
        "PTO-2026-11-08/2",
        "2026-11-08",
        &[
            ("oov", "pto.gemeente"),
            ("politie", "pto.politie"),
            ("om", "pto.om"),
            ("ggd", "pto.ggd"),
        ],
    )
}

/// A review by the ITAT-R as the example covenant's quorum needs it (three members of three
/// partners): before the plan's adoption, afbouw and afsluiting.
pub fn itat_review() -> crate::service::cases::DecisionIn {
    decision_of(
        "ITAT-2026-11-05/3",
        "2026-11-05",
        &[
            ("oov", "itat.gemeente"),
            ("politie", "itat.politie"),
            ("rn", "itat.rn"),
        ],
    )
}

/// A partner's governance seed from the example PKI.
pub fn governance_seed(partner: &str) -> Vec<u8> {
    let text =
        std::fs::read_to_string(pki().join(crate::pki::layout::governance_key(partner))).unwrap();
    hex::decode(text.trim()).unwrap()
}

/// The example covenant's core partners, which hold governance keys.
pub const CORE: [&str; 7] = ["oov", "politie", "om", "rn", "rvdk", "ggd", "wpi"];

/// Every core partner's signed approval of draft `id` against the active version, added to the
/// draft as an administrator would: enough for any change under the example covenant.
pub async fn sign_all(app: &App, id: &str) {
    let d = app.db.policy_draft(id).await.unwrap().unwrap();
    let active = app.db.active_policy_draft().await.unwrap().unwrap();
    for p in CORE {
        let a = crate::lifecycle::approval::Approval {
            covenant: app.policy.load().covenant.covenant().id.clone(),
            partner: p.into(),
            version: d.version.clone(),
            base: active.version.clone(),
            base_draft: active.id.clone(),
            expires: app.clock.now() + 30 * 86_400,
        };
        let note = crate::lifecycle::approval::sign(&governance_seed(p), &a).unwrap();
        let mut c = call(app, Kind::Policy, "oov", "beheerder-1", &["beheerder"]);
        crate::service::signatures::add(
            app,
            &mut c,
            id,
            crate::service::signatures::SignatureIn { note },
        )
        .await
        .unwrap();
    }
}
