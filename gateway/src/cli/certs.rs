//! `gateway certs init|revoke` and `gateway token`.

use crate::pki;
use anyhow::Context;
use clap::{Args, Subcommand};
use std::path::PathBuf;

/// Example PKI commands.
#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Make a fresh EXAMPLE PKI for the partners of a covenant, plus a ready configuration.
    Init {
        /// Target directory (git-ignored by default).
        #[arg(default_value = "certs-example/generated")]
        dir: PathBuf,
        /// The covenant whose partners get certificates and keys.
        #[arg(long, default_value = "ops/covenant/ipga-r.toml")]
        covenant: PathBuf,
    },
    /// Sign a covenant file as an installation's first version with every core partner's
    /// EXAMPLE governance key in the PKI (the ceremony, played by one hand for tests and demos).
    SignInstallation {
        /// The PKI directory.
        #[arg(default_value = "certs-example/generated")]
        dir: PathBuf,
        /// The covenant file.
        #[arg(long, default_value = "ops/covenant/ipga-r.toml")]
        covenant: PathBuf,
    },
    /// Revoke a partner's client certificate: add it to the CRL and re-sign the CRL.
    Revoke {
        /// The PKI directory.
        #[arg(default_value = "certs-example/generated")]
        dir: PathBuf,
        /// Partner id.
        #[arg(long)]
        partner: String,
    },
}

/// Runs a certs command.
pub fn run(cmd: CertsCommand, now: i64) -> anyhow::Result<i32> {
    match cmd {
        CertsCommand::Init { dir, covenant } => {
            let Some(cc) = super::policy::load_or_report(&covenant)? else {
                return Ok(1);
            };
            let generated = pki::init(&dir, &cc, now)?;
            let covenant_abs = std::fs::canonicalize(&covenant).unwrap_or(covenant);
            std::fs::write(
                dir.join(pki::layout::CONFIG),
                pki::example_config(&dir, &covenant_abs),
            )
            .context("writing the example configuration")?;
            let source = std::fs::read_to_string(&covenant_abs)
                .with_context(|| format!("reading {}", covenant_abs.display()))?;
            let version = pki::sign_installation(&dir, &source, now)?;
            println!(
                "Example PKI written to {} (EXAMPLE ONLY: its private keys are not secret)",
                generated.dir.display()
            );
            println!(
                "  CA and CRL      {}, {}",
                pki::layout::CA,
                pki::layout::CRL
            );
            println!(
                "  gateway         gateway/server.pem, gateway/client.pem, storage identity, pseudonym key"
            );
            println!(
                "  partners        {} (client certificate, token key, age identity each)",
                generated.partners.join(", ")
            );
            println!(
                "  revoked         {}/revoked-client.pem is on the CRL, for tests",
                pki::REVOKED_PARTNER
            );
            println!(
                "  installation    {}/ (every core partner's signature on {version})",
                pki::layout::INSTALLATION
            );
            println!(
                "  configuration   {}",
                dir.join(pki::layout::CONFIG).display()
            );
            println!(
                "Start: gateway serve --config {} --allow-example-pki",
                dir.join(pki::layout::CONFIG).display()
            );
            Ok(0)
        }
        CertsCommand::SignInstallation { dir, covenant } => {
            let source = std::fs::read_to_string(&covenant)
                .with_context(|| format!("reading {}", covenant.display()))?;
            let version = pki::sign_installation(&dir, &source, now)?;
            println!(
                "Signed {version} as the first version with every core partner's EXAMPLE governance key, in {}",
                dir.join(pki::layout::INSTALLATION).display()
            );
            Ok(0)
        }
        CertsCommand::Revoke { dir, partner } => {
            let n = pki::revoke(&dir, &partner, now)?;
            println!(
                "Revoked the client certificate of {partner}; CRL number {n} written to {}",
                dir.join(pki::layout::CRL).display()
            );
            println!("Restart the gateway (or reload, when available) to apply it.");
            Ok(0)
        }
    }
}

/// `gateway token` options.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// Partner id (`iss`).
    #[arg(long)]
    pub partner: String,
    /// Staff id (`sub`).
    #[arg(long)]
    pub sub: String,
    /// Roles, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub roles: Vec<String>,
    /// The client certificate the token is bound to (PEM).
    #[arg(long)]
    pub cert: PathBuf,
    /// The example PKI directory (for the partner's signing key).
    #[arg(long, default_value = "certs-example/generated")]
    pub dir: PathBuf,
    /// The covenant (for the key id).
    #[arg(long, default_value = "ops/covenant/ipga-r.toml")]
    pub covenant: PathBuf,
    /// Audience: the gateway id.
    #[arg(long, default_value = "gateway.ipga-r.example")]
    pub aud: String,
    /// Lifetime in seconds (at most 900).
    #[arg(long, default_value_t = 600)]
    pub lifetime: i64,
}

/// Mints a token from the example keys and prints it.
pub fn token(args: TokenArgs, now: i64) -> anyhow::Result<i32> {
    let Some(cc) = super::policy::load_or_report(&args.covenant)? else {
        return Ok(1);
    };
    let c = cc.covenant();
    let partner = c
        .partner(&args.partner)
        .and_then(|p| c.partner_at(p))
        .with_context(|| format!("unknown partner `{}`", args.partner))?;
    let kid = partner
        .token_keys
        .first()
        .map(|k| k.kid.clone())
        .with_context(|| format!("partner {} has no token key in the covenant", partner.id))?;
    let key = std::fs::read(args.dir.join(pki::layout::token_key(&partner.id)))
        .context("reading the partner's token-signing key")?;
    let certs = crate::tls::read_certs(&args.cert)?;
    let cert = certs.first().context("no certificate in --cert")?;
    let token = crate::auth::mint(
        &key,
        &kid,
        &partner.id,
        &args.sub,
        &args.roles,
        &crate::registry::thumbprint(cert.as_ref()),
        &args.aud,
        now,
        args.lifetime,
    )?;
    println!("{token}");
    Ok(0)
}
