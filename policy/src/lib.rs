//! The covenant of the iPGA-R information-sharing gateway: what may leave, in what form, to whom,
//! for which purpose, and on which legal ground.
//!
//! A covenant file (TOML) is parsed with source spans ([`raw`]), validated into a model with
//! every reference resolved ([`covenant`]), and compiled into a dense decision table
//! ([`compile`]) whose every cell is checked against the covenant's prohibitions. Deciding a
//! field is one table lookup; [`transform`] applies the decision to a value. [`report`] explains
//! decisions, prints the sharing matrix and diffs two versions.
//!
//! This crate is pure: no I/O, no async, no clock. Time and keys are passed in.

pub mod compile;
pub mod covenant;
pub mod diag;
pub mod domain;
pub mod raw;
pub mod replay;
pub mod report;
pub mod review;
pub mod sdc;
pub mod transform;

pub use compile::{
    CompiledCovenant, Decision, DecisionRef, DecisionSource, OutcomeClass, PolicyVersion,
    compile_toml, compile_toml_resolving,
};
pub use covenant::{
    Action, ActionKind, Appointment, Approach, Checks, Covenant, FieldRef, PartnerRef, ProductRef,
    PurposeRef, RoleRef, RuleRef, Witness, Witnessing,
};
pub use diag::{Diagnostic, Diagnostics};
pub use domain::{
    Bsn, BsnError, CaseStatus, Category, FieldType, Level, NotificationTo, PartnerKind, Relation,
};
pub use transform::{
    AppliedRecord, ApplyError, Audience, FieldOutcome, PseudonymKey, Sent, TransformContext,
};
