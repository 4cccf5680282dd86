//! A schema of its own on the test server, for one test.

use crate::error::{Error, Result};

/// The server tests use (`scripts/pg-server start` prints it).
pub const URL_VAR: &str = "QUEUECTL_TEST_PG_URL";
/// Set (as CI sets it): a test without its server fails instead of skipping.
pub const REQUIRE_VAR: &str = "QUEUECTL_REQUIRE_PG";

/// A fresh schema, dropped with everything in it when this is dropped.
#[derive(Debug)]
pub struct Schema {
    admin: String,
    name: String,
    url: String,
}

impl Schema {
    /// None when no test server is configured and none is required.
    pub fn create() -> Result<Option<Schema>> {
        let admin = match std::env::var(URL_VAR) {
            Ok(url) if !url.is_empty() => url,
            _ if std::env::var_os(REQUIRE_VAR).is_some() => {
                return Err(Error::Internal(format!(
                    "{REQUIRE_VAR} is set but {URL_VAR} is not: start a server with `eval \"$(scripts/pg-server start)\"`"
                )));
            }
            _ => {
                eprintln!("skipped: {URL_VAR} is not set (see scripts/pg-server)");
                return Ok(None);
            }
        };
        let name = format!("qc_{:x}", crate::sys::host::random_id());
        let mut client = postgres::Client::connect(&admin, postgres::NoTls)
            .map_err(|e| Error::Internal(format!("the test server at {URL_VAR}: {e}")))?;
        client
            .batch_execute(&format!("CREATE SCHEMA {name}"))
            .map_err(|e| Error::Internal(format!("create a test schema: {e}")))?;
        let sep = if admin.contains('?') { '&' } else { '?' };
        let url = format!("{admin}{sep}options=-csearch_path%3D{name}");
        Ok(Some(Schema { admin, name, url }))
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        if let Ok(mut client) = postgres::Client::connect(&self.admin, postgres::NoTls) {
            let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
        }
    }
}
