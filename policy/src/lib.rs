//! Authorization policy evaluation for Strait (pure code: no I/O, no async).
//!
//! Today the gateway has a single administrator identity and refuses anonymous requests in
//! `gateway/src/auth.rs`; the IAM policy language, tenants and ACLs arrive with the policy issue.
