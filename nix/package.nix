# persistctl, built from this repository's Cargo.lock. The source is filtered to what cargo needs,
# so editing docs, Nix files or fixtures does not rebuild the binary.
{
  lib,
  rustPlatform,
}:
let
  fs = lib.fileset;
  root = ../.;
  manifest = lib.importTOML ../Cargo.toml;
  rustFiles = fs.fileFilter (file: file.hasExt "rs") root;
in
rustPlatform.buildRustPackage {
  pname = manifest.package.name;
  version = manifest.package.version;

  src = fs.toSource {
    inherit root;
    fileset = fs.unions [
      ../Cargo.toml
      ../Cargo.lock
      ../src
      ../core
      (fs.maybeMissing ../build.rs)
      # Integration-test sources only: cargo reads every target of the manifest, but the tests
      # themselves need a fake zfs or a VM and do not run here.
      (fs.intersection (fs.maybeMissing ../tests) rustFiles)
      (fs.intersection (fs.maybeMissing ../benches) rustFiles)
    ];
  };

  cargoLock.lockFile = ../Cargo.lock;

  # Unit tests only (`cargo test --workspace --bins [--lib]`): the core's tables and the shell's.
  cargoTestFlags = [
    "--workspace"
    "--bins"
  ]
  ++ lib.optional (builtins.pathExists ../src/lib.rs) "--lib";

  meta = {
    description = manifest.package.description or "Declarative, self-healing ZFS persistence for NixOS";
    license = lib.licenses.mit;
    mainProgram = "persistctl";
    platforms = lib.platforms.linux;
  };
}
