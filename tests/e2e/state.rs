//! The state of everything a deploy touches, taken before and after, so a test can assert
//! that a rollback brought every part back: database, code, cache, `.env` and the service.

use super::postgres::DatabaseState;
use super::redis::CacheState;

#[derive(Debug)]
pub struct SystemState {
    pub database: DatabaseState,
    pub code: CodeState,
    pub cache: CacheState,
    pub env_file: EnvFile,
    pub service: ServiceState,
}

/// The checkout: where HEAD is, local changes, the installed dependencies, and every ref but
/// the safety net's own tag and branch (which a rollback keeps on purpose).
#[derive(Debug, PartialEq, Eq)]
pub struct CodeState {
    pub head: String,
    pub commit: String,
    pub changes: String,
    pub installed: String,
    pub refs: Vec<String>,
}

#[derive(Debug, PartialEq, Eq)]
pub struct EnvFile {
    pub mode: u32,
    pub text: String,
}

/// What the service answers; None where nothing answers.
#[derive(Debug, PartialEq, Eq)]
pub struct ServiceState {
    pub version: Option<String>,
    pub health: Option<u16>,
    pub queue: Option<String>,
}

impl SystemState {
    /// Fails the test naming each part that is not as in `before`.
    pub fn assert_restored(&self, before: &SystemState) {
        assert_eq!(self.service, before.service, "the service");
        assert_eq!(self.env_file, before.env_file, "the .env file");
        assert_eq!(self.code, before.code, "the code");
        assert_eq!(self.cache, before.cache, "the cache");
        assert_eq!(self.database, before.database, "the database");
    }
}
