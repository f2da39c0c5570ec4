//! Only tests: see tests/object_store_client.rs.
