//! The barman source: a PostgreSQL cluster restored from its barman-cloud archive and recovered —
//! WAL replayed to the end of the archive or to `targetTime`, promoted — before the swap, so that
//! what lands on the dataset is a cluster that was cleanly shut down on its new timeline, never a
//! half-recovered one `postgresql.service` would start on.
//!
//! probe: list the backups (a listing that fails is "failed", an empty one "no backup"), choose the
//! DONE one (barman's own `latest` may pick a FAILED backup). stage: record the pin, then — at once —
//! pin it, check that its first WAL is in the archive, and `barman-cloud-restore` it into
//! `.persistctl-staging-barman-<pid>/data` as the cluster's user; then, put `pg_wal` on the WAL dataset (its own staging there), write the recovery
//! settings and `recovery.signal`, run a private recovery server (no TCP, a private socket,
//! `restore_command` = `persistctl pg-wal-restore`, which aborts rather than ends the recovery on any
//! archive error) until it promotes, shut it down, check `pg_control`, remove the recovery settings,
//! move the WAL into place. verify and swap as every staging source: the journal, then the rename
//! swap with `PG_VERSION` last, provenance, and the pin marked for release by the first base backup.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

use super::Run;
use super::sources::{Found, Miss, Restored, Source, Turn};
use crate::barman::{self, Backup, Choice, Client, Select};
use crate::config::PostgresConfig;
use crate::pitr::{self, Pin, PinState};
use crate::postgres::{self, ControlData, RecoveryServer};
use crate::provenance;
use crate::staging::{self, SwapJournal};
use crate::target::{self, Place};

/// What the result says after a barman restore.
pub const AFTER_RESTORE_NOTE: &str = "restored from barman-cloud: the cluster is on a new timeline and archives \
there; its first base backup (postgresql-base-backup-after-restore.service, `persistctl pg-base-backup \
--if-restored`) releases the pin on the restored backup";

/// The PostgreSQL cluster's barman-cloud archive.
pub(super) struct Barman;

/// The backup chosen, and how to reach its archive.
pub(super) struct Chosen {
    client: Client,
    pg: PostgresConfig,
    backup: Backup,
}

/// The WAL dataset's part of a restore.
struct WalPlace {
    /// Its mountpoint.
    mountpoint: PathBuf,
    /// Our staging directory on it.
    staging: PathBuf,
}

/// A recovered, shut-down cluster in the staging directory.
pub(super) struct Staged {
    mountpoint: PathBuf,
    dir: PathBuf,
    control: ControlData,
}

/// Removes a staging directory (failures are logged: the failure being reported is the first one).
fn discard(dir: &Path) {
    if let Err(e) = staging::remove(dir) {
        tracing::error!("{e:#}");
    }
}

/// Creates `path` as a directory of `user`, mode 0700.
fn user_dir(path: &Path, user: &str) -> anyhow::Result<()> {
    std::fs::create_dir(path).with_context(|| format!("Failed to create {}", path.display()))?;
    chown_to(path, user)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("Failed to set the mode of {}", path.display()))
}

/// Gives `path` (not following a symlink) to `user` and its primary group.
fn chown_to(path: &Path, user: &str) -> anyhow::Result<()> {
    let account = crate::child::account(user)?;
    nix::unistd::fchownat(
        nix::fcntl::AT_FDCWD,
        path,
        Some(account.uid),
        Some(account.gid),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .with_context(|| format!("Failed to give {} to {user}", path.display()))
}

/// Writes `text` to `path` (atomically, mode 0600) as a file of `user`.
fn write_user_file(path: &Path, text: &str, user: &str) -> anyhow::Result<()> {
    crate::safe_write::write_atomically(path, text.as_bytes(), 0o600)?;
    chown_to(path, user)
}

/// Removes a file if it is there.
fn remove_if_present(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("Failed to remove {}", path.display()))
        }
        _ => Ok(()),
    }
}

impl Source for Barman {
    type Backup = Chosen;
    type Staged = Staged;

    const STAGES_IN_TARGET: bool = true;

    fn finished_swap_note(&self) -> Option<&'static str> {
        Some(AFTER_RESTORE_NOTE)
    }

    fn probe(&self, turn: &Turn) -> Result<Found<Chosen>, Miss> {
        let run = turn.run;
        let service = &run.spec.service;
        let pg = run.validated.config.postgresql.get(service).cloned().ok_or_else(|| {
            Miss::Failed(format!("no postgresql.{service} entry in the config: the archive is not known"))
        })?;
        let client = Client::new(&pg.archive)?;
        let where_ = format!("{} (server {})", pg.archive.destination, pg.archive.server_name);
        let listing = run
            .unlocked(|| client.list(turn.deadline))?
            .with_context(|| format!("Failed to list the backups in {where_}"))?;
        let select = match (&pg.backup_id, &pg.target_time) {
            (Some(id), _) => Select::Id(id.clone()),
            (None, Some(time)) => {
                let ns =
                    barman::parse_iso(time).ok_or_else(|| Miss::Failed(format!("targetTime {time:?} unreadable")))?;
                Select::Time(ns)
            }
            (None, None) => Select::Latest,
        };
        let backup = match barman::choose(&listing, &select) {
            Choice::Found(b) => b.clone(),
            Choice::NoBackup => return Err(Miss::NoBackup(format!("{where_} holds no DONE base backup"))),
            Choice::Unfit(why) => return Err(Miss::Failed(format!("{where_}: {why}"))),
        };
        let upto = pg.target_time.as_deref().map_or_else(|| "the end of the archive".to_string(), ToString::to_string);
        let why = format!(
            "{} base backup {} (ended {}, timeline {}) of {where_}, replayed to {upto}",
            if pg.backup_id.is_some() { "the configured" } else { "the newest fitting DONE" },
            backup.backup_id,
            backup.end_time_iso.as_deref().unwrap_or("?"),
            backup.timeline.map_or_else(|| "?".to_string(), |t| t.to_string()),
        );
        Ok(Found { snapshot: backup.backup_id.clone(), why, backup: Chosen { client, pg, backup } })
    }

    fn stage(&self, turn: &Turn, found: &Found<Chosen>) -> Result<Staged, Miss> {
        let Some(mountpoint) = turn.mountpoint else {
            return Err(Miss::Failed("the dataset is not mounted".into()));
        };
        let (run, chosen) = (turn.run, &found.backup);
        let id = &chosen.backup.backup_id;
        let pin_file = pitr::pin_path(&run.opts.status_file, &run.spec.service);
        // A pin an earlier, failed attempt left on another backup is released first: the record
        // names one backup, and a pin nobody knows of would keep its backup and WAL for ever.
        if let Some(old) = pitr::read_pin(&pin_file)?.filter(|p| &p.backup_id != id) {
            match run.unlocked(|| chosen.client.release(&old.backup_id, turn.deadline))? {
                Ok(()) => tracing::info!("released the pin an earlier attempt left on backup {}", old.backup_id),
                Err(e) => {
                    return Err(Miss::Failed(format!(
                        "backup {} is still pinned by an earlier attempt and could not be released: {e:#}",
                        old.backup_id
                    )));
                }
            }
        }
        // Recorded before pinning: a run killed right after still knows there is a pin to release.
        pitr::write_pin(&pin_file, &Pin { backup_id: id.clone(), state: PinState::Pinned, timeline: None, lsn: None })?;
        let wal = wal_place(turn, &chosen.pg)?;
        let dir = match staging::create_traversable(mountpoint, "barman") {
            Ok(dir) => dir,
            Err(e) => {
                if let Some(w) = &wal {
                    discard(&w.staging);
                }
                return Err(e.into());
            }
        };
        let recovered = run.unlocked(|| recover(turn, chosen, &dir, wal.as_ref())).and_then(|r| r);
        if let Some(w) = &wal {
            discard(&w.staging);
        }
        match recovered {
            Ok(control) => Ok(Staged { mountpoint: mountpoint.to_path_buf(), dir, control }),
            Err(e) => {
                let log = std::fs::read_to_string(dir.join("recovery.log")).unwrap_or_default();
                discard(&dir);
                let tail = crate::child::tail(&log, 1500);
                let log = if tail.is_empty() { String::new() } else { format!("; the server said: {tail}") };
                Err(Miss::Failed(format!("{e:#}{log}")))
            }
        }
    }

    fn verify(&self, turn: &Turn, _found: &Found<Chosen>, staged: &Staged) -> Result<(), Miss> {
        let data = staged.dir.join("data");
        let checked = turn.run.unlocked(|| -> anyhow::Result<()> {
            if !data.join("PG_VERSION").is_file() {
                bail!("the restored cluster has no PG_VERSION");
            }
            turn.verify_command(&data).map_err(anyhow::Error::msg)?;
            staging::sync_filesystem(&staged.dir)
        });
        if let Err(e) = checked.and_then(|checked| checked) {
            discard(&staged.dir);
            return Err(e.into());
        }
        Ok(())
    }

    fn swap(&self, turn: &Turn, found: &Found<Chosen>, staged: Staged) -> Result<Restored, Miss> {
        let run = turn.run;
        let id = &found.backup.backup.backup_id;
        let journal = SwapJournal { source: "barman".into(), snapshot: id.clone(), data_root: PathBuf::from("data") };
        staging::write_journal(&staged.dir, &journal)?;
        provenance::swap_and_record(&run.zfs, run.spec, &run.entry_rules(), &staged.mountpoint, &staged.dir, &journal)?;
        let control = &staged.control;
        swapped_in(run, id, Some(control))?;
        let upto = found.backup.pg.target_time.as_deref().unwrap_or("the end of the archive");
        Ok(Restored {
            detail: format!(
                "restored barman-cloud base backup {id}, replayed to {upto}: promoted to timeline {}, checkpoint {}",
                control.timeline, control.checkpoint
            ),
            snapshot: id.clone(),
            note: Some(format!(
                "promoted to timeline {} at checkpoint {}; {AFTER_RESTORE_NOTE}",
                control.timeline, control.checkpoint
            )),
        })
    }
}

/// Records that the cluster restored from `backup_id` is in place (by this run, or by a rerun that
/// finished its journaled swap): the first base backup releases its pin from now on.
pub(super) fn swapped_in(run: &Run<'_>, backup_id: &str, control: Option<&ControlData>) -> anyhow::Result<()> {
    let pin = Pin {
        backup_id: backup_id.to_string(),
        state: PinState::Restored,
        timeline: control.map(|c| c.timeline),
        lsn: control.map(|c| c.checkpoint.clone()),
    };
    pitr::write_pin(&pitr::pin_path(&run.opts.status_file, &run.spec.service), &pin)
}

/// The WAL dataset's mountpoint and a fresh staging there (stale ones of ours removed), when the
/// cluster keeps `pg_wal` on its own dataset.
fn wal_place(turn: &Turn, pg: &PostgresConfig) -> anyhow::Result<Option<WalPlace>> {
    let Some(wal_service) = &pg.wal_service else { return Ok(None) };
    let spec = turn.run.validated.spec(wal_service)?;
    let Place::Mounted(root) = target::read(&turn.run.zfs, &spec.dataset)?.place else {
        bail!("the WAL dataset {} ({wal_service}) is not mounted", spec.dataset);
    };
    for name in &root.stale_staging {
        staging::remove(&root.mountpoint.join(name))?;
    }
    let staging = staging::create_traversable(&root.mountpoint, "barman")?;
    if let Err(e) = user_dir(&staging.join("pg_wal"), &pg.user) {
        discard(&staging);
        return Err(e);
    }
    Ok(Some(WalPlace { mountpoint: root.mountpoint, staging }))
}

/// Restores the base backup into `<dir>/data`, recovers it with a private server, shuts it down and
/// leaves a cluster without recovery settings, its `pg_wal` moved into place on the WAL dataset.
fn recover(turn: &Turn, chosen: &Chosen, dir: &Path, wal: Option<&WalPlace>) -> anyhow::Result<ControlData> {
    let (pg, deadline) = (&chosen.pg, turn.deadline);
    let data = dir.join("data");
    user_dir(&data, &pg.user)?;
    // The pin and the pre-flight run while the base backup downloads (each is a Python start and a
    // round trip); the recovery starts only once both have passed. The restore itself runs on this
    // thread: its death signal (setpriv --pdeathsig) follows the thread that started it.
    let id = &chosen.backup.backup_id;
    let (pinned, preflight, restored) = std::thread::scope(|scope| {
        let pin = scope.spawn(|| chosen.client.keep(id, deadline));
        let first = scope.spawn(|| first_wal_present(chosen, dir, deadline));
        let restored = chosen.client.restore(id, &data, &pg.user, deadline);
        (pin.join(), first.join(), restored)
    });
    pinned
        .map_err(|_| anyhow::anyhow!("the pin's thread panicked"))?
        .with_context(|| format!("Failed to pin backup {id} against retention"))?;
    preflight.map_err(|_| anyhow::anyhow!("the pre-flight's thread panicked"))??;
    restored.context("barman-cloud-restore")?;
    let pg_wal = data.join("pg_wal");
    if let Some(wal) = wal {
        if pg_wal.exists() {
            std::fs::remove_dir(&pg_wal).with_context(|| format!("the restored {} is not empty", pg_wal.display()))?;
        }
        std::os::unix::fs::symlink(wal.staging.join("pg_wal"), &pg_wal)
            .with_context(|| format!("Failed to link {}", pg_wal.display()))?;
    } else if !pg_wal.exists() {
        user_dir(&pg_wal, &pg.user)?;
    }
    // A backup of a standby must not come back as one; a restored recovery.signal is replaced by ours.
    remove_if_present(&data.join("standby.signal"))?;
    let auto_conf = data.join("postgresql.auto.conf");
    let own = std::fs::read_to_string(&auto_conf).unwrap_or_default();
    let exe = std::env::current_exe().context("Failed to find persistctl's own path")?;
    let restore = postgres::restore_command(&exe.to_string_lossy(), chosen.client.archive(), pg.wal_timeout);
    let settings =
        postgres::with_recovery_settings(&own, &restore, pg.target_time.as_deref()).map_err(anyhow::Error::msg)?;
    write_user_file(&auto_conf, &settings, &pg.user)?;
    write_user_file(&data.join("recovery.signal"), "", &pg.user)?;
    // A socket path has at most 107 bytes, which a deep mountpoint plus the staging name can exceed:
    // the private socket lives in a short temporary directory of the cluster's user instead.
    let socket_dir =
        tempfile::Builder::new().prefix("persistctl-pg.").tempdir().context("Failed to make a socket directory")?;
    let socket = socket_dir.path().to_path_buf();
    chown_to(&socket, &pg.user)?;
    let (conf, hba, ident) = (dir.join("recovery.conf"), dir.join("hba.conf"), dir.join("ident.conf"));
    for (path, text) in [
        (
            &conf,
            postgres::recovery_server_conf(&socket.to_string_lossy(), &hba.to_string_lossy(), &ident.to_string_lossy()),
        ),
        // PostgreSQL refuses an empty pg_hba.conf; this one lets nobody in.
        (&hba, "local all all reject\n".to_string()),
        (&ident, String::new()),
    ] {
        crate::safe_write::write_atomically(path, text.as_bytes(), 0o644)?;
    }
    let log = std::fs::File::create(dir.join("recovery.log")).context("Failed to create the recovery log")?;
    let bin_dir = Path::new(&pg.bin_dir);
    let server =
        RecoveryServer { bin_dir, user: &pg.user, data_dir: &data, conf: &conf, log: &log, env: chosen.client.env() };
    let mut server = server.start()?;
    postgres::wait_promoted(&mut server, &data, deadline)?;
    postgres::stop(server, deadline)?;
    let control = postgres::controldata(bin_dir, &data, deadline)?;
    if control.state != "shut down" {
        bail!("after the recovery, pg_control says {:?}, not \"shut down\"", control.state);
    }
    if chosen.backup.timeline.is_some_and(|from| control.timeline <= from) {
        bail!("the recovery ended on timeline {}: it did not promote", control.timeline);
    }
    let recovered_conf = std::fs::read_to_string(&auto_conf).unwrap_or_default();
    write_user_file(&auto_conf, &postgres::without_recovery_settings(&recovered_conf), &pg.user)?;
    remove_if_present(&data.join("recovery.signal"))?;
    if let Some(wal) = wal {
        place_wal(wal, &pg_wal)?;
    }
    Ok(control)
}

/// The pre-flight: the backup's first WAL is in the archive. A wrong server name in an existing
/// bucket is an empty prefix, whose fetches say "not there" (exit 1) — which a recovery to "latest"
/// would take for the end of the archive.
fn first_wal_present(chosen: &Chosen, dir: &Path, deadline: std::time::Instant) -> anyhow::Result<()> {
    let (backup, archive) = (&chosen.backup, &chosen.pg.archive);
    let where_ = format!("{} (server {})", archive.destination, archive.server_name);
    let first_wal = backup.begin_wal.clone().unwrap_or_default();
    let scratch = dir.join("first-wal");
    let fetched = chosen.client.has_wal(&first_wal, &scratch, deadline);
    let _ = std::fs::remove_file(&scratch);
    if !fetched.with_context(|| format!("Failed to fetch WAL {first_wal} from {where_}"))? {
        bail!(
            "backup {} needs WAL {first_wal}, which is not in {where_}: the WAL archive is incomplete or elsewhere",
            backup.backup_id
        );
    }
    Ok(())
}

/// Moves the recovered `pg_wal` from our staging on the WAL dataset to `<its mountpoint>/pg_wal`
/// (`initdb --waldir`'s place) and points PGDATA's link there. What is already at that place is set
/// aside, never removed, unless it is an empty directory.
fn place_wal(wal: &WalPlace, link: &Path) -> anyhow::Result<()> {
    let place = wal.mountpoint.join("pg_wal");
    if std::fs::symlink_metadata(&place).is_ok() && std::fs::remove_dir(&place).is_err() {
        let aside = wal.mountpoint.join(format!(
            "pg_wal.persistctl-aside-{}",
            crate::timestamp::rfc3339_utc(std::time::SystemTime::now()).replace(':', "")
        ));
        tracing::warn!("{} holds WAL of another cluster; moving it to {}", place.display(), aside.display());
        std::fs::rename(&place, &aside).with_context(|| format!("Failed to move {} aside", place.display()))?;
    }
    std::fs::rename(wal.staging.join("pg_wal"), &place)
        .with_context(|| format!("Failed to move the recovered WAL to {}", place.display()))?;
    let new_link = link.with_file_name("pg_wal.persistctl-new");
    remove_if_present(&new_link)?;
    std::os::unix::fs::symlink(&place, &new_link).with_context(|| format!("Failed to link {}", new_link.display()))?;
    std::fs::rename(&new_link, link).with_context(|| format!("Failed to replace {}", link.display()))
}
