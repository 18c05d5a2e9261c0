//! `gateway policy check|explain|matrix|access|diff`: the covenant, read by people; and the
//! administrators' steps against a running gateway (see [`super::remote`]).

use super::remote::Call;
use anyhow::{Context, bail};
use clap::{Subcommand, ValueEnum};
use policy::covenant::Covenant;
use policy::report::{FieldExplanation, WhyNot, diff};
use policy::{ActionKind, Audience, CompiledCovenant, DecisionSource, Level, compile_toml};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Policy subcommands.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate a covenant file and prove its prohibitions; exits 1 with every error if invalid.
    Check {
        /// The covenant file (TOML).
        file: PathBuf,
        /// Read `file:` keys from this directory (the gateway's `key_dir`), so that the version
        /// printed is the one the gateway will report; without it keys are not read.
        #[arg(long)]
        key_dir: Option<PathBuf>,
        /// Output format of the summary.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Show, field by field, what a partner receives for a role and purpose, and why.
    Explain {
        /// The covenant file (TOML).
        file: PathBuf,
        /// Receiving partner id (e.g. `politie`).
        #[arg(long = "to", value_name = "PARTNER")]
        to: String,
        /// Role of the requester (e.g. `regisseur`).
        #[arg(long)]
        role: String,
        /// Purpose of the request (e.g. `regie`).
        #[arg(long)]
        purpose: String,
        /// Only this product (e.g. `ggd.screening`).
        #[arg(long)]
        product: Option<String>,
        /// Only this field (`name` or `product.name`).
        #[arg(long)]
        field: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// The whole sharing matrix: receiving partner x purpose x category -> action.
    Matrix {
        /// The covenant file (TOML).
        file: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = MatrixFormat::Table)]
        format: MatrixFormat,
    },
    /// The authorization matrix: for every route that names a case, role, standing towards the
    /// case and case status, the answer (Markdown, as docs/api.md shows it).
    Access {
        /// The covenant file (TOML).
        file: PathBuf,
    },
    /// Submit a covenant file to a running gateway as a draft (validated there, as `check` does).
    Submit {
        /// The covenant file (TOML).
        file: PathBuf,
        /// The gateway and your credentials.
        #[command(flatten)]
        remote: super::remote::RemoteArgs,
    },
    /// Replay the logged requests of the last days under a draft: what would change, for whom.
    Simulate {
        /// Draft id.
        draft: String,
        /// How many days back.
        #[arg(long, default_value_t = 30)]
        days: i64,
        /// The gateway and your credentials.
        #[command(flatten)]
        remote: super::remote::RemoteArgs,
    },
    /// Approve a draft (a second administrator: never the author).
    Approve {
        /// Draft id.
        draft: String,
        /// The gateway and your credentials.
        #[command(flatten)]
        remote: super::remote::RemoteArgs,
    },
    /// Activate an approved draft: the next requests are decided by it.
    Activate {
        /// Draft id.
        draft: String,
        /// The gateway and your credentials.
        #[command(flatten)]
        remote: super::remote::RemoteArgs,
    },
    /// Draft a return to an earlier activated version (then approve and activate it).
    Rollback {
        /// Version hash or the draft id it was activated from.
        #[arg(value_name = "VERSION")]
        target: String,
        /// The gateway and your credentials.
        #[command(flatten)]
        remote: super::remote::RemoteArgs,
    },
    /// The active version of a running gateway: author, approver, activation.
    Status {
        /// The gateway and your credentials.
        #[command(flatten)]
        remote: super::remote::RemoteArgs,
    },
    /// Every version a running gateway has activated, newest first.
    Versions {
        /// The gateway and your credentials.
        #[command(flatten)]
        remote: super::remote::RemoteArgs,
    },
    /// Recent drafts of a running gateway.
    Drafts {
        /// The gateway and your credentials.
        #[command(flatten)]
        remote: super::remote::RemoteArgs,
    },
    /// One draft with its covenant text.
    Show {
        /// Draft id.
        draft: String,
        /// The gateway and your credentials.
        #[command(flatten)]
        remote: super::remote::RemoteArgs,
    },
    /// Make a partner's governance key: writes its private seed to OUT (readable by its owner
    /// only; it never goes to the gateway) and prints the verifier key for the covenant's
    /// `governance_vkey`.
    GovernanceKey {
        /// The partner whose key it is.
        #[arg(long)]
        partner: String,
        /// Where to write the private key (must not exist).
        #[arg(long)]
        out: PathBuf,
    },
    /// Sign, as a partner, its approval of a draft: prints the signed note to hand to an
    /// administrator (`gateway policy signature`). Offline: the key never leaves this machine.
    Sign {
        /// The partner's governance key (from `governance-key`).
        #[arg(long)]
        key: PathBuf,
        /// The signing partner.
        #[arg(long)]
        partner: String,
        /// The covenant's id (`[covenant] id`).
        #[arg(long)]
        covenant: String,
        /// The draft's version hash (`gateway policy show DRAFT`).
        #[arg(long)]
        draft_version: String,
        /// The active version's hash (`gateway policy status`).
        #[arg(
            long,
            required_unless_present = "installation",
            conflicts_with = "installation"
        )]
        base: Option<String>,
        /// The active version's draft id (`gateway policy status`).
        #[arg(
            long,
            required_unless_present = "installation",
            conflicts_with = "installation"
        )]
        base_draft: Option<String>,
        /// Approve the draft version as an installation's first version (the installation
        /// ceremony: every core partner signs it; `gateway config check` prints the version).
        #[arg(long)]
        installation: bool,
        /// Days the approval holds.
        #[arg(long, default_value_t = 14)]
        days: u32,
    },
    /// Add a partner's signed approval (a note from `gateway policy sign`) to a draft.
    Signature {
        /// Draft id.
        draft: String,
        /// The signed note.
        #[arg(long)]
        note: PathBuf,
        /// The gateway and your credentials.
        #[command(flatten)]
        remote: super::remote::RemoteArgs,
    },
    /// Withdraw a partner's signed approval of a draft.
    WithdrawSignature {
        /// Draft id.
        draft: String,
        /// The partner whose approval no longer counts.
        partner: String,
        /// The gateway and your credentials.
        #[command(flatten)]
        remote: super::remote::RemoteArgs,
    },
    /// Every decision that changes between two covenant versions, by partner and purpose.
    Diff {
        /// The current covenant.
        old: PathBuf,
        /// The proposed covenant.
        new: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}

/// Text for people or JSON for scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Readable text.
    Text,
    /// JSON.
    Json,
}

/// Formats of the sharing matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MatrixFormat {
    /// An aligned table, one row per partner and purpose.
    Table,
    /// One CSV row per partner, purpose and category.
    Csv,
    /// JSON.
    Json,
}

/// Runs a policy subcommand; returns the exit code (0 ok, 1 invalid covenant).
pub fn run(cmd: PolicyCommand, now: i64) -> anyhow::Result<i32> {
    match cmd {
        PolicyCommand::Check {
            file,
            key_dir,
            format,
        } => {
            let cc = match &key_dir {
                Some(dir) => load_resolving(&file, dir)?,
                None => load_or_report(&file)?,
            };
            let Some(cc) = cc else {
                return Ok(1);
            };
            print!("{}", check_summary(&file, &cc, format)?);
            Ok(0)
        }
        PolicyCommand::Explain {
            file,
            to,
            role,
            purpose,
            product,
            field,
            format,
        } => {
            let Some(cc) = load_or_report(&file)? else {
                return Ok(1);
            };
            let q = ExplainQuery {
                to,
                role,
                purpose,
                product,
                field,
            };
            print!("{}", explain(&cc, &q, format)?);
            Ok(0)
        }
        PolicyCommand::Matrix { file, format } => {
            let Some(cc) = load_or_report(&file)? else {
                return Ok(1);
            };
            print!("{}", matrix(&cc, format)?);
            Ok(0)
        }
        PolicyCommand::GovernanceKey { partner, out } => {
            let mut seed = [0u8; 32];
            aws_lc_rs::rand::fill(&mut seed).map_err(|_| anyhow::anyhow!("no randomness"))?;
            let vkey = crate::lifecycle::approval::vkey(&partner, &seed)?;
            super::witness::write_private(&out, &format!("{}\n", hex::encode(seed)))?;
            println!("{vkey}");
            Ok(0)
        }
        PolicyCommand::Sign {
            key,
            partner,
            covenant,
            draft_version,
            base,
            base_draft,
            installation,
            days,
        } => {
            let none = || crate::lifecycle::approval::INSTALLATION.to_owned();
            let (base, base_draft) = if installation {
                (none(), none())
            } else {
                (base.unwrap_or_else(none), base_draft.unwrap_or_else(none))
            };
            let text = std::fs::read_to_string(&key)
                .with_context(|| format!("reading {}", key.display()))?;
            let seed = hex::decode(text.trim()).context("a governance key is 64 hex digits")?;
            let a = crate::lifecycle::approval::Approval {
                covenant,
                partner,
                version: draft_version,
                base,
                base_draft,
                expires: now + i64::from(days) * 86_400,
            };
            print!("{}", crate::lifecycle::approval::sign(&seed, &a)?);
            Ok(0)
        }
        PolicyCommand::Signature {
            draft,
            note,
            remote,
        } => super::remote::run(remote, Call::Signature(draft, note)),
        PolicyCommand::WithdrawSignature {
            draft,
            partner,
            remote,
        } => super::remote::run(remote, Call::WithdrawSignature(draft, partner)),
        PolicyCommand::Access { file } => {
            let Some(cc) = load_or_report(&file)? else {
                return Ok(1);
            };
            print!("{}", crate::service::access::markdown(cc.covenant()));
            Ok(0)
        }
        PolicyCommand::Submit { file, remote } => super::remote::run(remote, Call::Submit(file)),
        PolicyCommand::Simulate {
            draft,
            days,
            remote,
        } => super::remote::run(remote, Call::Simulate(draft, days)),
        PolicyCommand::Approve { draft, remote } => {
            super::remote::run(remote, Call::Approve(draft))
        }
        PolicyCommand::Activate { draft, remote } => {
            super::remote::run(remote, Call::Activate(draft))
        }
        PolicyCommand::Rollback { target, remote } => {
            super::remote::run(remote, Call::Rollback(target))
        }
        PolicyCommand::Status { remote } => super::remote::run(remote, Call::Status),
        PolicyCommand::Versions { remote } => super::remote::run(remote, Call::Versions),
        PolicyCommand::Drafts { remote } => super::remote::run(remote, Call::Drafts),
        PolicyCommand::Show { draft, remote } => super::remote::run(remote, Call::Show(draft)),
        PolicyCommand::Diff { old, new, format } => {
            let Some(a) = load_or_report(&old)? else {
                return Ok(1);
            };
            let Some(b) = load_or_report(&new)? else {
                return Ok(1);
            };
            let text = |f: &Path| {
                std::fs::read_to_string(f)
                    .with_context(|| format!("cannot read covenant file {}", f.display()))
            };
            let review = policy::review::review(&text(&old)?, &a, &text(&new)?, &b)?;
            print!("{}", diff_report(&a, &b, &review, format)?);
            Ok(0)
        }
    }
}

/// Reads and compiles a covenant; on validation errors prints them to stderr and returns `None`.
pub fn load_or_report(file: &Path) -> anyhow::Result<Option<CompiledCovenant>> {
    let source = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read covenant file {}", file.display()))?;
    match compile_toml(&source) {
        Ok(cc) => Ok(Some(cc)),
        Err(diags) => {
            eprint!("{}", diags.render(&file.display().to_string(), &source));
            Ok(None)
        }
    }
}

/// Like [`load_or_report`], reading `file:` keys from `key_dir` as the gateway does.
pub fn load_resolving(file: &Path, key_dir: &Path) -> anyhow::Result<Option<CompiledCovenant>> {
    let source = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read covenant file {}", file.display()))?;
    let builder = crate::lifecycle::PolicyBuilder {
        key_dir: key_dir.to_path_buf(),
        tls: crate::lifecycle::TlsFiles {
            ca: PathBuf::new(),
            crl: Vec::new(),
            cert: PathBuf::new(),
            key: PathBuf::new(),
        },
    };
    match builder.compile_from_key_dir(&source) {
        Ok((cc, _)) => Ok(Some(cc)),
        Err(diags) => {
            eprint!("{}", diags.render(&file.display().to_string(), &source));
            Ok(None)
        }
    }
}

/// The summary `policy check` prints.
pub fn check_summary(file: &Path, cc: &CompiledCovenant, format: Format) -> anyhow::Result<String> {
    let c = cc.covenant();
    let kinds = |k: policy::PartnerKind| c.partners.iter().filter(|p| p.kind == k).count();
    let case_level = c.purposes.iter().filter(|u| u.level == Level::Case).count();
    let proof = cc.proof();
    if format == Format::Json {
        let v = serde_json::json!({
            "file": file.display().to_string(),
            "valid": true,
            "covenant": c.id,
            "title": c.title,
            "version_label": c.version_label,
            "version": cc.version().as_str(),
            "partners": c.partners.len(),
            "roles": c.roles.len(),
            "purposes": c.purposes.len(),
            "products": c.products.len(),
            "fields": c.fields.len(),
            "rules": c.rules.len(),
            "combinations": proof.cells,
            "reachable_combinations": proof.reachable_cells,
            "prohibitions": c.prohibitions.iter().zip(&proof.prohibition_cells).map(|(p, (_, n))| serde_json::json!({
                "id": p.id, "text": p.text, "proven": true, "combinations_checked": n,
            })).collect::<Vec<_>>(),
        });
        return Ok(serde_json::to_string_pretty(&v)? + "\n");
    }
    let mut o = String::new();
    writeln!(o, "{}: valid", file.display())?;
    writeln!(o, "  covenant      {} — {}", c.id, c.title)?;
    if let Some(label) = &c.version_label {
        writeln!(o, "  label         {label}")?;
    }
    writeln!(o, "  version       {}", cc.version())?;
    writeln!(
        o,
        "  partners      {} ({} kernpartner, {} affiliated, {} peer)",
        c.partners.len(),
        kinds(policy::PartnerKind::Kernpartner),
        kinds(policy::PartnerKind::Affiliated),
        kinds(policy::PartnerKind::Peer)
    )?;
    writeln!(o, "  roles         {}", c.roles.len())?;
    writeln!(
        o,
        "  purposes      {} ({case_level} case-level, {} aggregate)",
        c.purposes.len(),
        c.purposes.len() - case_level
    )?;
    writeln!(
        o,
        "  products      {} with {} fields",
        c.products.len(),
        c.fields.len()
    )?;
    writeln!(o, "  rules         {}", c.rules.len())?;
    writeln!(
        o,
        "  decisions     {} combinations of partner x role x purpose x field ({} permitted, the rest withheld as not-permitted)",
        proof.cells, proof.reachable_cells
    )?;
    writeln!(
        o,
        "  prohibitions  {} proven over every combination:",
        c.prohibitions.len()
    )?;
    for (p, (_, n)) in c.prohibitions.iter().zip(&proof.prohibition_cells) {
        writeln!(
            o,
            "    proven  {:<28} {n:>6} combinations  \"{}\"",
            p.id, p.text
        )?;
    }
    Ok(o)
}

/// Arguments of `policy explain`.
#[derive(Debug, Clone)]
pub struct ExplainQuery {
    /// Receiving partner id.
    pub to: String,
    /// Role id.
    pub role: String,
    /// Purpose id.
    pub purpose: String,
    /// Optional product filter.
    pub product: Option<String>,
    /// Optional field filter.
    pub field: Option<String>,
}

fn known<'a>(ids: impl Iterator<Item = &'a String>) -> String {
    ids.map(String::as_str).collect::<Vec<_>>().join(", ")
}

fn resolve(c: &Covenant, q: &ExplainQuery) -> anyhow::Result<Audience> {
    let Some(partner) = c.partner(&q.to) else {
        bail!(
            "unknown partner `{}`; known partners: {}",
            q.to,
            known(c.partners.iter().map(|p| &p.id))
        )
    };
    let Some(role) = c.role(&q.role) else {
        bail!(
            "unknown role `{}`; known roles: {}",
            q.role,
            known(c.roles.iter().map(|r| &r.id))
        )
    };
    let Some(purpose) = c.purpose(&q.purpose) else {
        bail!(
            "unknown purpose `{}`; known purposes: {}",
            q.purpose,
            known(c.purposes.iter().map(|u| &u.id))
        )
    };
    if let Some(p) = &q.product
        && c.product(p).is_none()
    {
        bail!(
            "unknown product `{p}`; known products: {}",
            known(c.products.iter().map(|p| &p.id))
        );
    }
    Ok(Audience {
        partner,
        role,
        purpose,
    })
}

fn why_not(cc: &CompiledCovenant, a: &Audience, why: &WhyNot) -> String {
    let c = cc.covenant();
    let rule_id = |r: &policy::RuleRef| c.rules.get(r.index()).map_or("?", |r| r.id.as_str());
    fn name(v: Option<&String>) -> &str {
        v.map_or("?", String::as_str)
    }
    match why {
        WhyNot::PartnerNotCovered => format!(
            "`to` does not include {}",
            name(c.partners.get(a.partner.index()).map(|p| &p.id))
        ),
        WhyNot::RoleNotCovered => format!(
            "`roles` does not include {}",
            name(c.roles.get(a.role.index()).map(|r| &r.id))
        ),
        WhyNot::PurposeNotCovered => format!(
            "`purposes` does not include {}",
            name(c.purposes.get(a.purpose.index()).map(|u| &u.id))
        ),
        WhyNot::OverriddenBy(r) => format!("overridden by {}", rule_id(r)),
        WhyNot::SameOutcomeAs(r) => format!(
            "same outcome as {}, which comes first in the file",
            rule_id(r)
        ),
        WhyNot::NotPermitted(reason) => format!("not permitted: {reason}"),
    }
}

/// The text or JSON `policy explain` prints.
pub fn explain(cc: &CompiledCovenant, q: &ExplainQuery, format: Format) -> anyhow::Result<String> {
    let c = cc.covenant();
    let a = resolve(c, q)?;
    let mut rows: Vec<FieldExplanation> = Vec::new();
    for (pi, product) in c.products.iter().enumerate() {
        if q.product.as_ref().is_some_and(|p| p != &product.id) {
            continue;
        }
        for (fref, field) in c.product_fields(policy::ProductRef(pi as u16)) {
            if q.field
                .as_ref()
                .is_some_and(|f| f != &field.name && f != &field.qualified)
            {
                continue;
            }
            rows.push(cc.explain(a, fref));
        }
    }
    if rows.is_empty() {
        bail!(
            "no field matches --field {}",
            q.field.as_deref().unwrap_or("")
        );
    }
    let purpose = c.purposes.get(a.purpose.index());
    let unreachable = c.unreachable_reason(a.partner, a.role, a.purpose);
    if format == Format::Json {
        let fields: Vec<_> = rows
            .iter()
            .filter_map(|r| {
                let f = c.fields.get(r.field.index())?;
                let d = cc.decision(r.decision);
                Some(serde_json::json!({
                    "field": f.qualified,
                    "category": f.category,
                    "action": d.action.describe(),
                    "rule": d.rule_id,
                    "code": d.code,
                    "ground": d.ground,
                    "marker": d.marker(),
                    "other_rules": r.others.iter().map(|(rule, why)| serde_json::json!({
                        "rule": rule_id(c, *rule), "why_not": why_not(cc, &a, why),
                    })).collect::<Vec<_>>(),
                }))
            })
            .collect();
        let v = serde_json::json!({
            "covenant": c.id, "version": cc.version().as_str(),
            "to": q.to, "role": q.role, "purpose": q.purpose,
            "permitted": unreachable.is_none(), "not_permitted_reason": unreachable,
            "fields": fields,
        });
        return Ok(serde_json::to_string_pretty(&v)? + "\n");
    }
    let mut o = String::new();
    let partner = c
        .partner_at(a.partner)
        .ok_or_else(|| anyhow::anyhow!("no such partner"))?;
    writeln!(
        o,
        "Covenant {} ({}), version {}",
        c.id,
        c.title,
        cc.version().short()
    )?;
    writeln!(
        o,
        "To {} ({}), role {}, purpose {}",
        partner.id, partner.name, q.role, q.purpose
    )?;
    if let Some(u) = purpose {
        let statuses: Vec<&str> = u.case_status.iter().map(|s| s.as_str()).collect();
        writeln!(
            o,
            "Purpose {}: {}; level {}; case status {}; relation {}",
            u.id,
            u.name,
            u.level,
            if statuses.is_empty() {
                "-".to_owned()
            } else {
                statuses.join(", ")
            },
            u.relation
        )?;
    }
    if let Some(reason) = &unreachable {
        writeln!(
            o,
            "NOT PERMITTED: {reason}; every field is withheld (code not-permitted)."
        )?;
    }
    let mut current_product = None;
    for r in &rows {
        let Some(f) = c.fields.get(r.field.index()) else {
            continue;
        };
        if current_product != Some(f.product)
            && let Some(p) = c.products.get(f.product.index())
        {
            current_product = Some(f.product);
            writeln!(o, "\n{}  ({})", p.id, p.name)?;
        }
        let d = cc.decision(r.decision);
        let by = match d.source {
            DecisionSource::Rule(_) => format!("rule {}", d.rule_id),
            DecisionSource::NoRule => "no rule covers it (default deny)".to_owned(),
            DecisionSource::NotPermitted => "combination not permitted".to_owned(),
        };
        writeln!(
            o,
            "  {:<24} {:<16} {:<28} {by}",
            f.name,
            f.category.as_str(),
            d.action.describe()
        )?;
        if d.action.kind() == ActionKind::Withhold {
            writeln!(
                o,
                "  {:<24} marker {}",
                "",
                d.marker().map(ToString::to_string).unwrap_or_default()
            )?;
        } else if !d.ground.is_empty() {
            writeln!(o, "  {:<24} ground: {}", "", d.ground)?;
        }
        for (rule, why) in &r.others {
            writeln!(
                o,
                "  {:<24} not applied: {} ({})",
                "",
                rule_id(c, *rule),
                why_not(cc, &a, why)
            )?;
        }
    }
    Ok(o)
}

fn rule_id(c: &policy::Covenant, r: policy::RuleRef) -> &str {
    c.rules.get(r.index()).map_or("", |r| r.id.as_str())
}

fn letter(k: ActionKind) -> char {
    match k {
        ActionKind::Disclose => 'D',
        ActionKind::Mask => 'M',
        ActionKind::Generalize => 'G',
        ActionKind::Pseudonymize => 'P',
        ActionKind::Exists => 'E',
        ActionKind::Withhold => 'W',
        ActionKind::Omit => 'O',
    }
}

/// The sharing matrix in the chosen format.
pub fn matrix(cc: &CompiledCovenant, format: MatrixFormat) -> anyhow::Result<String> {
    let cells = cc.matrix();
    match format {
        MatrixFormat::Json => Ok(serde_json::to_string_pretty(&cells)? + "\n"),
        MatrixFormat::Csv => {
            let mut w = csv::Writer::from_writer(Vec::new());
            let mut header = vec!["partner", "purpose", "category"];
            header.extend(ActionKind::ALL.iter().map(|k| k.as_str()));
            header.push("rules");
            w.write_record(&header)?;
            for cell in &cells {
                let mut row = vec![
                    cell.partner.clone(),
                    cell.purpose.clone(),
                    cell.category.to_string(),
                ];
                row.extend(
                    ActionKind::ALL
                        .iter()
                        .map(|k| cell.actions.get(k).copied().unwrap_or(0).to_string()),
                );
                row.push(cell.rules.iter().cloned().collect::<Vec<_>>().join(" "));
                w.write_record(&row)?;
            }
            Ok(String::from_utf8(w.into_inner()?)?)
        }
        MatrixFormat::Table => {
            let cats = policy::Category::ALL;
            let mut o = String::new();
            writeln!(
                o,
                "Sharing matrix of {} (version {})",
                cc.covenant().id,
                cc.version().short()
            )?;
            writeln!(
                o,
                "Per receiving partner and case-level purpose, over the roles that partner may hold for it.\nD disclose  M mask  G generalize  P pseudonymize  E exists  W withhold  O omit  (several letters: differs per field or role)\n"
            )?;
            let width = 7;
            write!(o, "{:<18} {:<15}", "partner", "purpose")?;
            for c in cats {
                write!(o, "{:<width$}", c.as_str().get(..6).unwrap_or(c.as_str()))?;
            }
            writeln!(o)?;
            let mut row_key = None;
            let mut line = String::new();
            let mut col = 0usize;
            for cell in &cells {
                let key = (cell.partner.clone(), cell.purpose.clone());
                if row_key.as_ref() != Some(&key) {
                    if row_key.is_some() {
                        writeln!(o, "{line}")?;
                    }
                    line = format!("{:<18} {:<15}", key.0, key.1);
                    row_key = Some(key);
                    col = 0;
                }
                let pos = cats.iter().position(|c| *c == cell.category).unwrap_or(0);
                while col < pos {
                    line.push_str(&format!("{:<width$}", "."));
                    col += 1;
                }
                let letters: String = cell.actions.keys().map(|k| letter(*k)).collect();
                line.push_str(&format!("{letters:<width$}"));
                col += 1;
            }
            if row_key.is_some() {
                writeln!(o, "{line}")?;
            }
            writeln!(o, "\n. = no field of that category in the catalogue")?;
            Ok(o)
        }
    }
}

/// The decision diff in the chosen format.
pub fn diff_report(
    old: &CompiledCovenant,
    new: &CompiledCovenant,
    review: &policy::review::Review,
    format: Format,
) -> anyhow::Result<String> {
    let changes = diff(old, new);
    if format == Format::Json {
        let v = serde_json::json!({
            "old_version": old.version().as_str(),
            "new_version": new.version().as_str(),
            "changes": changes,
            "review": review,
        });
        return Ok(serde_json::to_string_pretty(&v)? + "\n");
    }
    let mut o = String::new();
    writeln!(
        o,
        "Decisions that change from {} to {}",
        old.version().short(),
        new.version().short()
    )?;
    let mut group = None;
    for ch in &changes {
        let key = (&ch.partner, &ch.purpose);
        if group != Some(key) {
            writeln!(o, "\n{} / {}", ch.partner, ch.purpose)?;
            group = Some(key);
        }
        writeln!(o, "  {} (role {})", ch.field, ch.role)?;
        writeln!(
            o,
            "      before: {}",
            ch.before.as_deref().unwrap_or("(not in this version)")
        )?;
        writeln!(
            o,
            "      after:  {}",
            ch.after.as_deref().unwrap_or("(not in this version)")
        )?;
    }
    let groups: std::collections::BTreeSet<_> =
        changes.iter().map(|c| (&c.partner, &c.purpose)).collect();
    writeln!(
        o,
        "\n{} decision{} change{} in {} partner/purpose group{}",
        changes.len(),
        if changes.len() == 1 { "" } else { "s" },
        if changes.len() == 1 { "s" } else { "" },
        groups.len(),
        if groups.len() == 1 { "" } else { "s" }
    )?;
    writeln!(
        o,
        "\nEvery change of the text ({}), and whose signature it needs",
        review.lines.len()
    )?;
    for l in &review.lines {
        let needs = match &l.needs {
            policy::review::Needs::Threshold => "the threshold of core partners".to_owned(),
            policy::review::Needs::Partners(p) => p.iter().cloned().collect::<Vec<_>>().join(", "),
        };
        let change = match l.change {
            policy::review::ChangeKind::Added => "added",
            policy::review::ChangeKind::Removed => "removed",
            policy::review::ChangeKind::Changed => "changed",
        };
        writeln!(
            o,
            "  [{}]{} {change}: {}\n      needs: {needs}",
            l.section,
            l.item
                .as_deref()
                .map_or_else(String::new, |i| format!(" {i}")),
            l.detail
        )?;
    }
    Ok(o)
}
