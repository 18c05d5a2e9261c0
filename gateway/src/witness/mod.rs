//! `gateway witness`: what a covenant partner runs to witness the gateway's log. It cosigns
//! each checkpoint it is sent only when that checkpoint is consistent with every earlier one it
//! cosigned for the log (C2SP `tlog-witness`), keeps that state durably, and never goes back.

pub mod protocol;
pub mod server;
