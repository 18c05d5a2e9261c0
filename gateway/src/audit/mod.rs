//! The tamper-evident disclosure log: every disclosure record is a leaf of an RFC 6962 Merkle tree
//! and a link of a hash chain.

pub mod merkle;
