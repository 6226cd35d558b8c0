//! The facts of a `postgresql.<service>` cluster: its base backups (one `barman-cloud-backup-list`,
//! through [`crate::barman`]) and its WAL archiver (one `psql`, through [`crate::psql`]). Each that
//! does not answer is "unavailable", with why; the checks are `persistctl_core::status::postgres`.

use super::Options;
use super::postgres::{ArchiverFact, BaseBackupsFact, PostgresFacts};
use crate::barman::Client;
use crate::child;
use crate::config::{PostgresConfig, RetentionPolicy};
use crate::psql::Psql;

/// Gathers the facts of one cluster (never fails: what cannot be read is said so in the facts).
#[must_use]
pub fn facts(pg: &PostgresConfig, opts: &Options) -> PostgresFacts {
    let base_backups = match Client::new(&pg.archive) {
        Err(e) => BaseBackupsFact::Unavailable { error: format!("{e:#}") },
        Ok(client) => match client.list(child::deadline_in(opts.barman_timeout)) {
            Ok(list) => BaseBackupsFact::from_listing(&list),
            // The client masks its own output already; an error built around it is masked again.
            Err(e) => BaseBackupsFact::Unavailable { error: client.secrets().redact(&format!("{e:#}")) },
        },
    };
    let archiver = match Psql::new(pg).archiver(child::deadline_in(opts.psql_timeout)) {
        Ok(stats) => ArchiverFact::Stats(stats),
        Err(e) => ArchiverFact::Unavailable { error: format!("{e:#}") },
    };
    PostgresFacts {
        destination: pg.archive.destination.clone(),
        server_name: pg.archive.server_name.clone(),
        base_backups,
        archiver,
        // Validated by check-config: a policy that does not parse cannot get here.
        retention: pg.retention.as_deref().and_then(|r| RetentionPolicy::parse(r).ok()),
    }
}
