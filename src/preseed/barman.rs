//! The barman-cloud source (PostgreSQL): being built in this session; until then it fails closed.

use super::sources::{Found, Miss, Restored, Source, Turn};

/// The PostgreSQL cluster's barman-cloud archive.
pub(super) struct Barman;

impl Source for Barman {
    type Backup = ();
    type Staged = ();

    const STAGES_IN_TARGET: bool = true;

    fn probe(&self, _turn: &Turn) -> Result<Found<()>, Miss> {
        Err(Miss::Failed("the barman source is not built yet".into()))
    }

    fn stage(&self, _turn: &Turn, _found: &Found<()>) -> Result<(), Miss> {
        Err(Miss::Failed("the barman source is not built yet".into()))
    }

    fn verify(&self, _turn: &Turn, _found: &Found<()>, _staged: &()) -> Result<(), Miss> {
        Err(Miss::Failed("the barman source is not built yet".into()))
    }

    fn swap(&self, _turn: &Turn, _found: &Found<()>, _staged: ()) -> Result<Restored, Miss> {
        Err(Miss::Failed("the barman source is not built yet".into()))
    }
}
